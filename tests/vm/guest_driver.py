#!/usr/bin/python3
"""Plays the VMM and the guest OS for the kernel's sample display mdevs (mbochs, mdpy).

Runs inside the test VM (tests/vm/run.sh) with Debian's /usr/bin/python3 and the standard library
only. As a library it creates and removes mdevs, opens them through the VFIO group/container API
(as a VMM does), programs the display and draws the vscanout sim test pattern through the BAR
mapping (as the guest's driver would), queries planes the way vscanout does so tests can
cross-check it, and hands the open device fds to a child (`--source vfio-fd:N`). As a command:

  guest_driver.py types                          list mdev parents, types, free instances
  guest_driver.py create TYPE UUID               e.g. create mbochs-medium 5f7c...; remove UUID
  guest_driver.py query UUID [--plane cursor]    open, QUERY_GFX_PLANE, print JSON
  guest_driver.py serve DEV... [--fps N] [--control FIFO] [--state FILE] [--device-names]
                        -- CMD [ARG...]
        DEV is mbochs:UUID[:WxH] (default 1024x768, or 640x480 where two of those do not fit)
        or mdpy:UUID; device i is head i of the pattern. Opens the devices, shows frame 0, runs
        CMD with the device fds (`--source vfio-fd:N` appended per device unless CMD has
        {source0}/{fd0}-style placeholders; `vfio-fd:N:UUID` with --device-names) and exits
        with CMD's status. Control commands: see _Serve.
  guest_driver.py check-abi                      compare these constants with <linux/vfio.h> (gcc)

Facts about the two devices (samples/vfio-mdev in Linux 6.1, checked in the VM):
- Each mdev is its own IOMMU group, and a group opens once: a second open is EBUSY, so a
  program can only get a device that another process holds through an fd hand-over.
- mbochs: dma-buf planes. The guest programs a mode through the bochs DISPI registers (16-bit,
  BAR2 at offset 0x500 + 2 * index); XRGB8888 at 32 bpp only. The plane is the framebuffer at
  X/Y offset in BAR0 (stride = virtual width * 4), so a page flip is a Y-offset change and gets
  its own dmabuf_id; going back to a configuration returns its old id. An offset that is not
  page aligned still gets an id, but GET_GFX_DMABUF answers EINVAL; an unknown id ENOENT.
  ENABLE=0 disables the plane (success, zero fields). The cursor plane always answers disabled.
  The registers survive closing the device, the framebuffer pages do not. pwrite() to BAR0
  lands 0x2000 bytes too far: draw through the mmap.
- mbochs' EDID: the VMM writes an EDID region (index 9, VFIO_REGION_SUBTYPE_GFX_EDID): registers
  at 0 (struct vfio_region_gfx_edid; mbochs-medium says max 1920x1440, large 0x0) and the blob at
  edid_offset 0x800. The guest reads it in BAR2 at 0x000..0x3ff: the blob while link_state is UP
  (1) and within edid_size, zeros otherwise (a new mdev's link_state is 0: no EDID). There is no
  interrupt: a guest sees the link go down and up only by reading at the right moment.
- mdpy: region planes. A fixed mode per type (vga 640x480, xga 1024x768, hd 1920x1080),
  XRGB8888, stride width * 4, read-only in PCI config space at 0x44/0x48/0x4c; size is the
  framebuffer rounded up to a power of two. The plane is always enabled: the device has no way
  to turn the display off. It answers region_index 16, a region past num_regions (9) that
  aliases BAR0. It ignores drm_plane_type: a cursor query returns the primary plane. pread and
  pwrite on its BAR0 ignore the offset (always byte 0): draw through the mmap.
"""

import argparse
import errno
import fcntl
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import time

# --- <linux/vfio.h> ------------------------------------------------------------------------------
# Every VFIO ioctl is _IO(';', 100 + n): no size or direction bits, argsz inside the struct says
# how much the caller passed. `check-abi` compares all of this with the C header.


def _io(kind, nr):
    return (ord(kind) << 8) | nr


def _vfio(n):
    return _io(";", 100 + n)


VFIO_GET_API_VERSION = _vfio(0)
VFIO_CHECK_EXTENSION = _vfio(1)
VFIO_SET_IOMMU = _vfio(2)
VFIO_GROUP_GET_STATUS = _vfio(3)
VFIO_GROUP_SET_CONTAINER = _vfio(4)
VFIO_GROUP_GET_DEVICE_FD = _vfio(6)
VFIO_DEVICE_GET_INFO = _vfio(7)
VFIO_DEVICE_GET_REGION_INFO = _vfio(8)
VFIO_DEVICE_RESET = _vfio(11)
VFIO_DEVICE_QUERY_GFX_PLANE = _vfio(14)
VFIO_DEVICE_GET_GFX_DMABUF = _vfio(15)

VFIO_API_VERSION = 0
VFIO_TYPE1v2_IOMMU = 3
VFIO_GROUP_FLAGS_VIABLE = 1 << 0
VFIO_PCI_BAR0_REGION_INDEX = 0
VFIO_PCI_BAR2_REGION_INDEX = 2
VFIO_PCI_CONFIG_REGION_INDEX = 7
VFIO_PCI_NUM_REGIONS = 9  # mbochs' EDID region is the one after the PCI regions
VFIO_DEVICE_GFX_LINK_STATE_UP = 1
VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2
VFIO_REGION_INFO_FLAG_MMAP = 1 << 2
VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0
VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1
VFIO_GFX_PLANE_TYPE_REGION = 1 << 2
DRM_PLANE_TYPE_PRIMARY = 1
DRM_PLANE_TYPE_CURSOR = 2
DRM_FORMAT_XRGB8888 = 0x34325258  # 'XR24'

