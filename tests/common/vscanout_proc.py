"""A vscanout under test as the tests start, read and end it: its environment, its ready line,
its --stats file, and the ending of it or of a helper process.

Shared by the headless integration tests (tests/integration/conftest.py) and the VM tests
(tests/vm/*.py, also through tests/common/vm_checks.py); Debian's /usr/bin/python3 and the
standard library only (the VM guest has nothing else).

vscanout prints READY_RX's line on stdout once its Wayland socket is up. With `--stats FILE` it
writes one JSON object per head (its "head" id and the counters) at exit and, replacing the file,
at every SIGUSR1: request_stats() sends the signal and reads the new file once it is there, and
settle_stats() waits until the counters stop moving.
"""

import json
import os
import re
import subprocess
import time

READY_RX = re.compile(r"vscanout: (\d+) head\(s\) from (\S+) on WAYLAND_DISPLAY=(\S+)")


def vscanout_env(drop=(), **values):
    """This process's environment for a vscanout under test: without the session's Wayland and
    X11 variables (it is no client of the session) and those named in drop, with values set."""
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "DISPLAY", "WAYLAND_SOCKET") + drop}
    env.update(values)
    return env


def change_env(env, changes):
    """Applies changes (a dict or None) to env: a value of None removes the variable. Returns env."""
    for k, v in (changes or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def read_text(path):
    """A log file vscanout writes (its stdout or stderr) as text, whatever its bytes."""
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def stats_identity(path):
    """What tells a rewritten stats file from the one before it; None while there is none."""
    try:
        st = os.stat(path)
        return (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None


def read_stats(path):
    """The stats file as it is: head id -> dict of counters."""
    with open(path) as f:
        return {d["head"]: d for d in (json.loads(line) for line in f if line.strip())}


def request_stats(path, send, wait):
    """send() makes vscanout rewrite its stats (SIGUSR1 to it); wait(rewritten) polls the
    predicate rewritten() with the caller's deadline and raises the caller's failure when it
    never holds. Returns the new stats (read_stats)."""
    before = stats_identity(path)
    send()
    wait(lambda: stats_identity(path) not in (None, before))
    return read_stats(path)


def settle_stats(stats, quiet, timeout, fail):
    """Calls stats() every `quiet` seconds until two answers in a row agree and returns them;
    raises fail(previous, last) when they still differ after timeout seconds."""
    prev = stats()
    end = time.monotonic() + timeout
    while True:
        time.sleep(quiet)
        cur = stats()
        if cur == prev:
            return cur
        if time.monotonic() > end:
            raise fail(prev, cur)
        prev = cur


def kill_process(proc, timeout=5):
    """SIGKILL to a process still running, then waits up to timeout seconds for it."""
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


def terminate_process(proc, timeout=5):
    """SIGTERM to a process still running; kill_process when it is still there after timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc, timeout)
