#!/usr/bin/python3
"""The host half of the kiosk VM test: what QEMU shows of the guest's virtio-gpu outputs.

usage: kiosk_host.py --qmp SOCKET --trace FILE --out DIR [--deadline SECONDS]
(tests/vm/kiosk_test.sh starts it beside run.sh; QEMU gets `-qmp unix:SOCKET,server=on,wait=off`
and `-trace virtio_gpu_update_cursor -trace virtio_gpu_cmd_set_scanout -trace
virtio_gpu_cmd_res_flush -D FILE`.)

Connects to QEMU's QMP socket, writes DIR/sync/host-ready, then answers each phase the guest
(kiosk_checks.py) writes as DIR/sync/phase-NN.json, in order: for every connector the phase names,
1. a QMP `screendump` of that head (`device: vga0, head: N`, a PPM; primary plane only, QEMU draws
   no cursor into it), retried for a few seconds until it equals what the phase says: the sim
   frame 1:1 pixel for pixel (tests/common/vscanout_pixels.guest_frame), the frame scaled with
   black bars (scaled_frame_problems), or the no-signal frame;
2. QEMU's trace of the virtio-gpu commands for that scanout: the last SET_SCANOUT has the
   connector's mode; the last cursor command puts the cursor image where the guest's debugfs
   says, or hides it (res 0);
and, for a phase with `static_since`, that QEMU saw no SET_SCANOUT, RESOURCE_FLUSH or cursor
command since it answered that earlier phase; for a phase with `untouched` ({since, scanouts}),
that the named scanouts saw none since then (no SET_SCANOUT or cursor command for them, no
RESOURCE_FLUSH of the resource they show) while others changed; for a phase with `off` (scanout
indices), that the last SET_SCANOUT of each has no resource (the connector was turned off; no
screendump then). It then writes DIR/sync/done-NN.json. Each check
prints `RESULT: PASS|FAIL host ...: <reason>`. Ends at the guest's DIR/sync/end marker, when QEMU
closes the QMP socket, or at the deadline. Failed screendumps are kept in DIR (host-*.ppm).
"""

import argparse
import json
import os
import re
import select
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
import vm_checks  # noqa: E402
from vscanout_pixels import (describe_difference, guess_frame, guest_frame, no_signal_problems,  # noqa: E402
                             parse_ppm, place_frame, scaled_frame_problems)

DEVICE = "vga0"
SCREENDUMP_RETRY_S = 4

CURSOR_RX = re.compile(r"virtio_gpu_update_cursor scanout (\d+), x (-?\d+), y (-?\d+), (\w+), res 0x([0-9a-f]+)")
SCANOUT_RX = re.compile(r"virtio_gpu_cmd_set_scanout id (\d+), res 0x([0-9a-f]+), w (\d+), h (\d+), x (-?\d+), "
                        r"y (-?\d+)")
FLUSH_RX = re.compile(r"virtio_gpu_cmd_res_flush res 0x([0-9a-f]+), w (\d+), h (\d+), x (-?\d+), y (-?\d+)")


def say(msg):
    vm_checks.say(msg, "host ")


class Results(vm_checks.Results):
    """RESULT lines named `host ...`; each record is also the verdict for the guest's done file."""

    def __init__(self):
        super().__init__("host ")

    def record(self, ok, name, detail):
        super().record(ok, name, detail)
        return {"name": name, "ok": ok, "detail": detail}


R = Results()


class QmpError(Exception):
    pass


