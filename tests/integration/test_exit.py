"""Every exit names its cause and has a documented status (docs/design.md, "Exit causes").

A signal is logged with its sender's pid and command name (read from a signalfd: the pid is in
its siginfo); the sim's quit command (control FIFO or script) ends the source; start failures and
bad command lines have their own statuses; a fault (SIGSEGV, SIGBUS) still kills, with a line
saying so. The nested causes (the last window closed, the parent compositor gone) are in
test_nested.py.
"""

import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import REPO, SLOW, run_cli

SENDER = ("import os, signal, sys, time\n"
          "os.kill(int(sys.argv[1]), int(sys.argv[2]))\n"
          "time.sleep(30)\n")


def wait_exit(vs, timeout=10):
    try:
        return vs.proc.wait(timeout * SLOW)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"vscanout did not exit within {timeout} s") from None


@pytest.mark.sanitizer
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_names_its_sender(vscanout, sig):
    """A signal from a child process of ours: its pid and command name are in the exit line, which
    comes once; the status is 0 and the stats are written."""
    vs = vscanout(source="sim:heads=1,fps=0")
    vs.settle()
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(vs.pid), str(int(sig))])
    try:
        rc = wait_exit(vs)
    finally:
        sender.kill()
        sender.wait()
    log = vs.log()
    name = signal.Signals(sig).name
    line = f"exiting (status 0): {name} from pid {sender.pid} (python3"
    assert rc == 0, f"status {rc} after {name}: {log[-1500:]}"
    assert log.count(line) == 1, f"expected one '{line}' line: {log[-1500:]}"
    assert log.count("exiting (status") == 1, log[-1500:]
    assert f"shutting down ({name} from pid {sender.pid}" in log, log[-1500:]
    assert os.path.exists(vs.stats_path), "the stats are written at every exit"


def test_usr1_is_no_exit(vscanout):
    vs = vscanout(source="sim:heads=1,fps=0")
    vs.settle()
    for _ in range(3):
        vs.stats()
    vs.check_alive()
    assert "exiting" not in vs.log()
    vs.stop()


@pytest.mark.sanitizer
def test_the_quit_command_ends_the_source(vscanout, tmp_path):
    """`quit` on the sim's control FIFO: the source ends, vscanout exits 0 saying so."""
    fifo = str(tmp_path / "control")  # made by the sim
    vs = vscanout(source=f"sim:heads=2,fps=0,control={fifo}")
    vs.settle()
    with open(fifo, "w") as f:
        f.write("quit\n")
    rc = wait_exit(vs)
    log = vs.log()
    assert rc == 0, log[-1500:]
    assert "exiting (status 0): the source (sim) ended: the sim's quit command" in log, log[-1500:]
    assert log.count("exiting (status") == 1, log[-1500:]


def test_a_scripted_quit_ends_the_source(vscanout):
    vs = vscanout(source="sim:heads=1,fps=0", script="400 quit\n")
    rc = wait_exit(vs)
    log = vs.log()
    assert rc == 0, log[-1500:]
    assert "exiting (status 0): the source (sim) ended: the sim script's quit command at 400 ms" in log, log[-1500:]


def test_start_failure_and_bad_command_line_statuses():
    r = run_cli(["--source", "vfio:no-such-device"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "exiting (status 1): could not start" in r.stderr, r.stderr
    r = run_cli(["--no-such-option"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    r = run_cli(["--help"])
    assert r.returncode == 0
    for text in ("Exit status:", "3    the display went away", "the sim's quit command"):
        assert text in r.stdout, r.stdout


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGBUS])
def test_a_fault_still_kills_but_says_so(vscanout, sig):
    """A fatal signal is not caught for good: the process dies of it (status 128 + N in a shell),
    after one line on stderr naming it."""
    vs = vscanout(source="sim:heads=1,fps=0")
    vs.settle()
    vs.send(sig)
    rc = wait_exit(vs)
    name = signal.Signals(sig).name
    assert rc == -int(sig), f"status {rc} after {name}"
    assert f"vscanout: exiting: fatal signal {name}" in vs.log(), vs.log()[-1500:]


@pytest.mark.deadline(180)
def test_the_demo_timer_says_why_it_stops_vscanout():
    """scripts/run.sh without a desktop: after VSCANOUT_DEMO_SECONDS it says it stops vscanout,
    whose exit line names run.sh's pid as the sender, and prints how vscanout ended."""
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "DISPLAY", "WLR_BACKENDS")}
    env["VSCANOUT_DEMO_SECONDS"] = "1"
    r = subprocess.run([os.path.join(REPO, "scripts", "run.sh"), "--source", "sim:heads=1,fps=0"], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=170 * SLOW)
    assert r.returncode == 0, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    m = re.search(r"run\.sh: the demo's 1 s are over: sending SIGTERM to vscanout \(pid (\d+)\) from pid (\d+)",
                  r.stdout)
    assert m, r.stdout[-1500:]
    line = f"vscanout: exiting (status 0): SIGTERM from pid {m.group(2)} (bash)"  # run.sh's shell
    assert line in r.stdout and "[exit status 0]" in r.stdout, r.stdout[-1500:]