# struct vfio_group_status, vfio_device_info, vfio_region_info, vfio_device_gfx_plane_info.
# The plane struct is 60 bytes of fields padded to 64 (its __u64 aligns it to 8).
GROUP_STATUS = struct.Struct("=II")
DEVICE_INFO = struct.Struct("=IIIII")
REGION_INFO = struct.Struct("=IIIIQQ")
PLANE_INFO = struct.Struct("=IIIIQIIIIIIIIIxxxx")
# struct vfio_region_gfx_edid: edid_offset, edid_max_size, edid_size, max_xres, max_yres, link_state.
GFX_EDID = struct.Struct("=IIIIII")

# <linux/dma-buf.h>: DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync { __u64 flags; })
DMA_BUF_IOCTL_SYNC = (1 << 30) | (8 << 16) | _io("b", 0)
DMA_BUF_SYNC_READ = 1 << 0
DMA_BUF_SYNC_END = 1 << 2

# Bochs DISPI (VBE) registers, as samples/vfio-mdev/mbochs.c decodes them.
VBE_XRES, VBE_YRES, VBE_BPP, VBE_ENABLE = 1, 2, 3, 4
VBE_VIRT_WIDTH, VBE_VIRT_HEIGHT, VBE_X_OFFSET, VBE_Y_OFFSET, VBE_VIDEO_MEMORY_64K = 6, 7, 8, 9, 10
VBE_ID = 0
VBE_DISPI_ENABLED, VBE_DISPI_LFB_ENABLED = 0x01, 0x40
DISPI_MMIO_OFFSET = 0x500  # in BAR2
EDID_MMIO_OFFSET = 0x000  # in BAR2: the guest's view of the EDID, 0x400 bytes, zeros unless the link is up

# mdpy's read-only mode description in PCI config space (mdpy-defs.h).
MDPY_FORMAT_OFFSET, MDPY_WIDTH_OFFSET, MDPY_HEIGHT_OFFSET = 0x44, 0x48, 0x4C

MDEV_BUS = "/sys/class/mdev_bus"
MDEV_DEVICES = "/sys/bus/mdev/devices"


def _ioctl(fd, request, arg):
    """ioctl that returns the kernel's integer result (a new fd for GET_DEVICE_FD and
    GET_GFX_DMABUF). With a mutable bytearray, fcntl.ioctl hands the kernel a pointer to it,
    copies results back into it and returns the int; with bytes it would return the buffer."""
    if isinstance(arg, int):
        return fcntl.ioctl(fd, request, arg)
    return fcntl.ioctl(fd, request, arg, True)


def fourcc_name(code):
    return "".join(chr((code >> s) & 0xFF) for s in (0, 8, 16, 24)) if code else "----"


# --- mdevs through sysfs --------------------------------------------------------------------------


def mdev_types():
    """{type name: {parent, name, available, device_api}} for every registered parent."""
    out = {}
    if not os.path.isdir(MDEV_BUS):
        return out
    for parent in sorted(os.listdir(MDEV_BUS)):
        tdir = os.path.join(MDEV_BUS, parent, "mdev_supported_types")
        for t in sorted(os.listdir(tdir)):
            def attr(a):
                try:
                    with open(os.path.join(tdir, t, a)) as f:
                        return f.read().strip()
                except OSError:
                    return None
            out[t] = {"parent": parent, "name": attr("name"), "description": attr("description"),
                      "available": int(attr("available_instances") or 0), "device_api": attr("device_api")}
    return out


def create_mdev(type_name, uuid):
    """Creates mdev `uuid` of `type_name` (e.g. mbochs-medium, mdpy-vga)."""
    info = mdev_types().get(type_name)
    if info is None:
        raise ValueError("no mdev type %r (have: %s)" % (type_name, ", ".join(mdev_types()) or "none"))
    with open(os.path.join(MDEV_BUS, info["parent"], "mdev_supported_types", type_name, "create"), "w") as f:
        f.write(uuid)


def remove_mdev(uuid):
    with open(os.path.join(MDEV_DEVICES, uuid, "remove"), "w") as f:
        f.write("1")


def iommu_group(uuid):
    return os.path.basename(os.readlink(os.path.join(MDEV_DEVICES, uuid, "iommu_group")))


def mdev_type_of(uuid):
    return os.path.basename(os.readlink(os.path.join(MDEV_DEVICES, uuid, "mdev_type")))


# --- planes ---------------------------------------------------------------------------------------


class Plane:
    """One QUERY_GFX_PLANE answer. `retried` lists the errnos of failed attempts before it."""

    FIELDS = ("argsz", "flags", "drm_plane_type", "drm_format", "drm_format_mod", "width", "height",
              "stride", "size", "x_pos", "y_pos", "x_hot", "y_hot", "id")

    def __init__(self, raw, retried=()):
        for name, value in zip(self.FIELDS, PLANE_INFO.unpack(raw)):
            setattr(self, name, value)
        self.retried = list(retried)

    @property
    def dmabuf_id(self):
        return self.id

    @property
    def region_index(self):
        return self.id

    @property
    def enabled(self):
        return bool(self.drm_format and self.width and self.height and self.size)

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.FIELDS if k not in ("argsz", "id")}
        d["format"] = fourcc_name(self.drm_format)
        d["region_index" if self.flags & VFIO_GFX_PLANE_TYPE_REGION else "dmabuf_id"] = self.id
        d["enabled"] = self.enabled
        if self.retried:
            d["retried"] = [errno.errorcode.get(e, str(e)) for e in self.retried]
        return d

    def __str__(self):
        kind = "region_index" if self.flags & VFIO_GFX_PLANE_TYPE_REGION else "dmabuf_id"
        if not self.enabled:
            return "disabled (format 0x%x %ux%u size %u %s %u)" % (self.drm_format, self.width, self.height,
                                                                   self.size, kind, self.id)
        s = "%s (0x%08x) mod 0x%x %ux%u stride %u size %u pos %d,%d hot %d,%d %s %u" % (
            fourcc_name(self.drm_format), self.drm_format, self.drm_format_mod, self.width, self.height,
            self.stride, self.size, _s32(self.x_pos), _s32(self.y_pos), _s32(self.x_hot), _s32(self.y_hot),
            kind, self.id)
        if self.retried:
            s += " after %s" % ",".join(errno.errorcode.get(e, str(e)) for e in self.retried)
        return s


