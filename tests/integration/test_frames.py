"""Static and flipping guests: what each head shows, pixel for pixel, and what wlr-randr lists."""

import time

import pytest

from conftest import guest_frame


@pytest.mark.sanitizer
def test_static_two_heads_default_modes(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0")
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=0))
    vs.wait_capture(1, guest_frame(1024, 768, head=1, n=0))
    vs.stop()


def test_static_three_heads_modes_cycle(vscanout):
    vs = vscanout(source="sim:heads=3,fps=0,modes=640x480/800x600/320x200")
    vs.wait_outputs({"HEAD-0": (640, 480), "HEAD-1": (800, 600), "HEAD-2": (320, 200)})
    vs.wait_capture(0, guest_frame(640, 480, head=0, n=0))
    vs.wait_capture(1, guest_frame(800, 600, head=1, n=0))
    vs.wait_capture(2, guest_frame(320, 200, head=2, n=0))
    vs.stop()


@pytest.mark.sanitizer
def test_cursor_clipped_at_edges(vscanout):
    """Hotspot (2, 2) on 98x98 puts the image's top-left at (-2, -2): positions are signed and the
    cursor is clipped at the top/left edge; on 110x105 it is clipped at the right/bottom edge."""
    vs = vscanout(source="sim:heads=2,fps=0,modes=98x98/110x105")
    vs.wait_outputs({"HEAD-0": (98, 98), "HEAD-1": (110, 105)})
    vs.wait_capture(0, guest_frame(98, 98, head=0, n=0))
    vs.wait_capture(1, guest_frame(110, 105, head=1, n=0))
    vs.stop()


def test_flipping_then_static_shows_last_frame(vscanout):
    vs = vscanout(source="sim:heads=2,fps=200,flips=50")
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=50))
    vs.wait_capture(1, guest_frame(1024, 768, head=1, n=50))
    # Settled: once stopped, the frame stays.
    s = vs.settle()
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=50), timeout=2)
    assert s[0]["generation"] == vs.stats()[0]["generation"]
    vs.stop()


def test_static_guest_costs_nothing(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0")
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    before = vs.settle()
    time.sleep(1.2)  # no grim in between: a capture itself makes one commit
    after = vs.stats()
    for head in (0, 1):
        for key in ("commits", "renders", "generation", "imports", "buffer_opens"):
            assert after[head][key] == before[head][key], (
                f"head {head}: {key} went from {before[head][key]} to {after[head][key]} on a static guest")
    vs.stop()


def test_poll_refresh_repaints_static_guest(vscanout):
    """--refresh poll:30 repaints a static guest: the default's stillness is policy, not accident."""
    vs = vscanout(source="sim:heads=2,fps=0", args=["--refresh", "poll:30"])
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    before = vs.stats()
    time.sleep(1.0)
    after = vs.stats()
    for head in (0, 1):
        grew = after[head]["commits"] - before[head]["commits"]
        # 30 Hz for 1 s; lavapipe on a busy 2-core box may drop some, but not most.
        assert grew >= 5, f"head {head}: commits grew by {grew} in 1 s under --refresh poll:30"
        assert after[head]["renders"] > before[head]["renders"]
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=0))
    vs.stop()
