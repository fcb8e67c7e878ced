#!/usr/bin/python3
"""The device half of the VM smoke test (smoke.sh runs it in the guest).

usage: smoke_checks.py MBOCHS_UUID MDPY_UUID

Drives one mbochs and one mdpy mdev through guest_driver and checks what the VFIO graphics-plane
API answers: probes, planes before and after a mode is set, dma-buf content, ids across page
flips, a disabled display, the region plane, and the fd hand-over to a child process. Prints one
`RESULT: PASS|FAIL <check>: <detail>` line per check and exits 1 if any failed.
"""

import errno
import mmap
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest_driver as gd  # noqa: E402

failures = 0


def result(ok, name, detail=""):
    global failures
    failures += not ok
    print("RESULT: %s %s%s" % ("PASS" if ok else "FAIL", name, ": " + detail if detail else ""), flush=True)
    return ok


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "0"


def show(label, plane):
    print("  %-28s %s" % (label, plane), flush=True)


def check_dmabuf(dev, plane, frame, head, label):
    """GET_GFX_DMABUF for the plane's id, then size and pixels through a CPU mapping."""
    try:
        fd = dev.get_dmabuf(plane.dmabuf_id)
    except OSError as e:
        return result(False, label, "GET_GFX_DMABUF(%d): %s" % (plane.dmabuf_id, errname(e.errno)))
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size != plane.size:
            return result(False, label, "dma-buf size %d, plane size %d" % (size, plane.size))
        fcntl_sync(fd, gd.DMA_BUF_SYNC_READ)
        with mmap.mmap(fd, plane.size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
            bad = gd.check_pattern(m, 0, plane.stride, plane.width, plane.height, frame, head)
            first = struct.unpack_from("<I", m, 0)[0]
        fcntl_sync(fd, gd.DMA_BUF_SYNC_READ | gd.DMA_BUF_SYNC_END)
    except OSError as e:
        return result(False, label, "%s: %s" % (e.strerror, errname(e.errno)))
    finally:
        os.close(fd)
    return result(not bad, label, "id %d, %d bytes, pixel(0,0)=0x%08x (frame %d head %d)%s" % (
        plane.dmabuf_id, size, first, frame, head, " mismatches %s" % [tuple(hex(v) for v in b) for b in bad]
        if bad else ""))


def fcntl_sync(fd, flags):
    gd._ioctl(fd, gd.DMA_BUF_IOCTL_SYNC, bytearray(struct.pack("=Q", flags)))


def reexport_check(mb, plane, rounds=5, pressure_mb=64):
    """Gets and closes a dma-buf of the same id several times (an importer with a bounded cache
    does this), then lets another process take free memory. The unfixed 6.1 sample drops its
    page references on every release, so the framebuffer pages would be freed while in use and
    handed to that process: the pattern in BAR0 would change under the guest. Freed pages are
    reused first by the CPU that freed them, so both processes stay on one CPU."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})
    try:
        for _ in range(rounds):
            os.close(mb.get_dmabuf(plane.dmabuf_id))
        subprocess.run([sys.executable, "-c", "bytearray(b'U') * (%d << 20)" % pressure_mb], check=True)
    finally:
        os.sched_setaffinity(0, affinity)
    bad = mb.check(2, 0, buffer=0)
    result(not bad, "mbochs framebuffer survives %d re-exports of one id" % rounds,
           "mismatches %s" % [tuple(hex(v) for v in b) for b in bad[:2]] if bad else "")


def mbochs_checks(mb):
    print("mbochs %s: %s" % (mb.uuid, mb.describe()), flush=True)
    print("  BAR0 %r, BAR2 %r, DISPI id 0x%x, video memory %d x 64 KiB" % (
        mb.bar0, mb.bar2, mb.dispi_read(gd.VBE_ID), mb.dispi_read(gd.VBE_VIDEO_MEMORY_64K)), flush=True)
    p_dma, p_reg = mb.probe(gd.VFIO_GFX_PLANE_TYPE_DMABUF), mb.probe(gd.VFIO_GFX_PLANE_TYPE_REGION)
    result(p_dma == 0 and p_reg == errno.EINVAL, "mbochs probe",
           "PROBE|DMABUF -> %s, PROBE|REGION -> %s" % (errname(p_dma), errname(p_reg)))

    flags = gd.VFIO_GFX_PLANE_TYPE_DMABUF
    nomode = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, no mode yet:", nomode)
    result(not nomode.enabled, "mbochs primary before a mode is disabled")

    w, h = 1024, 768
    mb.set_mode(w, h, buffers=2)
    mb.draw(0, 0, buffer=0)
    mb.draw(1, 0, buffer=1)
    a = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, 1024x768 buffer 0:", a)
    result(a.enabled and (a.drm_format, a.width, a.height, a.stride, a.size) ==
           (gd.DRM_FORMAT_XRGB8888, w, h, w * 4, w * 4 * h), "mbochs primary after set_mode",
           "%s, ENOMEM retries: %d" % (gd.fourcc_name(a.drm_format), a.retried.count(errno.ENOMEM)))
    result(set(a.retried) <= {errno.ENOMEM} and len(a.retried) <= 1, "mbochs first query of a new mode",
           "errors before success: %s (ENOMEM once = the unfixed sample's quirk)" %
           ([errname(e) for e in a.retried] or "none"))
    cursor = mb.query_plane(gd.DRM_PLANE_TYPE_CURSOR, flags)
    show("cursor:", cursor)
    result(not cursor.enabled, "mbochs cursor plane answers disabled")

    check_dmabuf(mb, a, 0, 0, "mbochs dma-buf of buffer 0 shows frame 0")
    again = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    result(again.dmabuf_id == a.dmabuf_id and not again.retried, "mbochs id stable while nothing changes",
           "%d then %d" % (a.dmabuf_id, again.dmabuf_id))

    mb.show(1)
    b = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, flipped (y %d):" % h, b)
    result(b.enabled and b.dmabuf_id != a.dmabuf_id, "mbochs flip to y offset %d gives a new id" % h,
           "%d -> %d" % (a.dmabuf_id, b.dmabuf_id))
    check_dmabuf(mb, b, 1, 0, "mbochs dma-buf of buffer 1 shows frame 1")
    mb.show(0)
    back = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, flipped back:", back)
    result(back.dmabuf_id == a.dmabuf_id, "mbochs flip back returns the first id",
           "%d (first %d)" % (back.dmabuf_id, a.dmabuf_id))

    # Content drawn under a stable id: the dma-buf aliases the framebuffer pages.
    mb.draw(2, 0, buffer=0)
    check_dmabuf(mb, back, 2, 0, "mbochs redraw under the same id is visible in its dma-buf")

    reexport_check(mb, back)

    mb.disable()
    off = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, DISPI enable=0:", off)
    result(not off.enabled and (off.drm_format, off.width, off.height, off.size) == (0, 0, 0, 0),
           "mbochs display off gives a disabled plane (zero fields)")
    mb.enable()
    on = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, enabled again:", on)
    result(on.enabled and on.dmabuf_id == a.dmabuf_id, "mbochs display on again returns the same id",
           "%d" % on.dmabuf_id)

    # 640x480: stride 2560, so y offset 480 is page aligned (1228800 = 300 pages).
    mb.set_mode(640, 480)
    mb.draw(3, 0)
    c = mb.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, flags)
    show("primary, 640x480:", c)
    result(c.enabled and (c.width, c.height, c.stride) == (640, 480, 2560) and c.dmabuf_id not in (a.dmabuf_id, b.dmabuf_id),
           "mbochs mode change gives a new id", "%d" % c.dmabuf_id)
    check_dmabuf(mb, c, 3, 0, "mbochs dma-buf after the mode change")
    mb.set_mode(w, h)
    mb.draw(0, 0)
    return a


def mdpy_checks(md):
    print("mdpy %s: %s" % (md.uuid, md.describe()), flush=True)
    p_dma, p_reg = md.probe(gd.VFIO_GFX_PLANE_TYPE_DMABUF), md.probe(gd.VFIO_GFX_PLANE_TYPE_REGION)
    result(p_reg == 0 and p_dma == errno.EINVAL, "mdpy probe",
           "PROBE|DMABUF -> %s, PROBE|REGION -> %s" % (errname(p_dma), errname(p_reg)))
    ramp = [md.fb[y * md.stride:y * md.stride + 4].hex() for y in (0, md.height // 2, md.height - 1)]
    p = md.query_plane(gd.DRM_PLANE_TYPE_PRIMARY, gd.VFIO_GFX_PLANE_TYPE_REGION)
    show("primary:", p)
    result(p.enabled and (p.drm_format, p.width, p.height, p.stride) ==
           (gd.DRM_FORMAT_XRGB8888, md.width, md.height, md.width * 4), "mdpy primary matches its config space",
           "%dx%d %s, config space says %dx%d %s" % (p.width, p.height, gd.fourcc_name(p.drm_format), md.width,
                                                      md.height, gd.fourcc_name(md.drm_format)))
    cursor = md.query_plane(gd.DRM_PLANE_TYPE_CURSOR, gd.VFIO_GFX_PLANE_TYPE_REGION)
    show("cursor:", cursor)
    print("  (mdpy ignores drm_plane_type: a cursor query %s the primary plane)" %
          ("returns" if cursor.as_dict() == dict(p.as_dict(), drm_plane_type=2) else "does not return"), flush=True)
    print("  BAR0 before drawing, first pixel of rows 0, h/2, h-1: %s (the sample's grey ramp)" % " ".join(ramp),
          flush=True)

    md.draw(0, 1)
    region = md.region(p.region_index)
    print("  region %d: %r (BAR0: %r)" % (p.region_index, region, md.bar0), flush=True)
    result(region.mappable and region.size >= p.stride * p.height, "mdpy plane region is mappable",
           "index %d size 0x%x offset 0x%x" % (region.index, region.size, region.offset))
    with mmap.mmap(md.fd, region.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=region.offset) as m:
        bad = gd.check_pattern(m, 0, p.stride, p.width, p.height, 0, 1)
        first = struct.unpack_from("<I", m, 0)[0]
    result(not bad, "mdpy region %d shows frame 0 of head 1" % p.region_index, "pixel(0,0)=0x%08x%s" % (
        first, " mismatches %s" % bad if bad else ""))
    try:
        md.get_dmabuf(0)
        result(False, "mdpy has no dma-bufs", "GET_GFX_DMABUF succeeded")
    except OSError as e:
        result(True, "mdpy has no dma-bufs", "GET_GFX_DMABUF -> %s" % errname(e.errno))
    return p


CHILD = r"""
import os, sys
sys.path.insert(0, %r)
import guest_driver as gd
for spec in sys.argv[1:]:
    fd = int(spec.split(":")[1])
    dev = gd.VfioDevice.adopt(fd)
    p = dev.query_plane()
    print("child: %%s fd %%d: %%s" %% (spec, fd, p), flush=True)
"""


def handover_checks(devices, planes):
    argv = gd.source_args(["prog"], devices)
    want = ["prog"] + sum((["--source", "vfio-fd:%d" % d.fd] for d in devices), [])
    result(argv == want, "source_args appends --source vfio-fd:N per device", " ".join(argv))
    child = gd.spawn([sys.executable, "-c", CHILD % os.path.dirname(os.path.abspath(gd.__file__)),
                      "{source0}", "{source1}"], devices, stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=60)
    print(out.rstrip(), flush=True)
    lines = [line for line in out.splitlines() if line.startswith("child:")]
    ok = child.returncode == 0 and len(lines) == 2
    ok = ok and ("dmabuf_id %d" % planes[0].dmabuf_id) in lines[0] and ("region_index %d" % planes[1].id) in lines[1]
    result(ok, "a child queries both planes through the inherited fds", "exit %d" % child.returncode)
    leaked = [d.fd for d in devices if os.get_inheritable(d.fd)]
    result(not leaked, "device fds stay close-on-exec in the parent", "inheritable: %s" % (leaked or "none"))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    mbochs_uuid, mdpy_uuid = sys.argv[1:]
    with gd.open_device(mbochs_uuid) as mb, gd.open_device(mdpy_uuid) as md:
        result(isinstance(mb, gd.Mbochs) and isinstance(md, gd.Mdpy), "open both devices (group/container/TYPE1v2)",
               "mbochs group %s fd %d, mdpy group %s fd %d" % (mb.group_name, mb.fd, md.group_name, md.fd))
        a = mbochs_checks(mb)
        p = mdpy_checks(md)
        handover_checks([mb, md], [a, p])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
