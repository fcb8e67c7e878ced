"""What vscanout's tests know about pixels, shared by the host's integration tests
(tests/integration) and the VM tests (tests/vm/vfio_checks.py, tests/vm/kiosk_host.py): RGB images
and PPM parsing, the simulated vGPU's frames, comparisons of a capture with what it should be, a
frame scaled and letterboxed into an output, the "no signal" frame, and wlr-randr's output list.

The standard library only: vfio_checks.py imports this with Debian's /usr/bin/python3 inside the
guest, which sees the repository read-only at the host's path. A user adds this directory to
sys.path relative to its own __file__.
"""

import re

NO_SIGNAL_BG = (32, 32, 48)
NO_SIGNAL_FG = (224, 224, 224)


# --------------------------------------------------------------------------------------------
# images


class Image:
    """An RGB image: width, height and 3 bytes a pixel, rows top to bottom."""

    def __init__(self, width, height, data):
        self.width = width
        self.height = height
        self.data = bytes(data)
        assert len(self.data) == width * height * 3, "image data has the wrong length"

    @property
    def size(self):
        return (self.width, self.height)

    def pixel(self, x, y):
        i = (y * self.width + x) * 3
        return tuple(self.data[i:i + 3])

    def row(self, y):
        return self.data[y * self.width * 3:(y + 1) * self.width * 3]

    def __iter__(self):  # (w, h, bytes), as conftest's capture() promises
        return iter((self.width, self.height, self.data))

    def save(self, path):
        """Writes the image as a binary PPM."""
        with open(path, "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (self.width, self.height) + self.data)


def parse_ppm(blob):
    """Parses a binary PPM (P6, maxval 255) as grim writes it."""
    pos = 0
    fields = []
    while len(fields) < 4:
        while pos < len(blob) and blob[pos:pos + 1].isspace():
            pos += 1
        if blob[pos:pos + 1] == b"#":
            while pos < len(blob) and blob[pos:pos + 1] != b"\n":
                pos += 1
            continue
        start = pos
        while pos < len(blob) and not blob[pos:pos + 1].isspace():
            pos += 1
        if start == pos:
            raise ValueError("truncated PPM header")
        fields.append(blob[start:pos])
    pos += 1  # exactly one whitespace byte before the raster
    if fields[0] != b"P6":
        raise ValueError(f"not a binary PPM: magic {fields[0]!r}")
    w, h, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    if maxval != 255:
        raise ValueError(f"PPM maxval {maxval}, expected 255")
    data = blob[pos:pos + w * h * 3]
    if len(data) != w * h * 3:
        raise ValueError(f"PPM raster has {len(data)} bytes, expected {w * h * 3}")
    return Image(w, h, data)


# --------------------------------------------------------------------------------------------
# the simulated vGPU's frames


def cursor_hotspot(n, w, h):
    return ((37 * n + 100) % w, (23 * n + 100) % h)


def guest_frame(w, h, head, n, cursor=True):
    """Frame n of head `head` as the sim formulas draw it, shown 1:1: R = (x + n) mod 256,
    G = (y + 64 head) mod 256, B = (16 n + 85 head) mod 256 (tests/vm/guest_driver.py draws the
    same into the VFIO devices). With `cursor`, the simulated vGPU's cursor composited on top: a
    16x16 opaque white square whose top-left is the hotspot minus (4, 4)."""
    r_ramp = bytes((x + n) % 256 for x in range(w))
    blue = (16 * n + 85 * head) % 256
    rows = {}
    for g in range(256):
        row = bytearray(3 * w)
        row[0::3] = r_ramp
        row[1::3] = bytes([g]) * w
        row[2::3] = bytes([blue]) * w
        rows[g] = bytes(row)
    frame = bytearray(b"".join(rows[(y + 64 * head) % 256] for y in range(h)))
    if cursor:
        hx, hy = cursor_hotspot(n, w, h)
        x0, y0 = max(0, hx - 4), max(0, hy - 4)
        x1, y1 = min(w, hx - 4 + 16), min(h, hy - 4 + 16)
        if x1 > x0:
            white = b"\xff" * (3 * (x1 - x0))
            for y in range(y0, y1):
                i = (y * w + x0) * 3
                frame[i:i + len(white)] = white
    return Image(w, h, frame)


def guess_frame(img, head):
    """What an image looks like at (0,0), for failure messages (head None: head 0 or 1)."""
    r, g, b = img.pixel(0, 0)
    if (r, g, b) == NO_SIGNAL_BG:
        return "pixel(0,0) is the no-signal background"
    for h in (head,) if head is not None else (0, 1):
        if g == (64 * h) & 0xFF and (b - 85 * h) % 16 == 0:
            return "pixel(0,0)=%s looks like frame %d of head %d" % ((r, g, b), r, h)
    return "pixel(0,0)=%s" % ((r, g, b),)


# --------------------------------------------------------------------------------------------
# comparisons


_NONZERO = bytes([0]) + bytes([1]) * 255


def _differing_pixels(a, b):
    """Two RGB rows of the same length: one byte a pixel, 1 where they differ, else 0 (computed
    on whole rows as integers, so a full mismatch stays cheap)."""
    x = (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big").translate(_NONZERO)
    mask = int.from_bytes(x[0::3], "big") | int.from_bytes(x[1::3], "big") | int.from_bytes(x[2::3], "big")
    return mask.to_bytes(len(a) // 3, "big")


def describe_difference(got, want, limit=8):
    """A readable account of how two images differ, or None when they are equal."""
    if got.size != want.size:
        return f"size {got.width}x{got.height}, expected {want.width}x{want.height}"
    if got.data == want.data:
        return None
    count = 0
    bbox = None
    examples = []
    for y in range(got.height):
        a, b = got.row(y), want.row(y)
        if a == b:
            continue
        differs = _differing_pixels(a, b)
        count += differs.count(1)
        first, last = differs.find(1), differs.rfind(1)
        if bbox is None:
            bbox = [first, y, last, y]
        else:
            bbox = [min(bbox[0], first), bbox[1], max(bbox[2], last), y]
        x = first
        while x >= 0 and len(examples) < limit:
            i = 3 * x
            examples.append(f"({x},{y}) got {tuple(a[i:i + 3])} want {tuple(b[i:i + 3])}")
            x = differs.find(1, x + 1)
    return (f"{count} of {got.width * got.height} pixels differ, bounding box x {bbox[0]}..{bbox[2]}, "
            f"y {bbox[1]}..{bbox[3]}; first: " + "; ".join(examples))


def no_signal_problems(img):
    """Checks the "no signal" frame: background exactly NO_SIGNAL_BG, text exactly NO_SIGNAL_FG,
    centred. Returns a list of problems (empty when it is right)."""
    w, h = img.width, img.height
    problems = []
    for x, y in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if img.pixel(x, y) != NO_SIGNAL_BG:
            problems.append(f"corner ({x},{y}) is {img.pixel(x, y)}, expected {NO_SIGNAL_BG}")
    if len(problems) == 4:  # not worth a scan of every pixel
        return [f"no corner has the background colour ({guess_frame(img, None)})"]
    s = max(1, min(w // 108, h // 28))
    # Text that passes the bounding box check below fits in (53 + 2) s x (7 + 2) s pixels: more
    # than that cannot be a no-signal frame, and the scan stops there.
    most = 55 * 9 * s * s
    bg_row = bytes(NO_SIGNAL_BG) * w
    colours = {NO_SIGNAL_BG}
    text = 0
    bbox = None
    for y in range(h):
        row = img.row(y)
        if row == bg_row:
            continue
        for x in range(w):
            p = tuple(row[3 * x:3 * x + 3])
            if p == NO_SIGNAL_BG:
                continue
            colours.add(p)
            text += 1
            bbox = [x, y, x, y] if bbox is None else [min(bbox[0], x), min(bbox[1], y), max(bbox[2], x),
                                                        max(bbox[3], y)]
        if text > most:
            problems.append(f"more than {most} non-background pixels: not a no-signal frame")
            break
    if colours != {NO_SIGNAL_BG, NO_SIGNAL_FG}:
        shown = sorted(colours)[:8]
        problems.append(f"expected exactly the colours {NO_SIGNAL_BG} and {NO_SIGNAL_FG}, found "
                        f"{len(colours)}: {shown}")
    if text == 0:
        problems.append("no text pixels at all")
    else:
        tx0, ty0 = (w - 53 * s) // 2, (h - 7 * s) // 2
        tx1, ty1 = tx0 + 53 * s - 1, ty0 + 7 * s - 1
        tol = s  # one glyph cell of slack for rounding in the centring
        if not (abs(bbox[0] - tx0) <= tol and abs(bbox[1] - ty0) <= tol and abs(bbox[2] - tx1) <= tol
                and abs(bbox[3] - ty1) <= tol):
            problems.append(f"text spans x {bbox[0]}..{bbox[2]}, y {bbox[1]}..{bbox[3]}; expected about "
                            f"x {tx0}..{tx1}, y {ty0}..{ty1} (scale {s})")
    return problems


# --------------------------------------------------------------------------------------------
# scaled frames (an output whose mode is not the guest's: the DRM kiosk's preferred mode)


def place_frame(gw, gh, ow, oh):
    """Where vscanout puts a gw x gh guest frame in an ow x oh output, aspect kept and centred
    (src/render/head_renderer.cpp place_frame): (x, y, w, h)."""
    if (gw, gh) == (ow, oh):
        return 0, 0, ow, oh
    if ow * gh <= oh * gw:
        w, h = ow, max(1, (gh * ow + gw // 2) // gw)
    else:
        w, h = max(1, (gw * oh + gh // 2) // gh), oh
    return (ow - w) // 2, (oh - h) // 2, w, h


def _scaled_axis(src, dst, value, filt):
    """One axis of the pattern (value(t) of source texel t) sampled at each of dst output
    positions, as compose.comp does it: "nearest" takes texel q*src/dst, "bilinear" blends texels
    floor(s) and floor(s)+1 at s = (q + 0.5) src/dst - 0.5, clamped to the frame. Floats 0..255."""
    out = []
    for q in range(dst):
        if filt == "nearest":
            out.append(float(value(q * src // dst)))
            continue
        s = (q + 0.5) * src / dst - 0.5
        t0 = int(s // 1)
        f = s - t0
        a, b = value(min(max(t0, 0), src - 1)), value(min(max(t0 + 1, 0), src - 1))
        out.append(a * (1 - f) + b * f)
    return out


def scaled_frame_problems(img, gw, gh, head, n=0, filters=("bilinear", "nearest"), tolerance=1, limit=4,
                          cursor=None):
    """Checks an output showing frame n of a gw x gh guest head scaled into it with its aspect
    kept: every pixel outside place_frame's rectangle exactly black, every pixel inside within
    `tolerance` of the pattern sampled with one of `filters` (the pattern is separable: R follows
    x, G follows y, B is constant, so each axis is computed once). `cursor` (x, y, size) is an
    opaque white square drawn over the frame at guest pixels x, y: its scaled rectangle (a pixel
    of slack around it for the blended edges) must be white in its middle and is not compared.
    Returns (filter that fits or None, list of problems); no problems for the first filter that
    fits."""
    W, H = img.width, img.height
    x0, y0, w, h = place_frame(gw, gh, W, H)
    skip = None
    if cursor:
        cx, cy, size = cursor
        skip = (x0 + cx * w // gw - 1, y0 + cy * h // gh - 1,
                x0 + -(-(cx + size) * w // gw) + 1, y0 + -(-(cy + size) * h // gh) + 1)
        mid = ((skip[0] + skip[2]) // 2, (skip[1] + skip[3]) // 2)
        if img.pixel(*mid) != (255, 255, 255):
            return None, ["no cursor: (%d,%d), the middle of the scaled cursor square, is %s" % (mid + (img.pixel(*mid),))]
    blue = (16 * n + 85 * head) % 256
    bar_problems = []
    zero_row = bytes(3 * W)
    for y in range(H):
        row = img.row(y)
        if y < y0 or y >= y0 + h:
            if row != zero_row:
                x = next(i // 3 for i, v in enumerate(row) if v)
                bar_problems.append("bar row %d is not black: (%d,%d) is %s" % (y, x, y, img.pixel(x, y)))
        else:
            if row[:3 * x0] != bytes(3 * x0):
                bar_problems.append("row %d: the bar left of x %d is not black" % (y, x0))
            if row[3 * (x0 + w):] != bytes(3 * (W - x0 - w)):
                bar_problems.append("row %d: the bar right of x %d is not black" % (y, x0 + w - 1))
        if len(bar_problems) >= limit:
            break
    best = None
    for filt in filters:
        reds = _scaled_axis(gw, w, lambda t: (t + n) % 256, filt)
        greens = _scaled_axis(gh, h, lambda t: (t + 64 * head) % 256, filt)
        good_reds = set()  # R rows already found close (nearly every row repeats the first)

        def close(channel, want):
            return all(abs(g - e) <= tolerance for g, e in zip(channel, want))

        count, bbox, examples, white = 0, None, [], 0
        for yy in range(y0, y0 + h):
            seg = img.row(yy)[3 * x0:3 * (x0 + w)]
            rs, gs, bs = seg[0::3], seg[1::3], seg[2::3]
            g_want = greens[yy - y0]
            if rs not in good_reds and close(rs, reds):
                good_reds.add(rs)
            if rs in good_reds and close(gs, [g_want] * w) and close(bs, [blue] * w):
                continue
            for i in range(w):
                px = (rs[i], gs[i], bs[i])
                want = (reds[i], g_want, blue)
                if close(px, want) or (skip and skip[0] <= x0 + i < skip[2] and skip[1] <= yy < skip[3]):
                    continue
                count += 1
                white += px == (255, 255, 255)
                x = x0 + i
                bbox = [x, yy, x, yy] if bbox is None else [min(bbox[0], x), bbox[1], max(bbox[2], x), yy]
                if len(examples) < 3:
                    examples.append("(%d,%d) is %s, the pattern gives (%.1f, %.1f, %d)" % ((x, yy, px) + want))
        if not count:
            return filt, bar_problems
        desc = "%d of %d pixels off by more than %d, bounding box x %d..%d, y %d..%d; first: %s%s" % (
            count, w * h, tolerance, bbox[0], bbox[2], bbox[1], bbox[3], "; ".join(examples),
            " (all of them white: a cursor drawn into the frame?)" if white == count else "")
        if best is None or count < best[1]:
            best = (filt, count, desc)
    return None, bar_problems + ["frame %dx%d at (%d,%d) vs the %s-filtered pattern (closest): %s" % (
        w, h, x0, y0, best[0], best[2])]


# --------------------------------------------------------------------------------------------
# wlr-randr


def parse_randr(text):
    """wlr-randr's output list: name -> (width, height) of the current mode ((0, 0): none)."""
    outputs = {}
    name = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            name = line.split()[0]
            outputs[name] = (0, 0)
        elif name and "(current)" in line:
            m = re.search(r"(\d+)x(\d+) px", line)
            if m:
                outputs[name] = (int(m.group(1)), int(m.group(2)))
    return outputs
