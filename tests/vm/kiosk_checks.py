#!/usr/bin/python3
"""The guest half of the kiosk (DRM/KMS) end-to-end test: vscanout on virtio-gpu's connectors.

usage: kiosk_checks.py [--bin VSCANOUT]   (in the test VM; tests/vm/kiosk_test.sh runs it there)

The VM has QEMU's virtio-vga with two outputs (`max_outputs=2,xres=1024,yres=768,edid=off`), so
the guest's virtio_gpu driver offers connectors Virtual-1 and Virtual-2 (Virtual-2 forced on
with `video=Virtual-2:1280x800e`), a primary and a cursor plane per CRTC. vscanout runs on
wlroots' DRM backend with the sim source, which takes commands on a FIFO (`control=`), and this
script checks from inside what the kernel scans out (debugfs atomic state: each CRTC's mode, each
plane's framebuffer and position; vscanout's --stats), while kiosk_host.py checks from outside what
QEMU shows (QMP screendump of each head, QEMU's trace of the cursor and scanout commands).

Four runs of vscanout:
  run 1, --mode preferred (default), sim modes 1024x768/1024x768: both heads 1:1 on their
    connectors with the hardware cursor at (96, 96); a static second changes nothing; `mode 0
    800x480` letterboxes head 0 on Virtual-1 (still 1024x768, scale 1.28) and moves its cursor;
    back to 1024x768; `cursor 0 off`; `disable 1` (no signal on Virtual-2); SIGTERM -> 0.
  run 2, --mode guest with the heads swapped by --output (HEAD-0=Virtual-2, HEAD-1=Virtual-1),
    sim modes 1280x800/800x600: each connector takes its head's mode; `mode 1 640x480` follows;
    `mode 0 1000x700` (not a mode Virtual-2 lists) falls back to its preferred 1024x768, scaled;
    SIGTERM -> 0.
  run 3, more heads than connectors: sim heads 0, 1, 2 (1024x768) and `--output
    HEAD-7=Virtual-9`: HEAD-0 and HEAD-1 take Virtual-1 and Virtual-2 (connector order), HEAD-2
    waits; `plug 7 1024x768`: HEAD-7 waits for Virtual-9 (there is none), nothing on screen
    changes; `unplug 0`: HEAD-2 takes the released Virtual-1 while Virtual-2 stays untouched (same
    framebuffer, no virtio-gpu command for it); `plug 5 1024x768`: HEAD-5 waits; `unplug 1`: HEAD-5
    takes Virtual-2; `unplug 2`: Virtual-1 goes dark, HEAD-7 does not take it; SIGTERM -> 0.
  run 4, guest dma-bufs (sim dmabuf=on: udmabuf over memfd; the VM loads udmabuf.ko): the first
    frames (a mode set: composed); `flip *` makes vscanout try the guest buffer on the primary plane
    with a test-only commit. Either virtio-gpu takes it (stats `scanouts` count, `renders` stay,
    the screendump is the guest buffer itself) or it refuses (one `cannot scan out the guest
    buffer` line per head and configuration, composed frames, `scanouts` 0); the RESULT line says
    which, with the kernel's answer to DRM_IOCTL_PRIME_FD_TO_HANDLE (drm.debug during the flip);
    `flip 0` then shows frame 2 of head 0 the same way (no second refusal line) while head 1 and
    Virtual-2 stay as they are; SIGTERM -> 0.

Guest and host meet through files in the out share ($VSCANOUT_VM_OUT/sync): the guest writes
phase-NN.json (what each connector should show now) and waits for the host's done-NN.json; the
host prints its own RESULT lines. Every wait has a deadline. Each check prints one
`RESULT: PASS|FAIL <check>: <reason>` line; the last line is `kiosk checks: N passed, M failed`;
exit status 1 if any check failed. Debian's /usr/bin/python3 and the standard library only.
"""

import errno
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
import drm_info  # noqa: E402
from vm_checks import (Died, Fail, GuestVscanout, Results, guest_args, guest_binary, kernel_warnings,  # noqa: E402
                       say, wait_until)
from vscanout_pixels import cursor_hotspot, describe_difference, guest_frame, parse_ppm, place_frame  # noqa: E402
from vscanout_proc import READY_RX, vscanout_env  # noqa: E402

ROOT = os.environ.get("VSCANOUT_ROOT") or os.path.dirname(os.path.dirname(HERE))
OUT = os.environ.get("VSCANOUT_VM_OUT") or tempfile.mkdtemp(prefix="kiosk-out-")
SYNC = os.path.join(OUT, "sync")
CARD = "/dev/dri/card0"
CURSOR_SIZE = (64, 64)
HOTSPOT = (4, 4)  # the sim cursor's hotspot in its image
HOST_TIMEOUT = 30  # seconds the host gets for one phase (screendumps with retries)

R = Results()


# --------------------------------------------------------------------------------------------
# what a connector should show


class Expect:
    """One connector: which sim head it shows, the guest's mode, the connector's mode, whether
    there is a signal and a cursor."""

    def __init__(self, scanout, head, guest, mode, signal=True, cursor=True, n=0):
        self.scanout = scanout            # QEMU's head index; the connector is Virtual-<scanout+1>
        self.connector = "Virtual-%d" % (scanout + 1)
        self.crtc = None                  # filled in from the state (the connector's CRTC)
        self.head = head
        self.guest = tuple(guest)
        self.mode = tuple(mode)
        self.signal = signal
        self.cursor = cursor and signal
        self.n = n

    @property
    def one_to_one(self):
        return self.guest == self.mode

    def place(self):
        return place_frame(*self.guest, *self.mode)

    def cursor_pos(self):
        """(x, y, tolerance): the cursor plane's crtc-pos: the cursor image's top-left. Scaled,
        the image scales with the frame (vscanout puts its visible part, scaled, on the plane):
        the hotspot lands where the frame's scale puts it and the hotspot in the image scales too.
        The sim cursor's visible part starts at the image's top-left."""
        hx, hy = cursor_hotspot(self.n, *self.guest)
        if self.one_to_one:
            return hx - HOTSPOT[0], hy - HOTSPOT[1], 0
        x0, y0, w, h = self.place()
        sx, sy = w / self.guest[0], h / self.guest[1]
        return (round(x0 + hx * sx) - round(HOTSPOT[0] * sx), round(y0 + hy * sy) - round(HOTSPOT[1] * sy), 1)

    def describe(self):
        s = "%s: head %d %dx%d on %dx%d" % (self.connector, self.head, *self.guest, *self.mode)
        if not self.signal:
            return s + ", no signal"
        if not self.one_to_one:
            x0, y0, w, h = self.place()
            s += " (scaled %.4g to %dx%d at %d,%d)" % (w / self.guest[0], w, h, x0, y0)
        if self.cursor:
            x, y, tol = self.cursor_pos()
            s += ", cursor plane at (%d,%d)%s" % (x, y, "±%d" % tol if tol else "")
        else:
            s += ", no cursor"
        return s

    def to_json(self):
        d = {"scanout": self.scanout, "connector": self.connector, "head": self.head, "n": self.n,
             "guest": list(self.guest), "mode": list(self.mode), "signal": self.signal, "cursor": None}
        if self.cursor:
            x, y, tol = self.cursor_pos()
            d["cursor"] = {"x": x, "y": y, "tolerance": tol}
        return d