def edid_preferred(blob):
    """The first detailed timing of an EDID base block as (width, height), or None when blob holds
    no valid base block (header, checksum) or the descriptor is not a timing."""
    if len(blob) < 128 or bytes(blob[:8]) != b"\x00\xff\xff\xff\xff\xff\xff\x00" or sum(blob[:128]) % 256:
        return None
    d = blob[54:72]
    if d[0] == 0 and d[1] == 0:
        return None
    return d[2] | (d[4] >> 4) << 8, d[5] | (d[7] >> 4) << 8


def edid_name(blob):
    """The monitor name descriptor (0xfc) of an EDID base block, or None."""
    for at in range(54, 126, 18):
        d = blob[at:at + 18]
        if len(d) == 18 and d[0] == 0 and d[1] == 0 and d[3] == 0xFC:
            return bytes(d[5:18]).split(b"\n")[0].decode("ascii", "replace")
    return None


def _s32(v):
    return v - (1 << 32) if v & 0x80000000 else v


class Region:
    def __init__(self, index, flags, size, offset):
        self.index, self.flags, self.size, self.offset = index, flags, size, offset

    @property
    def mappable(self):
        return bool(self.flags & VFIO_REGION_INFO_FLAG_MMAP)

    def __repr__(self):
        return "Region(index=%d, flags=0x%x, size=0x%x, offset=0x%x)" % (self.index, self.flags, self.size,
                                                                        self.offset)


# --- the test pattern -----------------------------------------------------------------------------


def pattern_pixel(x, y, frame, head):
    """vscanout's sim pattern as the XRGB8888 word: R = x + frame, G = y + 64 head,
    B = 16 frame + 85 head (each mod 256), X = 0xff."""
    r, g, b = (x + frame) & 0xFF, (y + 64 * head) & 0xFF, (16 * frame + 85 * head) & 0xFF
    return 0xFF000000 | r << 16 | g << 8 | b


