"""Fixtures and helpers for vscanout's headless integration tests.

Each test starts vscanout on the wlroots headless backend with the simulated vGPU, talks to it
with real Wayland clients (grim for screencopy, wlr-randr for the output list) and reads its
per-head counters through the --stats file (SIGUSR1 rewrites it).

Run with Debian's pytest:  /usr/bin/python3 -m pytest -q tests/integration
The binary defaults to build/src/vscanout; VSCANOUT_BIN overrides it.

Nothing here needs a GPU: Vulkan runs on lavapipe. pytest-timeout is not used: every test runs
under its own SIGALRM deadline (marker `deadline(seconds)`, default 60 s), and every wait polls
against a deadline instead of sleeping a fixed time.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

# Images, sim frames, comparisons and wlr-randr's output list, vscanout's ready line and stats
# file are shared with the VM tests (tests/vm); the test modules import guest_frame and
# describe_difference from here.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))
from vscanout_pixels import (describe_difference, guest_frame, no_signal_problems,  # noqa: E402,F401
                             parse_ppm, parse_randr)
from vscanout_proc import (READY_RX, change_env, kill_process, read_stats, read_text, request_stats,  # noqa: E402
                           settle_stats, vscanout_env)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("VSCANOUT_BIN", os.path.join(REPO, "build", "src", "vscanout"))

DEFAULT_DEADLINE_S = 60
# A sanitizer build (scripts/test.sh sets VSCANOUT_SANITIZED=1) runs several times slower:
# every deadline and wait stretches by this factor. Tests that depend on a window between two
# scripted events are not marked `sanitizer`.
SLOW = 4 if os.environ.get("VSCANOUT_SANITIZED") else 1
STDERR_TAIL_LINES = 60

# --------------------------------------------------------------------------------------------
# pytest plumbing: markers, per-test deadline, stderr tail on failure


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): wall-clock limit for one test (SIGALRM)")
    config.addinivalue_line("markers", "sanitizer: also run against the AddressSanitizer + UBSan build")


class DeadlineExceeded(Exception):
    pass


class VscanoutDied(AssertionError):
    """vscanout exited when it should be running: no point in waiting any longer."""


@pytest.fixture(autouse=True)
def _deadline(request):
    marker = request.node.get_closest_marker("deadline")
    seconds = (int(marker.args[0]) if marker else DEFAULT_DEADLINE_S) * SLOW

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test ran past its {seconds} s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed or (rep.when == "call" and hasattr(rep, "wasxfail")):
        for inst in getattr(item, "_vscanout_instances", []):
            rep.sections.append((f"vscanout {inst.label} (pid {inst.pid}) stderr tail", inst.stderr_tail()))
        for parent in getattr(item, "_vscanout_parents", []):  # nested-mode tests (nesting.py)
            rep.sections.append((f"parent {parent.label} (pid {parent.pid}) log tail", parent.log_tail()))


# --------------------------------------------------------------------------------------------
# the process under test


# lavapipe keeps allocations until exit, and the Vulkan loader dlclose()s it at vkDestroyInstance:
# its frames then show as "<unknown module>", which tests/lsan.supp's suppression by library name
# cannot match. Preloading the driver keeps it mapped. (scripts/test.sh does the same for the unit
# tests.)
LAVAPIPE_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so", "/usr/lib/aarch64-linux-gnu/libvulkan_lvp.so",
                       "/usr/lib64/libvulkan_lvp.so", "/usr/lib/libvulkan_lvp.so")


def sanitizer_env(env, scratch_dir):
    """Adjusts the environment of a sanitizer build of vscanout (VSCANOUT_SANITIZED=1)."""
    lvp = next((p for p in LAVAPIPE_CANDIDATES if os.path.exists(p)), None)
    if lvp:
        env["LD_PRELOAD"] = ":".join(x for x in (lvp, env.get("LD_PRELOAD", "")) if x)
        # The preloaded driver comes before the ASan runtime in the link order; that is fine here
        # (the driver does not interpose malloc), but ASan refuses to start unless told so.
        env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0") if x)


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate() until it returns something truthy; returns that, or raises."""
    timeout *= SLOW
    end = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except VscanoutDied:
            raise
        except AssertionError as e:  # a predicate may assert; retry until the deadline
            last_exc = e
        if time.monotonic() >= end:
            msg = f"timed out after {timeout} s waiting for {what}"
            if last_exc:
                msg += f": {last_exc}"
            raise AssertionError(msg)
        time.sleep(interval)


def _tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


