#!/usr/bin/python3
"""The guest half of the simulated vGPU's dma-buf test: real kernel dma-bufs and fences.

usage: sim_dmabuf_checks.py [--bin VSCANOUT]   (in the test VM; tests/vm/sim_dmabuf_test.sh runs it there)

vscanout (headless, --stats) shows the built-in simulated vGPU with its buffers made as udmabufs
(dmabuf=udmabuf) and as vgem dumb buffers exported as dma-bufs (dmabuf=vgem), driven through the
sim's control FIFO. Checks: lavapipe imports them as dma-bufs (import_path dmabuf, no copies) and
the frames are pixel-exact, before and after a flip; with vgem, a write fence attached to the
buffer of the next flip holds that frame back (the old frame stays on screen, no render) until
the fence is signalled; a fence never signalled is logged once as late on its head while the
other head keeps flipping; the zero-copy unit tests pass on the guest's lavapipe (a dma-buf it
exported is imported as the same memory, and frames are drawn straight into one). Each check prints one `RESULT: PASS|FAIL <check>: <reason>` line; the
last line is `sim dmabuf checks: N passed, M failed`.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "common"))
from vfio_checks import Vscanout  # noqa: E402
from vm_checks import Fail, Results, guest_args, guest_binary, kernel_warnings, say, wait_until  # noqa: E402
from vscanout_pixels import guest_frame  # noqa: E402

OUT = os.environ.get("VSCANOUT_VM_OUT") or "/tmp"
MODES = ((640, 480), (320, 240))
FENCE_TIMEOUT_MS = 1500
LATE_RX = r"head 0: buffer id \d+: its write fence has not signalled in %d ms" % FENCE_TIMEOUT_MS

R = Results()


def control(vs, line):
    """One command to the sim's control FIFO; the sim applies it when it reads it."""
    fd = os.open(vs.sim_ctl, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    say("control: %s" % line)


class Run:
    def __init__(self, binary, kind):
        self.kind = kind
        self.frames = [0, 0]
        ctl = os.path.join(tempfile.mkdtemp(prefix="simctl-"), "ctl")  # the sim makes the FIFO
        # Three buffers a head: a frame held back by its fence never lands on the buffer on screen.
        # The fence checks run without the cursor: its plane moves with every frame, which is a
        # render of its own even while the primary waits.
        self.cursor = kind != "vgem"
        spec = "sim:heads=2,modes=%s,fps=0,buffers=3,cursor=%s,dmabuf=%s,control=%s" % (
            "/".join("%dx%d" % m for m in MODES), "on" if self.cursor else "off", kind, ctl)
        self.vs = Vscanout(kind, binary, sources=[spec], args=["-d", "--fence-timeout", str(FENCE_TIMEOUT_MS)])
        self.vs.sim_ctl = ctl

    def frame(self, head):
        w, h = MODES[head]
        return guest_frame(w, h, head, self.frames[head], cursor=self.cursor)

    def held_frame(self):
        """HEAD-0 while its newest frame waits for a fence: the frame before it."""
        return guest_frame(*MODES[0], 0, self.frames[0] - 1, cursor=self.cursor)

    def flip(self, head):
        control(self.vs, "flip %d" % head)
        self.frames[head] += 1

    # ---- checks

    def frames_exact(self):
        vs = self.vs
        for head in (0, 1):
            vs.wait_capture(head, self.frame(head), timeout=20, name="first frame")
        st = vs.stats()
        problems = []
        for head in (0, 1):
            if st[head]["import_path"] != "dmabuf":
                problems.append("head %d import_path %r" % (head, st[head]["import_path"]))
            if st[head]["copies"] != 0:
                problems.append("head %d copies %d" % (head, st[head]["copies"]))
        if "%s buffers" % self.kind not in vs.log():
            problems.append("the log does not say '%s buffers'" % self.kind)
        forms = set(re.findall(r"head \d: primary plane imported as (dma-buf image with modifier|linear dma-buf "
                               r"buffer)", vs.log()))
        if not forms:
            problems.append("the debug log names no dma-buf form for the primaries")
        if problems:
            raise Fail("; ".join(problems))
        return "HEAD-0 %dx%d and HEAD-1 %dx%d show frame 0 pixel for pixel; import_path dmabuf, copies 0 on both; " \
               "imported as %s" % (MODES[0] + MODES[1] + (" and ".join(sorted(forms)),))

    def flip_exact(self):
        vs = self.vs
        before = vs.stats()[0]
        self.flip(0)
        vs.wait_capture(0, self.frame(0), name="after a flip")
        after = vs.stats()[0]
        if after["import_path"] != "dmabuf" or after["copies"] != 0:
            raise Fail("after the flip: import_path %r, copies %d" % (after["import_path"], after["copies"]))
        return "HEAD-0 shows frame 1 pixel for pixel; imports %d -> %d, generation %d -> %d" % (
            before["imports"], after["imports"], before["generation"], after["generation"])

    def fence_holds_the_frame(self):
        vs = self.vs
        before = vs.stats()[0]
        control(vs, "fence 0")
        self.flip(0)
        st = wait_until(lambda: (lambda s: s if s[0]["fence_waits"] > before["fence_waits"] else None)(vs.stats()),
                        10, 0.05, "head 0's fence_waits to go up")[0]
        time.sleep(0.5)  # the fence stays unsignalled: nothing may be drawn meanwhile
        held = vs.stats()[0]
        vs.wait_capture(0, self.held_frame(), timeout=5, name="while the fence is unsignalled")
        if held["renders"] != before["renders"] or held["generation"] != before["generation"]:
            raise Fail("while the fence was unsignalled: renders %d -> %d, generation %d -> %d" % (
                before["renders"], held["renders"], before["generation"], held["generation"]))
        control(vs, "signal 0")
        vs.wait_capture(0, self.frame(0), name="after the signal")
        done = vs.stats()[0]
        if done["renders"] <= held["renders"]:
            raise Fail("the signalled frame is shown but renders stayed %d" % done["renders"])
        return "fence_waits %d -> %d; 0.5 s unsignalled: renders %d, generation %d, grim shows frame %d; " \
               "after the signal frame %d is shown (renders %d)" % (
                   before["fence_waits"], st["fence_waits"], held["renders"], held["generation"],
                   self.frames[0] - 1, self.frames[0], done["renders"])

    def late_fence_costs_one_head(self):
        vs = self.vs
        late_before = len(re.findall(LATE_RX, vs.log()))
        control(vs, "fence 0")
        self.flip(0)
        for _ in range(3):
            self.flip(1)
            vs.wait_capture(1, self.frame(1), name="head 1 flipping while head 0 waits")
        vs.wait_log(LATE_RX, timeout=10)
        time.sleep(0.3)
        st = vs.stats()
        late = len(re.findall(LATE_RX, vs.log()))
        vs.wait_capture(0, self.held_frame(), timeout=5, name="late fence")
        if late - late_before != 1:
            raise Fail("the late fence was logged %d times" % (late - late_before))
        if st[0]["fence_timeouts"] != 1:
            raise Fail("head 0 fence_timeouts %d" % st[0]["fence_timeouts"])
        if st[1]["fence_timeouts"] != 0 or st[1]["fence_waits"] != 0:
            raise Fail("head 1 fence_waits %d, fence_timeouts %d" % (st[1]["fence_waits"], st[1]["fence_timeouts"]))
        control(vs, "signal 0")
        vs.wait_capture(0, self.frame(0), name="late fence signalled")
        vs.wait_log(r"head 0: buffer id \d+: the late fence signalled", timeout=5)
        return "HEAD-1 flipped 3 times to frame %d meanwhile; late logged once; head 0 fence_timeouts 1, " \
               "head 1 none; HEAD-0 kept frame %d, then showed frame %d once signalled" % (
                   self.frames[1], self.frames[0] - 1, self.frames[0])

    def clean_exit(self):
        rc = self.vs.stop()
        if rc != 0:
            raise Fail("exit status %d after SIGTERM; stderr tail:\n%s" % (rc, self.vs.tail()))
        return "SIGTERM -> exit 0"


def run_kind(binary, kind):
    t = Run(binary, kind)
    pre = "%s: " % kind
    try:
        t.vs.wait_ready()
    except Fail as e:
        R.record(False, pre + "vscanout starts on %s buffers" % kind, str(e))
        t.vs.cleanup()
        return
    try:
        if R.run(pre + "frames are imported as dma-bufs and pixel-exact", t.frames_exact):
            R.run(pre + "a flip shows the next frame pixel for pixel", t.flip_exact)
            if kind == "vgem":
                R.run(pre + "a write fence holds the next frame back until it is signalled", t.fence_holds_the_frame)
                R.run(pre + "a fence left unsignalled is logged once as late; the other head keeps flipping",
                      t.late_fence_costs_one_head)
        R.run(pre + "SIGTERM -> exit 0", t.clean_exit)
    finally:
        t.vs.cleanup()


def zero_copy_unit_tests(unit_tests):
    """The zero-copy unit tests (tests/unit/zero_copy_test.cpp) on this VM's lavapipe, which can
    export dma-bufs here (through /dev/udmabuf): pixels written into an exported buffer after its
    import show in the next frame only if the import is the same memory."""
    if not os.access(unit_tests, os.X_OK):
        raise Fail("%s is missing (ninja -C build tests/unit_tests)" % unit_tests)
    p = subprocess.run([unit_tests, "--gtest_filter=ZeroCopy.*"], capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    passed = re.search(r"^\[  PASSED  \] (\d+) test", out, re.M)
    skipped = re.search(r"^\[  SKIPPED \] (\d+) test", out, re.M)
    form = re.search(r"guest import form: (.+)$", out, re.M)
    if p.returncode != 0 or skipped or not passed or int(passed.group(1)) < 3:
        raise Fail("exit %d:\n%s" % (p.returncode, "\n".join(out.splitlines()[-25:])))
    return "%s tests passed (guest import form %s)" % (passed.group(1), form.group(1) if form else "?")


def main():
    src = guest_args(__doc__, os.path.dirname(os.path.dirname(HERE)), OUT)
    try:
        binary = guest_binary(src)
    except Fail as e:
        R.record(False, "vscanout binary", str(e))
        return R.finish("sim dmabuf checks")
    for kind in ("udmabuf", "vgem"):
        run_kind(binary, kind)
    R.run("zero copy: a dma-buf lavapipe exported is imported as the same memory, in and out",
          zero_copy_unit_tests, os.path.join(os.path.dirname(os.path.dirname(src)), "tests", "unit_tests"))
    R.run("no kernel warnings", kernel_warnings, os.path.join(OUT, "sim-dmabuf-dmesg.txt"))
    return R.finish("sim dmabuf checks")


if __name__ == "__main__":
    sys.exit(main())