class Kms:
    """The device's planes by CRTC index (from the KMS ioctls, read once before vscanout takes
    the device) and the debugfs state."""

    def __init__(self):
        self.state_path = drm_info.mount_debugfs()
        with drm_info.Device(CARD) as d:  # closed at once: the first opener is DRM master
            self.connectors = d.connectors()
            self.planes = d.planes()
        self.plane_by = {}  # (crtc index, type) -> plane id
        for p in self.planes:
            if len(p["possible_crtcs"]) == 1:
                self.plane_by[(p["possible_crtcs"][0], p["type"])] = p["id"]

    def state(self):
        return drm_info.parse_state(drm_info.read_state(self.state_path))

    def plane(self, st, crtc_name, ptype):
        idx = int(crtc_name.rsplit("-", 1)[1])
        pid = self.plane_by.get((idx, ptype))
        if pid is None:
            raise Fail("no %s plane for %s among %s" % (ptype, crtc_name, self.planes))
        return st["planes"][pid]

    def problems(self, st, expects):
        """What differs between the state and the expectations (filling in each one's CRTC)."""
        out = []
        for e in expects:
            conn = st["connectors"].get(e.connector)
            if not conn or not conn["crtc"]:
                out.append("%s has no CRTC" % e.connector)
                continue
            e.crtc = conn["crtc"]
            crtc = next(c for c in st["crtcs"].values() if c["name"] == e.crtc)
            if not crtc["active"] or crtc["mode"] != e.mode:
                out.append("%s (%s) is %s mode %s, expected %dx%d" % (
                    e.connector, e.crtc, "active," if crtc["active"] else "inactive,",
                    "x".join(map(str, crtc["mode"])) if crtc["mode"] else "none", *e.mode))
            pp = self.plane(st, e.crtc, "primary")
            if pp["crtc"] != e.crtc or not pp["fb"] or pp.get("fb_size") != e.mode:
                out.append("%s primary plane: crtc %s, fb %s of %s, expected a %dx%d framebuffer" % (
                    e.connector, pp["crtc"], pp["fb"], pp.get("fb_size"), *e.mode))
            cp = self.plane(st, e.crtc, "cursor")
            if e.cursor:
                x, y, tol = e.cursor_pos()
                pos = cp["crtc_pos"]
                if cp["crtc"] != e.crtc or not cp["fb"]:
                    out.append("%s cursor plane has no framebuffer (crtc %s, fb %s): no hardware cursor" % (
                        e.connector, cp["crtc"], cp["fb"]))
                elif cp.get("fb_size") != CURSOR_SIZE or pos[2:] != CURSOR_SIZE:
                    out.append("%s cursor plane fb %s of %s at %s, expected a 64x64 image" % (
                        e.connector, cp["fb"], cp.get("fb_size"), pos))
                elif abs(pos[0] - x) > tol or abs(pos[1] - y) > tol:
                    out.append("%s cursor plane at crtc-pos (%d,%d), expected (%d,%d)%s" % (
                        e.connector, pos[0], pos[1], x, y, " ±%d" % tol if tol else ""))
            elif cp["fb"]:
                out.append("%s cursor plane still has fb %s at %s, expected none" % (
                    e.connector, cp["fb"], cp["crtc_pos"]))
        return out

    def fbs(self, st, expects):
        """{connector: (primary fb, cursor fb)}."""
        return {e.connector: (self.plane(st, e.crtc, "primary")["fb"], self.plane(st, e.crtc, "cursor")["fb"])
                for e in expects}

    def wait(self, expects, timeout=8, settle=0.3, tag="state"):
        """Waits until the state matches and stays so for `settle` seconds; returns it. On a
        timeout the last state goes to the out share as state-failed-<tag>.txt."""
        last = [[]]

        def ok():
            st = self.state()
            last[0] = self.problems(st, expects)
            if last[0]:
                return None
            time.sleep(settle)
            st2 = self.state()
            if self.problems(st2, expects) or self.fbs(st, expects) != self.fbs(st2, expects):
                last[0] = ["the state was still changing"]
                return None
            return st2

        try:
            return wait_until(ok, timeout, 0.1, "the DRM state")
        except Fail:
            name = "state-failed-%s.txt" % re.sub(r"[^A-Za-z0-9]+", "-", tag).strip("-")
            with open(os.path.join(OUT, name), "w") as f:
                f.write(drm_info.read_state(self.state_path))
            raise Fail("; ".join(last[0]) or "no state") from None

    def summary(self, st, expects):
        parts = []
        for e in expects:
            crtc = next(c for c in st["crtcs"].values() if c["name"] == e.crtc)
            pp, cp = self.plane(st, e.crtc, "primary"), self.plane(st, e.crtc, "cursor")
            s = "%s %s %dx%d primary fb %d" % (e.connector, e.crtc, *crtc["mode"], pp["fb"])
            s += ", cursor fb %d at (%d,%d)" % (cp["fb"], *cp["crtc_pos"][:2]) if cp["fb"] else ", cursor off"
            parts.append(s)
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# the host


class Host:
    """kiosk_host.py on the other side of the out share."""

    def __init__(self):
        self.n = 0
        self.present = None
        os.makedirs(SYNC, exist_ok=True)

    def ask(self, name, expects, static_since=None, untouched=None, off=()):
        """Phase `name`: the host screendumps every connector and reads QEMU's trace; returns its
        answer ({"results": [...]}). static_since: the phase number since whose answer QEMU must
        have seen no scanout, flush or cursor command. untouched: (phase, [scanout, ...]): the
        same for those scanouts only. off: scanouts whose last SET_SCANOUT must have no resource."""
        if self.present is None:
            try:
                wait_until(lambda: os.path.exists(os.path.join(SYNC, "host-ready")), 15, 0.1, "kiosk_host.py")
                self.present = True
            except Fail:
                self.present = False
                R.record(False, "host helper", "kiosk_host.py never wrote sync/host-ready (run kiosk_test.sh, not "
                         "run.sh alone); the outside checks are skipped")
        if not self.present:
            return None
        self.n += 1
        phase = {"n": self.n, "name": name, "expects": [e.to_json() for e in expects], "static_since": static_since,
                 "untouched": {"since": untouched[0], "scanouts": list(untouched[1])} if untouched else None,
                 "off": list(off)}
        path = os.path.join(SYNC, "phase-%02d.json" % self.n)
        with open(path + ".part", "w") as f:
            json.dump(phase, f)
        os.rename(path + ".part", path)
        say("asked the host for phase %d (%s)" % (self.n, name))
        done = os.path.join(SYNC, "done-%02d.json" % self.n)

        def answered():
            try:
                with open(done) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None

        try:
            ans = wait_until(answered, HOST_TIMEOUT, 0.1, "the host's answer to phase %d (%s)" % (self.n, name))
        except Fail as e:
            R.record(False, "host answers phase %d (%s)" % (self.n, name), str(e))
            return None
        for r in ans.get("results", []):
            say("host: %s %s" % ("PASS" if r["ok"] else "FAIL", r["name"]))
        return ans

    def end(self):
        if self.present:
            with open(os.path.join(SYNC, "end.part"), "w") as f:
                json.dump({"phases": self.n}, f)
            os.rename(os.path.join(SYNC, "end.part"), os.path.join(SYNC, "end"))


