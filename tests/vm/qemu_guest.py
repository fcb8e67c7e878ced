#!/usr/bin/python3
"""The guest OS of the QEMU `-display dbus` VM test: a tiny KMS client on virtio-gpu plus an
input logger. It runs inside the test VM (tests/vm/run.sh, the kms and input module groups),
as the guest script, with Debian's /usr/bin/python3 and the standard library only.

usage: qemu_guest.py [--mode WxH] [--heads N] [--tablet PCI=HEAD ...] [--control FILE]

What it does, in order:
1. unbinds fbcon (its blinking cursor would be the only idle traffic), opens /dev/dri/card0 and
   becomes DRM master;
2. for connector i (Virtual-1, Virtual-2, ... in the kernel's order) of the first N connected
   ones: a KMS dumb buffer (CREATE_DUMB, MAP_DUMB, ADDFB2 XRGB8888) holding frame 0 of head i
   as the simulated vGPU draws it (README "The simulated vGPU": R = (x + n) mod 256,
   G = (y + 64 h) mod 256, B = (16 n + 85 h) mod 256), shown with SETCRTC in mode WxH (default
   1024x768; the connector must list it; QEMU reports its second output disabled, so Virtual-2 is
   connected only when the kernel forces it on: video=Virtual-2:1024x768e), then
   `GUEST-HEAD h connector=... crtc=... mode=WxH fb=...`;
3. on each CRTC the sim cursor with DRM_IOCTL_MODE_CURSOR2: a 64x64 ARGB8888 dumb buffer,
   opaque white in its 16x16 top-left square, transparent elsewhere, hotspot (4, 4), the image's
   top-left at (96, 96), i.e. the hotspot at (100, 100);
4. prints `GUEST-INPUT-DEVICE eventN name=... pci=... [abs=... head=H]` per input device,
   `GUEST-READY heads=N mode=WxH` and then stays static (no redraws) while it logs every
   input event of /dev/input/event*, one line each:
       GUEST-INPUT key CODE down|up|repeat dev=eventN       (evdev KEY_* codes, < 0x100)
       GUEST-INPUT btn CODE down|up head=H dev=eventN       (BTN_* codes, e.g. 272 BTN_LEFT)
       GUEST-INPUT abs head=H x=X y=Y raw=RX,RY dev=eventN  (at each SYN_REPORT that moved)
       GUEST-INPUT rel dx=DX dy=DY wheel=W dev=eventN
   An absolute device's head comes from --tablet PCI=HEAD (its virtio PCI address, e.g.
   0000:00:10.0=1: QEMU binds a tablet to a head with `-device virtio-tablet-pci,display=vga0,
   head=1`); an unbound tablet serves every head without a tablet of its own (head=* when there
   are several, mapped with head 0's mode). X, Y are guest pixels of that head: QEMU scales the
   console's pixel p to p * 32767 / width (ui/input.c), so p = ceil(raw * width / 32767).
5. follows commands appended to the control file (default $VSCANOUT_VM_OUT/ctl), one a line,
   each answered with `GUEST-ACK <line>` (or `GUEST-NAK <line>: reason`):
       frame H N [X Y W H]   draw frame N into head H's buffer on screen, DIRTYFB the whole
                        buffer or only that rectangle (virtio_gpu then sends QEMU only the
                        rectangle: the host's copy shows frame N there and the old frame elsewhere;
                        QEMU's listener gets a full-size damage as a Scanout, a smaller one as an
                        Update)
       cursor H [X Y]   define the cursor again (a new framebuffer: QEMU sends CursorDefine),
                        hotspot at (X, Y), default (100, 100)
       move H X Y       move head H's cursor hotspot to (X, Y) (CURSOR MOVE: QEMU's MouseSet)
       hide H           remove head H's cursor (CURSOR BO with handle 0)
       mode H WxH       a new buffer of that size with frame 0, SETCRTC in that mode
       quit             exit 0 (the VM powers off: QEMU exits cleanly)
Lines go to stdout (the serial console, which run.sh copies to its stdout) and to
$VSCANOUT_VM_OUT/guest.log.
"""

import argparse
import array
import ctypes
import fcntl
import glob
import mmap
import os
import re
import select
import struct
import sys
import time

