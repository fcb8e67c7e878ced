"""A remote console through wayvnc (README, "Remote console"): wayvnc serves one head of a
headless vscanout over VNC (RFB), reading it with wlr-screencopy and typing and pointing into the
guest with the virtual keyboard and pointer. Checked with an RFB client of ours
(tests/common/rfb_client.py): the head's frame arrives pixel-exact against the sim formulas; a
static guest sends no frame traffic and costs vscanout no render or commit while a viewer waits;
a guest change arrives; keys and pointer events reach a real QEMU as they do from wtype; with
capture refused, wayvnc gets nothing."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import SLOW, guest_frame, wait_until
from rfb_client import XK_SHIFT_L, RfbClient
from test_qemu import BusMonitor, qemu_bus, wait_same_as_qemu  # noqa: F401 (qemu_bus: a fixture)
from vscanout_pixels import describe_difference

WAYVNC = shutil.which("wayvnc")
VIRTUAL_POINTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vm",
                               "wl_virtual_pointer.py")


class Wayvnc:
    """wayvnc on a UNIX socket (-u) next to vscanout's, for one output."""

    def __init__(self, vs, output, args=()):
        if WAYVNC is None:
            pytest.fail("wayvnc is missing: run scripts/setup.sh")
        self.path = os.path.join(vs.dir, f"vnc-{output}.sock")
        self.log_path = os.path.join(vs.dir, f"wayvnc-{output}.log")
        self.log = open(self.log_path, "wb")
        # its own config directory: no user configuration (auth, address) applies
        env = dict(vs.client_env(), XDG_CONFIG_HOME=vs.dir)
        self.proc = subprocess.Popen([WAYVNC, "-u", f"--output={output}"] + list(args) + [self.path], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_listening(self, timeout=10):
        def up():
            assert self.proc.poll() is None, f"wayvnc exited ({self.proc.returncode}): {self.text()}"
            return os.path.exists(self.path)
        wait_until(up, timeout, what="wayvnc's socket")

    def connect(self):
        return RfbClient(self.path, timeout=10 * SLOW)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture
def wayvnc():
    started = []

    def start(vs, output, args=()):
        w = Wayvnc(vs, output, args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def wait_image(client, want, timeout=15):
    """Requests updates until the client's framebuffer equals `want` (an Image)."""
    last = None

    def same():
        nonlocal last
        client.request(incremental=True)
        if client.pending(0.5):
            client.read_update()
        last = describe_difference(client.image(), want)
        return last is None

    try:
        wait_until(same, timeout, interval=0.05, what="the VNC framebuffer to equal the guest frame")
    except AssertionError as e:
        raise AssertionError(f"VNC framebuffer: {last or e}") from None


@pytest.mark.sanitizer
def test_wayvnc_serves_a_head_exactly_and_a_static_guest_costs_nothing(vscanout, wayvnc, tmp_path):
    fifo = str(tmp_path / "control")
    vs = vscanout(source=f"sim:heads=2,fps=0,control={fifo}")
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    vnc = wayvnc(vs, "HEAD-1")
    vnc.wait_listening()
    client = vnc.connect()
    try:
        assert (client.width, client.height) == (1024, 768), (client.width, client.height)
        client.request(incremental=False)
        client.read_update()
        wait_image(client, guest_frame(1024, 768, head=1, n=0))

        # A static guest: the viewer keeps asking (incremental requests), nothing comes, and
        # vscanout neither renders nor commits while wayvnc's next screencopy frame waits.
        before = vs.settle(quiet=0.5)
        updates_before, rects_before = client.updates, client.rects
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            client.request(incremental=True)
            if client.pending(0.2):
                client.read_message()
        after = vs.stats()
        assert client.rects == rects_before, (
            f"{client.rects - rects_before} rectangles in {client.updates - updates_before} updates over 2 s of a "
            "static guest")
        for head in (0, 1):
            for key in ("renders", "commits", "generation"):
                assert after[head][key] == before[head][key], (
                    f"head {head}: {key} went from {before[head][key]} to {after[head][key]} with a viewer on a "
                    "static guest")
        assert vnc.proc.poll() is None, vnc.text()

        # The guest changes: the next frame reaches the viewer, exact.
        with open(fifo, "w") as f:
            f.write("flip 1\n")
        wait_image(client, guest_frame(1024, 768, head=1, n=1))
        st = vs.stats()
        assert st[1]["generation"] > before[1]["generation"]
        assert st[0]["renders"] == before[0]["renders"], "HEAD-0 redrew for a change of HEAD-1"
    finally:
        client.close()
    vs.stop()


@pytest.mark.sanitizer
def test_wayvnc_gets_nothing_with_capture_refused(vscanout, wayvnc):
    vs = vscanout(source="sim:heads=1,fps=0", args=["--allow-capture=no"])
    vs.wait_outputs({"HEAD-0": (1280, 800)})
    vnc = wayvnc(vs, "HEAD-0")
    rc = vnc.proc.wait(15 * SLOW)
    assert rc != 0, "wayvnc ran without screencopy"
    assert "screencopy" in vnc.text(), vnc.text()
    assert not os.path.exists(vnc.path) or not _accepts(vnc.path), "wayvnc serves a head it cannot capture"
    vs.check_alive()
    vs.stop()


def _accepts(path):
    try:
        RfbClient(path, timeout=2).close()
        return True
    except OSError:
        return False


def test_wayvnc_with_input_refused_needs_disable_input(vscanout, wayvnc):
    """--allow-input=no: wayvnc (which wants the virtual keyboard and pointer) refuses to start
    unless told --disable-input, and then serves the frame, view only."""
    vs = vscanout(source="sim:heads=1,fps=0,modes=640x480", args=["--allow-input=no"])
    vs.wait_outputs({"HEAD-0": (640, 480)})
    vnc = wayvnc(vs, "HEAD-0")
    assert vnc.proc.wait(15 * SLOW) != 0
    assert "Virtual Pointer protocol not supported" in vnc.text(), vnc.text()
    vnc = wayvnc(vs, "HEAD-0", ["--disable-input"])
    vnc.wait_listening()
    client = vnc.connect()
    try:
        client.request(incremental=False)
        client.read_update()
        wait_image(client, guest_frame(640, 480, head=0, n=0))
    finally:
        client.close()
    vs.stop()


def test_wayvnc_keys_and_pointer_reach_qemu(vscanout, wayvnc, qemu_bus):
    """The VNC viewer's keys (keysyms, Shift pressed by the viewer itself) reach QEMU's console as
    its key numbers, "Hi" as Shift+H, I (evdev 42, 35, 23), exactly as wtype's do; its pointer
    (absolute, through wayvnc's virtual pointer on HEAD-0) reaches SeaBIOS's relative PS/2
    mouse as RelMotion by the distance in guest pixels, and a click as Press/Release 0."""
    bus, start_qemu = qemu_bus
    qemu = start_qemu()
    vs = vscanout(source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0")
    wait_same_as_qemu(vs, qemu)  # SeaBIOS's 720x400 text screen
    vnc = wayvnc(vs, "HEAD-0")
    vnc.wait_listening()
    keys = BusMonitor(bus, "interface='org.qemu.Display1.Keyboard'")
    mouse = BusMonitor(bus, "interface='org.qemu.Display1.Mouse'")
    client = vnc.connect()
    try:
        assert (client.width, client.height) == (720, 400)
        for keysym, down in ((XK_SHIFT_L, True), (ord("H"), True), (ord("H"), False), (XK_SHIFT_L, False),
                             (ord("i"), True), (ord("i"), False)):
            client.key(keysym, down)
        want = [("Press", ["uint32 42"]), ("Press", ["uint32 35"]), ("Release", ["uint32 35"]),
                ("Release", ["uint32 42"]), ("Press", ["uint32 23"]), ("Release", ["uint32 23"])]
        wait_until(lambda: keys.calls("org.qemu.Display1.Keyboard") == want, 10,
                   what=f"the key calls {want}, seen {keys.calls('org.qemu.Display1.Keyboard')}")

        def calls():
            return [c for c in mouse.calls("org.qemu.Display1.Mouse") if c[0] in ("RelMotion", "Press", "Release")]

        # The first position is where the pointer starts; the second moves it.
        client.pointer(170, 90)
        client.pointer(350, 190)
        client.pointer(350, 190, buttons=1)
        client.pointer(350, 190, buttons=0)
        try:
            wait_until(lambda: [c[0] for c in calls()][-3:] == ["RelMotion", "Press", "Release"], 10,
                       what="RelMotion, Press, Release")
        except AssertionError as e:
            raise AssertionError(f"{e}; seen {calls()}") from None
        (_, motion), press, release = calls()[-3:]
        assert motion == ["int32 180", "int32 100"], f"RelMotion {motion}, expected (180, 100); all {calls()}"
        assert press == ("Press", ["uint32 0"]) and release == ("Release", ["uint32 0"]), (press, release)

        # A hostile virtual pointer beside wayvnc's: a position far outside its extent is clamped
        # to the guest frame (from (350, 190) to (719, 399)), a zero extent is ignored, and a
        # wheel of INT32_MAX-ish steps is capped; vscanout goes on.
        vptr = subprocess.Popen([sys.executable, VIRTUAL_POINTER], env=vs.client_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert vptr.stdout.readline().strip() == "ready", "the virtual pointer did not start"
            for command in ("move 5000000 5000000 720 400", "move 5 5 0 0"):
                vptr.stdin.write(command + "\n")
                vptr.stdin.flush()
                assert vptr.stdout.readline().strip() == "ok", command
            wait_until(lambda: [c for c in calls() if c[0] == "RelMotion"][-1][1] == ["int32 369", "int32 209"], 10,
                       what=f"RelMotion (369, 209) to the clamped corner; seen {calls()[-3:]}")
        finally:
            vptr.stdin.close()
            vptr.wait(10)
        vs.check_alive()
        assert all("path=/org/qemu/Display1/Console_0;" in line
                   for line in keys.lines + mouse.lines if line.startswith("method call"))
    finally:
        client.close()
        keys.stop()
        mouse.stop()
    vs.stop()
