"""The QEMU source against a real QEMU 7.2 (`-display dbus`, TCG) on a private session bus.

These run on the host with no guest OS: SeaBIOS on the standard VGA card draws its text screen,
which is all a console needs to show. What vscanout shows is compared with what QEMU itself says
the console shows (QMP `screendump`). The formulas of a real guest on two virtio-gpu heads, the
cursor plane and input are checked in the VM test (tests/vm/qemu_dbus_test.sh)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time

import pytest

from conftest import wait_until
from nesting import Sway, Xvfb
from vscanout_pixels import describe_difference, parse_ppm

QEMU = shutil.which("qemu-system-x86_64")
VIRTUAL_POINTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vm",
                               "wl_virtual_pointer.py")


class Bus:
    """A private D-Bus session bus (dbus-daemon), stopped at teardown."""

    def __init__(self):
        r = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
                           stdout=subprocess.PIPE, text=True, timeout=20, check=True)
        lines = r.stdout.split()
        self.address, self.pid = lines[0], int(lines[1])

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


class Qemu:
    """QEMU with the standard VGA card shown over D-Bus, and a QMP socket to ask it for its own
    picture of the console."""

    def __init__(self, bus, workdir, extra=(), display="dbus"):
        self.dir = tempfile.mkdtemp(prefix="qemu-", dir=workdir)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.log_path = os.path.join(self.dir, "qemu.log")
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [QEMU, "-accel", "tcg", "-machine", "q35", "-m", "128", "-nodefaults", "-no-user-config",
             "-device", "VGA", "-display", display, "-serial", "none", "-monitor", "none",
             "-qmp", f"unix:{self.qmp_path},server=on,wait=off"] + list(extra),
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: os.path.exists(self.qmp_path) or self.proc.poll() is not None, 20, what="QEMU's QMP socket")
        assert self.proc.poll() is None, f"QEMU exited: {open(self.log_path).read()}"
        self.qmp = socket.socket(socket.AF_UNIX)
        self.qmp.connect(self.qmp_path)
        self.qmp_file = self.qmp.makefile("rw")
        self.qmp_file.readline()  # the greeting
        self.command("qmp_capabilities")

    def command(self, name, **arguments):
        self.qmp_file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.qmp_file.flush()
        while True:
            reply = json.loads(self.qmp_file.readline())
            if "event" not in reply:
                assert "error" not in reply, reply
                return reply

    def screendump(self):
        path = os.path.join(self.dir, "screendump.ppm")
        self.command("screendump", filename=path)
        with open(path, "rb") as f:
            return parse_ppm(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.qmp.close()
        self.log.close()


@pytest.fixture
def qemu_bus(tmp_path):
    """(bus, start_qemu): a private bus and a factory for QEMUs on it; all stopped at teardown."""
    if QEMU is None:
        pytest.fail("qemu-system-x86_64 is missing: run scripts/setup.sh")
    bus = Bus()
    started = []

    def start():
        q = Qemu(bus, str(tmp_path))
        started.append(q)
        return q

    yield bus, start
    for q in started:
        q.stop()
    bus.stop()


def wait_same_as_qemu(vs, qemu, head=0, timeout=30):
    """Until vscanout's capture of the head equals QEMU's own screendump taken right before it,
    once SeaBIOS has written its text screen (720x400 VGA text mode, reached from its 640x480
    start through updates alone: QEMU 7.2 sends no Scanout for it). SeaBIOS's text cursor
    blinks: a capture between two blinks matches."""
    last = None

    def same():
        nonlocal last
        vs.check_alive()
        want = qemu.screendump()
        if want.size != (720, 400) or not any(want.data):
            last = f"QEMU not in text mode with text yet ({want.width}x{want.height})"
            return False
        last = describe_difference(vs.capture(head), want)
        return last is None

    try:
        wait_until(same, timeout, interval=0.1, what="vscanout to show what QEMU shows")
    except AssertionError as e:
        raise AssertionError(f"HEAD-{head} differs from QEMU's screendump: {last or e}") from None


def test_qemu_console_shown_as_qemu_sees_it(vscanout, qemu_bus):
    bus, start_qemu = qemu_bus
    qemu = start_qemu()
    vs = vscanout(source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0 for the VGA console")
    vs.wait_log(r"qemu: head 0 is console 0 'VGA'")
    wait_same_as_qemu(vs, qemu)
    w, h = vs.randr()["HEAD-0"]
    dump = qemu.screendump()
    assert (w, h) == dump.size, f"HEAD-0 is {w}x{h}, QEMU's console {dump.width}x{dump.height}"


@pytest.mark.sanitizer
def test_qemu_exit_shows_no_signal_and_the_next_qemu_is_shown(vscanout, qemu_bus):
    bus, start_qemu = qemu_bus
    qemu = start_qemu()
    vs = vscanout(source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0")
    wait_same_as_qemu(vs, qemu)
    size = vs.randr()["HEAD-0"]
    qemu.stop()
    # Whichever vscanout sees first: the listener connection ending, or org.qemu leaving the bus.
    vs.wait_log(r"qemu: head 0 \(console 0\): QEMU (closed the connection|left the bus); showing no signal")
    vs.wait_no_signal(0, size)
    st = vs.stats()
    assert st[0]["connected"] is False, st[0]
    qemu2 = start_qemu()
    vs.wait_log(r"qemu: a QEMU appeared on the bus")
    wait_same_as_qemu(vs, qemu2)
    assert vs.stats()[0]["connected"] is True
    vs.stop()


@pytest.mark.sanitizer
def test_qemu_peer_to_peer_over_qmp(vscanout, qemu_bus, tmp_path):
    """`-display dbus,p2p=yes`: no bus; vscanout asks QEMU for a connection over QMP (`getfd` +
    `add_client`) on a QMP socket of its own, shows the console as QEMU sees it, shows no signal
    when QEMU goes, and asks the next QEMU on the same socket."""
    bus, _ = qemu_bus  # unused by QEMU here; the fixture only cleans up
    qmp = str(tmp_path / "vscanout-qmp.sock")
    extra = ["-qmp", f"unix:{qmp},server=on,wait=off"]
    qemu = Qemu(bus, str(tmp_path), extra=extra, display="dbus,p2p=yes")
    try:
        vs = vscanout(source=f"qemu:qmp:{qmp}", env={"DBUS_SESSION_BUS_ADDRESS": None})
        vs.wait_log(r"qemu: connected to QEMU's display peer to peer")
        wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0")
        wait_same_as_qemu(vs, qemu)
        size = vs.randr()["HEAD-0"]
        qemu.stop()
        vs.wait_log(r"qemu: head 0 \(console 0\): QEMU closed the connection; showing no signal")
        vs.wait_no_signal(0, size)
        qemu = Qemu(bus, str(tmp_path), extra=extra, display="dbus,p2p=yes")
        vs.wait_log(r"qemu: connected to QEMU's display peer to peer", count=2)
        wait_same_as_qemu(vs, qemu)
        vs.stop()
    finally:
        qemu.stop()


def test_qemu_once_exits_0_when_qemu_exits(vscanout, qemu_bus):
    bus, start_qemu = qemu_bus
    qemu = start_qemu()
    vs = vscanout(args=["--once"], source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0")
    qemu.stop()
    t0 = time.monotonic()
    rc = vs.proc.wait(20)
    assert rc == 0, f"vscanout --once exited with {rc} after QEMU exited"
    assert time.monotonic() - t0 < 10
    # The exit names its cause (docs/design.md, "Exit causes"), after the source's own reason.
    log = vs.log()
    assert "QEMU is gone and --once was given" in log, log[-2000:]
    assert "exiting (status 0): the source (qemu) ended" in log, log[-2000:]


def test_vscanout_waits_for_a_qemu_that_comes_later(vscanout, qemu_bus):
    bus, start_qemu = qemu_bus
    vs = vscanout(source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    vs.wait_log(r"qemu: no QEMU display on the bus yet .*; waiting for one")
    assert vs.randr() == {}
    qemu = start_qemu()
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0 once QEMU is up")
    wait_same_as_qemu(vs, qemu)


class BusMonitor:
    """dbus-monitor on the private bus: the calls vscanout makes into QEMU's consoles."""

    def __init__(self, bus, rule):
        self.proc = subprocess.Popen(["dbus-monitor", "--address", bus.address, rule],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        # dbus-monitor shows its own NameAcquired once it listens
        wait_until(lambda: any("NameAcquired" in line for line in self.lines), 10, what="dbus-monitor listening")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def calls(self, interface):
        """(member, [arguments as text]) of each method call on `interface`, in order."""
        out = []
        for line in list(self.lines):
            if line.startswith("method call") and f"interface={interface};" in line:
                out.append((line.split("member=")[1].strip(), []))
            elif out and line.startswith("   ") and not line.startswith("method"):
                out[-1][1].append(line.strip())
        return out

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


@pytest.mark.sanitizer
def test_wtype_keys_reach_the_console_as_qemu_key_numbers(vscanout, qemu_bus):
    """A virtual keyboard (wtype) brings its own keymap; vscanout turns its keys back into the
    keys of the default layout and calls Keyboard.Press/Release with QEMU's key numbers:
    "Hi" is Shift+H, I (evdev 42, 35, 23, the same numbers in QEMU's XT set 1)."""
    bus, start_qemu = qemu_bus
    start_qemu()
    vs = vscanout(source="qemu", env={"DBUS_SESSION_BUS_ADDRESS": bus.address})
    wait_until(lambda: "HEAD-0" in vs.randr(), 20, what="HEAD-0")
    mon = BusMonitor(bus, "interface='org.qemu.Display1.Keyboard'")
    try:
        r = vs.run_client(["wtype", "Hi"])
        assert r.returncode == 0, r.stderr
        want = [("Press", ["uint32 42"]), ("Press", ["uint32 35"]), ("Release", ["uint32 35"]),
                ("Release", ["uint32 42"]), ("Press", ["uint32 23"]), ("Release", ["uint32 23"])]
        wait_until(lambda: mon.calls("org.qemu.Display1.Keyboard") == want, 10,
                   what=f"the key calls {want}, seen {mon.calls('org.qemu.Display1.Keyboard')}")
        assert all("path=/org/qemu/Display1/Console_0;" in line
                   for line in mon.lines if line.startswith("method call")), "keys went to another console"
    finally:
        mon.stop()
    vs.stop()


def test_nested_in_sway_window_size_and_pointer_reach_qemu(vscanout, parents, tmp_path):
    """vscanout nested in a headless sway, showing QEMU's standard VGA (SeaBIOS: a PS/2 mouse,
    a relative pointer). The user resizing the window (`resize set`) sends QEMU the new size as
    SetUIInfo; the seat's pointer moved with `swaymsg seat - cursor set` between two points
    arrives as RelMotion by the distance in guest pixels (the letterbox undone), and
    `cursor press/release button1` as Mouse.Press/Release 0. (An absolute pointer, SetAbsPosition,
    is checked with a Linux guest and virtio-tablet in tests/vm/qemu_dbus_test.sh.)"""
    bus = Bus()
    qemu = None
    try:
        qemu = Qemu(bus, str(tmp_path))
        sway = parents(Sway, config=["default_border none",
                                     'for_window [title="HEAD-0$"] floating enable, move absolute position 0 0'])
        mon = BusMonitor(bus, "interface='org.qemu.Display1.Mouse'")
        ui = BusMonitor(bus, "member='SetUIInfo'")
        try:
            env = dict(sway.vscanout_env(), DBUS_SESSION_BUS_ADDRESS=bus.address)
            vs = vscanout(source="qemu", env=env)
            name = "vscanout — qemu HEAD-0"
            sway.wait_windows(lambda ws: [w["name"] for w in ws] == [name], what="HEAD-0's window in sway")
            wait_same_as_qemu(vs, qemu)  # SeaBIOS's text screen: the guest frame is 720x400
            sway.command('[title="HEAD-0$"] resize set 1000 700')
            want_ui = ["uint16 0", "uint16 0", "int32 0", "int32 0", "uint32 1000", "uint32 700"]
            wait_until(lambda: ("SetUIInfo", want_ui) in ui.calls("org.qemu.Display1.Console"), 10,
                       what="SetUIInfo 1000x700")
            rect = sway.window(name)["rect"]
            assert (rect["width"], rect["height"]) == (1000, 700), rect
            # 720x400 letterboxed into 1000x700: scale 1000/720, bars above and below.
            scale = 1000 / 720
            fy = (700 - round(400 * scale)) / 2

            def at(gx, gy):
                return int(rect["x"] + gx * scale + 0.5), int(rect["y"] + fy + gy * scale + 0.5)

            def calls():
                return [c for c in mon.calls("org.qemu.Display1.Mouse") if c[0] in ("RelMotion", "Press", "Release")]

            # A headless sway has no input device, so its seat offers clients no pointer: a
            # virtual pointer client gives it one, then sway's own cursor commands drive it.
            vptr = subprocess.Popen([sys.executable, VIRTUAL_POINTER], env=dict(os.environ, **sway.client_env()),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert vptr.stdout.readline().strip() == "ready", "the virtual pointer did not start"
                # The first position over the window comes as an enter, which carries no motion
                # (wlroots' wayland backend): a relative guest is moved from the second one on.
                for gx, gy in ((170, 90), (180, 100)):
                    sway.command("seat - cursor set %d %d" % at(gx, gy))
                    time.sleep(0.2)
                sway.command("seat - cursor set %d %d" % at(360, 200))
                sway.command("seat - cursor press button1")
                sway.command("seat - cursor release button1")
                try:
                    wait_until(lambda: [c[0] for c in calls()][-3:] == ["RelMotion", "Press", "Release"], 10,
                               what="RelMotion, Press, Release")
                except AssertionError as e:
                    raise AssertionError(f"{e}; seen {calls()}") from None
            finally:
                vptr.stdin.close()
                vptr.wait(10)
            (_, motion), press, release = calls()[-3:]
            dx, dy = (int(v.split()[1]) for v in motion)
            assert abs(dx - 180) <= 1 and abs(dy - 100) <= 1, f"RelMotion({dx}, {dy}), expected about (180, 100)"
            assert press == ("Press", ["uint32 0"]) and release == ("Release", ["uint32 0"]), (press, release)
        finally:
            mon.stop()
            ui.stop()
    finally:
        if qemu:
            qemu.stop()
        bus.stop()


def test_nested_in_xvfb_pointer_reaches_the_right_console(vscanout, parents, tmp_path):
    """Nested in X11 (Xvfb), each window has its own pointer device, named after the output's
    first name (X11-<n>, before vscanout names it HEAD-<id>). Two consoles (VGA and a secondary
    VGA, both calling themselves head 0: the second is shown as head 1): the pointer moved with
    xdotool over HEAD-0's window reaches console 0 as RelMotion by the guest-pixel distance (the
    720x400 text screen shown 1:1), and a click in HEAD-1's window reaches console 1."""
    bus = Bus()
    qemu = None
    try:
        qemu = Qemu(bus, str(tmp_path), extra=["-device", "secondary-vga"])
        x = parents(Xvfb)
        x.intern_wm_atoms()
        mon = BusMonitor(bus, "interface='org.qemu.Display1.Mouse'")
        try:
            vs = vscanout(source="qemu", env=dict(x.vscanout_env(), DBUS_SESSION_BUS_ADDRESS=bus.address))
            vs.wait_log(r"qemu: console 1 also calls itself head 0; showing it as head 1")
            wait_same_as_qemu(vs, qemu)
            x.wait_windows(lambda ws: sorted(w["name"] for w in ws) == ["vscanout — qemu HEAD-0",
                                                                           "vscanout — qemu HEAD-1"],
                           what="two windows")
            xdotool = shutil.which("xdotool")
            # No window manager: both windows open at (0, 0). HEAD-1's goes aside.
            head1 = next(w for w in x.windows() if w["name"] == "vscanout — qemu HEAD-1")
            x.run([xdotool, "windowmove", head1["id"], "1000", "0"])
            wins = x.wait_windows(lambda ws: {w["name"]: (w["x"], w["y"], w["width"]) for w in ws}.get(
                "vscanout — qemu HEAD-0", (None,))[:2] == (0, 0) and any(
                w["name"] == "vscanout — qemu HEAD-1" and w["x"] == 1000 for w in ws), what="HEAD-1's window moved")
            head0 = next(w for w in wins if w["name"] == "vscanout — qemu HEAD-0")
            assert (head0["width"], head0["height"]) == (720, 400), head0

            def calls():
                out = []
                for line in mon.lines:
                    if line.startswith("method call") and "member=" in line:
                        console = line.split("path=")[1].split(";")[0].rsplit("_", 1)[1]
                        out.append([line.split("member=")[1].strip(), console, []])
                    elif out and line.startswith("   "):
                        out[-1][2].append(line.strip())
                return [tuple(c[:2]) + (c[2],) for c in out if c[0] in ("RelMotion", "Press", "Release")]

            for gx, gy in ((170, 90), (180, 100), (360, 200)):
                x.run([xdotool, "mousemove", str(gx), str(gy)])
                time.sleep(0.2)
            x.run([xdotool, "mousemove", "1100", "100"])
            time.sleep(0.2)
            x.run([xdotool, "click", "1"])
            want_tail = [("Press", "1", ["uint32 0"]), ("Release", "1", ["uint32 0"])]
            try:
                wait_until(lambda: calls()[-2:] == want_tail, 10, what="Press/Release 0 on console 1")
            except AssertionError as e:
                raise AssertionError(f"{e}; seen {calls()}") from None
            motions = [c for c in calls() if c[0] == "RelMotion" and c[1] == "0"]
            assert motions and motions[-1][2] == ["int32 180", "int32 100"], \
                f"console 0's last RelMotion {motions[-1:]}, expected (180, 100); all calls {calls()}"
        finally:
            mon.stop()
    finally:
        if qemu:
            qemu.stop()
        bus.stop()
