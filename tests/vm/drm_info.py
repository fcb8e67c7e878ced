#!/usr/bin/python3
"""What a DRM device shows its clients and the kernel's debugfs, for the kiosk VM test.

usage: drm_info.py [/dev/dri/card0]   (prints connectors, their modes and the planes)

Two sources, both read without DRM master (the compositor under test holds it):
- KMS ioctls (connectors with their modes and mode flags, planes with their type and CRTC), with
  the standard library only (fcntl.ioctl on struct layouts from <drm/drm_mode.h>);
- the atomic state the kernel prints in debugfs (/sys/kernel/debug/dri/N/state): which
  framebuffer each plane scans out and where (crtc-pos), each CRTC's mode.

Debian's /usr/bin/python3 in the test VM (tests/vm/kiosk_checks.py imports it).
"""

import array
import ctypes
import fcntl
import os
import re
import struct
import sys

# <drm/drm.h>: _IOWR('d', nr, type)
def _iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("d") << 8) | nr


def _iow(nr, size):
    return (1 << 30) | (size << 16) | (ord("d") << 8) | nr


SET_CLIENT_CAP = _iow(0x0D, 16)          # struct drm_set_client_cap {u64 capability, value}
MODE_GETRESOURCES = _iowr(0xA0, 64)      # struct drm_mode_card_res
MODE_GETCONNECTOR = _iowr(0xA7, 80)      # struct drm_mode_get_connector
MODE_GETPROPERTY = _iowr(0xAA, 64)       # struct drm_mode_get_property
MODE_GETPLANERESOURCES = _iowr(0xB5, 16)  # struct drm_mode_get_plane_res
MODE_GETPLANE = _iowr(0xB6, 32)          # struct drm_mode_get_plane
MODE_OBJ_GETPROPERTIES = _iowr(0xB9, 32)  # struct drm_mode_obj_get_properties

CLIENT_CAP_UNIVERSAL_PLANES = 2
OBJECT_PLANE = 0xEEEEEEEE
MODE_TYPE_PREFERRED = 1 << 3
MODE_TYPE_USERDEF = 1 << 5
MODE_TYPE_DRIVER = 1 << 6
PLANE_TYPES = {0: "overlay", 1: "primary", 2: "cursor"}
CONNECTION = {1: "connected", 2: "disconnected", 3: "unknown"}
# <drm/drm_mode.h> DRM_MODE_CONNECTOR_*: only the one virtio-gpu uses is named
CONNECTOR_TYPES = {15: "Virtual"}
MODEINFO = struct.Struct("=I10HII I32s")  # struct drm_mode_modeinfo, 68 bytes


def _buf(count, fmt):
    """A zeroed array and its address, for the ioctls' user pointers."""
    a = array.array(fmt, [0] * max(count, 1))
    return a, a.buffer_info()[0]


def _ioctl(fd, req, data):
    b = bytearray(data)
    fcntl.ioctl(fd, req, b, True)
    return bytes(b)


class Mode:
    def __init__(self, raw):
        f = MODEINFO.unpack(raw)
        self.clock = f[0]
        self.width, self.height = f[1], f[6]
        self.vrefresh, self.flags, self.type = f[11], f[12], f[13]
        self.name = f[14].split(b"\0", 1)[0].decode(errors="replace")

    @property
    def size(self):
        return (self.width, self.height)

    @property
    def preferred(self):
        return bool(self.type & MODE_TYPE_PREFERRED)

    def __repr__(self):
        tags = [t for bit, t in ((MODE_TYPE_PREFERRED, "preferred"), (MODE_TYPE_USERDEF, "userdef"))
                if self.type & bit]
        return "%dx%d@%d%s" % (self.width, self.height, self.vrefresh, "(%s)" % ",".join(tags) if tags else "")