class Qmp:
    def __init__(self, path, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > end:
                    raise QmpError("cannot connect to QMP at %s within %d s: %s" % (path, timeout, e)) from None
                time.sleep(0.05)
        self.buf = b""
        self.closed = False
        greeting = self._message(10)
        if "QMP" not in greeting:
            raise QmpError("no QMP greeting: %s" % greeting)
        self.command("qmp_capabilities")

    def _message(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise QmpError("no answer from QMP within %d s" % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.closed = True
                    raise QmpError("QEMU closed the QMP socket")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, timeout=20, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._message(timeout)
            if "event" in r:
                say("QMP event %s" % r["event"])
                continue
            if "error" in r:
                raise QmpError("%s: %s" % (name, r["error"].get("desc", r["error"])))
            return r.get("return")

    def poll_events(self):
        """Reads pending events without blocking; False once QEMU has closed the socket."""
        while True:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return True
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                return False
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                ev = json.loads(line)
                if "event" in ev:
                    say("QMP event %s" % ev["event"])


# --------------------------------------------------------------------------------------------
# QEMU's trace


class Trace:
    def __init__(self, path):
        self.path = path

    def lines(self):
        try:
            with open(self.path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def scanout_state(self, lines, scanout):
        """(last SET_SCANOUT (res, w, h) or None, cursor (res, x, y, last command kind) or None)."""
        setsc = cursor = None
        res = None
        for line in lines:
            m = SCANOUT_RX.search(line)
            if m and int(m.group(1)) == scanout:
                setsc = (int(m.group(2), 16), int(m.group(3)), int(m.group(4)))
                continue
            m = CURSOR_RX.search(line)
            if m and int(m.group(1)) == scanout:
                kind = m.group(4)
                if kind != "move":  # a move keeps the image (its res field is the old one's)
                    res = int(m.group(5), 16)
                cursor = (res, int(m.group(2)), int(m.group(3)), kind)
        return setsc, cursor

    @staticmethod
    def scanout_commands(lines, scanout, res):
        """The commands in `lines` that touch `scanout`, which showed resource `res` before
        them: SET_SCANOUT or cursor commands for it, RESOURCE_FLUSH of the resource it shows."""
        out = []
        for line in lines:
            m = SCANOUT_RX.search(line)
            if m and int(m.group(1)) == scanout:
                res = int(m.group(2), 16)
                out.append(line.strip())
                continue
            m = CURSOR_RX.search(line)
            if m and int(m.group(1)) == scanout:
                out.append(line.strip())
                continue
            m = FLUSH_RX.search(line)
            if m and res and int(m.group(1), 16) == res:
                out.append(line.strip())
        return out

    @staticmethod
    def display_commands(lines):
        return [line.strip() for line in lines if CURSOR_RX.search(line) or SCANOUT_RX.search(line)
                or FLUSH_RX.search(line)]


# --------------------------------------------------------------------------------------------
# one phase


class Phases:
    def __init__(self, qmp, trace, out):
        self.qmp, self.trace, self.out = qmp, trace, out
        self.sync = os.path.join(out, "sync")
        self.dumps = tempfile.mkdtemp(prefix="kiosk-dumps-")
        self.trace_mark = {}  # phase number -> trace line count when it was answered

    def screendump(self, scanout, tag):
        path = os.path.join(self.dumps, "%s-head%d.ppm" % (tag, scanout))
        t = time.monotonic()
        self.qmp.command("screendump", filename=path, device=DEVICE, head=scanout)
        with open(path, "rb") as f:
            img = parse_ppm(f.read())
        os.unlink(path)
        return img, time.monotonic() - t

    def picture_problems(self, img, e):
        mode = tuple(e["mode"])
        if img.size != mode:
            return "screendump is %dx%d, the connector's mode is %dx%d" % (*img.size, *mode), None
        if not e["signal"]:
            p = no_signal_problems(img)
            return ("not the no-signal frame: " + "; ".join(p)) if p else None, "the no-signal frame"
        gw, gh = e["guest"]
        if (gw, gh) == mode:
            want = guest_frame(gw, gh, e["head"], e["n"], cursor=False)
            diff = describe_difference(img, want)
            if diff:
                return "vs frame %d of head %d 1:1: %s (%s)" % (e["n"], e["head"], diff, guess_frame(img, e["head"])), None
            return None, "frame %d of head %d, %dx%d, 1:1 pixel for pixel" % (e["n"], e["head"], gw, gh)
        filt, problems = scaled_frame_problems(img, gw, gh, e["head"], e["n"])
        if problems:
            return "vs frame %d of head %d (%dx%d) scaled into %dx%d: %s" % (
                e["n"], e["head"], gw, gh, *mode, "; ".join(problems)), None
        x, y, w, h = place_frame(gw, gh, *mode)
        return None, "frame %d of head %d, %dx%d scaled (%s) to %dx%d at (%d,%d), black bars exact" % (
            e["n"], e["head"], gw, gh, filt, w, h, x, y)

    def check_picture(self, n, name, e):
        last = ["no screendump"]
        img = None
        end = time.monotonic() + SCREENDUMP_RETRY_S
        tries = 0
        took = 0
        while True:
            tries += 1
            try:
                img, took = self.screendump(e["scanout"], "p%02d" % n)
                problem, good = self.picture_problems(img, e)
            except Exception as ex:  # noqa: BLE001 - QMP errors and bad PPMs are failures of this check
                problem, good = "%s: %s" % (type(ex).__name__, ex), None
            if not problem:
                return R.record(True, "P%02d %s screendump (%s)" % (n, e["connector"], name),
                                "%s (QMP screendump head %d: %.0f ms, try %d)" % (good, e["scanout"], took * 1000, tries))
            last = [problem]
            if time.monotonic() > end:
                break
            time.sleep(0.2)
        saved = ""
        if img is not None:
            path = os.path.join(self.out, "host-P%02d-%s.ppm" % (n, e["connector"]))
            try:
                img.save(path)
                saved = " (saved as %s)" % path
            except OSError:
                pass
        return R.record(False, "P%02d %s screendump (%s)" % (n, e["connector"], name),
                        "%s after %d tries%s" % (last[0], tries, saved))

    def check_trace(self, n, name, e, lines):
        setsc, cursor = self.trace.scanout_state(lines, e["scanout"])
        problems = []
        mode = tuple(e["mode"])
        if setsc is None:
            problems.append("no SET_SCANOUT for scanout %d in the trace" % e["scanout"])
        elif setsc[0] == 0 or setsc[1:] != mode:
            problems.append("the last SET_SCANOUT for scanout %d is res 0x%x %dx%d, expected %dx%d" % (
                e["scanout"], setsc[0], setsc[1], setsc[2], *mode))
        c = e["cursor"]
        if c:
            if cursor is None or not cursor[0]:
                problems.append("cursor on scanout %d: %s, expected an image at (%d,%d)" % (
                    e["scanout"], "no command" if cursor is None else "hidden (res 0)", c["x"], c["y"]))
            elif abs(cursor[1] - c["x"]) > c["tolerance"] or abs(cursor[2] - c["y"]) > c["tolerance"]:
                problems.append("cursor on scanout %d at (%d,%d) (last command %s), expected (%d,%d)%s" % (
                    e["scanout"], cursor[1], cursor[2], cursor[3], c["x"], c["y"],
                    " ±%d" % c["tolerance"] if c["tolerance"] else ""))
        elif cursor is not None and cursor[0]:
            problems.append("cursor on scanout %d still shows res 0x%x at (%d,%d), expected hidden" % (
                e["scanout"], cursor[0], cursor[1], cursor[2]))
        title = "P%02d %s QEMU trace (%s)" % (n, e["connector"], name)
        if problems:
            return R.record(False, title, "; ".join(problems))
        cur = ("cursor res 0x%x at (%d,%d), last command '%s'" % cursor) if c else \
            ("cursor hidden" if cursor else "no cursor command")
        return R.record(True, title, "SET_SCANOUT res 0x%x %dx%d; %s" % (setsc + (cur,)))

    def check_static(self, n, name, since, lines):
        title = "P%02d no virtio-gpu display command since phase %s (%s)" % (n, since, name)
        if since not in self.trace_mark:
            return R.record(False, title, "phase %s was not answered: nothing to compare with" % since)
        new = Trace.display_commands(lines[self.trace_mark[since]:])
        if new:
            return R.record(False, title, "%d commands: %s" % (len(new), " | ".join(new[:6])))
        return R.record(True, title, "no SET_SCANOUT, RESOURCE_FLUSH or cursor command in %d trace lines since" % (
            len(lines) - self.trace_mark[since]))

    def check_untouched(self, n, name, since, scanouts, lines):
        title = "P%02d scanout %s untouched since phase %s (%s)" % (n, "/".join(map(str, scanouts)), since, name)
        if since not in self.trace_mark:
            return R.record(False, title, "phase %s was not answered: nothing to compare with" % since)
        mark = self.trace_mark[since]
        problems, shown = [], []
        for s in scanouts:
            setsc, _ = self.trace.scanout_state(lines[:mark], s)
            if setsc is None or not setsc[0]:
                problems.append("scanout %d showed no resource at phase %s" % (s, since))
                continue
            new = Trace.scanout_commands(lines[mark:], s, setsc[0])
            if new:
                problems.append("scanout %d (res 0x%x): %d commands: %s" % (s, setsc[0], len(new), " | ".join(new[:4])))
            shown.append("scanout %d keeps res 0x%x" % (s, setsc[0]))
        if problems:
            return R.record(False, title, "; ".join(problems))
        others = len(Trace.display_commands(lines[mark:]))
        return R.record(True, title, "%s: no SET_SCANOUT, RESOURCE_FLUSH of it or cursor command in %d trace lines "
                        "(%d display commands for the others)" % (", ".join(shown), len(lines) - mark, others))

    def check_off(self, n, name, scanout, lines):
        title = "P%02d scanout %d turned off (%s)" % (n, scanout, name)
        setsc, cursor = self.trace.scanout_state(lines, scanout)
        if setsc is None:
            return R.record(False, title, "no SET_SCANOUT for scanout %d in the trace" % scanout)
        if setsc[0]:
            return R.record(False, title, "the last SET_SCANOUT for scanout %d shows res 0x%x %dx%d" % ((scanout,) + setsc))
        return R.record(True, title, "the last SET_SCANOUT for scanout %d has res 0x0 (no resource)" % scanout)

    def answer(self, phase):
        n, name = phase["n"], phase["name"]
        say("phase %d (%s): %s" % (n, name, "; ".join(
            ["%s head %d frame %d %s on %s" % (e["connector"], e["head"], e["n"], "x".join(map(str, e["guest"])),
                                               "x".join(map(str, e["mode"]))) for e in phase["expects"]]
            + ["scanout %d off" % s for s in phase.get("off") or ()])))
        results = []
        for e in phase["expects"]:
            results.append(self.check_picture(n, name, e))
        lines = self.trace.lines()
        for e in phase["expects"]:
            results.append(self.check_trace(n, name, e, lines))
        if phase.get("static_since") is not None:
            results.append(self.check_static(n, name, phase["static_since"], lines))
        if phase.get("untouched"):
            u = phase["untouched"]
            results.append(self.check_untouched(n, name, u["since"], u["scanouts"], lines))
        for s in phase.get("off") or ():
            results.append(self.check_off(n, name, s, lines))
        self.trace_mark[n] = len(self.trace.lines())
        path = os.path.join(self.sync, "done-%02d.json" % n)
        with open(path + ".part", "w") as f:
            json.dump({"n": n, "results": results}, f)
        os.rename(path + ".part", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--qmp", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, default=180)
    a = ap.parse_args()
    end = time.monotonic() + a.deadline
    try:
        qmp = Qmp(a.qmp, timeout=min(120, a.deadline))
    except QmpError as e:
        R.record(False, "QMP", str(e))
        return finish()
    say("QMP connected (%s)" % a.qmp)
    sync = os.path.join(a.out, "sync")
    os.makedirs(sync, exist_ok=True)
    with open(os.path.join(sync, "host-ready"), "w") as f:
        f.write("%d\n" % os.getpid())
    phases = Phases(qmp, Trace(a.trace), a.out)
    try:
        return serve(qmp, phases, sync, end, a.deadline)
    finally:
        shutil.rmtree(phases.dumps, ignore_errors=True)


def serve(qmp, phases, sync, end, deadline):
    """Answers the guest's phases in order until its end marker, QEMU's exit or the deadline."""
    n = 1
    ended = False
    while time.monotonic() < end:
        path = os.path.join(sync, "phase-%02d.json" % n)
        if os.path.exists(path):
            with open(path) as f:
                phase = json.load(f)
            try:
                phases.answer(phase)
            except QmpError as e:
                R.record(False, "P%02d (%s)" % (n, phase.get("name")), "QMP: %s" % e)
                break
            n += 1
            continue
        if os.path.exists(os.path.join(sync, "end")):
            ended = True
            break
        if not qmp.poll_events():
            break
        time.sleep(0.05)
    if not ended:
        why = "QEMU exited" if qmp.closed else "the deadline (%d s) passed" % deadline
        R.record(False, "the guest finished its phases", "%s before the guest wrote sync/end (%d phases answered)" % (
            why, n - 1))
    else:
        say("the guest ended after %d phases" % (n - 1))
    return finish()


def finish():
    return R.finish("kiosk host")


if __name__ == "__main__":
    sys.exit(main())
