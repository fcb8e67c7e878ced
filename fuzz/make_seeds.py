#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<name>/). Run from anywhere; it
rewrites the seeds it owns and leaves other files alone.

Text targets (sim_script, options, qmp) get real inputs: the scripts, command lines and QMP
streams the tests and QEMU use. validate and edid read their input through libFuzzer's
FuzzedDataProvider (integers from the end of the input, bytes and strings from the front), so
their seeds are encoded here the way it decodes them: valid planes and plane sequences, real
device EDID registers and sizes."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


class Fdp:
    """Builds an input that FuzzedDataProvider reads back as the values given, in order."""

    def __init__(self):
        self.front = b""
        self.tail = []  # bytes in the order they are consumed from the end

    def range(self, lo, hi, v):
        assert lo <= v <= hi, (lo, v, hi)
        span, r, nbytes = hi - lo, v - lo, 0
        while nbytes < 8 and (span >> (8 * nbytes)) > 0:
            nbytes += 1
        for i in reversed(range(nbytes)):  # most significant byte consumed first
            self.tail.append((r >> (8 * i)) & 0xFF)
        return self

    def u8(self, v): return self.range(0, 0xFF, v)
    def u16(self, v): return self.range(0, 0xFFFF, v)
    def u32(self, v): return self.range(0, 0xFFFFFFFF, v)
    def u64(self, v): return self.range(0, 2**64 - 1, v)
    def i32(self, v): return self.range(-2**31, 2**31 - 1, v)
    def bool(self, v): return self.u8(1 if v else 0)
    def pick(self, n, i): return self.range(0, n - 1, i)

    def string(self, s):  # ConsumeRandomLengthString: from the front, "\\" escapes, "\\x" ends
        self.front += s.replace(b"\\", b"\\\\") + b"\\x"
        return self

    def bytes(self, b):  # ConsumeBytes(n) after n was consumed
        self.front += b
        return self

    def data(self):
        return self.front + bytes(reversed(self.tail))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- validate -----------------------------------------------------------------------------------
XR24, AR24, XB24, AB24, RG16, NV12 = 0, 1, 2, 3, 4, 5  # indexes into the fuzzer's kFormats
NO_HOT = None


def plane(f, fmt, w, h, stride_pad=0, size_pad=0, x=0, y=0, hot=(NO_HOT, NO_HOT), bid=1, offset_px=0,
          state=0):
    f.pick(5, state)                      # 0..2 enabled, 3 disabled, 4 unsupported
    f.bool(True).pick(8, fmt)             # a known format
    f.bool(True)                          # modifier 0 (LINEAR)
    f.bool(True).range(0, 300, w)
    f.bool(True).range(0, 300, h)
    f.bool(True).range(0, 3, stride_pad)  # stride: width x bpp + pad x bpp
    f.bool(True).range(0, 4096, size_pad)
    f.i32(x).i32(y)
    for v in hot:
        if v is None:
            f.bool(True)
        else:
            f.bool(False).range(0, 600, v)
    f.range(0, 6, bid)
    f.bool(True).range(0, 64, offset_px)
    f.range(0, 2, 0)
    return f


def validate_seeds():
    # Part 1: one plane against a buffer size.
    for name, args, bytes_ in [
        ("primary-xrgb8888-256x192", (XR24, 256, 192), 256 * 4 * 192),
        ("primary-rgb565-padded", (RG16, 300, 100, 2, 0), (300 + 2) * 2 * 100),
        ("primary-offset-row", (AB24, 64, 64, 0, 0, 0, 0, (NO_HOT, NO_HOT), 1, 16), 64 * 4 * 64 + 64),
        ("cursor-argb8888-64x64", (AR24, 64, 64, 0, 0, -10, 20, (4, 4)), 64 * 64 * 4),
    ]:
        f = Fdp().bool(True)
        f.bool(name.startswith("primary"))  # primary, else cursor
        plane(f, *args)
        f.bool(True).range(0, 1 << 20, bytes_)
        write("validate", name, f.data())
    # Part 2: the tracker over a sequence: a page-flipping guest with a cursor, damage, a mode
    # change and a bad plane in between.
    f = Fdp().bool(False)
    f.range(2, 5, 3).bool(False).bool(False)  # cache 3, no watch, fence timeout 1000
    step = lambda op: f.range(0, 11, op)
    step(0); plane(f, XR24, 128, 96, bid=1)
    step(2); plane(f, AR24, 64, 64, x=30, y=40, hot=(4, 4), bid=5)
    step(0); plane(f, XR24, 128, 96, bid=2)
    step(8); f.range(0, 2, 1)
    step(0); plane(f, XR24, 128, 96, bid=1)
    step(0); plane(f, XR24, 200, 150, bid=3)
    step(0); plane(f, NV12, 200, 150, bid=4)       # rejected, the last good frame stays
    step(3); f.bool(False)                        # the cursor goes
    step(11); f.bool(True)                        # the device goes away
    write("validate", "tracker-flips-cursor-mode", f.data())
    # Front-buffer drawing watched by hashing, with write fences.
    f = Fdp().bool(False)
    f.range(2, 5, 2).bool(True).bool(False)
    f.range(0, 11, 9).bool(True).bool(True)       # dma-bufs (fenced), content watch
    f.range(0, 11, 0); plane(f, XB24, 96, 64, bid=1)
    f.range(0, 11, 10)                            # the fence signals
    f.range(0, 11, 8).range(0, 2, 2)
    write("validate", "tracker-fences-watch", f.data())