class Device:
    """An open DRM device (no master needed)."""

    def __init__(self, path="/dev/dri/card0"):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        # Cursor and primary planes are listed only to clients that ask for universal planes.
        _ioctl(self.fd, SET_CLIENT_CAP, struct.pack("=QQ", CLIENT_CAP_UNIVERSAL_PLANES, 1))

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def resources(self):
        """(crtc ids, connector ids)."""
        raw = _ioctl(self.fd, MODE_GETRESOURCES, bytes(64))
        counts = struct.unpack_from("=4I", raw, 32)
        crtcs, cp = _buf(counts[1], "I")
        conns, kp = _buf(counts[2], "I")
        fbs, fp = _buf(counts[0], "I")
        encs, ep = _buf(counts[3], "I")
        req = struct.pack("=4Q4I4I", fp, cp, kp, ep, *counts, 0, 0, 0, 0)
        raw = _ioctl(self.fd, MODE_GETRESOURCES, req)
        got = struct.unpack_from("=4I", raw, 32)
        return list(crtcs)[:got[1]], list(conns)[:got[2]]

    def connector(self, conn_id):
        """{id, name, status, modes}; the modes the kernel has (no forced re-probe: not master)."""
        def ask(n_modes, n_props, n_encs):
            modes = bytearray(MODEINFO.size * max(n_modes, 1))
            mbuf = (ctypes.c_char * len(modes)).from_buffer(modes)
            props, pp = _buf(n_props, "I")
            vals, vp = _buf(n_props, "Q")
            encs, ep = _buf(n_encs, "I")
            req = struct.pack("=4Q3I8II", ep, ctypes.addressof(mbuf), pp, vp, n_modes, n_props, n_encs,
                              0, conn_id, 0, 0, 0, 0, 0, 0, 0)
            raw = _ioctl(self.fd, MODE_GETCONNECTOR, req)
            del mbuf
            return raw, bytes(modes)

        raw, _ = ask(0, 0, 0)
        n_modes, n_props, n_encs = struct.unpack_from("=3I", raw, 32)
        raw, modes = ask(n_modes, n_props, n_encs)
        f = struct.unpack_from("=3I8I", raw, 32)
        count = min(f[0], n_modes)
        ctype, ctype_id, connection = f[5], f[6], f[7]
        return {"id": conn_id, "name": "%s-%d" % (CONNECTOR_TYPES.get(ctype, "type%d" % ctype), ctype_id),
                "status": CONNECTION.get(connection, str(connection)),
                "modes": [Mode(modes[i * MODEINFO.size:(i + 1) * MODEINFO.size]) for i in range(count)]}

    def connectors(self):
        return [self.connector(c) for c in self.resources()[1]]

    def _property_name(self, prop_id):
        raw = _ioctl(self.fd, MODE_GETPROPERTY, struct.pack("=QQII32sII", 0, 0, prop_id, 0, b"", 0, 0))
        return struct.unpack_from("=32s", raw, 24)[0].split(b"\0", 1)[0].decode()

    def properties(self, obj_id, obj_type):
        raw = _ioctl(self.fd, MODE_OBJ_GETPROPERTIES, struct.pack("=QQIII4x", 0, 0, 0, obj_id, obj_type))
        n = struct.unpack_from("=I", raw, 16)[0]
        ids, ip = _buf(n, "I")
        vals, vp = _buf(n, "Q")
        _ioctl(self.fd, MODE_OBJ_GETPROPERTIES, struct.pack("=QQIII4x", ip, vp, n, obj_id, obj_type))
        return {self._property_name(ids[i]): vals[i] for i in range(n)}

    def planes(self):
        """[{id, type, possible_crtcs (indices), crtc_id, fb_id}]."""
        raw = _ioctl(self.fd, MODE_GETPLANERESOURCES, struct.pack("=QI4x", 0, 0))
        n = struct.unpack_from("=I", raw, 8)[0]
        ids, ip = _buf(n, "I")
        _ioctl(self.fd, MODE_GETPLANERESOURCES, struct.pack("=QI4x", ip, n))
        out = []
        for pid in list(ids)[:n]:
            f = struct.unpack_from("=6I", _ioctl(self.fd, MODE_GETPLANE, struct.pack("=6IQ", pid, 0, 0, 0, 0, 0, 0)))
            ptype = self.properties(pid, OBJECT_PLANE).get("type")
            out.append({"id": pid, "type": PLANE_TYPES.get(ptype, str(ptype)), "crtc_id": f[1], "fb_id": f[2],
                        "possible_crtcs": [i for i in range(32) if f[3] >> i & 1]})
        return out