# --------------------------------------------------------------------------------------------
# logging

_LOG = None


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if _LOG:
        _LOG.write("%.3f %s\n" % (time.monotonic(), line))
        _LOG.flush()


# --------------------------------------------------------------------------------------------
# ioctl plumbing (<asm-generic/ioctl.h>)


def _ioc(direction, kind, nr, size):
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


def _io(kind, nr):
    return _ioc(0, kind, nr, 0)


def _iowr(kind, nr, size):
    return _ioc(3, kind, nr, size)


def _ior(kind, nr, size):
    return _ioc(2, kind, nr, size)


def ioctl(fd, req, data=b""):
    """An ioctl on a copy of data; returns the buffer the kernel wrote back."""
    if not data:
        fcntl.ioctl(fd, req, 0)
        return b""
    buf = bytearray(data)
    fcntl.ioctl(fd, req, buf, True)
    return bytes(buf)


# <drm/drm.h>, <drm/drm_mode.h>
SET_MASTER = _io("d", 0x1E)
MODE_GETRESOURCES = _iowr("d", 0xA0, 64)   # struct drm_mode_card_res
MODE_SETCRTC = _iowr("d", 0xA2, 104)       # struct drm_mode_crtc
MODE_CURSOR = _iowr("d", 0xA3, 28)         # struct drm_mode_cursor
MODE_GETENCODER = _iowr("d", 0xA6, 20)     # struct drm_mode_get_encoder
MODE_GETCONNECTOR = _iowr("d", 0xA7, 80)   # struct drm_mode_get_connector
MODE_RMFB = _iowr("d", 0xAF, 4)
MODE_DIRTYFB = _iowr("d", 0xB1, 24)        # struct drm_mode_fb_dirty_cmd
MODE_CREATE_DUMB = _iowr("d", 0xB2, 32)    # struct drm_mode_create_dumb
MODE_MAP_DUMB = _iowr("d", 0xB3, 16)       # struct drm_mode_map_dumb
MODE_DESTROY_DUMB = _iowr("d", 0xB4, 4)
MODE_ADDFB2 = _iowr("d", 0xB8, 104)        # struct drm_mode_fb_cmd2
MODE_CURSOR2 = _iowr("d", 0xBB, 36)        # struct drm_mode_cursor2

CURSOR_BO, CURSOR_MOVE = 0x01, 0x02
CONNECTED = 1
MODEINFO = struct.Struct("=I10HII I32s")  # struct drm_mode_modeinfo, 68 bytes
FOURCC_XRGB8888 = 0x34325258  # 'XR24'

CURSOR_SIZE = 64
CURSOR_HOT = (4, 4)


def _u32_array(n):
    a = array.array("I", [0] * max(n, 1))
    return a, a.buffer_info()[0]


class Mode:
    def __init__(self, raw):
        self.raw = raw
        f = MODEINFO.unpack(raw)
        self.width, self.height, self.vrefresh, self.type = f[1], f[6], f[11], f[13]
        self.name = f[14].split(b"\0", 1)[0].decode(errors="replace")

    def __repr__(self):
        return "%dx%d@%d%s" % (self.width, self.height, self.vrefresh, "*" if self.type & (1 << 3) else "")


class Dumb:
    """A dumb buffer, mapped, with a framebuffer (ARGB8888 for cursors, XRGB8888 otherwise)."""

    def __init__(self, fd, width, height, with_fb=True):
        self.fd = fd
        self.width, self.height = width, height
        raw = ioctl(fd, MODE_CREATE_DUMB, struct.pack("=6IQ", height, width, 32, 0, 0, 0, 0))
        _, _, _, _, self.handle, self.pitch, self.size = struct.unpack("=6IQ", raw)
        off = struct.unpack("=IIQ", ioctl(fd, MODE_MAP_DUMB, struct.pack("=IIQ", self.handle, 0, 0)))[2]
        self.map = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=off)
        self.fb = 0
        if with_fb:
            handles = (self.handle, 0, 0, 0)
            pitches = (self.pitch, 0, 0, 0)
            req = struct.pack("=5I4I4I4I4x4Q", 0, width, height, FOURCC_XRGB8888, 0, *handles, *pitches,
                              0, 0, 0, 0, 0, 0, 0, 0)
            self.fb = struct.unpack_from("=I", ioctl(fd, MODE_ADDFB2, req))[0]

    def destroy(self):
        if self.fb:
            ioctl(self.fd, MODE_RMFB, struct.pack("=I", self.fb))
        self.map.close()
        ioctl(self.fd, MODE_DESTROY_DUMB, struct.pack("=I", self.handle))


