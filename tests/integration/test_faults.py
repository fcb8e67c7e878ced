"""Fault injection: every bad plane is refused, logged once and counted once, and the head keeps
its last good frame."""

import re

import pytest

from conftest import guest_frame

W, H = 640, 480

# class -> (plane, regex the log line's reason must match, is a rejection)
FAULTS = {
    "fourcc-unknown": ("primary", r"drm_format \S+.* is not a known fourcc", True),
    "fourcc-unsupported": ("primary", r"drm_format \S+.* is not supported", True),
    "width-zero": ("primary", r"width 0 is outside", True),
    "height-zero": ("primary", r"height 0 is outside", True),
    "too-large": ("primary", r"width 16385 is outside", True),
    "stride": ("primary", r"stride \d+ is below width", True),
    "size": ("primary", r"bytes is above size \d+", True),
    "offset": ("primary", r"offset \d+ \+ size \d+ is beyond", True),
    "cursor-too-large": ("cursor", r"cursor 1024x1024 is larger than", True),
    "hotspot": ("cursor", None, False),
}

# Any line that reports a plane as refused; the backing check (offset) also names the buffer id.
REFUSED = r"plane rejected(?: \(buffer id \d+\))?: "

# `cursor 0 on` on a cursor that is on changes nothing but makes vscanout query the head again:
# the same bad plane must not be logged or counted twice.
SCRIPT = """\
400 fault 0 {cls}
700 cursor 0 on
1000 cursor 0 on
2200 fault 0 none
2400 cursor 0 on
2600 fault 0 none
"""


# The sanitizer run takes one primary rejection, the backing-check rejection and the cursor ones.
SANITIZED = {"stride", "offset", "cursor-too-large", "hotspot"}


@pytest.mark.parametrize("cls", [pytest.param(c, marks=pytest.mark.sanitizer) if c in SANITIZED else c
                                 for c in FAULTS])
def test_fault_keeps_last_good_frame(vscanout, cls):
    plane, reason, rejection = FAULTS[cls]
    good = guest_frame(W, H, head=0, n=0)
    vs = vscanout(source=f"sim:heads=1,fps=0,modes={W}x{H}", script=SCRIPT.format(cls=cls))
    vs.wait_outputs({"HEAD-0": (W, H)})

    vs.wait_log(rf"sim: head 0 fault {re.escape(cls)}")
    if rejection:
        line = vs.wait_log(rf"head 0: {plane} {REFUSED}.*")[0]
        assert re.search(reason, line), f"log line does not name the reason /{reason}/: {line!r}"
    vs.check_alive()
    s = vs.stats()[0]
    assert s["rejected"] == (1 if rejection else 0), s
    vs.wait_capture(0, good)

    # After the re-queries and `fault 0 none`: still one log line, one count, the good frame.
    vs.wait_log(r"sim: head 0 fault none", count=2)
    vs.check_alive()
    refused = re.findall(REFUSED, vs.log())
    assert len(refused) == (1 if rejection else 0), f"{len(refused)} refusal log lines: {refused}"
    s = vs.stats()[0]
    assert s["rejected"] == (1 if rejection else 0), s
    assert s["query_errors"] == 0, s
    vs.wait_capture(0, good)
    vs.stop()
