"""Parent desktops for vscanout's nested-mode tests: sway, weston and Xvfb, each started (and
stopped) by the test that uses it, plus what is needed to look at them from outside: their window
lists, captures of their whole screen, and checks of a guest frame inside a window.

vscanout nested makes one toplevel window per guest head (wlroots' wayland backend under
WAYLAND_DISPLAY, its x11 backend under DISPLAY). The parents here run headless and render with
pixman, so their captures are pixel-exact wherever a window is shown 1:1.

How each parent is looked at:
- sway: `swaymsg -t get_tree` (window titles, app_id, content rect), `grim` of its output.
- weston: its protocol log (`--debug -l proto`: the xdg_toplevel requests vscanout sends) for the
  window list, `weston-screenshooter` for a capture (weston only lets the client it started itself
  bind weston_screenshooter, unless weston runs with --debug; its PNG is decoded with ImageMagick's
  `convert`); weston places windows where it likes, so frames are found in the capture by content.
- Xvfb (no window manager): `xwininfo -root -children` (titles, geometry, stacking order, top-most
  first), `xprop`, `xwd -root` (parsed here, no converter needed).

The `parents` fixture (conftest.py) starts these and stops them after the test's vscanout.
"""

import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

import pytest

from conftest import SLOW, VscanoutDied, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "common"))
from vscanout_pixels import Image, parse_ppm  # noqa: E402

NOBODY = 65534
TITLE_PREFIX = "vscanout \u2014 "  # "vscanout — <source> HEAD-<id>", an em dash


def title(head, source="sim"):
    return f"{TITLE_PREFIX}{source} HEAD-{head}"


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed")
    return path


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# images


def crop(img, x, y, w, h):
    """The w x h part of img whose top-left is (x, y); must lie inside img."""
    if x < 0 or y < 0 or x + w > img.width or y + h > img.height:
        raise AssertionError(f"{w}x{h}+{x}+{y} is not inside the {img.width}x{img.height} capture")
    rows = [img.data[((y + r) * img.width + x) * 3:((y + r) * img.width + x + w) * 3] for r in range(h)]
    return Image(w, h, b"".join(rows))


def parse_xwd(blob):
    """An X window dump (xwd, ZPixmap, TrueColor, 24 or 32 bits a pixel, 8 bits a channel) as an
    RGB Image."""
    fields = struct.unpack(">25I", blob[:100])
    header_size, version, pixmap_format, depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14], fields[15], fields[16]
    ncolors = fields[19]
    bpp = bits_per_pixel // 8
    if version != 7 or pixmap_format != 2 or depth != 24 or bpp not in (3, 4) \
            or bytes_per_line < bpp * width:
        raise ValueError(f"unsupported xwd: version {version}, format {pixmap_format}, depth {depth}, "
                         f"{bits_per_pixel} bpp, {bytes_per_line} bytes a row for {width} pixels")
    pos = header_size + 12 * ncolors
    raw = blob[pos:pos + bytes_per_line * height]
    if len(raw) != bytes_per_line * height:
        raise ValueError("truncated xwd raster")

    def index(mask):  # which byte of a pixel holds the channel
        shift = {0xFF: 0, 0xFF00: 8, 0xFF0000: 16, 0xFF000000: 24}[mask] // 8
        return shift if byte_order == 0 else bpp - 1 - shift

    ri, gi, bi = index(red_mask), index(green_mask), index(blue_mask)
    out = bytearray(width * height * 3)
    for y in range(height):
        row = raw[y * bytes_per_line:y * bytes_per_line + bpp * width]
        o = y * width * 3
        out[o:o + 3 * width:3] = row[ri::bpp]
        out[o + 1:o + 3 * width:3] = row[gi::bpp]
        out[o + 2:o + 3 * width:3] = row[bi::bpp]
    return Image(width, height, out)