def draw_frame(buf, head, n):
    """Frame n of head `head`, XRGB8888 (bytes B, G, R, X in memory)."""
    w, h = buf.width, buf.height
    red = bytes((x + n) % 256 for x in range(w))
    blue = (16 * n + 85 * head) % 256
    rows = {}
    for g in range(256):
        row = bytearray(buf.pitch)
        row[0:4 * w:4] = bytes([blue]) * w
        row[1:4 * w:4] = bytes([g]) * w
        row[2:4 * w:4] = red
        row[3:4 * w:4] = b"\xff" * w
        rows[g] = bytes(row)
    buf.map[0:buf.pitch * h] = b"".join(rows[(y + 64 * head) % 256] for y in range(h))


def draw_cursor(buf):
    """The sim cursor: opaque white 0xFFFFFFFF in the 16x16 top-left square, 0 elsewhere."""
    img = bytearray(buf.pitch * buf.height)
    for y in range(16):
        img[y * buf.pitch:y * buf.pitch + 64] = b"\xff" * 64
    buf.map[0:len(img)] = bytes(img)


class Head:
    def __init__(self, index, connector, name, crtc, modes):
        self.index = index
        self.connector = connector
        self.name = name
        self.crtc = crtc
        self.modes = modes
        self.mode = None
        self.buf = None
        self.cursor = None
        self.hot = (100, 100)


class Kms:
    def __init__(self, path="/dev/dri/card0"):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        ioctl(self.fd, SET_MASTER)

    def resources(self):
        raw = ioctl(self.fd, MODE_GETRESOURCES, bytes(64))
        counts = struct.unpack_from("=4I", raw, 32)
        fbs, fp = _u32_array(counts[0])
        crtcs, cp = _u32_array(counts[1])
        conns, kp = _u32_array(counts[2])
        encs, ep = _u32_array(counts[3])
        raw = ioctl(self.fd, MODE_GETRESOURCES, struct.pack("=4Q8I", fp, cp, kp, ep, *counts, 0, 0, 0, 0))
        got = struct.unpack_from("=4I", raw, 32)
        return list(crtcs)[:got[1]], list(conns)[:got[2]]

    def connector(self, conn_id):
        """(name, connected, [Mode], [encoder ids]); a forced probe (we are master)."""
        def ask(n_modes, n_encs):
            modes = bytearray(MODEINFO.size * max(n_modes, 1))
            mbuf = (ctypes.c_char * len(modes)).from_buffer(modes)
            encs, ep = _u32_array(n_encs)
            req = struct.pack("=4Q12I", ep, ctypes.addressof(mbuf), 0, 0, n_modes, 0, n_encs,
                              0, conn_id, 0, 0, 0, 0, 0, 0, 0)
            raw = ioctl(self.fd, MODE_GETCONNECTOR, req)
            del mbuf
            return raw, bytes(modes), encs

        raw, _, _ = ask(0, 0)
        n_modes, _, n_encs = struct.unpack_from("=3I", raw, 32)
        raw, modes, encs = ask(n_modes, n_encs)
        f = struct.unpack_from("=12I", raw, 32)
        count, ctype_id, connection = min(f[0], n_modes), f[6], f[7]
        name = ("Virtual-%d" if f[5] == 15 else "type%d-%%d" % f[5]) % ctype_id
        return (name, connection == CONNECTED,
                [Mode(modes[i * MODEINFO.size:(i + 1) * MODEINFO.size]) for i in range(count)],
                list(encs)[:min(f[2], n_encs)])

    def possible_crtcs(self, enc_id):
        raw = ioctl(self.fd, MODE_GETENCODER, struct.pack("=5I", enc_id, 0, 0, 0, 0))
        return struct.unpack("=5I", raw)[3]

    def setcrtc(self, crtc, fb, conn, mode):
        conns, cp = _u32_array(1)
        conns[0] = conn
        req = struct.pack("=QIIIIIII", cp, 1, crtc, fb, 0, 0, 0, 1) + mode.raw
        ioctl(self.fd, MODE_SETCRTC, req)

    def dirty(self, fb, clip=None):
        """DIRTYFB: the whole framebuffer, or one clip rectangle (x, y, w, h)."""
        if clip is None:
            ioctl(self.fd, MODE_DIRTYFB, struct.pack("=IIIIQ", fb, 0, 0, 0, 0))
            return
        x, y, w, h = clip
        rect = array.array("H", [x, y, x + w, y + h])  # struct drm_clip_rect: x1, y1, x2, y2
        ioctl(self.fd, MODE_DIRTYFB, struct.pack("=IIIIQ", fb, 0, 0, 1, rect.buffer_info()[0]))

    def cursor2(self, crtc, flags, x, y, handle, hot):
        ioctl(self.fd, MODE_CURSOR2, struct.pack("=IIiiIIIii", flags, crtc, x, y, CURSOR_SIZE, CURSOR_SIZE,
                                                 handle, hot[0], hot[1]))

    def cursor_move(self, crtc, x, y):
        ioctl(self.fd, MODE_CURSOR, struct.pack("=IIiiIII", CURSOR_MOVE, crtc, x, y, 0, 0, 0))

    def cursor_hide(self, crtc):
        ioctl(self.fd, MODE_CURSOR, struct.pack("=IIiiIII", CURSOR_BO, crtc, 0, 0, 0, 0, 0))