# --------------------------------------------------------------------------------------------
# vscanout on DRM


class Kiosk(GuestVscanout):
    """One vscanout on wlroots' DRM backend with the sim source and its control FIFO."""

    def __init__(self, label, binary, modes, args=(), heads=2, options="", vt_bound=False):
        super().__init__(label, tempfile.mkdtemp(prefix="kiosk-%s-" % label, dir="/run"), OUT, "kiosk-%s-" % label)
        os.chmod(self.dir, 0o700)
        source = "sim:heads=%d,fps=0,modes=%s%s,control=%s" % (
            heads, "/".join("%dx%d" % m for m in modes), "," + options if options else "", self.ctl_path)
        self.argv = [binary, "--source", source, "--stats", self.stats_path] + list(args)
        # SEATD_VTBOUND=0: libseat's builtin seat leaves the VTs alone (the runs stay independent
        # of the console); vt_bound: the seat takes the active VT, as on a real host.
        env = vscanout_env(drop=("SEATD_VTBOUND",), WLR_BACKENDS="drm", WLR_DRM_DEVICES=CARD,
                           WLR_LIBINPUT_NO_DEVICES="1", LIBSEAT_BACKEND="builtin", XDG_RUNTIME_DIR=self.dir,
                           **({} if vt_bound else {"SEATD_VTBOUND": "0"}))
        say("start %s: %s" % (label, " ".join(self.argv)))
        os.mkfifo(self.ctl_path, 0o600)  # vscanout would make it; made here so a write never races that
        self.started = time.monotonic()
        self.spawn(self.argv, env)
        self.pid = self.proc.pid

    def log_matches(self, rx):
        return re.findall(rx, self.log(), re.M)

    def wait_log(self, rx, timeout=8):
        """Waits for a line of vscanout's log matching rx; returns that line."""
        def found():
            self.check_alive()
            m = re.search(r"^.*(?:%s).*$" % rx, self.log(), re.M)
            return m and m.group(0)

        line = wait_until(found, timeout, 0.05, "the log line /%s/" % rx)
        say("%s log: %s" % (self.label, line.strip()))
        return line

    def tail(self, n=12):
        """Prints the last lines of vscanout's log; returns the one that says most (an assertion,
        an error) for a one-line reason."""
        lines = self.log().splitlines()
        for line in lines[-n:]:
            print("      | " + line, flush=True)
        key = [line for line in lines if re.search(r"Assertion|ERROR|\berror\b|fatal", line)]
        return "last error in its log: %s" % key[-1].strip() if key else "log in kiosk-%s-stderr" % self.label

    def check_alive(self):
        if self.proc.poll() is not None:
            raise Died("vscanout (%s) ended: %s; %s" % (self.label, self.status(), self.tail()))

    def wait_ready(self, timeout=30):
        def ready():
            self.check_alive()
            return READY_RX.search(self.stdout())

        m = wait_until(ready, timeout, 0.1, "vscanout's ready line on stdout")
        say("%s ready: %s" % (self.label, m.group(0)))
        return int(m.group(1)), time.monotonic() - self.started

    def control(self, line, timeout=5):
        """One command to the sim source's FIFO; waits for the log line that shows it applied
        when the command logs one (mode changes), else returns once written."""
        self.check_alive()
        end = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.ctl_path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:  # ENXIO: nobody has it open for reading (yet)
                if time.monotonic() > end:
                    raise Fail("cannot open the control FIFO %s: %s" % (self.ctl_path, e)) from None
                time.sleep(0.05)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
        say("%s: control '%s'" % (self.label, line))

    def wait_stats(self, pred, what, timeout=10):
        last = [None]

        def ok():
            last[0] = self.stats()
            return pred(last[0])

        try:
            wait_until(ok, timeout, 0.1, what)
        except Died:
            raise
        except Fail as e:
            raise Fail("%s; stats: %s" % (e, last[0])) from None
        return last[0]


# --------------------------------------------------------------------------------------------
# the checks


def stats_problems(st, expects, cursor_path=True):
    out = []
    for e in expects:
        s = st.get(e.head)
        if s is None:
            out.append("no stats for head %d" % e.head)
            continue
        if (s["width"], s["height"]) != e.guest:
            out.append("head %d is %dx%d, expected %dx%d" % (e.head, s["width"], s["height"], *e.guest))
        if not s["connected"]:
            out.append("head %d not connected" % e.head)
        if cursor_path and e.cursor and s["cursor_path"] != "hardware":
            out.append("head %d cursor_path %r, expected 'hardware'" % (e.head, s["cursor_path"]))
        # The frames go straight into the DRM backend's dumb buffers through their dma-bufs
        # (lavapipe imports them; setup-wlroots.sh's patch exports them read-write).
        if s["renders"] > 0 and s["output_path"] != "dmabuf":
            out.append("head %d output_path %r, expected 'dmabuf'" % (e.head, s["output_path"]))
    return out


def host_results(ans):
    """The host's verdicts, for the guest's own detail lines (the host counts them itself)."""
    if not ans:
        return ""
    bad = [r["name"] for r in ans.get("results", []) if not r["ok"]]
    return "; host: %d checks, %s" % (len(ans.get("results", [])), "failed: %s" % bad if bad else "all passed")


