#!/usr/bin/python3
"""A virtual pointer for a wlroots compositor (zwlr_virtual_pointer_manager_v1), in plain Python:
the Wayland wire protocol spoken directly on the compositor's socket (no client library).

A headless sway has no input devices at all, so its seat has no pointer capability and clients
never get a wl_pointer: `swaymsg seat - cursor set X Y` moves a cursor nobody sees. While this
program runs, the seat has a pointer. Drive it with this program's own commands (below): sway
1.7 queues the client events of an IPC `seat - cursor set/press/release` but sends them only
along with its next event (seen with WAYLAND_DEBUG: a release arrived with the next command,
700 ms late), while this device's requests reach the client at once. qemu_dbus_host.py drives
vscanout nested in sway with it.

usage: wl_virtual_pointer.py     (WAYLAND_DISPLAY and XDG_RUNTIME_DIR as for any client)
Prints `ready` once the device exists, then reads commands on stdin, one a line:
    move X Y W H     absolute motion to (X, Y) of a W x H layout (motion_absolute + frame)
    press BUTTON / release BUTTON    a Linux button code (272 BTN_LEFT)
End of input ends it (the device goes away with the connection). Debian's python3 only.
"""

import os
import socket
import struct
import sys
import time


class Wayland:
    def __init__(self):
        name = os.environ.get("WAYLAND_DISPLAY", "wayland-0")
        path = name if name.startswith("/") else os.path.join(os.environ["XDG_RUNTIME_DIR"], name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_id = 2
        self.buf = b""
        self.globals = {}  # interface -> (name, version)

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def send(self, obj, opcode, args=b""):
        self.sock.sendall(struct.pack("=II", obj, (8 + len(args)) << 16 | opcode) + args)

    @staticmethod
    def string(s):
        b = s.encode() + b"\0"
        return struct.pack("=I", len(b)) + b + b"\0" * (-len(b) % 4)

    def events(self):
        """Reads what is there (blocking for the first bytes): [(object, opcode, payload)]."""
        self.buf += self.sock.recv(65536)
        out = []
        while len(self.buf) >= 8:
            obj, word = struct.unpack_from("=II", self.buf)
            size = word >> 16
            if len(self.buf) < size:
                break
            out.append((obj, word & 0xFFFF, self.buf[8:size]))
            self.buf = self.buf[size:]
        return out

    def roundtrip(self, registry=None):
        cb = self.new_id()
        self.send(1, 0, struct.pack("=I", cb))  # wl_display.sync
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for obj, op, payload in self.events():
                if obj == 1 and op == 0:  # wl_display.error
                    oid, code = struct.unpack_from("=II", payload)
                    n = struct.unpack_from("=I", payload, 8)[0]
                    raise RuntimeError("protocol error on object %d, code %d: %s" % (
                        oid, code, payload[12:12 + n - 1].decode(errors="replace")))
                if obj == registry and op == 0:  # wl_registry.global
                    gname, n = struct.unpack_from("=II", payload)
                    iface = payload[8:8 + n - 1].decode()
                    ver = struct.unpack_from("=I", payload, 8 + n + (-n % 4))[0]
                    self.globals[iface] = (gname, ver)
                if obj == cb and op == 0:  # wl_callback.done
                    return
        raise RuntimeError("no answer from the compositor")


def main():
    wl = Wayland()
    registry = wl.new_id()
    wl.send(1, 1, struct.pack("=I", registry))  # wl_display.get_registry
    wl.roundtrip(registry)
    iface = "zwlr_virtual_pointer_manager_v1"
    if iface not in wl.globals:
        print("error: the compositor has no %s" % iface, flush=True)
        return 1
    gname, _ = wl.globals[iface]
    manager = wl.new_id()
    wl.send(registry, 0, struct.pack("=I", gname) + wl.string(iface) + struct.pack("=II", 1, manager))  # bind
    pointer = wl.new_id()
    wl.send(manager, 0, struct.pack("=II", 0, pointer))  # create_virtual_pointer(seat: null, id)
    wl.roundtrip()
    print("ready", flush=True)
    t0 = time.monotonic()

    def ms():
        return int((time.monotonic() - t0) * 1000) & 0xFFFFFFFF

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "move":
            x, y, w, h = (int(v) for v in words[1:5])
            wl.send(pointer, 1, struct.pack("=5I", ms(), x, y, w, h))  # motion_absolute
        elif words[0] in ("press", "release"):
            wl.send(pointer, 2, struct.pack("=3I", ms(), int(words[1]), 1 if words[0] == "press" else 0))
        else:
            print("error: unknown command %r" % line.strip(), flush=True)
            continue
        wl.send(pointer, 4)  # frame
        wl.roundtrip()
        print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