# --------------------------------------------------------------------------------------------
# display


def unbind_fbcon():
    for path in glob.glob("/sys/class/vtconsole/vtcon*"):
        try:
            with open(os.path.join(path, "name")) as f:
                name = f.read()
            if "frame buffer" in name:
                with open(os.path.join(path, "bind"), "w") as f:
                    f.write("0\n")
                say("GUEST-INFO fbcon unbound (%s)" % os.path.basename(path))
        except OSError as e:
            say("GUEST-INFO cannot unbind %s: %s" % (path, e))


def find_mode(head, size):
    for m in head.modes:
        if (m.width, m.height) == size:
            return m
    return None


def show(kms, head, size, n=0):
    mode = find_mode(head, size)
    if mode is None:
        raise RuntimeError("%s lists no mode %dx%d (modes: %s)" % (head.name, size[0], size[1], head.modes))
    buf = Dumb(kms.fd, size[0], size[1])
    draw_frame(buf, head.index, n)
    kms.setcrtc(head.crtc, buf.fb, head.connector, mode)
    old, head.buf, head.mode = head.buf, buf, mode
    if old:
        old.destroy()


def define_cursor(kms, head, hot_pos):
    if head.cursor is None:
        head.cursor = Dumb(kms.fd, CURSOR_SIZE, CURSOR_SIZE, with_fb=False)
        draw_cursor(head.cursor)
    head.hot = hot_pos
    kms.cursor2(head.crtc, CURSOR_BO | CURSOR_MOVE, hot_pos[0] - CURSOR_HOT[0], hot_pos[1] - CURSOR_HOT[1],
                head.cursor.handle, CURSOR_HOT)


def setup_display(args):
    unbind_fbcon()
    for _ in range(100):  # virtio_gpu was loaded by init; its card appears at once, or nearly
        if os.path.exists("/dev/dri/card0"):
            break
        time.sleep(0.05)
    kms = Kms()
    crtcs, conns = kms.resources()
    heads = []
    used = set()
    for conn in conns:
        name, connected, modes, encs = kms.connector(conn)
        say("GUEST-INFO connector %s (id %d) %s, modes %s" % (name, conn, "connected" if connected else
                                                            "disconnected", modes))
        if not connected or len(heads) >= args.heads:
            continue
        crtc = None
        for e in encs:
            bits = kms.possible_crtcs(e)
            crtc = next((c for i, c in enumerate(crtcs) if bits >> i & 1 and c not in used), None)
            if crtc:
                break
        if crtc is None:
            raise RuntimeError("no free CRTC for %s" % name)
        used.add(crtc)
        heads.append(Head(len(heads), conn, name, crtc, modes))
    if len(heads) < args.heads:
        raise RuntimeError("%d connected connector(s), %d wanted" % (len(heads), args.heads))
    for h in heads:
        show(kms, h, args.mode)
        define_cursor(kms, h, (100, 100))
        say("GUEST-HEAD %d connector=%s crtc=%d mode=%dx%d fb=%d cursor-top-left=96,96 hotspot=4,4" % (
            h.index, h.name, h.crtc, h.mode.width, h.mode.height, h.buf.fb))
    return kms, heads