class Vscanout:
    """One vscanout process on the headless backend, in its own XDG_RUNTIME_DIR."""

    _counter = 0

    def __init__(self, args=(), source=None, script=None, label=None, wait_ready=True, env=None):
        # A concurrent `ninja` relink removes the binary for a moment: give it a few seconds.
        end = time.monotonic() + 10
        while not os.access(BINARY, os.X_OK) and time.monotonic() < end:
            time.sleep(0.2)
        if not os.access(BINARY, os.X_OK):
            pytest.fail(f"vscanout binary {BINARY} is missing: build it (ninja -C build src/vscanout) "
                        "or set VSCANOUT_BIN")
        Vscanout._counter += 1
        self.label = label or f"#{Vscanout._counter}"
        self.dir = tempfile.mkdtemp(prefix="vsc-")  # 0700, short enough for a socket path
        self.socket = f"vsc-{os.getpid()}-{Vscanout._counter}"
        self.stats_path = os.path.join(self.dir, "stats.jsonl")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.script_path = None
        self.returncode = None
        self.started = time.monotonic()
        argv = [BINARY]
        if source is not None:
            if script is not None:
                self.script_path = os.path.join(self.dir, "script.txt")
                with open(self.script_path, "w") as f:
                    f.write(script)
                sep = "," if ":" in source else ":"
                source = f"{source}{sep}script={self.script_path}"
            argv += ["--source", source]
        elif script is not None:
            raise ValueError("a script needs a sim source")
        argv += list(args)
        if "--stats" not in argv:
            argv += ["--stats", self.stats_path]
        if "--socket" not in argv:
            argv += ["--socket", self.socket]
        self.argv = argv
        # None removes a variable (e.g. WLR_BACKENDS, to let wlroots choose)
        self.env = change_env(self.base_env(self.dir), env)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=self.env, cwd=self.dir)
        self.pid = self.proc.pid
        self.display = None
        if wait_ready:
            self.wait_ready()

    @staticmethod
    def base_env(runtime_dir):
        env = vscanout_env(("WLR_RENDERER",), WLR_BACKENDS="headless", XDG_RUNTIME_DIR=runtime_dir,
                           WLR_LIBINPUT_NO_DEVICES="1")
        if SLOW > 1:
            sanitizer_env(env, runtime_dir)
        return env

    # ---- state

    def alive(self):
        return self.proc.poll() is None

    def stdout(self):
        return read_text(self.stdout_path)

    def log(self):
        return read_text(self.stderr_path)

    def stderr_tail(self, lines=STDERR_TAIL_LINES):
        try:
            text = self.log()
        except OSError as e:
            return f"(cannot read stderr: {e})"
        tail = text.splitlines()[-lines:]
        status = "running" if self.proc.poll() is None else f"exit status {self.proc.returncode}"
        return f"argv: {' '.join(self.argv)}\n{status}\n" + "\n".join(tail)

    def check_alive(self):
        if not self.alive():
            raise VscanoutDied(f"vscanout exited with status {self.proc.returncode}; stderr tail:\n"
                               + self.stderr_tail(20))

    def wait_ready(self, timeout=15):
        def ready():
            m = READY_RX.search(self.stdout())
            if m:
                return m
            self.check_alive()
            return None

        m = wait_until(ready, timeout, what="the WAYLAND_DISPLAY line on stdout")
        self.heads_at_start = int(m.group(1))
        self.display = m.group(3)
        return self

    def client_env(self):
        env = dict(self.env)
        env["WAYLAND_DISPLAY"] = self.display
        return env

    # ---- clients

    def run_client(self, argv, timeout=10):
        return subprocess.run(argv, env=self.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout * SLOW)

    def capture(self, head, timeout=10):
        """grim's screencopy of HEAD-<head> as an Image (iterable as (w, h, rgb bytes)).
        Each capture makes vscanout render and commit that head once (wlroots completes a
        screencopy only on a commit)."""
        grim = _tool("grim")
        path = os.path.join(self.dir, f"cap-{head}.ppm")
        name = head if isinstance(head, str) else f"HEAD-{head}"
        r = self.run_client([grim, "-t", "ppm", "-o", name, path], timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"grim -o {name} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        with open(path, "rb") as f:
            return parse_ppm(f.read())

    def randr(self):
        """wlr-randr's output list: name -> (width, height) of the current mode ((0, 0): none)."""
        tool = _tool("wlr-randr")
        r = self.run_client([tool])
        if r.returncode != 0:
            raise AssertionError(f"wlr-randr failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return parse_randr(r.stdout.decode(errors="replace"))

    def wait_outputs(self, expected, timeout=10):
        """Polls wlr-randr until it lists exactly `expected` (name -> (w, h))."""
        seen = {}

        def match():
            nonlocal seen
            self.check_alive()
            seen = self.randr()
            return seen == expected

        try:
            wait_until(match, timeout, interval=0.1, what=f"outputs {expected}")
        except AssertionError:
            raise AssertionError(f"wlr-randr shows {seen}, expected {expected}")
        return seen

    def stats(self, timeout=5):
        """Sends SIGUSR1 and reads the rewritten stats file: head id -> dict of counters."""
        self.check_alive()
        return request_stats(self.stats_path, lambda: self.proc.send_signal(signal.SIGUSR1),
                             lambda rewritten: wait_until(rewritten, timeout, interval=0.01,
                                                          what="the stats file to be rewritten after SIGUSR1"))

    def read_stats(self):
        return read_stats(self.stats_path)

    def settle(self, quiet=0.4, timeout=8):
        """Waits until two stats reads `quiet` seconds apart agree on every counter; returns them."""
        return settle_stats(self.stats, quiet, timeout * SLOW, lambda prev, cur: AssertionError(
            f"counters never settled within {timeout} s: {prev} -> {cur}"))

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_capture(self, head, want, timeout=10):
        """Captures until the head shows exactly `want` (an Image); fails with the last difference."""
        last = None

        def ok():
            nonlocal last
            self.check_alive()
            got = self.capture(head)
            last = describe_difference(got, want)
            return last is None

        try:
            wait_until(ok, timeout, interval=0.1, what=f"HEAD-{head} to show the expected frame")
        except AssertionError as e:
            raise AssertionError(f"HEAD-{head}: {last or e}") from None

    def wait_no_signal(self, head, size, timeout=10):
        last = []

        def ok():
            nonlocal last
            self.check_alive()
            img = self.capture(head)
            last = [f"size {img.width}x{img.height}, expected {size[0]}x{size[1]}"] if img.size != size \
                else no_signal_problems(img)
            return not last

        try:
            wait_until(ok, timeout, interval=0.1, what=f"HEAD-{head} to show no signal")
        except AssertionError as e:
            raise AssertionError(f"HEAD-{head} no-signal frame: {'; '.join(last) or e}") from None

    def wait_log(self, pattern, timeout=10, count=1):
        """Waits until the log has at least `count` matches of the regex; returns the matches."""
        rx = re.compile(pattern)

        def found():
            self.check_alive()
            hits = rx.findall(self.log())
            return hits if len(hits) >= count else None

        return wait_until(found, timeout, what=f"log line /{pattern}/")

    # ---- ending

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Ends vscanout with `sig`, asserts exit status 0 and returns the stats it wrote at exit."""
        self.check_alive()
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"vscanout did not exit within {timeout} s of signal {sig}")
        assert self.returncode == 0, f"vscanout exited with status {self.returncode} after signal {sig}"
        return self.read_stats() if os.path.exists(self.stats_path) else None

    def kill(self):
        kill_process(self.proc)
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def vscanout(request):
    """Factory: vscanout(args=[...], source="sim:...", script="...") starts one instance (ready,
    outputs not necessarily committed yet). Every instance is killed at teardown; the stderr tail
    of each is attached to a failing test's report."""
    instances = []
    request.node._vscanout_instances = instances

    def start(*args, wait_ready=True, **kwargs):
        inst = Vscanout(*args, wait_ready=False, **kwargs)
        instances.append(inst)  # registered first: a start that fails still shows its stderr
        if wait_ready:
            inst.wait_ready()
        return inst

    yield start
    for inst in instances:
        inst.cleanup()


def run_cli(args, timeout=20):
    """Runs vscanout to completion (for CLI tests); returns the CompletedProcess (text)."""
    d = tempfile.mkdtemp(prefix="vsc-")
    try:
        return subprocess.run([BINARY] + list(args), env=Vscanout.base_env(d), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW, text=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def parents(request):
    """Factory for nested-mode tests: parents(Sway, config=[...]) starts a parent desktop (a class
    from nesting.py) and waits until it is ready; all are stopped at teardown, after the test's
    vscanout instances, and the log tail of each is attached to a failing test's report."""
    started = []
    request.node._vscanout_parents = started

    def start(cls, *args, **kwargs):
        p = cls(*args, **kwargs)  # spawned, not ready yet
        started.append(p)
        p.wait_ready()
        return p

    yield start
    # vscanout first (the vscanout fixture kills it again, harmlessly): a parent going away under
    # a running vscanout only adds noise to its log.
    for inst in getattr(request.node, "_vscanout_instances", []):
        inst.kill()
    for p in reversed(started):
        p.cleanup()