# --------------------------------------------------------------------------------------------
# debugfs


DEBUGFS = "/sys/kernel/debug"


def mount_debugfs():
    """Mounts debugfs when it is not there yet; returns the state file of card 0's minor."""
    if not os.path.isdir(os.path.join(DEBUGFS, "dri")):
        os.makedirs(DEBUGFS, exist_ok=True)
        os.system("mount -t debugfs none %s 2>/dev/null" % DEBUGFS)
    return os.path.join(DEBUGFS, "dri", "0", "state")


_BLOCK = re.compile(r"^(plane|crtc|connector)\[(\d+)\]: (\S+)$")


def parse_state(text):
    """The atomic state debugfs prints: {"planes": {id: {...}}, "crtcs": {id: {...}},
    "connectors": {name: {...}}}. A plane: name, crtc (name or None), fb (id, 0 for none),
    fb_size (w, h) and format (fourcc text) when it has one, crtc_pos (x, y, w, h). A CRTC: name,
    enable, active, mode (w, h) or None. A connector: crtc (name or None)."""
    out = {"planes": {}, "crtcs": {}, "connectors": {}}
    cur = None
    for line in text.splitlines():
        m = _BLOCK.match(line)
        if m:
            kind, oid, name = m.group(1), int(m.group(2)), m.group(3)
            cur = {"id": oid, "name": name}
            if kind == "plane":
                cur.update(crtc=None, fb=0, crtc_pos=None)
                out["planes"][oid] = cur
            elif kind == "crtc":
                cur.update(enable=False, active=False, mode=None)
                out["crtcs"][oid] = cur
            else:
                cur.update(crtc=None)
                out["connectors"][name] = cur
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("crtc="):
            v = s[5:]
            cur["crtc"] = None if v == "(null)" else v
        elif s.startswith("fb=") and "fb_size" not in cur and cur.get("fb", 0) == 0:
            cur["fb"] = int(s[3:])
        elif s.startswith("format=") and "format" not in cur:
            cur["format"] = s[7:].split()[0]
        elif s.startswith("size=") and "fb_size" not in cur and cur.get("fb"):
            w, h = s[5:].split("x")
            cur["fb_size"] = (int(w), int(h))
        elif s.startswith("crtc-pos="):
            m = re.match(r"(\d+)x(\d+)([+-]-?\d+)([+-]-?\d+)", s[9:])
            if m:
                cur["crtc_pos"] = (int(m.group(3).lstrip("+")), int(m.group(4).lstrip("+")), int(m.group(1)),
                                   int(m.group(2)))
        elif s.startswith("enable="):
            cur["enable"] = s[7:] == "1"
        elif s.startswith("active="):
            cur["active"] = s[7:] == "1"
        elif s.startswith("mode:"):
            m = re.match(r'mode: "(\d+)x(\d+)', s)
            if m:
                cur["mode"] = (int(m.group(1)), int(m.group(2)))
    return out


def read_state(path=None):
    with open(path or os.path.join(DEBUGFS, "dri", "0", "state")) as f:
        return f.read()


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/dev/dri/card0"
    with Device(path) as d:
        crtcs, _ = d.resources()
        print("crtcs: %s" % crtcs)
        for c in d.connectors():
            print("%s (id %d): %s, %d modes: %s" % (c["name"], c["id"], c["status"], len(c["modes"]),
                                                   " ".join(repr(m) for m in c["modes"])))
        for p in d.planes():
            print("plane %d: %s, crtcs %s, crtc %d, fb %d" % (p["id"], p["type"], p["possible_crtcs"], p["crtc_id"],
                                                            p["fb_id"]))


if __name__ == "__main__":
    main()