# --------------------------------------------------------------------------------------------
# input

EV_SYN, EV_KEY, EV_REL, EV_ABS = 0, 1, 2, 3
SYN_REPORT = 0
ABS_X, ABS_Y = 0, 1
REL_X, REL_Y, REL_WHEEL = 0, 1, 8
BTN_MISC = 0x100
EVENT = struct.Struct("=qqHHi")  # struct input_event on 64-bit: timeval, type, code, value


def EVIOCGNAME(n):
    return _ior("E", 0x06, n)


def EVIOCGBIT(ev, n):
    return _ior("E", 0x20 + ev, n)


def EVIOCGABS(axis):
    return _ior("E", 0x40 + axis, 24)


class InputDevice:
    def __init__(self, path, tablet_heads):
        self.path = path
        self.node = os.path.basename(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self.name = ioctl(self.fd, EVIOCGNAME(256), bytes(256)).split(b"\0", 1)[0].decode(errors="replace")
        sysdev = os.path.realpath("/sys/class/input/%s/device" % self.node)
        m = re.findall(r"/([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f])(?=/)", sysdev + "/")
        self.pci = m[-1] if m else None
        evbits = int.from_bytes(ioctl(self.fd, EVIOCGBIT(0, 4), bytes(4)), "little")
        self.absolute = bool(evbits >> EV_ABS & 1)
        self.ranges = {}
        self.head = None
        if self.absolute:
            for axis in (ABS_X, ABS_Y):
                v = struct.unpack("=6i", ioctl(self.fd, EVIOCGABS(axis), bytes(24)))
                self.ranges[axis] = (v[1], v[2])
            self.head = tablet_heads.get(self.pci)
        self.raw = {ABS_X: 0, ABS_Y: 0}
        self.moved = False
        self.rel = [0, 0, 0]

    def describe(self):
        extra = ""
        if self.absolute:
            extra = " abs=%d..%d,%d..%d head=%s" % (*self.ranges[ABS_X], *self.ranges[ABS_Y],
                                                   "*" if self.head is None else self.head)
        return "%s name=%r pci=%s%s" % (self.node, self.name, self.pci, extra)


def to_pixel(raw, lo, hi, size):
    """QEMU sends p * 32767 / size (integer division) for pixel p: the inverse is a ceiling."""
    if hi <= lo:
        return 0
    return -(-(raw - lo) * size // (hi - lo))


class InputLog:
    def __init__(self, heads, tablet_heads):
        self.heads = heads
        self.tablet_heads = tablet_heads
        self.devices = {}
        self.scan()

    def scan(self):
        for path in sorted(glob.glob("/dev/input/event*")):
            if path in (d.path for d in self.devices.values()):
                continue
            try:
                d = InputDevice(path, self.tablet_heads)
            except OSError as e:
                say("GUEST-INFO cannot open %s: %s" % (path, e))
                continue
            self.devices[d.fd] = d
            say("GUEST-INPUT-DEVICE " + d.describe())

    def head_of(self, dev):
        """(label, head) of an absolute device: its bound head, or the heads left unbound."""
        if dev.head is not None:
            return str(dev.head), self.heads[dev.head] if dev.head < len(self.heads) else None
        bound = set(self.tablet_heads.values())
        free = [h for h in self.heads if h.index not in bound]
        if len(free) == 1:
            return str(free[0].index), free[0]
        return "*", free[0] if free else None

    def read(self, fd):
        dev = self.devices[fd]
        try:
            data = os.read(fd, EVENT.size * 64)
        except BlockingIOError:
            return
        for off in range(0, len(data) - EVENT.size + 1, EVENT.size):
            _, _, etype, code, value = EVENT.unpack_from(data, off)
            if etype == EV_KEY:
                state = {0: "up", 1: "down", 2: "repeat"}.get(value, str(value))
                if code < BTN_MISC:
                    say("GUEST-INPUT key %d %s dev=%s" % (code, state, dev.node))
                else:
                    label = self.head_of(dev)[0] if dev.absolute else "-"
                    say("GUEST-INPUT btn %d %s head=%s dev=%s" % (code, state, label, dev.node))
            elif etype == EV_ABS and code in (ABS_X, ABS_Y):
                dev.raw[code] = value
                dev.moved = True
            elif etype == EV_REL:
                i = {REL_X: 0, REL_Y: 1, REL_WHEEL: 2}.get(code)
                if i is not None:
                    dev.rel[i] += value
            elif etype == EV_SYN and code == SYN_REPORT:
                if dev.moved:
                    dev.moved = False
                    label, head = self.head_of(dev)
                    w, h = (head.mode.width, head.mode.height) if head and head.mode else (0, 0)
                    rx, ry = dev.raw[ABS_X], dev.raw[ABS_Y]
                    say("GUEST-INPUT abs head=%s x=%d y=%d raw=%d,%d dev=%s" % (
                        label, to_pixel(rx, *dev.ranges[ABS_X], w), to_pixel(ry, *dev.ranges[ABS_Y], h), rx, ry,
                        dev.node))
                if any(dev.rel):
                    say("GUEST-INPUT rel dx=%d dy=%d wheel=%d dev=%s" % (*dev.rel, dev.node))
                    dev.rel = [0, 0, 0]


# --------------------------------------------------------------------------------------------
# control


def parse_size(text):
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m:
        raise ValueError("bad size %r" % text)
    return int(m.group(1)), int(m.group(2))


def command(kms, heads, line):
    words = line.split()
    if not words:
        return True
    cmd, a = words[0], words[1:]
    if cmd == "quit":
        return False
    head = heads[int(a[0])]
    if cmd == "frame":
        draw_frame(head.buf, head.index, int(a[1]))
        kms.dirty(head.buf.fb, tuple(int(v) for v in a[2:6]) if len(a) >= 6 else None)
    elif cmd == "cursor":
        define_cursor(kms, head, (int(a[1]), int(a[2])) if len(a) >= 3 else (100, 100))
    elif cmd == "move":
        head.hot = (int(a[1]), int(a[2]))
        kms.cursor_move(head.crtc, head.hot[0] - CURSOR_HOT[0], head.hot[1] - CURSOR_HOT[1])
    elif cmd == "hide":
        kms.cursor_hide(head.crtc)
    elif cmd == "mode":
        show(kms, head, parse_size(a[1]))
    else:
        raise ValueError("unknown command")
    return True


def main():
    global _LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", type=parse_size, default=(1024, 768))
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--tablet", action="append", default=[], help="PCI=HEAD")
    ap.add_argument("--control", default=None)
    args = ap.parse_args()
    out = os.environ.get("VSCANOUT_VM_OUT", "/tmp")
    _LOG = open(os.path.join(out, "guest.log"), "a")
    control = args.control or os.path.join(out, "ctl")
    tablet_heads = {}
    for t in args.tablet:
        pci, head = t.rsplit("=", 1)
        tablet_heads[pci] = int(head)

    t0 = time.monotonic()
    try:
        kms, heads = setup_display(args)
    except (OSError, RuntimeError) as e:
        say("GUEST-ERROR display: %s" % e)
        return 1
    inputs = InputLog(heads, tablet_heads)
    say("GUEST-READY heads=%d mode=%dx%d setup=%.2fs" % (len(heads), args.mode[0], args.mode[1],
                                                         time.monotonic() - t0))

    pos = 0
    pending = b""
    while True:
        r, _, _ = select.select(list(inputs.devices), [], [], 0.05)
        for fd in r:
            inputs.read(fd)
        try:
            with open(control, "rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            pos += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").strip()
                try:
                    go_on = command(kms, heads, line)
                except (OSError, ValueError, IndexError, RuntimeError) as e:
                    say("GUEST-NAK %s: %s" % (line, e))
                    continue
                say("GUEST-ACK %s" % line)
                if not go_on:
                    return 0


if __name__ == "__main__":
    sys.exit(main())
