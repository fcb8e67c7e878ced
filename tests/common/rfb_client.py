"""A small RFB (VNC) client for the remote-console tests: enough of RFC 6143 to read a server's
framebuffer exactly and send it keys and pointer events. The standard library only.

Protocol 3.8, security type None, a shared session, 32 bits a pixel (true colour, little-endian
words, red at bit 16, green at 8, blue at 0), Raw encoding plus the DesktopSize pseudo-encoding.
The framebuffer is kept as RGB bytes (vscanout_pixels.Image's layout) and updated rectangle by
rectangle. Nothing here trusts the server: every length is checked against what was asked for.
"""

import select
import socket
import struct
import time

from vscanout_pixels import Image

RAW = 0
DESKTOP_SIZE = -223

# X keysyms the tests send (RFB KeyEvent carries keysyms)
XK_SHIFT_L = 0xFFE1


class RfbError(Exception):
    pass


class RfbClient:
    def __init__(self, address, timeout=10):
        """address: a path (a UNIX socket, as `wayvnc -u` makes) or (host, port)."""
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buf = b""
        self.updates = 0  # FramebufferUpdate messages received
        self.rects = 0    # rectangles in them (pseudo-encodings included)
        self._handshake()

    # ---- the wire

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the RFB server sent nothing for too long")
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RfbError("the RFB server closed the connection")
            self.buf += chunk

    def _read(self, n, timeout=10):
        self._fill(n, time.monotonic() + timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _handshake(self):
        version = self._read(12)
        if not version.startswith(b"RFB 003."):
            raise RfbError(f"not an RFB server: {version!r}")
        self.sock.sendall(b"RFB 003.008\n")
        count = self._read(1)[0]
        if count == 0:
            n = struct.unpack(">I", self._read(4))[0]
            raise RfbError("the server refused the connection: " + self._read(n).decode(errors="replace"))
        types = self._read(count)
        if 1 not in types:
            raise RfbError(f"the server offers no security type None (offers {list(types)})")
        self.sock.sendall(b"\x01")
        result = struct.unpack(">I", self._read(4))[0]
        if result != 0:
            raise RfbError(f"security handshake failed ({result})")
        self.sock.sendall(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self._read(4))
        self._read(16)  # the server's pixel format: replaced below
        n = struct.unpack(">I", self._read(4))[0]
        if n > 4096:
            raise RfbError(f"desktop name of {n} bytes")
        self.name = self._read(n).decode(errors="replace")
        # SetPixelFormat: 32 bpp, depth 24, little-endian, true colour, 255 each, shifts 16/8/0
        self.sock.sendall(struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        # SetEncodings: Raw, DesktopSize
        self.sock.sendall(struct.pack(">BxHii", 2, 2, RAW, DESKTOP_SIZE))
        self.fb = bytearray(self.width * self.height * 3)

    # ---- requests

    def request(self, incremental, x=0, y=0, w=None, h=None):
        w = self.width if w is None else w
        h = self.height if h is None else h
        self.sock.sendall(struct.pack(">BBHHHH", 3, 1 if incremental else 0, x, y, w, h))

    def key(self, keysym, down):
        self.sock.sendall(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    def pointer(self, x, y, buttons=0):
        """buttons: bit 0 left, 1 middle, 2 right, 3/4 wheel up/down."""
        self.sock.sendall(struct.pack(">BBHH", 5, buttons, x, y))

    # ---- what comes back

    def pending(self, timeout):
        """True when the server sent something within timeout seconds."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def read_message(self, timeout=10):
        """Reads one server message; applies a FramebufferUpdate. Returns its type and, for an
        update, the list of (x, y, w, h, encoding)."""
        kind = self._read(1, timeout)[0]
        if kind == 0:
            self._read(1, timeout)
            n = struct.unpack(">H", self._read(2, timeout))[0]
            rects = []
            for _ in range(n):
                x, y, w, h, enc = struct.unpack(">HHHHi", self._read(12, timeout))
                rects.append((x, y, w, h, enc))
                if enc == DESKTOP_SIZE:
                    self.width, self.height = w, h
                    self.fb = bytearray(w * h * 3)
                elif enc == RAW:
                    if x + w > self.width or y + h > self.height:
                        raise RfbError(f"rectangle {w}x{h}+{x}+{y} outside the {self.width}x{self.height} desktop")
                    data = self._read(w * h * 4, timeout)
                    for row in range(h):
                        src = data[row * w * 4:(row + 1) * w * 4]
                        i = ((y + row) * self.width + x) * 3
                        line = bytearray(w * 3)
                        line[0::3] = src[2::4]  # red (bits 16..23 of a little-endian word)
                        line[1::3] = src[1::4]
                        line[2::3] = src[0::4]
                        self.fb[i:i + w * 3] = line
                else:
                    raise RfbError(f"encoding {enc} was not asked for")
            self.updates += 1
            self.rects += n
            return kind, rects
        if kind == 1:  # SetColourMapEntries: not with true colour
            raise RfbError("colour map entries for a true-colour format")
        if kind == 2:  # Bell
            return kind, None
        if kind == 3:  # ServerCutText
            self._read(3, timeout)
            n = struct.unpack(">I", self._read(4, timeout))[0]
            if n > 1 << 20:
                raise RfbError(f"cut text of {n} bytes")
            self._read(n, timeout)
            return kind, None
        raise RfbError(f"unknown server message type {kind}")

    def read_update(self, timeout=10):
        """Reads messages until a FramebufferUpdate; returns its rectangles."""
        end = time.monotonic() + timeout
        while True:
            kind, rects = self.read_message(max(0.1, end - time.monotonic()))
            if kind == 0:
                return rects

    def image(self):
        return Image(self.width, self.height, bytes(self.fb))

    def close(self):
        self.sock.close()
