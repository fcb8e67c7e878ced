#!/usr/bin/python3
"""The guest half of the VFIO end-to-end test: vscanout on real kernel VFIO display devices.

usage: vfio_checks.py [--bin VSCANOUT]   (in the test VM; tests/vm/vfio_test.sh runs it there)

Creates one mbochs (dma-buf planes) and one mdpy (region plane) mdev, has guest_driver.py
`serve` them to vscanout (headless, --stats, --poll-hz 60, `--source vfio-fd:N:UUID` per device)
and drives the guest side through serve's control FIFO while checking what vscanout shows with
grim and wlr-randr and what it did with its --stats counters (SIGUSR1 rewrites them): frames
pixel for pixel, flips, import counts, in-place region redraws, a static picture costing nothing,
a mode change, display off/on, then the removal of the mdpy (and then the mbochs) while vscanout
shows it, and a clean exit. A second mbochs mdev is opened by vscanout itself
(`--source vfio:UUID`). A third is served with `size=1280x800` in its source spec: the guest side
reads the EDID vscanout wrote (mbochs' BAR2), takes its preferred mode, and HEAD-0 shows it 1:1.
A fourth is shown by vscanout nested in a headless sway: the tiled window's size, then after a
burst of resizes its last size (one EDID write), become the EDID's preferred mode, which the guest
sets and the window shows 1:1.
Each check prints what it did and one `RESULT: PASS|FAIL <check>: <reason>` line; the last line is
`vfio checks: N passed, M failed`.
Exits 1 if any check failed.

Debian's /usr/bin/python3 and the standard library only. Every wait polls against a deadline.
--bin: the vscanout to test (default <repo>/build/src/vscanout); it is copied to the guest's
tmpfs first, so a relink on the host during the run cannot swap it. VSCANOUT_VM_OUT (run.sh sets
it): vscanout's logs and stats, the serve state, captures of failed checks and dmesg go there.
VSCANOUT_IMPORT (auto, host or copy; vfio_test.sh runs all three): the import path vscanout is
held to (--import); auto must import mbochs' dma-bufs as dma-bufs (Mesa 25's lavapipe: a linear
buffer), with no counted copies. Check names start with "[--import X] " for host and copy.
"""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
import guest_driver as gd  # noqa: E402
from qemu_dbus_host import Sway  # noqa: E402
from vm_checks import (Died, Fail, GuestVscanout, Results, guest_args, guest_binary, kernel_warnings,  # noqa: E402
                       say, wait_until)
from vscanout_pixels import (NO_SIGNAL_BG, NO_SIGNAL_FG, describe_difference, guess_frame,  # noqa: E402
                             guest_frame, no_signal_problems, parse_ppm, parse_randr)
from vscanout_proc import READY_RX, change_env, vscanout_env  # noqa: E402

ROOT = os.environ.get("VSCANOUT_ROOT") or os.path.dirname(os.path.dirname(HERE))
OUT = os.environ.get("VSCANOUT_VM_OUT") or tempfile.mkdtemp(prefix="vfio-out-")
PYTHON = "/usr/bin/python3"
DRIVER = os.path.join(HERE, "guest_driver.py")

MBOCHS_UUID = "0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e11"
MDPY_UUID = "0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e12"
OWN_UUID = "0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e13"  # check 8: vscanout opens it itself
EDID_UUID = "0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e14"  # check 11: the EDID vscanout gives the guest
EDID_SIZE = (1280, 800)
NESTED_UUID = "0c6b2b1e-7c3a-4d8e-9f21-5a6b7c8d9e15"  # check 12: vscanout nested in sway, the window resized
NESTED_SWAY = (1536, 960)  # sway's output, the tiled window's size: w * h * 4 page aligned, as mbochs needs
# Then floating, resized in a burst; every size page aligned too.
NESTED_DRAG = [(1152, 768), (1200, 768), (1280, 768), (1280, 800)]

DEFAULT_SIZE = (1024, 768)  # a head with no mode yet shows no signal at this size
FLIPS = 50

IMPORT = os.environ.get("VSCANOUT_IMPORT", "auto")
R = Results("" if IMPORT == "auto" else "[--import %s] " % IMPORT)
# What each head's stats must say: mbochs (a dma-buf) and mdpy (a region, never a dma-buf).
WANT_PATHS = {"auto": ("dmabuf", "host"), "host": ("host", "host"), "copy": ("copy", "copy")}[IMPORT]


def import_path_problems(st):
    """Problems with the import paths and copy counts in the stats `st`, as a list."""
    problems = []
    for head, want in enumerate(WANT_PATHS):
        if st[head]["import_path"] != want:
            problems.append("head %d import_path %r, expected %r" % (head, st[head]["import_path"], want))
    if IMPORT != "copy" and st[0]["copies"] != 0:
        problems.append("head 0 counted %d copies on the %s path" % (st[0]["copies"], st[0]["import_path"]))
    if IMPORT == "copy" and st[0]["copies"] == 0:
        problems.append("head 0 counted no copies on the copy path")
    return problems


# --------------------------------------------------------------------------------------------
# vscanout