def draw_pattern(buf, offset, stride, width, height, frame, head):
    """Writes the pattern for (frame, head) into buf (an mmap) at offset. G is the only channel
    that changes down the picture and it repeats every 256 rows, so 256 distinct rows are built
    with byte-slice arithmetic and copied; nothing loops over pixels in Python."""
    ramp = bytes((x + frame) & 0xFF for x in range(min(width, 256)))
    red = (ramp * (width // 256 + 1))[:width]
    row = bytearray(width * 4)
    row[0::4] = bytes([(16 * frame + 85 * head) & 0xFF]) * width
    row[2::4] = red
    row[3::4] = b"\xff" * width
    rows = []
    for g in range(256):
        row[1::4] = bytes([g]) * width
        rows.append(bytes(row))
    g0 = (64 * head) & 0xFF
    n = width * 4
    for y in range(height):
        o = offset + y * stride
        buf[o:o + n] = rows[(y + g0) & 0xFF]


def check_pattern(buf, offset, stride, width, height, frame, head, points=None):
    """Compares pixels at `points` (default: corners, centre and a few more) with the pattern.
    Returns a list of (x, y, got, want) mismatches."""
    if points is None:
        points = [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1), (width // 2, height // 2),
                  (255, 1), (256, 257), (min(width - 1, 300), min(height - 1, 200))]
    bad = []
    for x, y in points:
        got = struct.unpack_from("<I", buf, offset + y * stride + x * 4)[0]
        want = pattern_pixel(x, y, frame, head)
        if got != want:
            bad.append((x, y, got, want))
    return bad


# --- devices --------------------------------------------------------------------------------------


class VfioDevice:
    """An mdev opened as a VMM opens it: container, group, device fd. Owns all three fds."""

    kind = "vfio"

    def __init__(self, uuid):
        self.uuid = uuid
        self.group_name = iommu_group(uuid)
        self.container = self.group = self.fd = -1
        self._maps = []
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self):
        self.container = os.open("/dev/vfio/vfio", os.O_RDWR | os.O_CLOEXEC)
        version = _ioctl(self.container, VFIO_GET_API_VERSION, 0)
        if version != VFIO_API_VERSION:
            raise OSError("VFIO API version %d, expected %d" % (version, VFIO_API_VERSION))
        if _ioctl(self.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1:
            raise OSError("the VFIO container has no TYPE1v2 IOMMU (is vfio_iommu_type1 loaded?)")
        self.group = os.open("/dev/vfio/%s" % self.group_name, os.O_RDWR | os.O_CLOEXEC)
        status = bytearray(GROUP_STATUS.pack(GROUP_STATUS.size, 0))
        _ioctl(self.group, VFIO_GROUP_GET_STATUS, status)
        if not GROUP_STATUS.unpack(status)[1] & VFIO_GROUP_FLAGS_VIABLE:
            raise OSError("IOMMU group %s is not viable" % self.group_name)
        _ioctl(self.group, VFIO_GROUP_SET_CONTAINER, bytearray(struct.pack("=i", self.container)))
        _ioctl(self.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)
        self.fd = _ioctl(self.group, VFIO_GROUP_GET_DEVICE_FD, bytearray(self.uuid.encode() + b"\0"))
        # GET_DEVICE_FD returns an O_CLOEXEC fd; spawn() passes it to a child explicitly.
        self._get_info()

    def _get_info(self):
        info = bytearray(DEVICE_INFO.pack(DEVICE_INFO.size, 0, 0, 0, 0))
        _ioctl(self.fd, VFIO_DEVICE_GET_INFO, info)
        _, self.flags, self.num_regions, self.num_irqs, _ = DEVICE_INFO.unpack(info)

    @classmethod
    def adopt(cls, fd, uuid="?"):
        """Wraps a device fd opened elsewhere (what a program given --source vfio-fd:N holds):
        no container or group of its own. Takes ownership of fd."""
        dev = cls.__new__(cls)
        dev.uuid, dev.group_name, dev.container, dev.group, dev.fd, dev._maps = uuid, "?", -1, -1, fd, []
        dev._get_info()
        return dev

    def close(self):
        for m in self._maps:
            try:
                m.close()
            except BufferError:
                pass  # a caller still holds a view of it; the mapping goes with the process
        self._maps = []
        for name in ("fd", "group", "container"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def region(self, index):
        buf = bytearray(REGION_INFO.pack(REGION_INFO.size, 0, index, 0, 0, 0))
        _ioctl(self.fd, VFIO_DEVICE_GET_REGION_INFO, buf)
        _, flags, index, _, size, offset = REGION_INFO.unpack(buf)
        return Region(index, flags, size, offset)

    def map_region(self, index, length=None, writable=True):
        r = self.region(index)
        if not r.mappable:
            raise OSError(errno.EINVAL, "region %d cannot be mmap()ed" % index)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        m = mmap.mmap(self.fd, length or r.size, mmap.MAP_SHARED, prot, offset=r.offset)
        self._maps.append(m)
        return m

    def pread(self, region, offset, length):
        return os.pread(self.fd, length, region.offset + offset)

    def pwrite(self, region, offset, data):
        if os.pwrite(self.fd, data, region.offset + offset) != len(data):
            raise OSError(errno.EIO, "short write to region %d at 0x%x" % (region.index, offset))

    def probe(self, flags, plane_type=DRM_PLANE_TYPE_PRIMARY):
        """PROBE|flags: 0 when supported, else the errno."""
        buf = bytearray(PLANE_INFO.size)
        struct.pack_into("=III", buf, 0, PLANE_INFO.size, VFIO_GFX_PLANE_TYPE_PROBE | flags, plane_type)
        try:
            _ioctl(self.fd, VFIO_DEVICE_QUERY_GFX_PLANE, buf)
            return 0
        except OSError as e:
            return e.errno

    def plane_flags(self):
        """DMABUF or REGION, whichever the device supports (0 for neither)."""
        for flags in (VFIO_GFX_PLANE_TYPE_DMABUF, VFIO_GFX_PLANE_TYPE_REGION):
            if self.probe(flags) == 0:
                return flags
        return 0

    def query_plane(self, plane_type=DRM_PLANE_TYPE_PRIMARY, flags=None, retry_on=(errno.ENOMEM,), tries=3):
        """QUERY_GFX_PLANE with the struct zeroed before every attempt. Errors listed in
        retry_on are retried (mbochs answers ENOMEM once for each new mode unless fixed); the
        Plane records them. Other errors raise OSError."""
        if flags is None:
            flags = self.plane_flags()
        retried = []
        while True:
            buf = bytearray(PLANE_INFO.size)
            struct.pack_into("=III", buf, 0, PLANE_INFO.size, flags, plane_type)
            try:
                _ioctl(self.fd, VFIO_DEVICE_QUERY_GFX_PLANE, buf)
                return Plane(buf, retried)
            except OSError as e:
                retried.append(e.errno)
                if e.errno not in retry_on or len(retried) >= tries:
                    raise

    def get_dmabuf(self, dmabuf_id):
        """A new dma-buf fd (O_CLOEXEC not set by the kernel; close it yourself)."""
        return _ioctl(self.fd, VFIO_DEVICE_GET_GFX_DMABUF, bytearray(struct.pack("=I", dmabuf_id)))

    def reset(self):
        _ioctl(self.fd, VFIO_DEVICE_RESET, 0)

    def describe(self):
        return {"kind": self.kind, "uuid": self.uuid, "type": mdev_type_of(self.uuid), "group": self.group_name,
                "fd": self.fd, "regions": self.num_regions}


class Mbochs(VfioDevice):
    """mbochs: the guest side is a bochs-dispi driver drawing into BAR0."""

    kind = "mbochs"

    def _open(self):
        super()._open()
        self.bar0 = self.region(VFIO_PCI_BAR0_REGION_INDEX)
        self.bar2 = self.region(VFIO_PCI_BAR2_REGION_INDEX)
        self.fb = self.map_region(VFIO_PCI_BAR0_REGION_INDEX)
        self.mode = None  # (width, height, buffers)
        self.front = 0
        self.edid_at_open = self.edid_state()  # before any program is handed the device

    def dispi_read(self, index):
        return struct.unpack("<H", self.pread(self.bar2, DISPI_MMIO_OFFSET + 2 * index, 2))[0]

    def edid_regs(self):
        """The VMM's view: struct vfio_region_gfx_edid as a dict."""
        r = self.region(VFIO_PCI_NUM_REGIONS)
        names = ("edid_offset", "edid_max_size", "edid_size", "max_xres", "max_yres", "link_state")
        return dict(zip(names, GFX_EDID.unpack(self.pread(r, 0, GFX_EDID.size))))

    def guest_edid(self):
        """The guest's view: the 128-byte base block in BAR2 (all zeros while the link is not up)."""
        return self.pread(self.bar2, EDID_MMIO_OFFSET, 128)

    def edid_state(self):
        blob = self.guest_edid()
        pref = edid_preferred(blob)
        regs = self.edid_regs()
        return {"link_state": regs["link_state"], "edid_size": regs["edid_size"],
                "max": [regs["max_xres"], regs["max_yres"]], "guest_sees_edid": any(blob),
                "preferred": "%dx%d" % pref if pref else None, "name": edid_name(blob) if pref else None}

    def dispi_write(self, index, value):
        self.pwrite(self.bar2, DISPI_MMIO_OFFSET + 2 * index, struct.pack("<H", value))

    def set_mode(self, width, height, buffers=2):
        """XRGB8888 width x height with `buffers` pages stacked vertically (virtual height
        buffers * height), showing buffer 0. Flip with show()."""
        stride = width * 4
        if stride * height * buffers > self.bar0.size:
            raise ValueError("%dx%d x%d buffers needs %d bytes; this mbochs has %d" % (
                width, height, buffers, stride * height * buffers, self.bar0.size))
        self.dispi_write(VBE_ENABLE, 0)
        for index, value in ((VBE_XRES, width), (VBE_YRES, height), (VBE_BPP, 32), (VBE_VIRT_WIDTH, width),
                             (VBE_VIRT_HEIGHT, height * buffers), (VBE_X_OFFSET, 0), (VBE_Y_OFFSET, 0)):
            self.dispi_write(index, value)
        self.dispi_write(VBE_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED)
        self.mode, self.front = (width, height, buffers), 0

    def default_mode(self, buffers=2):
        """1024x768 where it fits `buffers` times (mbochs-medium and up), else 640x480. Both keep
        every buffer page aligned, which mbochs needs to export it (800x600 would not)."""
        return (1024, 768) if 1024 * 768 * 4 * buffers <= self.bar0.size else (640, 480)

    def show(self, buffer):
        """Page flip: scan out buffer `buffer` (a Y offset of buffer * height)."""
        self.set_y_offset(buffer * self.mode[1])
        self.front = buffer

    def set_y_offset(self, y):
        self.dispi_write(VBE_Y_OFFSET, y)

    def disable(self):
        self.dispi_write(VBE_ENABLE, 0)

    def enable(self):
        self.dispi_write(VBE_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED)

    def buffer_offset(self, buffer):
        width, height, _ = self.mode
        return buffer * height * width * 4

    def draw(self, frame, head, buffer=None):
        width, height, _ = self.mode
        b = self.front if buffer is None else buffer
        draw_pattern(self.fb, self.buffer_offset(b), width * 4, width, height, frame, head)

    def present(self, frame, head):
        """Draws the frame into the back buffer and flips to it, as a double-buffered guest does."""
        back = (self.front + 1) % self.mode[2]
        self.draw(frame, head, back)
        self.show(back)

    def check(self, frame, head, buffer=None):
        width, height, _ = self.mode
        b = self.front if buffer is None else buffer
        return check_pattern(self.fb, self.buffer_offset(b), width * 4, width, height, frame, head)

    def describe(self):
        d = super().describe()
        if self.mode:
            d.update(width=self.mode[0], height=self.mode[1], buffers=self.mode[2], front=self.front)
        d["edid_at_open"] = self.edid_at_open
        try:
            d["edid"] = self.edid_state()
        except OSError as e:
            d["edid"] = {"error": errno.errorcode.get(e.errno, str(e))}
        return d


class Mdpy(VfioDevice):
    """mdpy: a fixed mode described in PCI config space; the guest draws into BAR0 in place."""

    kind = "mdpy"

    def _open(self):
        super()._open()
        config = self.region(VFIO_PCI_CONFIG_REGION_INDEX)
        fmt, width, height = (struct.unpack("<I", self.pread(config, off, 4))[0]
                              for off in (MDPY_FORMAT_OFFSET, MDPY_WIDTH_OFFSET, MDPY_HEIGHT_OFFSET))
        self.drm_format, self.width, self.height = fmt, width, height
        self.stride = width * 4  # what mdpy reports; config space carries no stride
        self.bar0 = self.region(VFIO_PCI_BAR0_REGION_INDEX)
        self.fb = self.map_region(VFIO_PCI_BAR0_REGION_INDEX)

    def draw(self, frame, head):
        draw_pattern(self.fb, 0, self.stride, self.width, self.height, frame, head)

    def present(self, frame, head):
        self.draw(frame, head)  # single-buffered: the content changes under the same plane

    def check(self, frame, head):
        return check_pattern(self.fb, 0, self.stride, self.width, self.height, frame, head)

    def describe(self):
        d = super().describe()
        d.update(width=self.width, height=self.height, format=fourcc_name(self.drm_format), stride=self.stride)
        return d


def open_device(uuid):
    """Mbochs or Mdpy by the mdev's type, else a plain VfioDevice."""
    kind = mdev_type_of(uuid).split("-")[0]
    return {"mbochs": Mbochs, "mdpy": Mdpy}.get(kind, VfioDevice)(uuid)


# --- handing devices to a program -----------------------------------------------------------------


def source_args(argv, devices, device_names=False):
    """argv with the devices' fds filled in: {source0}, {source1}, ... become vfio-fd:N (with
    device_names: vfio-fd:N:UUID, so the program can tell when that mdev is being removed) and
    {fd0}, ... become N; without any placeholder, `--source vfio-fd:N[:UUID]` is appended per
    device."""
    fill = {}
    for i, d in enumerate(devices):
        fill["source%d" % i] = "vfio-fd:%d" % d.fd + (":%s" % d.uuid if device_names else "")
        fill["fd%d" % i] = str(d.fd)
    used = False
    out = []
    for a in argv:
        b = a
        for k, v in fill.items():
            b = b.replace("{%s}" % k, v)
        used |= b != a
        out.append(b)
    if not used:
        for i in range(len(devices)):
            out += ["--source", fill["source%d" % i]]
    return out


def spawn(argv, devices, device_names=False, **popen_kwargs):
    """Starts argv (see source_args) with the devices' fds inherited at the same numbers.
    pass_fds clears close-on-exec in the child only, so the parent's fds stay O_CLOEXEC and no
    other child inherits them (os.set_inheritable in the parent would leak them to every child)."""
    return subprocess.Popen(source_args(argv, devices, device_names), pass_fds=[d.fd for d in devices],
                            **popen_kwargs)


# --- command line ---------------------------------------------------------------------------------


def _parse_dev(spec):
    parts = spec.split(":")
    if parts[0] not in ("mbochs", "mdpy") or len(parts) < 2 or (parts[0] == "mdpy" and len(parts) > 2):
        raise argparse.ArgumentTypeError("expected mbochs:UUID[:WxH] or mdpy:UUID, got %r" % spec)
    mode = None
    if len(parts) > 2:
        try:
            w, h = (int(v) for v in parts[2].split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError("bad mode %r (expected WxH)" % parts[2])
        mode = (w, h)
    return parts[0], parts[1], mode


def cmd_types(args):
    print(json.dumps(mdev_types(), indent=2))


def cmd_create(args):
    create_mdev(args.type, args.uuid)


def cmd_remove(args):
    remove_mdev(args.uuid)


def cmd_query(args):
    with open_device(args.uuid) as dev:
        plane_type = DRM_PLANE_TYPE_CURSOR if args.plane == "cursor" else DRM_PLANE_TYPE_PRIMARY
        result = {"device": dev.describe(),
                  "probe": {"dmabuf": errno.errorcode.get(dev.probe(VFIO_GFX_PLANE_TYPE_DMABUF), "ok"),
                            "region": errno.errorcode.get(dev.probe(VFIO_GFX_PLANE_TYPE_REGION), "ok")}}
        try:
            result["plane"] = dev.query_plane(plane_type).as_dict()
        except OSError as e:
            result["error"] = errno.errorcode.get(e.errno, str(e))
        print(json.dumps(result, indent=2))


class _Serve:
    """The devices of `serve`, animated by --fps or by lines on the --control FIFO:
    `frame N` (present frame N on every head), `draw I N` (draw frame N into head I's front
    buffer in place: no flip, so no new id), `off I` / `on I` (mbochs head I's display),
    `mode I WxH` (mbochs head I), `remove I` (close this process's fds of head I's device, then
    remove its mdev in the background: the sysfs write blocks until every fd of the device,
    the child's included, is closed), `state` (rewrite --state), `quit`.

    --state is rewritten after every control line. It carries `commands` (control lines handled
    so far, so a test can wait for its own), `child_pid`, `frame` and per head the device, its
    plane and, once `remove I` ran, `removed` with the removal's `pid`, `started` (monotonic
    seconds), and once the write returned, `rc` (0, or its error message) and `seconds`."""

    def __init__(self, args):
        self.args = args
        self.devices = []
        self.frame = 0
        self.commands = 0
        self.child = None
        self.removals = {}  # head -> {"uuid", "proc", "started", "rc", "seconds"}

    def open(self):
        for kind, uuid, mode in self.args.devices:
            dev = open_device(uuid)
            self.devices.append(dev)
            if dev.kind != kind:
                raise ValueError("%s is a %s device, not %s" % (uuid, dev.kind, kind))
            if isinstance(dev, Mbochs):
                dev.set_mode(*(mode or dev.default_mode()))
            dev.draw(0, len(self.devices) - 1)

    def present(self, frame):
        self.frame = frame
        for head, dev in enumerate(self.devices):
            if head in self.removals:
                continue
            if not isinstance(dev, Mbochs) or dev.dispi_read(VBE_ENABLE):
                dev.present(frame, head)

    def write_state(self):
        if not self.args.state:
            return
        state = {"frame": self.frame, "pid": os.getpid(), "commands": self.commands,
                 "child_pid": self.child.pid if self.child else None, "heads": []}
        for head, dev in enumerate(self.devices):
            r = self.removals.get(head)
            if r is not None:
                state["heads"].append({"kind": dev.kind, "uuid": dev.uuid, "removed": {
                    k: r[k] for k in ("started", "rc", "seconds")} | {"pid": r["proc"].pid}})
                continue
            d = dev.describe()
            try:
                d["plane"] = dev.query_plane().as_dict()
            except OSError as e:
                d["plane_error"] = errno.errorcode.get(e.errno, str(e))
            state["heads"].append(d)
        tmp = self.args.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.args.state)

    def _device(self, word, mbochs_only=None):
        head = int(word)
        if not 0 <= head < len(self.devices):
            raise ValueError("no head %d" % head)
        if head in self.removals:
            raise ValueError("head %d was removed" % head)
        dev = self.devices[head]
        if mbochs_only and not isinstance(dev, Mbochs):
            raise ValueError("head %d is %s: only mbochs can %s" % (head, dev.kind, mbochs_only))
        return head, dev

    def remove(self, head):
        """Closes our fds of the device (and its BAR mappings), then starts the sysfs removal in
        a child process: the write blocks until the last fd of the device is closed."""
        dev = self.devices[head]
        dev.close()
        self.removals[head] = {"uuid": dev.uuid, "started": time.monotonic(), "rc": None, "seconds": None,
                               "proc": subprocess.Popen([sys.executable, os.path.abspath(__file__), "remove",
                                                         dev.uuid], stderr=subprocess.PIPE)}

    def reap_removals(self):
        """Records removals that finished; True when one did (the state changed)."""
        changed = False
        for r in self.removals.values():
            if r["rc"] is None and r["proc"].poll() is not None:
                err = r["proc"].stderr.read().decode(errors="replace").strip()
                r["proc"].stderr.close()
                r["rc"] = 0 if r["proc"].returncode == 0 else (err or "exit %d" % r["proc"].returncode)
                r["seconds"] = round(time.monotonic() - r["started"], 3)
                changed = True
        return changed

    def command(self, line):
        words = line.split()
        if not words:
            return True
        try:
            if words[0] == "quit":
                return False
            if words[0] == "frame":
                self.present(int(words[1]))
            elif words[0] == "draw":
                head, dev = self._device(words[1])
                dev.draw(int(words[2]), head)
            elif words[0] in ("off", "on", "mode"):
                head, dev = self._device(words[1], mbochs_only="change mode or turn off")
                if words[0] == "off":
                    dev.disable()
                elif words[0] == "on":
                    dev.enable()
                else:
                    dev.set_mode(*(int(v) for v in words[2].split("x")))
                    dev.draw(self.frame, head)
            elif words[0] == "remove":
                head, _ = self._device(words[1])
                self.remove(head)
            elif words[0] != "state":
                raise ValueError("unknown command")
        except (ValueError, IndexError, OSError) as e:
            print("guest_driver: control %r: %s" % (line, e), file=sys.stderr, flush=True)
        self.commands += 1
        self.write_state()
        return True

    def run(self):
        self.open()
        self.write_state()
        self.child = spawn(self.args.command, self.devices, device_names=self.args.device_names)
        self.write_state()
        child = self.child
        ctl = None
        if self.args.control:
            if not os.path.exists(self.args.control):
                os.mkfifo(self.args.control)
            # O_RDWR keeps the FIFO open with no writer, so select() does not spin on EOF.
            ctl = os.open(self.args.control, os.O_RDWR | os.O_NONBLOCK)
        period = 1.0 / self.args.fps if self.args.fps else None
        next_tick = time.monotonic() + (period or 0)
        pending = b""
        running = True
        try:
            while running and child.poll() is None:
                timeout = 0.05
                if period:
                    timeout = max(0.0, min(timeout, next_tick - time.monotonic()))
                ready = select.select([ctl] if ctl is not None else [], [], [], timeout)[0]
                if ready:
                    pending += os.read(ctl, 4096)
                    while b"\n" in pending and running:
                        line, pending = pending.split(b"\n", 1)
                        running = self.command(line.decode(errors="replace"))
                if period and time.monotonic() >= next_tick:
                    self.present(self.frame + 1)
                    self.write_state()
                    next_tick += period
                if self.reap_removals():
                    self.write_state()
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
            if ctl is not None:
                os.close(ctl)
            for head, dev in enumerate(self.devices):
                if head not in self.removals:
                    dev.close()
            # A removal still waiting for the child's fds completes now that it has exited.
            for r in self.removals.values():
                try:
                    r["proc"].wait(10)
                except subprocess.TimeoutExpired:
                    r["proc"].kill()
            if self.reap_removals():
                self.write_state()
        return child.wait()


def cmd_serve(args):
    if not args.command:
        raise SystemExit("serve: give the command after --")
    rc = _Serve(args).run()
    sys.exit(rc if rc >= 0 else 128 - rc)


ABI_PROBE = r"""
#include <stddef.h>
#include <stdio.h>
#include <linux/vfio.h>
#include <linux/dma-buf.h>
#define C(x) printf("%s %lu\n", #x, (unsigned long)(x));
#define O(s, f) printf("%s.%s %lu\n", #s, #f, (unsigned long)offsetof(struct s, f));
int main(void) {
	C(VFIO_GET_API_VERSION) C(VFIO_CHECK_EXTENSION) C(VFIO_SET_IOMMU) C(VFIO_GROUP_GET_STATUS)
	C(VFIO_GROUP_SET_CONTAINER) C(VFIO_GROUP_GET_DEVICE_FD) C(VFIO_DEVICE_GET_INFO)
	C(VFIO_DEVICE_GET_REGION_INFO) C(VFIO_DEVICE_RESET) C(VFIO_DEVICE_QUERY_GFX_PLANE)
	C(VFIO_DEVICE_GET_GFX_DMABUF) C(VFIO_API_VERSION) C(VFIO_TYPE1v2_IOMMU) C(VFIO_GROUP_FLAGS_VIABLE)
	C(VFIO_PCI_BAR0_REGION_INDEX) C(VFIO_PCI_BAR2_REGION_INDEX) C(VFIO_PCI_CONFIG_REGION_INDEX)
	C(VFIO_PCI_NUM_REGIONS) C(VFIO_DEVICE_GFX_LINK_STATE_UP) C(VFIO_DEVICE_GFX_LINK_STATE_DOWN)
	C(sizeof(struct vfio_region_gfx_edid)) O(vfio_region_gfx_edid, link_state)
	C(VFIO_REGION_INFO_FLAG_MMAP) C(VFIO_GFX_PLANE_TYPE_PROBE) C(VFIO_GFX_PLANE_TYPE_DMABUF)
	C(VFIO_GFX_PLANE_TYPE_REGION) C(DMA_BUF_IOCTL_SYNC) C(DMA_BUF_SYNC_READ) C(DMA_BUF_SYNC_END)
	C(sizeof(struct vfio_group_status)) C(sizeof(struct vfio_device_info))
	C(sizeof(struct vfio_region_info)) C(sizeof(struct vfio_device_gfx_plane_info))
	O(vfio_region_info, size) O(vfio_region_info, offset)
	O(vfio_device_gfx_plane_info, drm_format_mod) O(vfio_device_gfx_plane_info, width)
	O(vfio_device_gfx_plane_info, x_hot) O(vfio_device_gfx_plane_info, dmabuf_id)
	O(vfio_device_gfx_plane_info, region_index)
	return 0;
}
"""


def cmd_check_abi(args):
    import tempfile
    g = globals()
    want = {name: g[name] for name in (
        "VFIO_GET_API_VERSION", "VFIO_CHECK_EXTENSION", "VFIO_SET_IOMMU", "VFIO_GROUP_GET_STATUS",
        "VFIO_GROUP_SET_CONTAINER", "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO",
        "VFIO_DEVICE_GET_REGION_INFO", "VFIO_DEVICE_RESET", "VFIO_DEVICE_QUERY_GFX_PLANE",
        "VFIO_DEVICE_GET_GFX_DMABUF", "VFIO_API_VERSION", "VFIO_TYPE1v2_IOMMU", "VFIO_GROUP_FLAGS_VIABLE",
        "VFIO_PCI_BAR0_REGION_INDEX", "VFIO_PCI_BAR2_REGION_INDEX", "VFIO_PCI_CONFIG_REGION_INDEX",
        "VFIO_PCI_NUM_REGIONS", "VFIO_DEVICE_GFX_LINK_STATE_UP", "VFIO_DEVICE_GFX_LINK_STATE_DOWN",
        "VFIO_REGION_INFO_FLAG_MMAP", "VFIO_GFX_PLANE_TYPE_PROBE", "VFIO_GFX_PLANE_TYPE_DMABUF",
        "VFIO_GFX_PLANE_TYPE_REGION", "DMA_BUF_IOCTL_SYNC", "DMA_BUF_SYNC_READ", "DMA_BUF_SYNC_END")}
    want.update({
        "sizeof(struct vfio_group_status)": GROUP_STATUS.size,
        "sizeof(struct vfio_device_info)": DEVICE_INFO.size,
        "sizeof(struct vfio_region_info)": REGION_INFO.size,
        "sizeof(struct vfio_device_gfx_plane_info)": PLANE_INFO.size,
        "sizeof(struct vfio_region_gfx_edid)": GFX_EDID.size, "vfio_region_gfx_edid.link_state": 20,
        "vfio_region_info.size": 16, "vfio_region_info.offset": 24,
        "vfio_device_gfx_plane_info.drm_format_mod": 16, "vfio_device_gfx_plane_info.width": 24,
        "vfio_device_gfx_plane_info.x_hot": 48, "vfio_device_gfx_plane_info.dmabuf_id": 56,
        "vfio_device_gfx_plane_info.region_index": 56,
    })
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
        with open(src, "w") as f:
            f.write(ABI_PROBE)
        subprocess.run([args.cc, "-o", exe, src], check=True)
        got = dict(line.rsplit(" ", 1) for line in subprocess.run(
            [exe], check=True, capture_output=True, text=True).stdout.splitlines())
    bad = 0
    for name, value in want.items():
        ok = int(got[name]) == value
        bad += not ok
        if not ok or args.verbose:
            print("%-45s python %-10d header %-10s %s" % (name, value, got[name], "ok" if ok else "MISMATCH"))
    print("check-abi: %d of %d values match <linux/vfio.h>" % (len(want) - bad, len(want)))
    sys.exit(1 if bad else 0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("types", help="list mdev parents and types").set_defaults(fn=cmd_types)
    s = sub.add_parser("create", help="create an mdev")
    s.add_argument("type")
    s.add_argument("uuid")
    s.set_defaults(fn=cmd_create)
    s = sub.add_parser("remove", help="remove an mdev")
    s.add_argument("uuid")
    s.set_defaults(fn=cmd_remove)
    s = sub.add_parser("query", help="open a device and query a plane")
    s.add_argument("uuid")
    s.add_argument("--plane", choices=("primary", "cursor"), default="primary")
    s.set_defaults(fn=cmd_query)
    s = sub.add_parser("serve", help="open devices, show frames, run a command with their fds")
    s.add_argument("devices", nargs="+", type=_parse_dev, metavar="DEV")
    s.add_argument("--fps", type=float, default=0, help="present a new frame this often")
    s.add_argument("--control", help="FIFO to read commands from (created if missing)")
    s.add_argument("--state", help="JSON file describing the heads, rewritten after each command")
    s.add_argument("--device-names", action="store_true",
                   help="pass vfio-fd:N:UUID instead of vfio-fd:N (the program can then see a removal)")
    s.set_defaults(fn=cmd_serve)
    s = sub.add_parser("check-abi", help="compare the constants here with <linux/vfio.h>")
    s.add_argument("--cc", default="gcc")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(fn=cmd_check_abi)
    argv = sys.argv[1:] if argv is None else argv
    command = []
    if "--" in argv:
        i = argv.index("--")
        argv, command = argv[:i], argv[i + 1:]
    args = p.parse_args(argv)
    args.command = command
    try:
        args.fn(args)
    except (OSError, ValueError) as e:
        sys.exit("guest_driver %s: %s" % (args.cmd, e))


if __name__ == "__main__":
    main()
