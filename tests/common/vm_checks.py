"""What the VM tests' check scripts share: tests/vm/vfio_checks.py and kiosk_checks.py in the
guest, kiosk_host.py and qemu_dbus_host.py beside QEMU on the host.

- Results: one `RESULT: PASS|FAIL <check>: <reason>` line per check, counted, and the summary
  line `<label>: N passed, M failed (T s)`; a check is a function that returns its detail or
  raises Fail;
- wait_until: polls a predicate against a deadline and raises Fail with its last reason;
- say: a progress line with the seconds since the start;
- for the guest scripts: their command line (`--bin VSCANOUT`), the binary copied to the guest's
  tmpfs, the check that dmesg has no kernel warning, and GuestVscanout: a vscanout they start
  (logs in files, --stats over SIGUSR1, SIGTERM, a clean-up that keeps its files in the out share).

Debian's /usr/bin/python3 and the standard library only (the guest has nothing else).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

from vscanout_proc import kill_process, read_stats, read_text, request_stats

T0 = time.monotonic()


class Fail(Exception):
    """A check failed; the message is the reason."""


class Died(Fail):
    """vscanout ended when it should be running: no point in waiting any longer."""


def say(msg, prefix="   "):
    print("%s%6.2f  %s" % (prefix, time.monotonic() - T0, msg), flush=True)


class Results:
    """prefix goes before every check's name (kiosk_host.py's "host ")."""

    def __init__(self, prefix=""):
        self.prefix = prefix
        self.passed = self.failed = 0

    def record(self, ok, name, detail):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print("RESULT: %s %s%s%s" % ("PASS" if ok else "FAIL", self.prefix, name, ": " + detail if detail else ""),
              flush=True)
        return ok

    def run(self, name, fn, *args):
        """Runs fn(*args): it returns a detail string (PASS) or raises Fail (FAIL). Any other
        exception is a FAIL too, with its traceback printed."""
        print("== %s" % name, flush=True)
        t = time.monotonic()
        try:
            detail, ok = fn(*args), True
        except Fail as e:
            detail, ok = str(e), False
        except Exception as e:  # noqa: BLE001 - a broken check is a failed check, not a crash
            traceback.print_exc(file=sys.stdout)
            detail, ok = "%s: %s" % (type(e).__name__, e), False
        self.record(ok, name, (detail or "") + " (%.2f s)" % (time.monotonic() - t))
        return ok

    def finish(self, label):
        """The summary line; the exit status (1 when a check failed)."""
        print("%s: %d passed, %d failed (%.1f s)" % (label, self.passed, self.failed, time.monotonic() - T0),
              flush=True)
        return 1 if self.failed else 0


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something truthy; returns that, or raises Fail.
    A predicate may raise Fail to say why it is not true yet (the last reason is reported);
    Died ends the wait at once."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Died:
            raise
        except Fail as e:
            last = str(e)
        if time.monotonic() >= end:
            raise Fail("timed out after %.1f s waiting for %s%s" % (timeout, what, ": " + last if last else ""))
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# the guest scripts


def guest_args(doc, root, out):
    """A guest script's command line, `[--bin VSCANOUT]` (exits with the usage line of `doc`,
    its third line, otherwise); prints the guest's kernel, CPUs and out share. Returns the
    vscanout to test (default <root>/build/src/vscanout)."""
    args = sys.argv[1:]
    src = os.path.join(root, "build", "src", "vscanout")
    if len(args) == 2 and args[0] == "--bin":
        src = args[1]
    elif args:
        sys.exit(doc.strip().splitlines()[2])
    print("== guest: %s, %d CPUs, out share %s" % (os.uname().release, os.cpu_count(), out), flush=True)
    return src


def guest_binary(src):
    """The binary, copied to the guest's tmpfs (a relink on the host removes it for a moment, and
    a relink during the run cannot swap it); says its --version."""
    dst = "/tmp/vscanout-under-test"
    end = time.monotonic() + 15
    while True:
        try:
            shutil.copy2(src, dst + ".part")
            os.replace(dst + ".part", dst)
            break
        except OSError as e:
            if time.monotonic() > end:
                raise Fail("cannot copy %s: %s (build it: ninja -C build src/vscanout)" % (src, e))
            time.sleep(0.3)
    say("vscanout: %s" % subprocess.run([dst, "--version"], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT).stdout.decode(errors="replace").strip())
    return dst


KERNEL_WARNINGS = r"WARNING:|BUG:|Oops:|Call Trace:|general protection"


def kernel_warnings(save_as, also=None):
    """A check: no kernel warning (or line matching the regex `also`) in dmesg, saved as save_as."""
    oops = re.compile(KERNEL_WARNINGS + ("|" + also if also else ""))
    text = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.decode(
        errors="replace")
    try:
        with open(save_as, "w") as f:
            f.write(text)
    except OSError:
        pass
    bad = [line for line in text.splitlines() if oops.search(line)]
    if bad:
        raise Fail(" | ".join(bad[:3]))
    return ""


class GuestVscanout:
    """A vscanout that a guest script starts in its own runtime folder `rundir`, started directly
    or behind a helper (guest_driver.py serve: then `pid`, vscanout's own, is known once it is
    up): stdout and stderr in files there, --stats there (SIGUSR1 rewrites it), SIGTERM to end it.
    The clean-up kills what is left and keeps the KEEP files in `keep_dir` as <keep_as><name>.
    Subclasses start it (spawn) and say when it has died (check_alive raises Died)."""

    KEEP = ("stdout", "stderr", "stats.jsonl")

    def __init__(self, label, rundir, keep_dir, keep_as):
        self.label = label
        self.dir = rundir
        self.keep_dir, self.keep_as = keep_dir, keep_as
        self.stats_path = os.path.join(rundir, "stats.jsonl")
        self.ctl_path = os.path.join(rundir, "ctl")
        self.out_path = os.path.join(rundir, "stdout")
        self.err_path = os.path.join(rundir, "stderr")
        self.proc = self.pid = self.exit_status = None

    def spawn(self, argv, env):
        self._out, self._err = open(self.out_path, "wb"), open(self.err_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=env, cwd=self.dir)

    def check_alive(self):
        raise NotImplementedError

    def log(self):
        return read_text(self.err_path)

    def stdout(self):
        return read_text(self.out_path)

    def status(self):
        rc = self.proc.poll()
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return "killed by %s" % signal.Signals(-rc).name
            except ValueError:
                return "killed by signal %d" % -rc
        return "exit status %d" % rc

    def stats(self, timeout=5):
        """SIGUSR1, then the rewritten stats file: head id -> counters."""
        self.check_alive()
        return request_stats(self.stats_path, lambda: os.kill(self.pid, signal.SIGUSR1),
                             lambda rewritten: wait_until(rewritten, timeout, 0.005, "the stats file after SIGUSR1"))

    def read_stats(self):
        return read_stats(self.stats_path)

    def stop(self, timeout=15):
        """SIGTERM to vscanout; returns its exit status (a helper in between exits with it)."""
        self.check_alive()
        t = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("vscanout did not exit within %d s of SIGTERM" % timeout) from None
        self.exit_status = rc
        say("%s: SIGTERM -> %s after %.2f s" % (self.label, self.status(), time.monotonic() - t))
        return rc

    def cleanup(self):
        if self.proc.poll() is None:
            if self.pid and self.pid != self.proc.pid:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            kill_process(self.proc, 10)
        for f in (self._out, self._err):
            f.close()
        for name in self.KEEP:
            src = os.path.join(self.dir, name)
            if os.path.exists(src):
                try:
                    shutil.copy(src, os.path.join(self.keep_dir, "%s%s" % (self.keep_as, name)))
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