# --- edid ---------------------------------------------------------------------------------------
def edid_seeds():
    for name, (w, h) in {"generate-1920x1080": (1920, 1080), "generate-8k": (7680, 4320),
                         "generate-tiny": (320, 200)}.items():
        f = Fdp().range(0, 2, 0).u32(w).u32(h).u16(1).u32(7).u32(96).string(b"vscanout")
        write("edid", name, f.data())
    # The source on mbochs' EDID region (registers 0x800 bytes in, up to 0x400 bytes of blob,
    # medium type: up to 1920x1200), window sizes as a window is dragged.
    for name, maxx, maxy, link_ms, sizes in [
        ("mbochs-medium-drag", 1920, 1200, 0, [(1280, 800), (1600, 900), (2560, 1440)]),
        ("no-limit-link-down", 0, 0, 1, [(1024, 768), (0, 600), (5000, 5000)]),
    ]:
        f = Fdp().range(0, 2, 1)
        f.u32(0x800).bool(True).range(0, 512, 0x400 if 0x400 <= 512 else 512)
        for m in (maxx, maxy):
            if m:
                f.bool(False).bool(True).range(0, 5000, m)
            else:
                f.bool(True)
        f.u32(1)          # link_state: up
        f.bool(True)      # the registers read fine
        f.range(0, 4, 0)  # no write fails
        f.bool(False)     # no size= in the spec
        f.bool(link_ms == 0)
        for w, h in sizes:
            f.bool(True).range(0, 5000, w).bool(True).range(0, 5000, h)
        write("edid", name, f.data())
    # A region-info answer with a capability chain: a sparse-mmap entry, then the type entry of
    # the EDID region (VFIO_REGION_TYPE_GFX 1, VFIO_REGION_SUBTYPE_GFX_EDID 1).
    info = struct.pack("<IIIIQQ", 32 + 24 + 16, 1 << 3, 9, 32, 0x2000, 0)  # argsz flags index cap_offset size offset
    sparse = struct.pack("<HHIII", 1, 1, 32 + 24, 1, 0) + struct.pack("<QQ", 0, 0)[:8]
    cap_type = struct.pack("<HHIII", 2, 1, 0, 1, 1)  # VFIO_REGION_INFO_CAP_TYPE
    answer = info + sparse + cap_type
    f = Fdp().range(0, 2, 2).range(0, 512, len(answer)).bytes(answer).bool(True).bool(True)
    write("edid", "region-caps-edid", f.data())


# --- sim_script ---------------------------------------------------------------------------------
SCRIPTS = {  # from tests/integration and the README
    "script-mode": "500 mode 0 800x600\n",
    "script-plug-unplug": "500 plug 5 640x480\n1000 unplug 0\n",
    "script-boot": "0 disable *\n2500 enable 0\n",
    "script-disable-enable": "0 disable 1\n1500 enable 1\n3500 disable *\n",
    "script-faults": "# one fault class after another\n100 fault 0 fourcc-unknown\n200 fault 0 stride\n"
                     "300 fault 0 none\n400 fault 1 cursor-too-large\n500 fault 1 hotspot\n",
    "script-cursor-draw-flip": "0 cursor * off\n100 cursor 0 on\n200 draw *\n300 flip 1\n400 fps 12.5\n500 fps 0\n",
    "script-fences": "0 fence 0\n100 flip 0\n2000 signal *\n",
}


