"""Privileged protocols (docs/design.md, "Privileged protocols"): screen capture (wlr-screencopy)
and virtual input (virtual keyboard and pointer) reach only the clients the administrator allows,
and never a sandboxed client (one that came through a wp_security_context_v1 socket).

What a client can see is read with a real client, wayland-info, which lists the globals the
compositor offers it; grim and wtype show what a refused client meets. A refused client that
binds a hidden global by its number anyway (learned from an allowed client) gets a protocol error,
and vscanout goes on. The kiosk's defaults (refused) are unit-tested through the policy function
(tests/unit/privilege_test.cpp), and run for real in the kiosk VM test."""

import os
import socket
import struct
import sys

import pytest

from conftest import guest_frame, run_cli

HERE = os.path.dirname(os.path.abspath(__file__))
SANDBOX = os.path.join(HERE, "wl_sandbox.py")
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from wl_virtual_pointer import Wayland  # noqa: E402

CAPTURE = {"zwlr_screencopy_manager_v1"}
INPUT = {"zwp_virtual_keyboard_manager_v1", "zwlr_virtual_pointer_manager_v1"}
OTHER_PRIVILEGED = {"zwlr_output_manager_v1", "wp_security_context_manager_v1"}
BASICS = {"wl_shm", "wl_seat", "wl_output", "zxdg_output_manager_v1", "wp_presentation"}


def globals_seen(vs, sandboxed=False):
    """The interfaces wayland-info lists for a client of vs (through a security context if
    sandboxed)."""
    argv = ["wayland-info"]
    if sandboxed:
        argv = [sys.executable, SANDBOX] + argv
    r = vs.run_client(argv)
    assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
    seen = set()
    for line in r.stdout.decode(errors="replace").splitlines():
        if "interface: '" in line:
            seen.add(line.split("interface: '")[1].split("'")[0])
    return seen


def test_headless_default_offers_capture_and_input(vscanout):
    vs = vscanout(source="sim:heads=1,fps=0")
    seen = globals_seen(vs)
    missing = (CAPTURE | INPUT | OTHER_PRIVILEGED | BASICS) - seen
    assert not missing, f"headless by default, a local client misses {sorted(missing)}; it sees {sorted(seen)}"
    vs.wait_log(r"headless: screen capture \(wlr-screencopy\) allowed \(default\), virtual keyboard and pointer "
                r"allowed \(default\)")
    vs.stop()


@pytest.mark.sanitizer
def test_capture_refused_hides_screencopy_and_grim_fails_cleanly(vscanout):
    vs = vscanout(source="sim:heads=1,fps=0", args=["--allow-capture=no"])
    vs.wait_outputs({"HEAD-0": (1280, 800)})
    seen = globals_seen(vs)
    assert not (seen & CAPTURE), f"--allow-capture=no, yet a client sees {sorted(seen & CAPTURE)}"
    assert INPUT <= seen and BASICS <= seen, f"only capture is refused; the client sees {sorted(seen)}"
    r = vs.run_client(["grim", "-t", "ppm", "-o", "HEAD-0", os.path.join(vs.dir, "refused.ppm")])
    assert r.returncode != 0, "grim captured a head with capture refused"
    assert b"screencopy" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(vs.dir, "refused.ppm"))
    vs.check_alive()
    vs.wait_log(r"screen capture \(wlr-screencopy\) refused \(by option\)")
    vs.stop()


def test_input_refused_hides_virtual_keyboard_and_pointer(vscanout):
    vs = vscanout(source="sim:heads=1,fps=0", args=["--allow-input=no"])
    seen = globals_seen(vs)
    assert not (seen & INPUT), f"--allow-input=no, yet a client sees {sorted(seen & INPUT)}"
    assert CAPTURE <= seen, f"only input is refused; the client sees {sorted(seen)}"
    r = vs.run_client(["wtype", "x"])
    assert r.returncode != 0, "wtype typed with virtual input refused"
    vs.check_alive()
    vs.stop()


@pytest.mark.sanitizer
def test_sandboxed_client_never_gets_privileged_globals(vscanout):
    """Even with capture and input allowed by option, a client of a security context's socket
    sees the basics only: no capture, no virtual input, no output management, and no way to make
    a nested context. grim through it fails; an ordinary client beside it still sees all."""
    vs = vscanout(source="sim:heads=1,fps=0", args=["--allow-capture", "--allow-input=yes"])
    vs.wait_outputs({"HEAD-0": (1280, 800)})
    sandboxed = globals_seen(vs, sandboxed=True)
    leaked = sandboxed & (CAPTURE | INPUT | OTHER_PRIVILEGED)
    assert not leaked, f"a sandboxed client sees {sorted(leaked)}"
    assert BASICS <= sandboxed, f"a sandboxed client should still see the basics; it sees {sorted(sandboxed)}"
    r = vs.run_client([sys.executable, SANDBOX, "grim", "-t", "ppm", "-o", "HEAD-0", os.path.join(vs.dir, "s.ppm")])
    assert r.returncode != 0 and b"screencopy" in r.stderr, (r.returncode, r.stderr)
    vs.check_alive()
    assert (CAPTURE | INPUT | OTHER_PRIVILEGED) <= globals_seen(vs), "the ordinary client lost privileged globals"
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=0))
    vs.stop()


def connect(display_path):
    """A raw Wayland connection to display_path with its registry read: (connection, registry id)."""
    wl = Wayland.__new__(Wayland)  # Wayland() connects through the environment; this one by path
    wl.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    wl.sock.connect(display_path)
    wl.next_id, wl.buf, wl.globals = 2, b"", {}
    registry = wl.new_id()
    wl.send(1, 1, struct.pack("=I", registry))  # wl_display.get_registry
    wl.roundtrip(registry)
    return wl, registry


def test_binding_a_hidden_global_by_number_is_a_protocol_error(vscanout):
    """A refused client that knows the screencopy global's number (global numbers are the same
    for every client; here a second vscanout that allows capture, with the same globals in the
    same order, tells it) and binds it anyway is refused at the bind: libwayland asks the filter
    again, posts an error and drops only that client."""
    vs = vscanout(source="sim:heads=1,fps=0", args=["--allow-capture=no"])
    other = vscanout(source="sim:heads=1,fps=0")
    probe, _ = connect(os.path.join(other.dir, other.display))
    probe.sock.close()
    name = probe.globals["zwlr_screencopy_manager_v1"][0]
    wl, registry = connect(os.path.join(vs.dir, vs.display))
    assert "zwlr_screencopy_manager_v1" not in wl.globals, "screencopy was offered to a refused client"
    manager = wl.new_id()
    wl.send(registry, 0, struct.pack("=I", name) + wl.string("zwlr_screencopy_manager_v1") +
            struct.pack("=II", 1, manager))  # wl_registry.bind
    with pytest.raises((RuntimeError, OSError)):
        wl.roundtrip()  # a protocol error, or the connection already gone
    wl.sock.close()
    vs.check_alive()
    vs.wait_outputs({"HEAD-0": (1280, 800)})
    vs.stop()
    other.stop()


def test_allow_options_take_yes_or_no():
    r = run_cli(["--allow-capture=maybe"])
    assert r.returncode == 2 and "--allow-capture takes =yes or =no, not 'maybe'" in r.stderr, r.stderr
    r = run_cli(["--help"])
    assert "--allow-capture[=yes|no]" in r.stdout and "--allow-input[=yes|no]" in r.stdout