class Vscanout(GuestVscanout):
    """One vscanout on the headless backend in its own XDG_RUNTIME_DIR: either behind
    `guest_driver.py serve` (devices = serve's DEV specs; it hands the fds over) or started
    directly (sources = --source values)."""

    KEEP = GuestVscanout.KEEP + ("state.json",)

    def __init__(self, label, binary, devices=None, sources=None, args=(), env=None):
        super().__init__(label, tempfile.mkdtemp(prefix="vsc-%s-" % label), OUT, label + "-")
        self.socket = "vs-%s" % label
        self.state_path = os.path.join(self.dir, "state.json")
        self.sent = 0
        argv = [binary, "--socket", self.socket, "--stats", self.stats_path, "--poll-hz", "60"] + list(args)
        self.served = devices is not None
        if self.served:
            argv = [PYTHON, DRIVER, "serve"] + list(devices) + [
                "--device-names", "--control", self.ctl_path, "--state", self.state_path, "--"] + argv
        else:
            for s in sources:
                argv += ["--source", s]
        self.argv = argv
        self.env = vscanout_env(WLR_BACKENDS="headless", WLR_HEADLESS_OUTPUTS="0", WLR_RENDERER="pixman",
                                WLR_LIBINPUT_NO_DEVICES="1", XDG_RUNTIME_DIR=self.dir)
        change_env(self.env, env)  # e.g. nested: WAYLAND_DISPLAY of the parent, no WLR_BACKENDS
        self.client_env = dict(self.env, WAYLAND_DISPLAY=self.socket)
        say("start %s: %s" % (label, " ".join(argv)))
        if self.served:
            os.mkfifo(self.ctl_path)  # before serve starts, so a write never races its creation
        self.spawn(argv, self.env)
        self.pid = None if self.served else self.proc.pid

    # ---- state

    def state(self):
        with open(self.state_path) as f:
            return json.load(f)

    def tail(self, n=15):
        return "\n".join("      | " + line for line in self.log().splitlines()[-n:])

    def alive(self):
        if self.proc.poll() is not None:
            return False
        if self.pid is None:
            return True
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def check_alive(self):
        if not self.alive():
            raise Died("vscanout (%s) is not running (%s); stderr tail:\n%s" % (
                self.label, "exit status %s" % self.proc.poll() if self.proc.poll() is not None else "exited",
                self.tail()))

    def wait_ready(self, timeout=30):
        def ready():
            self.check_alive()
            m = READY_RX.search(self.stdout())
            if m and self.served and self.pid is None:
                self.pid = self.state()["child_pid"]
            return m

        m = wait_until(ready, timeout, 0.1, "vscanout's WAYLAND_DISPLAY line on stdout")
        say("%s ready: %s (vscanout pid %s)" % (self.label, m.group(0), self.pid))
        return int(m.group(1))

    # ---- the guest side (serve's control FIFO)

    def control(self, line, timeout=10):
        """Sends one control line and waits until serve has handled it (its state counts them)."""
        fd = os.open(self.ctl_path, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        self.sent += 1
        want = self.sent

        def done():
            self.check_alive()
            try:
                return self.state()["commands"] >= want
            except (OSError, ValueError, KeyError):
                return False

        wait_until(done, timeout, 0.01, "guest_driver to handle %r" % line)

    # ---- clients

    def client(self, argv, timeout=20):
        return subprocess.run(argv, env=self.client_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, cwd=self.dir)

    def capture(self, head):
        path = os.path.join(self.dir, "cap-%d.ppm" % head)
        r = self.client(["grim", "-t", "ppm", "-o", "HEAD-%d" % head, path])
        if r.returncode != 0:
            raise Fail("grim -o HEAD-%d failed (%d): %s" % (head, r.returncode, r.stderr.decode(errors="replace")))
        with open(path, "rb") as f:
            return parse_ppm(f.read())

    def randr(self):
        """wlr-randr's outputs: name -> (w, h) of the current mode, (0, 0) when none."""
        r = self.client(["wlr-randr"])
        if r.returncode != 0:
            raise Fail("wlr-randr failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
        return parse_randr(r.stdout.decode(errors="replace"))

    def wait_outputs(self, expected, timeout=10):
        seen = {}

        def match():
            nonlocal seen
            self.check_alive()
            seen = self.randr()
            return seen == expected

        try:
            wait_until(match, timeout, 0.1, "outputs %s" % expected)
        except Died:
            raise
        except Fail:
            raise Fail("wlr-randr shows %s, expected %s" % (seen, expected)) from None
        return seen

    def wait_capture(self, head, want, timeout=10, name=""):
        """Captures HEAD-<head> until it equals `want`; fails with the last difference and saves
        that capture to the out share."""
        last = [None, None]

        def ok():
            self.check_alive()
            img = self.capture(head)
            last[0], last[1] = img, describe_difference(img, want)
            return last[1] is None

        try:
            wait_until(ok, timeout, 0.1, "HEAD-%d to show the expected frame" % head)
        except Died:
            raise
        except Fail as e:
            if last[0] is None:
                raise
            saved = self.save_failure(last[0], head, name)
            raise Fail("HEAD-%d: %s (%s; capture saved as %s)" % (head, last[1], guess_frame(last[0], head),
                                                                  saved)) from e
        return last[0]

    def wait_no_signal(self, head, size=None, timeout=10, name=""):
        last = [None, []]

        def ok():
            self.check_alive()
            img = self.capture(head)
            last[0] = img
            last[1] = ["size %dx%d, expected %dx%d" % (img.width, img.height, *size)] \
                if size and img.size != size else no_signal_problems(img)
            return not last[1]

        try:
            wait_until(ok, timeout, 0.1, "HEAD-%d to show no signal" % head)
        except Died:
            raise
        except Fail as e:
            if last[0] is None:
                raise
            saved = self.save_failure(last[0], head, name)
            raise Fail("HEAD-%d is not the no-signal frame: %s (capture saved as %s)" % (
                head, "; ".join(last[1]), saved)) from e
        return last[0]

    def save_failure(self, img, head, name):
        tag = re.sub(r"[^A-Za-z0-9]+", "-", name or "capture").strip("-")[:40]
        path = os.path.join(OUT, "%s-%s-HEAD-%d.ppm" % (self.label, tag, head))
        try:
            img.save(path)
        except OSError:
            return "(not saved)"
        return path

    def wait_log(self, pattern, timeout=10):
        rx = re.compile(pattern)

        def found():
            m = rx.search(self.log())
            if not m:
                self.check_alive()
            return m

        return wait_until(found, timeout, 0.05, "log line /%s/" % pattern)

    def vfio_fds(self):
        """vscanout's VFIO device descriptors and mappings (what keeps a removal waiting)."""
        fds, maps = [], []
        try:
            for fd in os.listdir("/proc/%d/fd" % self.pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
                except OSError:
                    continue
                if "vfio" in target:
                    fds.append("%s->%s" % (fd, target))
            with open("/proc/%d/maps" % self.pid) as f:
                maps = [line.split(None, 5)[-1].strip() for line in f if "vfio" in line]
        except OSError:
            pass
        return fds, maps


# --------------------------------------------------------------------------------------------
# the checks


def wait_removed(vs, head, name):
    """Waits for guest_driver's sysfs removal of head's mdev to return; fails naming what vscanout
    still holds when it does not (the kernel waits for every fd of the device)."""
    def done():
        vs.check_alive()
        r = vs.state()["heads"][head].get("removed", {})
        return r if r.get("rc") is not None else None

    try:
        r = wait_until(done, 10, 0.05, "the sysfs removal of the %s to return" % name)
    except Died:
        raise
    except Fail as e:
        fds, maps = vs.vfio_fds()
        raise Fail("%s; vscanout still holds VFIO fds %s and mappings %s" % (e, fds, maps)) from None
    if r["rc"] != 0:
        raise Fail("the sysfs remove write failed: %s" % r["rc"])
    return r


def wait_guest_edid(vs, size, timeout=5):
    """Samples the guest's view of head 0's EDID (serve's state) until it prefers `size` with the
    link up. Returns that view and whether a sample on the way saw the link down with no EDID in
    BAR2 (vscanout keeps it down 100 ms around a write)."""
    saw_down = False
    last = {}

    def seen():
        nonlocal saw_down, last
        vs.control("state")
        last = vs.state()["heads"][0]["edid"]
        if last.get("link_state") == gd.VFIO_DEVICE_GFX_LINK_STATE_DOWN and not last.get("guest_sees_edid"):
            saw_down = True
        return last.get("preferred") == "%dx%d" % size and last.get("link_state") == gd.VFIO_DEVICE_GFX_LINK_STATE_UP

    try:
        wait_until(seen, timeout, 0.01, "the guest to read an EDID preferring %dx%d" % size)
    except Fail:
        raise Fail("the guest's view of the EDID: %s, expected %dx%d with the link up" % (last, *size)) from None
    return last, saw_down


def sway_ipc(path, commands, interval):
    """Sends each command to sway's IPC socket (RUN_COMMAND), `interval` seconds apart, and
    raises Fail unless every reply says success."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        for i, command in enumerate(commands):
            if i:
                time.sleep(interval)
            payload = command.encode()
            sock.sendall(b"i3-ipc" + struct.pack("=II", len(payload), 0) + payload)
            header = b""
            while len(header) < 14:
                chunk = sock.recv(14 - len(header))
                if not chunk:
                    raise Fail("sway closed its IPC socket")
                header += chunk
            length, _ = struct.unpack("=II", header[6:])
            body = b""
            while len(body) < length:
                chunk = sock.recv(length - len(body))
                if not chunk:
                    raise Fail("sway closed its IPC socket")
                body += chunk
            reply = json.loads(body)
            if not all(r.get("success") for r in reply):
                raise Fail("sway: %r: %s" % (command, reply))


class Test:
    def __init__(self, binary):
        self.binary = binary
        self.vs = None  # the served session (mbochs head 0, mdpy head 1)
        self.frame = 0  # the frame serve last presented
        self.mode0 = (1024, 768)
        self.mode1 = (640, 480)

    def pattern(self, head, frame=None):
        w, h = self.mode0 if head == 0 else self.mode1
        return guest_frame(w, h, head, self.frame if frame is None else frame, cursor=False)

    # 1 ---------------------------------------------------------------------------------------
    def two_heads_frames(self):
        vs = self.vs
        heads = vs.wait_ready()
        if heads != 2:
            raise Fail("vscanout reports %d heads, expected 2" % heads)
        for head in (0, 1):
            say("grim -o HEAD-%d until it equals frame 0 of head %d (%dx%d)" % (
                (head, head) + (self.mode0 if head == 0 else self.mode1)))
            vs.wait_capture(head, self.pattern(head), timeout=20, name="1-frame0")
        return "HEAD-0 = frame 0 head 0 at 1024x768 (mbochs dma-buf), HEAD-1 = frame 0 head 1 at 640x480 " \
               "(mdpy region), pixel for pixel"

    def two_heads_randr(self):
        say("wlr-randr, expecting HEAD-0 1024x768 and HEAD-1 640x480")
        seen = self.vs.wait_outputs({"HEAD-0": (1024, 768), "HEAD-1": (640, 480)})
        return "wlr-randr: %s" % ", ".join("%s %dx%d" % (k, *v) for k, v in sorted(seen.items()))

    def probes_and_cursor(self):
        vs = self.vs
        log = vs.log()
        problems = []
        m0 = re.search(r"vfio: head 0 is (\S+): primary plane as (\S+), (a|no) cursor plane", log)
        m1 = re.search(r"vfio: head 1 is (\S+): primary plane as (\S+), (a|no) cursor plane", log)
        if not m0 or m0.group(2) != "dma-buf":
            problems.append("head 0 probe log: %s (expected primary as dma-buf)" % (m0.group(0) if m0 else "none"))
        if not m1 or m1.group(2) != "region":
            problems.append("head 1 probe log: %s (expected primary as region)" % (m1.group(0) if m1 else "none"))
        elif m1.group(3) != "no":
            problems.append("mdpy head has a cursor plane (%s): its cursor answer is the primary plane" % m1.group(0))
        for m, uuid in ((m0, MBOCHS_UUID), (m1, MDPY_UUID)):
            if m and m.group(1) != uuid:
                problems.append("head named %s, expected the UUID %s passed as vfio-fd:N:UUID" % (m.group(1), uuid))
        st = vs.stats()
        if st[1]["cursor_images"] != 0:
            problems.append("head 1 cursor_images = %d" % st[1]["cursor_images"])
        problems += import_path_problems(st)
        if problems:
            raise Fail("; ".join(problems))
        return "%s; %s; head 1 cursor_images 0; import paths %s / %s, head 0 copies %d" % (
            m0.group(0), m1.group(0), st[0]["import_path"], st[1]["import_path"], st[0]["copies"])

    # 2 ---------------------------------------------------------------------------------------
    def flip(self):
        vs = self.vs
        before = vs.stats()[0]
        say("echo 'frame 1' > ctl: draw frame 1 into mbochs' back buffer (y 768) and flip; mdpy redraws in place")
        vs.control("frame 1")
        self.frame = 1
        plane = vs.state()["heads"][0]["plane"]
        vs.wait_capture(0, self.pattern(0), name="2-flip")
        vs.wait_capture(1, self.pattern(1), name="2-flip")
        after = vs.stats()[0]
        return "mbochs dmabuf_id now %d; HEAD-0 and HEAD-1 show frame 1; head 0 imports %d -> %d, generation " \
               "%d -> %d" % (plane["dmabuf_id"], before["imports"], after["imports"], before["generation"],
                             after["generation"])

    # 3 ---------------------------------------------------------------------------------------
    def flips(self):
        vs = self.vs
        before = vs.stats()[0]
        say("%d x 'frame N' (N = 2..%d): each flips mbochs to the other buffer; after each, wait until head 0's "
            "generation advances (vscanout saw that flip)" % (FLIPS, FLIPS + 1))
        gen = before["generation"]
        ids = set()
        t = time.monotonic()
        for n in range(2, FLIPS + 2):
            vs.control("frame %d" % n)
            ids.add(vs.state()["heads"][0]["plane"]["dmabuf_id"])

            def advanced():
                return vs.stats()[0]["generation"] > gen

            wait_until(advanced, 5, 0.01, "head 0's generation to advance after 'frame %d'" % n)
            gen = vs.read_stats()[0]["generation"]
        self.frame = FLIPS + 1
        say("%d flips took %.2f s; dmabuf ids used: %s" % (FLIPS, time.monotonic() - t, sorted(ids)))
        vs.wait_capture(0, self.pattern(0), name="3-flips")
        after = vs.stats()[0]
        problems = []
        if (after["buffer_opens"], after["imports"]) != (2, 2):
            problems.append("head 0 buffer_opens %d, imports %d in all (expected 2 and 2)" % (
                after["buffer_opens"], after["imports"]))
        if after["generation"] - before["generation"] != FLIPS:
            problems.append("generation advanced %d for %d flips" % (after["generation"] - before["generation"],
                                                                      FLIPS))
        if after["evictions"]:
            problems.append("%d evictions" % after["evictions"])
        if problems:
            raise Fail("; ".join(problems))
        return "%d flips between dmabuf ids %s: head 0 buffer_opens 2, imports 2 (during the flips +%d/+%d), " \
               "cache_hits %d -> %d, generation +%d, renders %d -> %d; HEAD-0 shows frame %d" % (
                   FLIPS, sorted(ids), after["buffer_opens"] - before["buffer_opens"],
                   after["imports"] - before["imports"], before["cache_hits"], after["cache_hits"],
                   after["generation"] - before["generation"], before["renders"], after["renders"], self.frame)

    # 4 ---------------------------------------------------------------------------------------
    def region_redraw(self):
        vs = self.vs
        k = 200
        before = vs.stats()
        say("echo 'draw 1 %d' > ctl: draw frame %d into mdpy's framebuffer in place (same region, no id)" % (k, k))
        vs.control("draw 1 %d" % k)
        vs.wait_capture(1, self.pattern(1, k), name="4-region")
        after = vs.stats()
        vs.wait_capture(0, self.pattern(0), timeout=3, name="4-head0")
        b, a = before[1], after[1]
        if (a["buffer_opens"], a["imports"]) != (b["buffer_opens"], b["imports"]):
            raise Fail("head 1 re-imported: buffer_opens %d -> %d, imports %d -> %d" % (
                b["buffer_opens"], a["buffer_opens"], b["imports"], a["imports"]))
        self.region_frame = k
        return "HEAD-1 shows frame %d (head 1 generation %d -> %d, imports stay %d, import path %s); HEAD-0 still " \
               "frame %d" % (k, b["generation"], a["generation"], a["imports"], a["import_path"], self.frame)

    # 5 ---------------------------------------------------------------------------------------
    def static_costs_nothing(self):
        vs = self.vs
        time.sleep(0.3)
        a = vs.stats()
        say("stats, 1.2 s without grim or guest changes, stats again")
        time.sleep(1.2)
        b = vs.stats()
        keys = ("commits", "renders", "generation", "imports")
        changed = ["head %d %s %d -> %d" % (h, k, a[h][k], b[h][k]) for h in (0, 1) for k in keys if a[h][k] != b[h][k]]
        if changed:
            raise Fail("; ".join(changed))
        return "head 0 commits %d renders %d, head 1 commits %d renders %d: unchanged over 1.2 s (the mdpy " \
               "region is copied and compared each poll)" % (b[0]["commits"], b[0]["renders"], b[1]["commits"], b[1]["renders"])

    # 6 ---------------------------------------------------------------------------------------
    def mode_change(self):
        vs = self.vs
        say("echo 'mode 0 640x480' > ctl: reprogram mbochs to 640x480, draw frame %d" % self.frame)
        vs.control("mode 0 640x480")
        self.mode0 = (640, 480)
        seen = vs.wait_outputs({"HEAD-0": (640, 480), "HEAD-1": (640, 480)})
        vs.wait_capture(0, self.pattern(0), name="6-mode")
        st = vs.stats()[0]
        return "wlr-randr: %s; HEAD-0 shows frame %d at 640x480; head 0 width/height in stats %dx%d, imports %d" % (
            ", ".join("%s %dx%d" % (k, *v) for k, v in sorted(seen.items())), self.frame, st["width"],
            st["height"], st["imports"])

    # 7 ---------------------------------------------------------------------------------------
    def display_off(self):
        vs = self.vs
        say("echo 'off 0' > ctl: DISPI enable = 0 (plane disabled)")
        vs.control("off 0")
        img = vs.wait_no_signal(0, name="7-off")
        say("HEAD-0 shows no signal at %dx%d; echo 'on 0' > ctl" % img.size)
        vs.control("on 0")
        vs.wait_capture(0, self.pattern(0), name="7-on")
        return "off: no-signal frame at %dx%d (bg %s, text %s); on: frame %d back at 640x480" % (
            img.width, img.height, NO_SIGNAL_BG, NO_SIGNAL_FG, self.frame)

    # 8 ---------------------------------------------------------------------------------------
    def own_open(self):
        say("create mbochs-medium %s (no mode programmed, nobody holds it)" % OWN_UUID)
        gd.create_mdev("mbochs-medium", OWN_UUID)
        own = Vscanout("own", self.binary, sources=["vfio:%s" % OWN_UUID])
        removed = False
        try:
            heads = own.wait_ready()
            if heads != 1:
                raise Fail("%d heads, expected 1" % heads)
            m = own.wait_log(r"vfio: head 0 is %s: primary plane as (\S+), (a|no) cursor plane" % OWN_UUID, 5)
            if m.group(1) != "dma-buf":
                raise Fail("probe log: %s (expected dma-buf)" % m.group(0))
            img = own.wait_no_signal(0, DEFAULT_SIZE, timeout=15, name="8-own")
            seen = own.wait_outputs({"HEAD-0": DEFAULT_SIZE})
            busy = None
            try:
                gd.VfioDevice(OWN_UUID).close()
                busy = "guest_driver could open it while vscanout holds it"
            except OSError as e:
                busy = None if e.errno == 16 else "second open: %s" % e
            rc = own.stop()
            if rc != 0:
                raise Fail("exit status %d after SIGTERM; stderr tail:\n%s" % (rc, own.tail()))
            gd.remove_mdev(OWN_UUID)
            removed = True
            if busy:
                raise Fail(busy)
            return "logged '%s'; HEAD-0 no signal at %dx%d (wlr-randr %s); a second open is EBUSY; SIGTERM -> " \
                   "exit 0; mdev removed afterwards" % (m.group(0), img.width, img.height, seen["HEAD-0"])
        finally:
            own.cleanup()
            if not removed and os.path.exists(os.path.join(gd.MDEV_DEVICES, OWN_UUID)):
                try:
                    gd.remove_mdev(OWN_UUID)
                except OSError as e:
                    say("removing %s: %s" % (OWN_UUID, e))

    # 11 --------------------------------------------------------------------------------------
    def edid(self):
        w, h = EDID_SIZE
        say("create mbochs-medium %s; serve it at 1024x768 with --source {source0},size=%dx%d" % (EDID_UUID, w, h))
        gd.create_mdev("mbochs-medium", EDID_UUID)
        vs = Vscanout("edid", self.binary, devices=["mbochs:%s:1024x768" % EDID_UUID],
                      args=["--source", "{source0},size=%dx%d" % EDID_SIZE])
        try:
            vs.wait_ready()
            before = vs.state()["heads"][0]["edid_at_open"]
            if before["guest_sees_edid"] or before["link_state"] == gd.VFIO_DEVICE_GFX_LINK_STATE_UP:
                raise Fail("a new mdev already showed the guest an EDID: %s" % before)
            logged = vs.wait_log(r"vfio: head 0: EDID offers \d+x\d+@[\d.]+ Hz[^\n]*", 5).group(0)
            e, _ = wait_guest_edid(vs, EDID_SIZE)
            want = {"link_state": gd.VFIO_DEVICE_GFX_LINK_STATE_UP, "edid_size": 128, "max": [1920, 1440],
                    "guest_sees_edid": True, "preferred": "%dx%d" % EDID_SIZE, "name": "vscanout"}
            wrong = {k: e.get(k) for k, v in want.items() if e.get(k) != v}
            if wrong:
                raise Fail("the guest's view of the EDID: %s, expected %s" % (wrong, {k: want[k] for k in wrong}))
            say("the guest sees EDID preferred %s, link up; echo 'mode 0 %dx%d' > ctl" % (e["preferred"], w, h))
            vs.control("mode 0 %dx%d" % EDID_SIZE)
            seen = vs.wait_outputs({"HEAD-0": EDID_SIZE})
            vs.wait_capture(0, guest_frame(w, h, 0, 0, cursor=False), name="11-edid")
            rc = vs.stop()
            if rc != 0:
                raise Fail("exit status %d after SIGTERM; stderr tail:\n%s" % (rc, vs.tail()))
            return "before vscanout: link_state %d, BAR2 EDID all zeros; vscanout logged '%s'; then the guest read " \
                   "link up, %d-byte EDID 'vscanout' preferring %s (device max %dx%d) in BAR2, set that mode; " \
                   "wlr-randr HEAD-0 %dx%d showing frame 0 pixel for pixel" % (
                       before["link_state"], logged, e["edid_size"], e["preferred"], *e["max"], *seen["HEAD-0"])
        finally:
            vs.cleanup()
            if os.path.exists(os.path.join(gd.MDEV_DEVICES, EDID_UUID)):
                try:
                    gd.remove_mdev(EDID_UUID)
                except OSError as err:
                    say("removing %s: %s" % (EDID_UUID, err))

    # 12 --------------------------------------------------------------------------------------
    def nested_edid(self):
        say("create mbochs-medium %s; a headless sway at %dx%d; vscanout nested in it" % ((NESTED_UUID,) + NESTED_SWAY))
        gd.create_mdev("mbochs-medium", NESTED_UUID)
        sway = vs = None
        title = '[title="HEAD-0$"]'
        offers = r"vfio: head 0: EDID offers (\d+x\d+)@"

        def guest_takes(size):
            vs.control("mode 0 %dx%d" % size)
            vs.wait_outputs({"HEAD-0": size})
            vs.wait_capture(0, guest_frame(size[0], size[1], 0, 0, cursor=False), name="12-nested")
            rects = [r for t, r in sway.windows() if t.endswith("HEAD-0")]
            if not rects or (rects[0]["width"], rects[0]["height"]) != size:
                raise Fail("sway's window for HEAD-0 is %s, expected %dx%d" % (rects, *size))

        try:
            sway = Sway(NESTED_SWAY, ["default_border none", "default_floating_border none",
                                      "focus_follows_mouse no"])
            sway.wait_ready(60)  # slow under TCG on a busy host
            vs = Vscanout("nested", self.binary, devices=["mbochs:%s:1024x768" % NESTED_UUID],
                          env={"WAYLAND_DISPLAY": os.path.join(sway.runtime, sway.socket), "WLR_BACKENDS": None,
                               "WLR_HEADLESS_OUTPUTS": None})
            vs.wait_ready()
            # Tiled, the window fills sway's output: that size is offered once it settles.
            vs.wait_log(offers.replace("(\\d+x\\d+)", "%dx%d" % NESTED_SWAY), 10)
            wait_guest_edid(vs, NESTED_SWAY)
            guest_takes(NESTED_SWAY)
            before = len(re.findall(offers, vs.log()))
            say("floating, then resized %s in a burst" % ", ".join("%dx%d" % d for d in NESTED_DRAG))
            # Straight on sway's IPC socket, 100 ms apart: a swaymsg process per step can take longer
            # than the settle time in this VM, and each step would then be an update of its own.
            sway_ipc(sway.swaysock, [title + " floating enable"] +
                     [title + " resize set %d %d" % d for d in NESTED_DRAG], 0.1)
            # sway 1.7 sometimes drops a resize that comes while the last one is in flight (its
            # reply still says success): the window ends where sway leaves it, and that is what
            # vscanout must offer, once.
            sizes = []

            def window_settled():
                r = [(w["width"], w["height"]) for t, w in sway.windows() if t.endswith("HEAD-0")]
                sizes.append(r[0] if r else None)
                return len(sizes) >= 5 and len(set(sizes[-5:])) == 1 and sizes[-1]

            last = wait_until(window_settled, 10, 0.1, "sway's window to keep one size")
            if last not in NESTED_DRAG:
                raise Fail("sway's window ended at %dx%d, none of the sizes asked for" % last)
            try:
                _, saw_down = wait_guest_edid(vs, last, 10)  # sampled from the burst on
            except Fail as err:
                raise Fail("%s; EDID writes after the burst: %s" % (err, re.findall(offers, vs.log())[before:])) \
                    from None
            time.sleep(0.5)  # anything else the burst would write comes by now (300 ms settle)
            written = re.findall(offers, vs.log())[before:]
            if written != ["%dx%d" % last]:
                raise Fail("EDID writes after the burst: %s, expected one (%dx%d)" % (written, *last))
            guest_takes(last)
            return "tiled window %dx%d -> EDID preferred %dx%d, guest set it, 1:1; floating + %d resizes 100 ms " \
                   "apart -> one EDID write (%s: where sway left the window), the guest %s, then read link up " \
                   "and 'vscanout' preferring it, set it; wlr-randr HEAD-0 %dx%d and sway's window %dx%d, frame 0 " \
                   "pixel for pixel" % (
                       *NESTED_SWAY, *NESTED_SWAY, len(NESTED_DRAG), written[0],
                       "saw the link down (no EDID in BAR2)" if saw_down else "did not catch the link down",
                       *last, *last)
        finally:
            if vs:
                vs.cleanup()
            if sway:
                sway.stop()
            if os.path.exists(os.path.join(gd.MDEV_DEVICES, NESTED_UUID)):
                try:
                    gd.remove_mdev(NESTED_UUID)
                except OSError as err:
                    say("removing %s: %s" % (NESTED_UUID, err))

    # 9 ---------------------------------------------------------------------------------------
    def removal(self):
        vs = self.vs
        fds, maps = vs.vfio_fds()
        say("vscanout holds %d VFIO fds and %d VFIO mappings before the removal" % (len(fds), len(maps)))
        say("echo 'remove 1' > ctl: guest_driver closes its fds of the mdpy, then writes %s/remove in the "
            "background" % MDPY_UUID)
        t = time.monotonic()
        vs.control("remove 1")
        results = {}

        def went_away():
            m = vs.wait_log(r"vfio: head 1 \(([^)]*)\) went away \(([^)]*)\)[^\n]*", 10)
            return "logged after %.2f s: %s" % (time.monotonic() - t, m.group(0))

        def removal_done():
            r = wait_removed(vs, 1, "mdpy")
            if os.path.exists(os.path.join(gd.MDEV_DEVICES, MDPY_UUID)):
                raise Fail("the write returned but %s is still there" % MDPY_UUID)
            fds, maps = vs.vfio_fds()
            return "remove returned 0 after %.2f s (guest_driver measured %.2f s); vscanout now holds %d VFIO " \
                   "fds, %d VFIO mappings" % (time.monotonic() - t, r["seconds"], len(fds), len(maps))

        def no_signal():
            outs = vs.randr()
            if "HEAD-1" not in outs:
                raise Fail("HEAD-1 disappeared (wlr-randr: %s); the intended behaviour is a no-signal frame" % outs)
            img = vs.wait_no_signal(1, name="9-removed")
            st = vs.stats()
            return "HEAD-1 kept (wlr-randr %dx%d) and shows the no-signal frame at %dx%d; head 1 connected=%s" % (
                outs["HEAD-1"] + img.size + (json.dumps(st[1]["connected"]),))

        def head0_updates():
            n = self.frame + 10
            say("echo 'frame %d' > ctl" % n)
            vs.control("frame %d" % n)
            self.frame = n
            vs.wait_capture(0, self.pattern(0), name="9-head0")
            count = len(re.findall(r"went away", vs.log()))
            if count != 1:
                raise Fail("HEAD-0 shows frame %d, but 'went away' was logged %d times" % (n, count))
            return "HEAD-0 shows frame %d; 'went away' logged once" % n

        def dmabuf_head_too():
            """The mbochs as well: its planes are dma-bufs vscanout has imported (mapped)."""
            say("echo 'remove 0' > ctl: the mbochs too (dma-buf planes, two of them imported)")
            t = time.monotonic()
            vs.control("remove 0")
            m = vs.wait_log(r"vfio: head 0 \(([^)]*)\) went away \(([^)]*)\)[^\n]*", 10)
            logged = time.monotonic() - t

            wait_removed(vs, 0, "mbochs")
            img = vs.wait_no_signal(0, name="9-removed-0")
            fds, maps = vs.vfio_fds()
            if fds or maps:
                raise Fail("both devices are gone but vscanout still holds VFIO fds %s and mappings %s" % (fds, maps))
            return "'%s' after %.2f s; removal returned 0 after %.2f s; HEAD-0 no signal at %dx%d; vscanout holds " \
                   "no VFIO fds or mappings" % (m.group(0), logged, time.monotonic() - t, img.width, img.height)

        for key, name, fn in (
                ("a", "9a vscanout logs that the mdpy went away", went_away),
                ("b", "9b the mdpy's sysfs removal completes (vscanout closed its fds)", removal_done),
                ("c", "9c HEAD-1 shows no signal after the removal", no_signal),
                ("d", "9d HEAD-0 still updates after the removal; 'went away' logged once", head0_updates),
                ("e", "9e removing the mbochs (dma-buf head) as well completes, HEAD-0 shows no signal",
                 dmabuf_head_too)):
            results[key] = R.run(name, fn)
        return all(results.values())

    # 10 --------------------------------------------------------------------------------------
    def clean_exit(self):
        vs = self.vs
        rc = vs.stop()
        if rc != 0:
            raise Fail("exit status %d after SIGTERM; stderr tail:\n%s" % (rc, vs.tail()))
        st = vs.read_stats()
        if st[0]["rejected"] != 0:
            raise Fail("head 0 rejected = %d" % st[0]["rejected"])
        problems = import_path_problems(st)
        if problems:
            raise Fail("after flips, a mode change and display off: " + "; ".join(problems))
        return "SIGTERM -> exit 0 (guest_driver serve passed it on); stats at exit: head 0 rejected 0, " \
               "imports %d, buffer_opens %d, commits %d, import path %s, copies %d, connected %s; " \
               "head 1 rejected %d, connected %s" % (
                   st[0]["imports"], st[0]["buffer_opens"], st[0]["commits"], st[0]["import_path"], st[0]["copies"],
                   json.dumps(st[0]["connected"]), st[1]["rejected"], json.dumps(st[1]["connected"]))


def main():
    src = guest_args(__doc__, ROOT, OUT)
    try:
        binary = guest_binary(src)
    except Fail as e:
        R.record(False, "vscanout binary", str(e))
        return finish()
    created = []
    for ty, uuid in (("mbochs-medium", MBOCHS_UUID), ("mdpy-vga", MDPY_UUID)):
        try:
            gd.create_mdev(ty, uuid)
            created.append(uuid)
        except OSError as e:
            R.record(False, "create %s mdev" % ty, str(e))
    if len(created) != 2:
        return finish()
    say("created mbochs-medium %s and mdpy-vga %s" % (MBOCHS_UUID, MDPY_UUID))

    t = Test(binary)
    t.vs = Vscanout("served", binary, devices=["mbochs:%s:1024x768" % MBOCHS_UUID, "mdpy:%s" % MDPY_UUID],
                    args=[] if IMPORT == "auto" else ["--import", IMPORT])
    try:
        up = R.run("1a two heads: HEAD-0 (mbochs) and HEAD-1 (mdpy) show frame 0 pixel for pixel",
                   t.two_heads_frames)
        served = [("1b two heads: wlr-randr shows HEAD-0 1024x768 and HEAD-1 640x480", t.two_heads_randr),
                  ("1c probes logged; mdpy's cursor answer (its primary plane) is no cursor plane",
                   t.probes_and_cursor),
                  ("2 a flip (mbochs y offset) shows the new frame", t.flip),
                  ("3 %d flips between two buffers cost 2 buffer_opens and 2 imports" % FLIPS, t.flips),
                  ("4 an in-place redraw of the mdpy region shows up", t.region_redraw),
                  ("5 a static picture costs no renders or commits", t.static_costs_nothing),
                  ("6 a mode change on mbochs resizes HEAD-0", t.mode_change),
                  ("7 display off gives no signal on HEAD-0, on brings the frame back", t.display_off)]
        later = [("9 removing the mdpy (then the mbochs) while vscanout shows them", t.removal),
                 ("10 SIGTERM -> exit 0, stats show rejected == 0 for head 0", t.clean_exit)]
        if up:
            for name, fn in served:
                R.run(name, fn)
        R.run("8 --source vfio:UUID: vscanout opens an unprogrammed mbochs itself", t.own_open)
        R.run("11 EDID: size=%dx%d in the spec; the guest reads it from mbochs, sets it, HEAD-0 shows it 1:1"
              % EDID_SIZE, t.edid)
        R.run("12 EDID nested in sway: the window's size, and after a burst of resizes its last size (one write), "
              "becomes the guest's mode, shown 1:1", t.nested_edid)
        if up:
            t.removal()
            R.run(*later[1])
        else:  # counted, so a vscanout that never came up cannot look like a shorter green run
            for name, _ in served + later:
                R.record(False, name, "not run: the served vscanout did not come up (see 1a)")
    finally:
        t.vs.cleanup()
        for uuid in created:
            if os.path.exists(os.path.join(gd.MDEV_DEVICES, uuid)):
                try:
                    gd.remove_mdev(uuid)
                except OSError as e:
                    say("removing %s: %s" % (uuid, e))
    R.run("no kernel warnings", kernel_warnings, os.path.join(OUT, "vfio-dmesg.txt"),
          "blocked until device is released")
    return finish()


def finish():
    return R.finish("vfio checks")


if __name__ == "__main__":
    sys.exit(main())