class Run:
    """One vscanout and the phases checked against it."""

    def __init__(self, kms, host, kiosk, expects):
        self.kms, self.host, self.vs = kms, host, kiosk
        self.expects = expects  # scanout -> Expect
        self.up = False
        self.last_phase = None

    def current(self):
        return [self.expects[k] for k in sorted(self.expects)]

    def show(self, phase, what):
        """Waits for the state to match, then lets the host look (also when it never matched:
        the outside view tells what went wrong). Returns a detail string."""
        exp = self.current()
        try:
            st = self.kms.wait(exp, tag="%02d-%s" % (self.host.n + 1, phase))
        except Fail as e:
            ans = self.host.ask(phase, exp)
            self.last_phase = self.host.n
            raise Fail("%s%s" % (e, host_results(ans))) from None
        detail = self.kms.summary(st, exp)
        ans = self.host.ask(phase, exp)
        self.last_phase = self.host.n
        return "%s: %s%s" % (what, detail, host_results(ans))

    def settled_state(self, exp, phase, problems):
        """The DRM state once it matches exp (Kms.wait); None, with the reason added to problems,
        when it does not."""
        try:
            return self.kms.wait(exp, tag="%02d-%s" % (self.host.n + 1, phase))
        except Fail as ex:
            problems.append(str(ex))
            return None

    # ---- run start

    def start(self, heads=2):
        n, took = self.vs.wait_ready()
        if n != heads:
            raise Fail("vscanout reports %d heads, expected %d" % (n, heads))
        self.up = True
        return "ready line %.1f s after the start" % took

    def first_frames(self, phase):
        exp = self.current()
        for e in exp:
            say("expect %s" % e.describe())
        return self.show(phase, "DRM state")

    def stats_match(self):
        st = self.vs.stats()
        problems = stats_problems(st, self.current())
        if problems:
            raise Fail("; ".join(problems))
        return "; ".join("head %d %dx%d cursor_path %s output_path %s cursor_images %d cursor_moves %d commits %d" % (
            h, s["width"], s["height"], s["cursor_path"], s["output_path"], s["cursor_images"], s["cursor_moves"],
            s["commits"]) for h, s in sorted(st.items()))

    # ---- a static second

    def static_second(self):
        exp = self.current()
        st1 = self.kms.wait(exp, tag="static")
        s1 = self.vs.stats()
        fbs1 = self.kms.fbs(st1, exp)
        say("static: fbs %s, stats commits %s; 1.0 s without changes" % (
            fbs1, {h: s["commits"] for h, s in s1.items()}))
        time.sleep(1.0)
        st2 = self.kms.state()
        s2 = self.vs.stats()
        fbs2 = self.kms.fbs(st2, exp)
        problems = ["%s fbs (primary, cursor) %s -> %s" % (c, fbs1[c], fbs2[c]) for c in fbs1 if fbs1[c] != fbs2[c]]
        problems += self.kms.problems(st2, exp)
        problems += ["head %d %s %d -> %d" % (h, k, s1[h][k], s2[h][k]) for h in sorted(s1)
                     for k in ("commits", "renders", "cursor_images", "cursor_moves") if s1[h][k] != s2[h][k]]
        ans = self.host.ask("static second", exp, static_since=self.last_phase)
        self.last_phase = self.host.n
        if problems:
            raise Fail("; ".join(problems))
        return "fbs %s unchanged; commits %s unchanged over 1.0 s%s" % (
            fbs2, {h: s["commits"] for h, s in s2.items()}, host_results(ans))

    # ---- a screenshot of the kiosk

    def screencopy(self):
        """grim against the kiosk's own Wayland socket: wlr-screencopy reads the frame on screen
        (a dumb buffer); the cursor is on its plane, not in the frame. The DRM state stays."""
        exp = self.current()
        st1 = self.kms.wait(exp, tag="screencopy")
        m = READY_RX.search(self.vs.stdout())
        env = dict(os.environ, XDG_RUNTIME_DIR=self.vs.dir, WAYLAND_DISPLAY=m.group(3))
        problems, shown = [], []
        for e in exp:
            path = os.path.join(self.vs.dir, "grim-%d.ppm" % e.head)
            r = subprocess.run(["grim", "-t", "ppm", "-o", "HEAD-%d" % e.head, path], env=env, timeout=20,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.returncode != 0:
                problems.append("grim -o HEAD-%d failed (%d): %s" % (e.head, r.returncode,
                                                                   r.stderr.decode(errors="replace").strip()))
                continue
            with open(path, "rb") as f:
                diff = describe_difference(parse_ppm(f.read()), guest_frame(*e.guest, e.head, e.n, cursor=False))
            if diff:
                problems.append("HEAD-%d: %s" % (e.head, diff))
            else:
                shown.append("HEAD-%d frame %d %dx%d exact, no cursor in it" % (e.head, e.n, *e.guest))
        st2 = self.kms.wait(exp, tag="after-screencopy")
        problems += self.kms.problems(st2, exp)
        if problems:
            raise Fail("; ".join(problems))
        return "%s; afterwards %s" % ("; ".join(shown), self.kms.summary(st2, exp))

    # ---- privileged protocols and a remote console

    def client_env(self, **extra):
        m = READY_RX.search(self.vs.stdout())
        return dict(os.environ, XDG_RUNTIME_DIR=self.vs.dir, WAYLAND_DISPLAY=m.group(3), **extra)

    def capture_refused(self):
        """A kiosk without --allow-capture/--allow-input: a local client is offered neither
        wlr-screencopy nor the virtual keyboard and pointer; grim fails, vscanout runs on."""
        env = self.client_env()
        r = subprocess.run(["wayland-info"], env=env, timeout=20, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise Fail("wayland-info failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace").strip()))
        seen = set(re.findall(r"interface: '([^']+)'", r.stdout.decode(errors="replace")))
        leaked = seen & {"zwlr_screencopy_manager_v1", "zwp_virtual_keyboard_manager_v1",
                         "zwlr_virtual_pointer_manager_v1"}
        if leaked or "wl_output" not in seen:
            raise Fail("a default kiosk offers %s (all: %s)" % (sorted(leaked), sorted(seen)))
        path = os.path.join(self.vs.dir, "refused.ppm")
        r = subprocess.run(["grim", "-t", "ppm", "-o", "HEAD-0", path], env=env, timeout=20,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode == 0 or os.path.exists(path):
            raise Fail("grim captured a default kiosk")
        self.vs.check_alive()
        return "no screencopy, virtual keyboard or pointer offered (%d globals); grim: %s; vscanout runs on" % (
            len(seen), r.stderr.decode(errors="replace").strip())

    def remote_console(self, head=0):
        """wayvnc (--disable-input) on the kiosk's socket serves HEAD-<head> over VNC: the RFB
        client of tests/common reads the frame on screen exact (the cursor is on its plane, not
        in it); a static second of incremental requests brings no rectangle and no commit."""
        from rfb_client import RfbClient
        e = next(x for x in self.current() if x.head == head)
        want = guest_frame(*e.guest, e.head, e.n, cursor=False)
        path = os.path.join(self.vs.dir, "vnc.sock")
        log_path = os.path.join(self.vs.dir, "wayvnc.log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(["wayvnc", "-u", "--disable-input", "--output=HEAD-%d" % head, path],
                                env=self.client_env(XDG_CONFIG_HOME=self.vs.dir), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        client = None
        try:
            end = time.monotonic() + 20
            while not os.path.exists(path):
                if proc.poll() is not None or time.monotonic() > end:
                    raise Fail("wayvnc did not come up (%s): %s" % (proc.poll(), open(log_path, "rb").read()[-500:]))
                time.sleep(0.1)
            client = RfbClient(path, timeout=20)
            client.request(incremental=False)
            client.read_update(timeout=20)
            diff = describe_difference(client.image(), want)
            while diff and time.monotonic() < end:
                client.request(incremental=True)
                if client.pending(0.5):
                    client.read_update(timeout=20)
                diff = describe_difference(client.image(), want)
            if diff:
                raise Fail("VNC framebuffer of HEAD-%d: %s" % (head, diff))
            time.sleep(0.5)  # wayvnc's next frame request reaches vscanout
            s1 = self.vs.stats()
            rects = client.rects
            quiet_end = time.monotonic() + 1.0
            while time.monotonic() < quiet_end:
                client.request(incremental=True)
                if client.pending(0.2):
                    client.read_message()
            s2 = self.vs.stats()
            problems = ["head %d %s %d -> %d" % (h, k, s1[h][k], s2[h][k]) for h in sorted(s1)
                        for k in ("commits", "renders") if s1[h][k] != s2[h][k]]
            if client.rects != rects:
                problems.append("%d rectangles over a static second" % (client.rects - rects))
            if problems:
                raise Fail("with a VNC viewer on a static guest: " + "; ".join(problems))
            return "HEAD-%d frame %d %dx%d exact over VNC; a static second: no rectangle, commits %s unchanged" % (
                head, e.n, e.guest[0], e.guest[1], {h: s["commits"] for h, s in s2.items()})
        finally:
            if client:
                client.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()

    # ---- a guest mode change

    def mode_change(self, head, mode, expect_mode=None, phase=None):
        """`mode HEAD WxH`: head's guest mode becomes `mode`; its connector's mode becomes
        expect_mode (None: unchanged)."""
        e = next(x for x in self.expects.values() if x.head == head)
        before = self.vs.stats()
        self.vs.control("mode %d %dx%d" % (head, *mode))
        e.guest = tuple(mode)
        if expect_mode:
            e.mode = tuple(expect_mode)
        say("expect %s" % e.describe())
        self.vs.wait_stats(lambda s: (s[head]["width"], s[head]["height"]) == tuple(mode),
                           "head %d to take the mode %dx%d" % (head, *mode))
        try:
            detail = self.show(phase or "mode %d %dx%d" % (head, *mode), "DRM state")
            failed = None
        except Fail as ex:
            failed = str(ex)
        st = self.vs.stats()  # after the state settled: the cursor path is decided by then
        problems = stats_problems(st, [e])
        for o in self.expects.values():
            if o.head == head:
                continue
            for k in ("commits", "renders"):
                if st[o.head][k] != before[o.head][k]:
                    problems.append("head %d (not changed) %s %d -> %d" % (o.head, k, before[o.head][k], st[o.head][k]))
        if failed or problems:
            raise Fail("; ".join(problems + ([failed] if failed else [detail])))
        return "%s; head %d cursor_path %s" % (detail, head, st[head]["cursor_path"])

    def command(self, line, change, phase):
        """Any other control command; change(expects) updates the expectations."""
        self.vs.control(line)
        change(self.expects)
        for e in self.current():
            say("expect %s" % e.describe())
        return self.show(phase, "DRM state")

    # ---- heads coming and going (run 3)

    def start_waiting(self, heads, waiting):
        """The start, with the log line of each head that finds no connector."""
        detail = self.start(heads)
        lines = [self.vs.wait_log(r"HEAD-%d: waiting for an output \(no free connector\)" % h) for h in waiting]
        return "%s; %s" % (detail, "; ".join(re.sub(r"^.*\] ", "", line) for line in lines))

    def hotplug(self, line, logs, change, phase, gone=(), heads=None, never=()):
        """A control command that adds or removes a sim head. logs: log lines (regexes) that must
        follow; change(expects) updates the expectations (None: nothing on screen changes);
        gone: connectors (scanout indices) that must end up off; heads: the head ids the stats
        must list then; never: log lines that must not appear. The connectors whose head and frame
        stay must keep their framebuffers (debugfs) and see no virtio-gpu command (host)."""
        old = {e.scanout: (e.head, e.n) for e in self.current()}
        fbs_before = self.kms.fbs(self.kms.state(), self.current())
        self.vs.control(line)
        found = [re.sub(r"^.*\] ", "", self.vs.wait_log(rx)) for rx in logs]
        if change:
            change(self.expects)
        exp = self.current()
        keep = [e for e in exp if old.get(e.scanout) == (e.head, e.n)]
        for e in exp:
            say("expect %s%s" % (e.describe(), " (untouched)" if e in keep else ""))
        problems = []
        st = self.settled_state(exp, phase, problems)
        off_state = {}
        for s in gone:
            name = "Virtual-%d" % (s + 1)

            def dark():
                conn = self.kms.state()["connectors"].get(name)
                if conn is None:
                    raise Fail("no connector %s in the state" % name)
                if conn["crtc"]:
                    raise Fail("%s still on %s" % (name, conn["crtc"]))
                return True

            try:
                wait_until(dark, 5, 0.1, "%s to be off" % name)
                off_state[name] = "off (no CRTC)"
            except Fail as ex:
                problems.append(str(ex))
        if st is not None:
            fbs_after = self.kms.fbs(self.kms.state(), keep)
            problems += ["%s (untouched) fbs (primary, cursor) %s -> %s" % (c, fbs_before.get(c), fbs_after[c])
                         for c in fbs_after if fbs_before.get(c) != fbs_after[c]]
        for rx in never:
            bad = self.vs.log_matches(r"^.*(?:%s).*$" % rx)
            if bad:
                problems.append("logged: %s" % bad[0].strip())
        stats = self.vs.stats()
        if heads is not None and sorted(stats) != sorted(heads):
            problems.append("stats list heads %s, expected %s" % (sorted(stats), sorted(heads)))
        problems += stats_problems(stats, exp)
        static = not gone and len(keep) == len(exp) and len(old) == len(exp)
        since = self.last_phase
        ans = self.host.ask(phase, exp, static_since=since if static else None,
                            untouched=(since, [e.scanout for e in keep]) if keep and not static else None, off=gone)
        self.last_phase = self.host.n
        if problems:
            raise Fail("; ".join(problems) + host_results(ans))
        shown = self.kms.summary(st, exp)
        return "%s; %s%s; untouched: %s; stats heads %s%s" % (
            "; ".join(found), shown, "".join("; %s %s" % kv for kv in off_state.items()),
            ", ".join("%s fbs %s" % (e.connector, fbs_before[e.connector]) for e in keep) or "none",
            sorted(stats), host_results(ans))

    # ---- guest dma-bufs on the primary plane (run 4)

    def dmabuf_start(self):
        detail = self.start(2)
        line = self.vs.wait_log(r"sim: .* udmabuf buffers")
        if not os.path.exists("/dev/udmabuf"):
            raise Fail("no /dev/udmabuf")
        return "%s; %s; /dev/udmabuf present (udmabuf.ko loaded: %s)" % (
            detail, re.sub(r"^.*\] ", "", line).strip(), os.path.isdir("/sys/module/udmabuf"))

    REFUSAL = r"HEAD-%d: %s cannot scan out the guest buffer \(1024x768, format 0x34325258, modifier 0x0\); composing"

    def refusals(self, e):
        return len(self.vs.log_matches(r"^.*%s.*$" % (self.REFUSAL % (e.head, e.connector))))

    def dmabuf_flip(self, line, heads, phase, kernel_debug=False):
        """`flip` on the heads given: each flipped head's connector shows the next frame, either
        as the guest's own dma-buf (stats scanouts +1, renders unchanged) or composed after one
        refusal line per head and configuration (scanouts 0, renders +1). The other heads stay
        as they are. Returns which case it was, per head."""
        exp = self.current()
        flipped = [e for e in exp if e.head in heads]
        still = [e for e in exp if e.head not in heads]
        before = self.vs.stats()
        refused_before = {e.head: self.refusals(e) for e in flipped}
        fbs_before = self.kms.fbs(self.kms.state(), still)
        dmesg_mark = None
        if kernel_debug:
            # DRM_UT_CORE: every ioctl and its error, so the kernel says what it answered the import.
            subprocess.run(["dmesg", "-C"], check=False)
            with open("/sys/module/drm/parameters/debug", "w") as f:
                f.write("0x1")
            dmesg_mark = True
        try:
            self.vs.control(line)
            for e in flipped:
                e.n += 1
                say("expect %s" % e.describe())

            def settled():
                st = self.vs.stats()
                for e in flipped:
                    s = st[e.head]
                    if s["generation"] <= before[e.head]["generation"]:
                        raise Fail("head %d generation still %d" % (e.head, s["generation"]))
                    if s["scanouts"] == before[e.head]["scanouts"] and s["renders"] == before[e.head]["renders"]:
                        raise Fail("head %d: no new frame yet (scanouts %d, renders %d)" % (
                            e.head, s["scanouts"], s["renders"]))
                return st

            wait_until(settled, 8, 0.1, "the flipped heads' next frame")
        finally:
            if kernel_debug:
                with open("/sys/module/drm/parameters/debug", "w") as f:
                    f.write("0")
        problems = []
        st = self.settled_state(exp, phase, problems)
        after = self.vs.stats()
        ans = self.host.ask(phase, exp, untouched=(self.last_phase, [e.scanout for e in still]) if still else None)
        self.last_phase = self.host.n
        if ans and any(not r["ok"] for r in ans.get("results", [])):
            problems.append("the host saw a wrong picture or command" + host_results(ans))
        if st is not None and still:
            fbs_after = self.kms.fbs(st, still)
            problems += ["%s (not flipped) fbs %s -> %s" % (c, fbs_before[c], fbs_after[c])
                         for c in fbs_after if fbs_before[c] != fbs_after[c]]
        for e in still:
            for k in ("commits", "renders", "scanouts"):
                if after[e.head][k] != before[e.head][k]:
                    problems.append("head %d (not flipped) %s %d -> %d" % (e.head, k, before[e.head][k], after[e.head][k]))
        cases = {}
        for e in flipped:
            b, a = before[e.head], after[e.head]
            refused = self.refusals(e)
            d_scan, d_render = a["scanouts"] - b["scanouts"], a["renders"] - b["renders"]
            fb = self.kms.plane(st, e.crtc, "primary") if st is not None else {}
            if d_scan > 0 and d_render == 0 and refused == 0:
                cases[e.head] = "accepted"
                if fb.get("fb_size") != e.mode:
                    problems.append("head %d scanned out directly, but %s's primary fb is %s" % (
                        e.head, e.connector, fb.get("fb_size")))
            elif d_scan == 0 and a["scanouts"] == 0 and d_render > 0 and refused == 1:
                cases[e.head] = "refused"
            else:
                cases[e.head] = "neither"
                problems.append("head %d: neither a direct scan-out nor a logged refusal: scanouts %d -> %d, renders "
                                "%d -> %d, %d refusal lines (%d before)" % (
                                    e.head, b["scanouts"], a["scanouts"], b["renders"], a["renders"], refused,
                                    refused_before[e.head]))
        kernel = ""
        if dmesg_mark:
            text = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode(
                errors="replace")
            with open(os.path.join(OUT, "kiosk-dmabuf-drm-debug.txt"), "w") as f:
                f.write(text)
            # wlroots also re-imports its own dumb buffers (PRIME_HANDLE_TO_FD just before): those
            # are told apart from the guest buffer's import.
            guest, own = [], 0
            last_ioctl = None
            lines = text.splitlines()
            for i, ln in enumerate(lines):
                m = re.search(r"pid=(\d+), dev=\S+, auth=\d, (DRM_IOCTL_\w+)", ln)
                if not m:
                    continue
                name, prev, last_ioctl = m.group(2), last_ioctl, m.group(2)
                if name != "DRM_IOCTL_PRIME_FD_TO_HANDLE":
                    continue
                ret = 0
                for nxt in lines[i + 1:i + 4]:
                    r = re.search(r"pid=%s, ret=(-?\d+)" % m.group(1), nxt)
                    if r:
                        ret = int(r.group(1))
                        break
                    if "DRM_IOCTL_" in nxt:
                        break
                if prev == "DRM_IOCTL_PRIME_HANDLE_TO_FD" and ret == 0:
                    own += 1
                else:
                    guest.append("ret=%d (%s: %s)" % (ret, errno.errorcode.get(-ret, "?"), os.strerror(-ret)) if ret < 0
                                 else "ok")
            kernel = "; kernel (drm.debug): DRM_IOCTL_PRIME_FD_TO_HANDLE of the guest dma-buf: %s%s" % (
                ", ".join("%s x%d" % (r, guest.count(r)) for r in sorted(set(guest))) or "none",
                " (and %d of wlroots' own dumb buffers: ok)" % own if own else "")
        if problems:
            raise Fail("; ".join(problems) + kernel)
        verdict = "; ".join(
            "head %d on %s: %s" % (e.head, e.connector,
                                   "ACCEPTED: the guest dma-buf is on the primary plane (scanouts %d -> %d, renders %d, "
                                   "primary fb %s %dx%d)" % (before[e.head]["scanouts"], after[e.head]["scanouts"],
                                                            after[e.head]["renders"],
                                                            self.kms.plane(st, e.crtc, "primary")["fb"], *e.mode)
                                   if cases[e.head] == "accepted" else
                                   "REFUSED: '%s cannot scan out the guest buffer (1024x768, format 0x34325258, modifier "
                                   "0x0); composing' logged once, composed (scanouts 0, renders %d -> %d)" % (
                                       e.connector, before[e.head]["renders"], after[e.head]["renders"]))
            for e in flipped)
        return "virtio-gpu %s the udmabuf dma-buf: %s; frame %s exact in the screendump%s%s%s" % (
            "accepted" if set(cases.values()) == {"accepted"} else "refused" if set(cases.values()) == {"refused"}
            else "accepted/refused", verdict, "/".join(str(e.n) for e in flipped),
            "; %s untouched" % ", ".join(e.connector for e in still) if still else "",
            "; import path %s" % "/".join(sorted({after[e.head]["import_path"] for e in flipped})), kernel)

    # ---- the end

    def clean_exit(self):
        rc = self.vs.stop()
        if rc != 0:
            raise Fail("%s after SIGTERM; %s" % (self.vs.status(), self.vs.tail()))
        st = self.vs.read_stats()
        return "SIGTERM -> exit 0; stats at exit: %s" % "; ".join(
            "head %d commits %d renders %d rejected %d cursor_path %s" % (
                h, s["commits"], s["renders"], s["rejected"], s["cursor_path"]) for h, s in sorted(st.items()))


KDGETMODE, KD_TEXT, KD_GRAPHICS = 0x4B3B, 0, 1


def console_mode():
    """The active VT's KD mode (KD_TEXT or KD_GRAPHICS), from /dev/tty0."""
    import array
    import fcntl
    fd = os.open("/dev/tty0", os.O_RDONLY | os.O_NOCTTY)
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, KDGETMODE, buf, True)
        return buf[0]
    finally:
        os.close(fd)


def console_fbs(kms):
    """{crtc name: primary fb} as the kernel console has them (fbcon's framebuffer)."""
    st = kms.state()
    return {c["name"]: kms.plane(st, c["name"], "primary")["fb"] for c in st["crtcs"].values() if c["active"]}


def plumbing(kms):
    """The VM's KMS device as the test needs it (before vscanout runs)."""
    drv = os.path.basename(os.path.realpath("/sys/class/drm/card0/device/driver"))
    conns = {c["name"]: c for c in kms.connectors}
    problems = []
    if not os.path.isdir("/sys/module/virtio_gpu"):
        problems.append("virtio_gpu is not loaded (card0's device driver: %s)" % drv)
    for name in ("Virtual-1", "Virtual-2"):
        c = conns.get(name)
        if not c:
            problems.append("no connector %s (have %s)" % (name, sorted(conns)))
            continue
        if c["status"] != "connected":
            problems.append("%s is %s" % (name, c["status"]))
        pref = [m for m in c["modes"] if m.preferred]
        if [m.size for m in pref] != [(1024, 768)]:
            problems.append("%s preferred modes %s, expected 1024x768" % (name, pref))
    # What the runs rely on: run 2 sets 800x600 and 640x480 on Virtual-1, 1280x800 on Virtual-2,
    # and 1000x700 must be a mode Virtual-2 does not list.
    for name, listed, unlisted in (("Virtual-1", ((800, 600), (640, 480)), ()),
                                   ("Virtual-2", ((1280, 800), (1024, 768)), ((1000, 700),))):
        sizes = {m.size for m in conns.get(name, {"modes": []})["modes"]}
        problems += ["%s does not list %dx%d" % ((name,) + m) for m in listed if m not in sizes]
        problems += ["%s lists %dx%d" % ((name,) + m) for m in unlisted if m in sizes]
    types = sorted((p["possible_crtcs"], p["type"]) for p in kms.planes)
    for i in (0, 1):
        for t in ("primary", "cursor"):
            if (i, t) not in kms.plane_by:
                problems.append("no %s plane for CRTC %d (planes %s)" % (t, i, types))
    try:
        kms.console = console_fbs(kms)
        kms.console_mode = console_mode()
        if kms.console_mode != KD_TEXT or not kms.console:
            problems.append("the console is not fbcon in text mode (KD mode %d, CRTCs %s)" % (
                kms.console_mode, kms.console))
    except OSError as e:
        problems.append("debugfs state or the console: %s" % e)
    for name in sorted(conns):
        c = conns[name]
        say("%s: %s, %d modes, preferred %s, user-defined %s" % (
            name, c["status"], len(c["modes"]), [m for m in c["modes"] if m.preferred],
            [m for m in c["modes"] if m.type & drm_info.MODE_TYPE_USERDEF]))
    if problems:
        raise Fail("; ".join(problems))
    return "card0 (virtio_gpu, device driver %s): Virtual-1 and Virtual-2 connected, both prefer 1024x768, " \
           "Virtual-2 lists 1280x800; a primary and a cursor plane per CRTC; debugfs state readable" % drv


def run_phases(run, start, phases):
    """Runs the start check, then (name, fn, args...) in order while vscanout is up; the rest are
    recorded as not run (counted, so a vscanout that died cannot look like a shorter green run)."""
    if not R.run(*start):
        why = "vscanout did not come up (see %s)" % start[0].split()[0]
        for rest in phases:
            R.record(False, rest[0], "not run: " + why)
        return
    for i, (name, fn, *args) in enumerate(phases):
        if run.vs.proc.poll() is not None:
            why = "not run: vscanout ended (%s); %s" % (run.vs.status(), run.vs.tail())
            for rest in phases[i:]:
                R.record(False, rest[0], why)
            return
        R.run(name, fn, *args)


def main():
    src = guest_args(__doc__, ROOT, OUT)
    host = Host()
    try:
        kms = Kms()
    except OSError as e:
        R.record(False, "0 the VM has virtio-gpu KMS", "%s (modules: vscanout.modules=kms?)" % e)
        host.end()
        return finish()
    if not R.run("0 the VM has virtio-gpu KMS: two connected connectors, cursor planes, debugfs", plumbing, kms):
        host.end()
        return finish()
    try:
        binary = guest_binary(src)
    except Fail as e:
        R.record(False, "vscanout binary", str(e))
        host.end()
        return finish()

    # ---- run 1: --mode preferred (the default)
    vs = Kiosk("preferred", binary, [(1024, 768), (1024, 768)], ["--allow-capture"])
    run = Run(kms, host, vs, {0: Expect(0, 0, (1024, 768), (1024, 768)), 1: Expect(1, 1, (1024, 768), (1024, 768))})

    def cursor_off(ex):
        ex[0].cursor = False

    def disable_1(ex):
        ex[1].signal = ex[1].cursor = False

    try:
        run_phases(run, ("1a run 1 (--mode preferred): vscanout starts on DRM with 2 sim heads", run.start), [
            ("1b each connector 1024x768 with its head's frame and the hardware cursor at (96,96) (debugfs; host: "
             "screendump, trace)", run.first_frames, "1:1 start"),
            ("1c stats: heads 1024x768, cursor_path hardware", run.stats_match),
            ("2 a static second: no framebuffer change, commits unchanged", run.static_second),
            ("2b grim on the kiosk's socket (wlr-screencopy of the frame on screen, --allow-capture), exact; the "
             "cursor stays on its plane", run.screencopy),
            ("2c wayvnc on HEAD-0 (remote console): the frame exact over VNC; a static second with the viewer "
             "waiting: no rectangle, no commit", run.remote_console),
            ("3 'mode 0 800x480': Virtual-1 stays 1024x768, the frame scaled 1.28 and letterboxed, the cursor "
             "at the scaled hotspot", run.mode_change, 0, (800, 480), None, "letterbox 800x480 on Virtual-1"),
            ("4 'mode 0 1024x768': back to 1:1, cursor at (96,96)", run.mode_change, 0, (1024, 768), None,
             "back to 1:1"),
            ("5 'cursor 0 off': Virtual-1's cursor plane off, Virtual-2's stays", run.command, "cursor 0 off",
             cursor_off, "cursor 0 off"),
            ("6 'disable 1': Virtual-2 keeps 1024x768 and shows no signal, its cursor off", run.command,
             "disable 1", disable_1, "disable 1"),
            ("7 run 1: SIGTERM -> exit 0", run.clean_exit),
        ])
    finally:
        vs.cleanup()

    # ---- run 2: --mode guest, heads swapped
    vs = Kiosk("guest", binary, [(1280, 800), (800, 600)],
               ["--mode", "guest", "--output", "HEAD-0=Virtual-2", "--output", "HEAD-1=Virtual-1"])
    run = Run(kms, host, vs, {0: Expect(0, 1, (800, 600), (800, 600)), 1: Expect(1, 0, (1280, 800), (1280, 800))})
    try:
        run_phases(run, ("8a run 2 (--mode guest, --output HEAD-0=Virtual-2 HEAD-1=Virtual-1): vscanout starts",
                         run.start), [
            ("8b Virtual-2 1280x800 shows HEAD-0, Virtual-1 800x600 shows HEAD-1, 1:1, cursors at (96,96)",
             run.first_frames, "guest modes, swapped"),
            ("8b2 a default kiosk (no --allow-capture/--allow-input): no screencopy or virtual input offered, "
             "grim fails, vscanout runs on", run.capture_refused),
            ("8c 'mode 1 640x480': Virtual-1 follows to 640x480, 1:1", run.mode_change, 1, (640, 480), (640, 480),
             "guest mode 640x480 on Virtual-1"),
            ("8d 'mode 0 1000x700' (not listed): Virtual-2 falls back to its preferred 1024x768, scaled",
             run.mode_change, 0, (1000, 700), (1024, 768), "unlisted mode on Virtual-2"),
            ("8e run 2: SIGTERM -> exit 0", run.clean_exit),
        ])
    finally:
        vs.cleanup()

    # ---- run 3: more heads than connectors; heads plugged and unplugged
    mode = (1024, 768)
    vs = Kiosk("hotplug", binary, [mode], ["--output", "HEAD-7=Virtual-9"], heads=3)
    run = Run(kms, host, vs, {0: Expect(0, 0, mode, mode), 1: Expect(1, 1, mode, mode)})

    def to_head(scanout, head):
        def change(ex):
            ex[scanout] = Expect(scanout, head, mode, mode)
        return change

    def dark(scanout):
        def change(ex):
            del ex[scanout]
        return change

    never7 = [r"HEAD-7: on connector"]
    try:
        run_phases(run, ("10a run 3 (sim heads 0-2 on 2 connectors, --output HEAD-7=Virtual-9): vscanout starts, "
                         "HEAD-2 waits (no free connector)", run.start_waiting, 3, [2]), [
            ("10b HEAD-0 on Virtual-1, HEAD-1 on Virtual-2 (connector order), 1:1, cursors at (96,96)",
             run.first_frames, "3 heads, 2 connectors"),
            ("10c 'plug 7 1024x768': HEAD-7 waits for Virtual-9 (no such connector); no display change",
             run.hotplug, "plug 7 1024x768", [r"HEAD-7: waiting for connector Virtual-9"], None, "plug 7 (Virtual-9)",
             (), [0, 1, 2, 7], never7),
            ("10d 'unplug 0': HEAD-2 takes the released Virtual-1 (frame 0 of head 2); Virtual-2 untouched; HEAD-7 "
             "waits", run.hotplug, "unplug 0", [r"head 0: unplugged", r"HEAD-2: on connector Virtual-1"],
             to_head(0, 2), "unplug 0", (), [1, 2, 7], never7),
            ("10e 'plug 5 1024x768': HEAD-5 waits (no free connector); no display change", run.hotplug,
             "plug 5 1024x768", [r"HEAD-5: waiting for an output \(no free connector\)"], None, "plug 5",
             (), [1, 2, 5, 7], never7),
            ("10f 'unplug 1': HEAD-5 takes Virtual-2 (frame 0 of head 5); Virtual-1 untouched", run.hotplug,
             "unplug 1", [r"head 1: unplugged", r"HEAD-5: on connector Virtual-2"], to_head(1, 5), "unplug 1",
             (), [2, 5, 7], never7),
            ("10g 'unplug 2': Virtual-1 goes off, HEAD-7 (mapped to Virtual-9) does not take it; Virtual-2 untouched",
             run.hotplug, "unplug 2", [r"head 2: unplugged"], dark(0), "unplug 2", [0], [5, 7], never7),
            ("10h run 3: SIGTERM -> exit 0", run.clean_exit),
        ])
    finally:
        vs.cleanup()

    # ---- run 4: guest dma-bufs (udmabuf) and direct scan-out
    vs = Kiosk("dmabuf", binary, [mode], heads=2, options="dmabuf=on")
    run = Run(kms, host, vs, {0: Expect(0, 0, mode, mode), 1: Expect(1, 1, mode, mode)})
    try:
        run_phases(run, ("11a run 4 (sim dmabuf=on): vscanout starts with udmabuf buffers", run.dmabuf_start), [
            ("11b the first frames (a mode set: composed), 1:1 on both connectors", run.first_frames, "dma-bufs, mode set"),
            ("11c 'flip *': frame 1 on both connectors, the guest dma-buf scanned out or refused once per head and "
             "composed", run.dmabuf_flip, "flip *", (0, 1), "dma-bufs, flip *", True),
            ("11d 'flip 0': frame 2 of head 0 the same way (no second refusal line); Virtual-2 untouched",
             run.dmabuf_flip, "flip 0", (0,), "dma-bufs, flip 0"),
            ("11e run 4: SIGTERM -> exit 0", run.clean_exit),
        ])
    finally:
        vs.cleanup()

    # ---- run 5: the seat on the active VT, as on a host: SIGTERM gives the console back
    vs = Kiosk("vt", binary, [mode], heads=2, vt_bound=True)
    run = Run(kms, host, vs, {0: Expect(0, 0, mode, mode), 1: Expect(1, 1, mode, mode)})

    def graphics():
        m = console_mode()
        if m != KD_GRAPHICS:
            raise Fail("the active VT is in KD mode %d, expected KD_GRAPHICS (%d)" % (m, KD_GRAPHICS))
        return "the active VT is in KD_GRAPHICS while vscanout runs"

    def console_back():
        got = {}

        def back():
            got["mode"], got["fbs"] = console_mode(), console_fbs(kms)
            return got["mode"] == KD_TEXT and got["fbs"] == kms.console

        exited = run.clean_exit()
        try:
            wait_until(back, 5, 0.1, "the console")
        except Fail:
            raise Fail("%s; but after it: KD mode %s, CRTC primary fbs %s; before: KD_TEXT, fbcon's %s" % (
                exited, got.get("mode"), got.get("fbs"), kms.console)) from None
        return "%s; KD_TEXT again and fbcon's framebuffers back on the CRTCs (%s)" % (exited, kms.console)

    try:
        run_phases(run, ("13a run 5 (the seat on the active VT, no SEATD_VTBOUND=0): vscanout starts", run.start), [
            ("13b both connectors 1:1 with their frames and cursors", run.first_frames, "VT-bound seat"),
            ("13c the console is in graphics mode while vscanout runs", graphics),
            ("13d run 5: SIGTERM -> exit 0, and the console is given back (text mode, fbcon on the screen)",
             console_back),
        ])
    finally:
        vs.cleanup()

    host.end()
    R.run("12 no kernel warnings", kernel_warnings, os.path.join(OUT, "kiosk-dmesg.txt"))
    return finish()


def finish():
    return R.finish("kiosk checks")


if __name__ == "__main__":
    sys.exit(main())
