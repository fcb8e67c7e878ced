#!/usr/bin/python3
"""Runs a command as a sandboxed Wayland client, the way Flatpak does: through a socket made by
the compositor's wp_security_context_manager_v1 (security-context-v1), so the compositor knows
every client on it is sandboxed. The Wayland wire protocol is spoken directly (Debian's python3,
no client library; tests/vm/wl_virtual_pointer.py has the connection and registry).

usage: wl_sandbox.py [--engine NAME] COMMAND [ARGS...]
    (WAYLAND_DISPLAY and XDG_RUNTIME_DIR as for any client)
The command runs with WAYLAND_DISPLAY set to the sandbox's socket (an absolute path); its exit
status is this program's. Status 3: the compositor offers no security-context manager.
"""

import array
import os
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vm"))
from wl_virtual_pointer import Wayland  # noqa: E402

IFACE = "wp_security_context_manager_v1"


def main(argv):
    engine = "org.vscanout.test"
    if argv[:1] == ["--engine"]:
        engine, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    wl = Wayland()
    registry = wl.new_id()
    wl.send(1, 1, struct.pack("=I", registry))  # wl_display.get_registry
    wl.roundtrip(registry)
    if IFACE not in wl.globals:
        print("wl_sandbox: the compositor offers no %s" % IFACE, file=sys.stderr)
        return 3
    gname, _ = wl.globals[IFACE]
    manager = wl.new_id()
    wl.send(registry, 0, struct.pack("=I", gname) + wl.string(IFACE) + struct.pack("=II", 1, manager))  # bind

    sock_dir = tempfile.mkdtemp(prefix="sandbox-", dir=os.environ["XDG_RUNTIME_DIR"])
    path = os.path.join(sock_dir, "wayland-sandbox")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    close_r, close_w = os.pipe()  # the compositor stops listening when close_w is closed

    context = wl.new_id()
    # create_listener(id, listen_fd, close_fd): the fds travel as SCM_RIGHTS, in argument order
    msg = struct.pack("=III", manager, (8 + 4) << 16 | 1, context)
    fds = array.array("i", [listener.fileno(), close_r])
    wl.sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    listener.close()
    os.close(close_r)
    wl.send(context, 1, wl.string(engine))  # set_sandbox_engine
    wl.send(context, 2, wl.string("org.vscanout.SandboxTest"))  # set_app_id
    wl.send(context, 4)  # commit
    wl.roundtrip()  # raises on a protocol error

    env = dict(os.environ, WAYLAND_DISPLAY=path)
    try:
        return subprocess.run(argv, env=env).returncode
    finally:
        os.close(close_w)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