def png_to_image(path):
    """Decodes a PNG with ImageMagick (a pure-Python PNG decoder is too slow for a screen)."""
    convert = tool("convert")
    r = subprocess.run([convert, f"png:{path}", "-depth", "8", "ppm:-"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30 * SLOW)
    if r.returncode != 0:
        raise AssertionError(f"convert {path} failed: {r.stderr.decode(errors='replace')}")
    return parse_ppm(r.stdout)


def _subtract(segments, a, b):
    out = []
    for s, e in segments:
        if b <= s or a >= e:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if b < e:
            out.append((b, e))
    return out


def check_stack(screen, windows, limit=6):
    """windows: [(x, y, expected Image)], top-most first. Every pixel of each window that no
    window above it covers must equal its expected frame. Returns (problems, visible pixel counts)."""
    problems = []
    visible = []
    for i, (x, y, want) in enumerate(windows):
        above = windows[:i]
        shown = 0
        bad = 0
        examples = []
        for r in range(want.height):
            sy = y + r
            if not 0 <= sy < screen.height:
                continue
            segs = [(max(x, 0), min(x + want.width, screen.width))]
            for ax, ay, aw in above:
                if ay <= sy < ay + aw.height:
                    segs = _subtract(segs, ax, ax + aw.width)
            srow = screen.row(sy)
            wrow = want.row(r)
            for a, b in segs:
                if b <= a:
                    continue
                shown += b - a
                got = srow[3 * a:3 * b]
                exp = wrow[3 * (a - x):3 * (b - x)]
                if got == exp:
                    continue
                for px in range(a, b):
                    g = got[3 * (px - a):3 * (px - a) + 3]
                    e = exp[3 * (px - a):3 * (px - a) + 3]
                    if g != e:
                        bad += 1
                        if len(examples) < limit:
                            examples.append(f"window ({px - x},{r}) = screen ({px},{sy}): got {tuple(g)} "
                                            f"want {tuple(e)}")
        visible.append(shown)
        if bad:
            problems.append(f"window {i} at ({x},{y}) {want.width}x{want.height}: {bad} of {shown} visible "
                            f"pixels differ; first: " + "; ".join(examples))
    return problems, visible


def locate(screen, want, segment=48):
    """Where `want` may be shown 1:1 in `screen`: candidate top-left corners, most likely first.
    Searches row segments of the frame (3 rows x 3 columns of anchors) in every screen row; each hit
    votes for a corner. A periodic pattern gives a few candidates (shifted by its period): the true
    corner gets the most votes, and check_stack() decides."""
    k = min(segment, want.width)
    xs = sorted({0, (want.width - k) // 2, want.width - k})
    ys = sorted({0, want.height // 2, want.height - 1})
    votes = Counter()
    for y0 in ys:
        for x0 in xs:
            seg = want.row(y0)[3 * x0:3 * (x0 + k)]
            for sy in range(screen.height):
                row = screen.row(sy)
                start = 0
                while True:
                    i = row.find(seg, start)
                    if i < 0:
                        break
                    if i % 3 == 0:
                        votes[(i // 3 - x0, sy - y0)] += 1
                    start = i + 1
    return [pos for pos, _ in votes.most_common(6)]


def frame_number(img, head):
    """Candidate frame numbers n (mod 256) of a sim frame shown 1:1, read from its corners
    (R = (x + n) mod 256, B = (16 n + 85 h) mod 256; a corner may be under the cursor)."""
    w, h = img.width, img.height
    found = []
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)):
        r, g, b = img.pixel(x, y)
        n = (r - x) % 256
        if g == (y + 64 * head) % 256 and b == (16 * n + 85 * head) % 256 and n not in found:
            found.append(n)
    return found


# --------------------------------------------------------------------------------------------
# parents


class ParentDied(VscanoutDied):
    """The parent desktop exited: waits stop at once (wait_until re-raises VscanoutDied)."""


class Parent:
    """A parent desktop process with its own directory and log."""

    kind = "parent"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix=f"vsc-{self.kind}-")
        self.log_path = os.path.join(self.dir, "log")
        self.proc = None
        self.label = self.kind

    def _spawn(self, argv, env, cwd=None, **kw):
        self._log = open(self.log_path, "wb")
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd or self.dir, start_new_session=True, **kw)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise ParentDied(f"{self.kind} exited with status {self.proc.returncode}; log tail:\n"
                                 + _tail(self.log_path, 20))

    def wait_windows(self, predicate, timeout=10, what="the parent's windows"):
        """Polls windows() (sway and Xvfb list theirs) until predicate holds; returns the list."""
        last = []

        def ok():
            nonlocal last
            self.check_alive()
            last = self.windows()
            return predicate(last)

        try:
            wait_until(ok, timeout, interval=0.05, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}; windows now: {last}") from None
        return last

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_tail(self, lines=40):
        return f"argv: {' '.join(self.argv)}\n" + _tail(self.log_path, lines)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        try:
            self._log.close()
        except OSError:
            pass

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def vscanout_env(self):
        """What vscanout's environment needs to nest in this parent (None: remove the variable)."""
        raise NotImplementedError


class Sway(Parent):
    """sway 1.7 on wlroots' headless backend with one output, pixman rendering. sway refuses to run
    as root: as root it runs as nobody (setpriv), in a runtime directory nobody owns; root still
    reaches its sockets."""

    kind = "sway"

    def __init__(self, config=(), size=(1920, 1080)):
        super().__init__()
        self.size = size
        sway = tool("sway")
        tool("swaymsg")
        self.runtime = os.path.join(self.dir, "run")
        home = os.path.join(self.dir, "home")
        os.mkdir(self.runtime, 0o700)
        os.mkdir(home, 0o700)
        self.config_path = os.path.join(self.runtime, "config")
        lines = [f"output HEADLESS-1 resolution {size[0]}x{size[1]} position 0 0",
                 "xwayland disable"] + list(config)
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [sway, "-c", self.config_path]
        if os.geteuid() == 0:
            os.chmod(self.dir, 0o711)  # nobody passes through to its own directories
            for p in (self.runtime, home, self.config_path):
                os.chown(p, NOBODY, NOBODY)
            argv = [tool("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] + argv
        env = {"XDG_RUNTIME_DIR": self.runtime, "HOME": home, "PATH": "/usr/bin:/bin",
               "WLR_BACKENDS": "headless", "WLR_LIBINPUT_NO_DEVICES": "1", "WLR_RENDERER": "pixman",
               "WLR_HEADLESS_OUTPUTS": "1"}
        self.socket = None
        self.swaysock = None
        self._spawn(argv, env)

    def wait_ready(self):
        wait_until(self._ready, 15, interval=0.05, what="sway's sockets and its output")

    def _ready(self):
        self.check_alive()
        names = os.listdir(self.runtime)
        way = [n for n in names if re.fullmatch(r"wayland-\d+", n)]
        ipc = [n for n in names if n.startswith("sway-ipc.") and n.endswith(".sock")]
        if not way or not ipc:
            return False
        self.socket = os.path.join(self.runtime, way[0])
        self.swaysock = os.path.join(self.runtime, ipc[0])
        outs = self.msg("-t", "get_outputs", check=False)
        return bool(outs) and any(o.get("active") and (o["rect"]["width"], o["rect"]["height"]) == self.size
                                  for o in outs)

    def msg(self, *args, check=True):
        """swaymsg -r ARGS; the parsed JSON reply (None when it is not JSON and check is False)."""
        env = {"SWAYSOCK": self.swaysock, "PATH": "/usr/bin:/bin"}
        r = subprocess.run([shutil.which("swaymsg"), "-r"] + list(args), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10 * SLOW)
        try:
            reply = json.loads(r.stdout)
        except ValueError:
            if check:
                raise AssertionError(f"swaymsg {args} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
            return None
        if check and r.returncode != 0:
            raise AssertionError(f"swaymsg {args} failed ({r.returncode}): {reply}")
        return reply

    def command(self, cmd):
        reply = self.msg(cmd)
        assert all(x.get("success") for x in reply), f"sway command {cmd!r} failed: {reply}"
        return reply

    def windows(self):
        """Every view in sway's tree: dicts with name, app_id, shell, pid, type, floating, marks,
        window_properties (X only), rect (the content: what the client draws) and container_rect."""
        found = []

        def walk(node, floating=False):
            if node.get("pid") is not None or node.get("shell"):
                r, wr = node["rect"], node["window_rect"]
                # rect is the container (title bar and borders included), window_rect the content in it.
                content = {"x": r["x"] + wr["x"], "y": r["y"] + wr["y"], "width": wr["width"], "height": wr["height"]}
                found.append({"name": node.get("name"), "app_id": node.get("app_id"), "shell": node.get("shell"),
                              "pid": node.get("pid"), "type": node.get("type"), "rect": content,
                              "container_rect": r,
                              "floating": floating, "window_properties": node.get("window_properties"),
                              "marks": node.get("marks")})
            for c in node.get("nodes", []):
                walk(c, floating)
            for c in node.get("floating_nodes", []):
                walk(c, True)

        walk(self.msg("-t", "get_tree"))
        return found

    def window(self, name):
        wins = [w for w in self.windows() if w["name"] == name]
        assert len(wins) == 1, f"sway has {len(wins)} windows titled {name!r}: {self.windows()}"
        return wins[0]

    def client_env(self):
        return {"XDG_RUNTIME_DIR": self.runtime, "WAYLAND_DISPLAY": self.socket, "PATH": "/usr/bin:/bin"}

    def capture(self):
        """grim of sway's output, as an Image."""
        grim = tool("grim")
        out = os.path.join(self.dir, "capture.ppm")
        r = subprocess.run([grim, "-t", "ppm", out], env=self.client_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15 * SLOW)
        if r.returncode != 0:
            raise AssertionError(f"grim of sway failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        with open(out, "rb") as f:
            return parse_ppm(f.read())

    def capture_png(self, path):
        grim = tool("grim")
        r = subprocess.run([grim, "-t", "png", path], env=self.client_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15 * SLOW)
        if r.returncode != 0:
            raise AssertionError(f"grim -t png of sway failed ({r.returncode}): {r.stderr.decode(errors='replace')}")

    def vscanout_env(self):
        # No WLR_BACKENDS: wlroots picks its wayland backend from WAYLAND_DISPLAY, as for a user.
        return {"WAYLAND_DISPLAY": self.socket, "WLR_BACKENDS": None}


class Weston(Parent):
    """weston 10 on its headless backend (pixman), with the debug protocol on: any client may then
    take a screenshot, and the `proto` log scope records every request vscanout sends."""

    kind = "weston"

    def __init__(self, size=(1920, 1080)):
        super().__init__()
        weston = tool("weston")
        self.size = size
        self.runtime = os.path.join(self.dir, "run")
        os.mkdir(self.runtime, 0o700)
        self.socket_name = "weston-test"
        self.socket = os.path.join(self.runtime, self.socket_name)
        self.proto_log = os.path.join(self.dir, "weston.log")
        argv = [weston, "--backend=headless-backend.so", "--use-pixman", f"--socket={self.socket_name}",
                f"--width={size[0]}", f"--height={size[1]}", "--no-config", "--idle-time=0", "--debug",
                "--logger-scopes=log,proto", f"--log={self.proto_log}"]
        env = {"XDG_RUNTIME_DIR": self.runtime, "HOME": self.dir, "PATH": "/usr/bin:/bin"}
        self._spawn(argv, env)

    def wait_ready(self):
        wait_until(self._ready, 15, interval=0.05, what="weston's socket and desktop shell")

    def _ready(self):
        self.check_alive()
        if not os.path.exists(self.socket) or not os.path.exists(self.proto_log):
            return False
        with open(self.proto_log, "rb") as f:
            text = f.read()
        # The desktop shell has drawn its panel and background: from now on weston places new
        # windows in the work area below the panel (before, a window may land under the panel).
        return b"desktop_ready()" in text

    def log_tail(self, lines=40):
        lines_out = [l for l in _tail(self.proto_log, 400).splitlines() if "[proto]" not in l][-lines:]
        return f"argv: {' '.join(self.argv)}\n" + _tail(self.log_path, 10) + "\n" + "\n".join(lines_out)

    def toplevels(self):
        """The xdg_toplevels clients have now: {(client, object id): {"title", "app_id"}}, from the
        protocol log (requests only)."""
        with open(self.proto_log, "rb") as f:
            text = f.read().decode(errors="replace")
        tops = {}
        rx = re.compile(r"client (0x[0-9a-f]+) rq (xdg_wm_base|xdg_surface|xdg_toplevel)@(\d+)\.(\w+)\((.*)\)$")
        for line in text.splitlines():
            m = rx.search(line)
            if not m:
                continue
            client, iface, oid, req, args = m.groups()
            if iface == "xdg_surface" and req == "get_toplevel":
                nid = re.match(r"new id xdg_toplevel@(\d+)", args)
                if nid:
                    tops[(client, nid.group(1))] = {"title": None, "app_id": None}
            elif iface == "xdg_toplevel":
                key = (client, oid)
                if req == "destroy":
                    tops.pop(key, None)
                elif key in tops and req in ("set_title", "set_app_id"):
                    s = re.match(r'"(.*)"$', args)
                    tops[key]["title" if req == "set_title" else "app_id"] = s.group(1) if s else args
        return tops

    def configures(self):
        """The xdg_toplevel.configure events weston sent, in order (for failure reports)."""
        with open(self.proto_log, "rb") as f:
            text = f.read().decode(errors="replace")
        return re.findall(r"xdg_toplevel@\d+\.configure\([^)]*\)", text)

    def client_env(self):
        return {"XDG_RUNTIME_DIR": self.runtime, "WAYLAND_DISPLAY": self.socket_name, "PATH": "/usr/bin:/bin"}

    def capture(self):
        shooter = tool("weston-screenshooter")
        d = tempfile.mkdtemp(prefix="shot-", dir=self.dir)
        r = subprocess.run([shooter], env=self.client_env(), cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=15 * SLOW)
        pngs = [n for n in os.listdir(d) if n.endswith(".png")]
        if r.returncode != 0 or len(pngs) != 1:
            raise AssertionError(f"weston-screenshooter failed ({r.returncode}, files {pngs}): "
                                 f"{r.stderr.decode(errors='replace')}")
        return png_to_image(os.path.join(d, pngs[0]))

    def vscanout_env(self):
        # The backend named explicitly, as WLR_BACKENDS=wayland in the README.
        return {"WAYLAND_DISPLAY": self.socket, "WLR_BACKENDS": "wayland"}


class Xvfb(Parent):
    """Xvfb with one 24-bit screen and no window manager: windows keep their own size and position.
    -noreset keeps interned atoms when the last client goes."""

    kind = "xvfb"

    def __init__(self, size=(1920, 1080)):
        super().__init__()
        xvfb = tool("Xvfb")
        self.size = size
        self._rfd, wfd = os.pipe()
        argv = [xvfb, "-displayfd", str(wfd), "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp",
                "-noreset"]
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir}
        try:
            self._spawn(argv, env, pass_fds=(wfd,))
        finally:
            os.close(wfd)

    def wait_ready(self):
        rfd = self._rfd
        number = b""
        end = time.monotonic() + 15 * SLOW
        try:
            while not number.endswith(b"\n"):
                if time.monotonic() > end:
                    raise AssertionError("Xvfb did not report its display number")
                if not select.select([rfd], [], [], 0.1)[0]:
                    self.check_alive()
                    continue
                chunk = os.read(rfd, 32)
                if not chunk:
                    self.check_alive()
                    raise AssertionError("Xvfb closed -displayfd without a display number")
                number += chunk
        finally:
            os.close(rfd)
        self.display = f":{int(number)}"

    def env(self):
        return {"DISPLAY": self.display, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    def run(self, argv, timeout=15):
        r = subprocess.run(argv, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout * SLOW)
        if r.returncode != 0:
            raise AssertionError(f"{argv} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r.stdout

    def intern_wm_atoms(self):
        """Interns the atoms a window manager or desktop would have created before any application
        starts (_NET_WM_NAME, UTF8_STRING, WM_PROTOCOLS, WM_DELETE_WINDOW), leaving no property."""
        xprop = tool("xprop")
        self.run([xprop, "-root", "-f", "_NET_WM_NAME", "8u", "-set", "_NET_WM_NAME", "atoms"])
        self.run([xprop, "-root", "-f", "WM_PROTOCOLS", "32a", "-set", "WM_PROTOCOLS", "WM_DELETE_WINDOW"])
        self.run([xprop, "-root", "-remove", "_NET_WM_NAME"])
        self.run([xprop, "-root", "-remove", "WM_PROTOCOLS"])

    def windows(self):
        """Top-level windows, top-most first: dicts with id, name (None: no name), x, y, width, height."""
        out = self.run([tool("xwininfo"), "-root", "-children"]).decode("utf-8", errors="replace")
        rx = re.compile(r'^\s+(0x[0-9a-f]+) (?:"(.*)"|\(has no name\)): \((.*)\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)'
                        r'\s+\+(-?\d+)\+(-?\d+)\s*$')
        wins = []
        for line in out.splitlines():
            m = rx.match(line)
            if m:
                wins.append({"id": m.group(1), "name": m.group(2), "class": m.group(3), "width": int(m.group(4)),
                             "height": int(m.group(5)), "x": int(m.group(8)), "y": int(m.group(9))})
        return wins

    def properties(self, wid):
        """xprop of a window: property name -> the text xprop shows for it."""
        out = self.run([tool("xprop"), "-id", wid]).decode("utf-8", errors="replace")
        props = {}
        for line in out.splitlines():
            m = re.match(r"^([A-Za-z_0-9]+)(?:\(([A-Za-z_0-9]+)\))?(?: =|:)\s*(.*)$", line)
            if m:
                props[m.group(1)] = m.group(3)
        return props

    def capture(self):
        blob = self.run([tool("xwd"), "-root", "-silent"])
        return parse_xwd(blob)

    def vscanout_env(self):
        # No WAYLAND_DISPLAY and no WLR_BACKENDS: wlroots picks its x11 backend from DISPLAY.
        return {"DISPLAY": self.display, "WLR_BACKENDS": None, "WAYLAND_DISPLAY": None}
