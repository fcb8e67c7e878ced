"""Scripted guest events: mode changes, hot plug, disabled planes."""

import pytest

from conftest import guest_frame


@pytest.mark.sanitizer
def test_mode_change(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0", script="500 mode 0 800x600\n")
    vs.wait_outputs({"HEAD-0": (800, 600), "HEAD-1": (1024, 768)})
    vs.wait_capture(0, guest_frame(800, 600, head=0, n=0))
    vs.wait_capture(1, guest_frame(1024, 768, head=1, n=0))
    s = vs.stats()
    assert (s[0]["width"], s[0]["height"]) == (800, 600), s[0]
    vs.stop()


@pytest.mark.sanitizer
def test_plug_and_unplug(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0", script="500 plug 5 640x480\n1000 unplug 0\n")
    vs.wait_outputs({"HEAD-1": (1024, 768), "HEAD-5": (640, 480)})
    vs.wait_capture(5, guest_frame(640, 480, head=5, n=0))
    vs.wait_capture(1, guest_frame(1024, 768, head=1, n=0))
    with pytest.raises(AssertionError, match="grim"):
        vs.capture(0)
    s = vs.stats()
    assert sorted(s) == [1, 5], f"stats list heads {sorted(s)}"
    assert (s[5]["width"], s[5]["height"]) == (640, 480), s[5]
    vs.stop()


def test_disabled_planes_show_no_signal_until_enabled(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0", script="0 disable *\n2500 enable 0\n")
    vs.wait_outputs({"HEAD-0": (1024, 768), "HEAD-1": (1024, 768)})
    vs.wait_no_signal(0, (1024, 768), timeout=2)
    vs.wait_no_signal(1, (1024, 768), timeout=2)
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    vs.wait_capture(0, guest_frame(1280, 800, head=0, n=0))
    vs.wait_no_signal(1, (1024, 768))
    vs.stop()


def test_disable_after_enable_keeps_last_mode(vscanout):
    vs = vscanout(source="sim:heads=2,fps=0,modes=1280x800/800x600",
                  script="0 disable 1\n1500 enable 1\n3500 disable *\n")
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (1024, 768)})
    vs.wait_outputs({"HEAD-0": (1280, 800), "HEAD-1": (800, 600)})
    vs.wait_capture(1, guest_frame(800, 600, head=1, n=0), timeout=1.8)
    # Disabled again: "no signal" at the last mode, not back to 1024x768.
    vs.wait_no_signal(0, (1280, 800))
    vs.wait_no_signal(1, (800, 600))
    assert vs.randr() == {"HEAD-0": (1280, 800), "HEAD-1": (800, 600)}
    vs.stop()


def test_client_mode_requests_are_refused(vscanout):
    """Head modes follow the guest: output-management requests from clients fail."""
    vs = vscanout(source="sim:heads=1,fps=0,modes=320x200")
    vs.wait_outputs({"HEAD-0": (320, 200)})
    for args in (["--custom-mode", "640x480"], ["--off"]):
        r = vs.run_client(["wlr-randr", "--output", "HEAD-0"] + args)
        assert r.returncode != 0, f"wlr-randr {args} was accepted"
    assert vs.randr() == {"HEAD-0": (320, 200)}
    vs.wait_capture(0, guest_frame(320, 200, head=0, n=0))
    vs.stop()