def sim_seeds():
    for name, text in SCRIPTS.items():
        write("sim_script", name, "s" + text)
    for name, text in {"control-mode": "mode 0 800x600\n", "control-many": "disable *\nenable 0\nflip *\n"
                       "cursor 1 off\nfault 0 size\ndraw 0\nplug 4 64x64\nunplug 1\nfps 30\n"}.items():
        write("sim_script", name, "c\x00" + text)
        write("sim_script", name + "-bytewise", "c\x01" + text)
    for name, spec in {"options-default": "heads=2,modes=1280x800/1024x768,fps=30,buffers=2,cursor=on,flips=0",
                       "options-static": "heads=1,fps=0,modes=640x480,dmabuf=off",
                       "options-control": "heads=3,control=/tmp/fifo,dmabuf=vgem,flips=10"}.items():
        write("sim_script", name, "o" + spec)


# --- options ------------------------------------------------------------------------------------
COMMAND_LINES = {
    "sim-default": ["--source", "sim"],
    "sim-heads": ["--source", "sim:heads=3,fps=0", "--stats", "/tmp/stats.json", "-d"],
    "vfio-two": ["--source", "vfio:83b8f4f2-509f-382f-3c1e-e6bfe0fa1001,size=1920x1080",
                 "--source", "vfio-fd:3:0000:00:02.0,edid=off", "--no-edid", "--poll-hz", "30"],
    "qemu-qmp": ["--source", "qemu:qmp:/run/vm/qmp.sock,max-heads=2,max-mib=16", "--once"],
    "qemu-bus": ["--source=qemu:unix:path=/run/bus,guid=12", "--refresh", "poll:60"],
    "kiosk": ["--output", "HEAD-0=HDMI-A-1", "--output", "HEAD-1=DP-1", "--mode", "guest", "-s",
              "--fence-timeout", "500", "--vulkan-device", "llvmpipe", "-c", "16", "--import", "copy"],
    "nested": ["--keep-running", "--socket", "wayland-5", "--refresh=watch", "--vk-device=0"],
    "clustered": ["-dsc4", "-r", "generation", "--help"],
    "bad": ["-dX", "--cache"],
}


def options_seeds():
    for name, args in COMMAND_LINES.items():
        write("options", name, "\0".join(args))


# --- qmp ----------------------------------------------------------------------------------------
GREETING = ('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"},'
            ' "capabilities": ["oob"]}}\r\n')
OK = '{"return": {}, "id": %d}\r\n'
EVENT = ('{"timestamp": {"seconds": 1733330000, "microseconds": 123456}, "event": "RESUME"}\r\n')


def qmp_seeds():
    streams = {
        "handshake": GREETING + OK % 1 + OK % 2 + OK % 3,
        "handshake-events": GREETING + EVENT + OK % 1 + EVENT + '{"return": {}, "id": 9}\r\n' + OK % 2 + OK % 3,
        "getfd-error": GREETING + OK % 1 + '{"id": 2, "error": {"class": "GenericError", "desc": "No file descriptor supplied via SCM_RIGHTS"}}\r\n',
        "add-client-error": GREETING + OK % 1 + OK % 2 +
                            '{"id": 3, "error": {"class": "GenericError", "desc": "protocol \'@dbus-display\' is invalid"}}\r\n',
        "no-greeting": '{"return": {}}\n',
        "string-id": GREETING + '{"return": {}, "id": "1"}\n',
        "garbage": GREETING + "\x00\xff{[}]\n",
    }
    for name, text in streams.items():
        write("qmp", name, b"\x00\x00" + text.encode())           # whole, every send works
        write("qmp", name + "-split", b"\x07\x08" + text.encode())  # split, a 256-byte line limit
    write("qmp", "send-fails", b"\x00\x02" + (GREETING + OK % 1).encode())
    write("qmp", "huge-line", b"\x00\x0c" + (GREETING + '{"return": "' + "x" * 60 + '"}\n').encode())


if __name__ == "__main__":
    validate_seeds()
    edid_seeds()
    sim_seeds()
    options_seeds()
    qmp_seeds()
