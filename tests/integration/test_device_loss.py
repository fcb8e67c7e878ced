"""GPU device loss (docs/design.md, "Device loss"): VK_ERROR_DEVICE_LOST is logged once, the
Vulkan context, the renderer and every head's imports and output targets are made again, the
heads show their frames again and go on, and no fd is left behind.

The loss is injected: the sim's `lose-device` control command makes the renderer's next queue
submit report VK_ERROR_DEVICE_LOST, as a GPU hang would; VSCANOUT_FAIL_DEVICE_RECREATE=N makes
the next N attempts at a new device fail (no signal meanwhile, retries with backoff).
"""

import pytest

from conftest import guest_frame, wait_until

MODES = {0: (320, 240), 1: (256, 192)}
SOURCE = "sim:heads=2,fps=0,modes=320x240/256x192,buffers=2"


def command(fifo, text):
    with open(fifo, "w") as f:
        f.write(text)


def wait_frames(vs, frames):
    for head, n in frames.items():
        w, h = MODES[head]
        vs.wait_capture(head, guest_frame(w, h, head=head, n=n))


@pytest.mark.sanitizer
def test_a_lost_device_is_made_again_and_the_heads_go_on(vscanout, tmp_path):
    fifo = str(tmp_path / "control")
    vs = vscanout(source=f"{SOURCE},control={fifo}")
    # Both buffers of each head's ring imported (cached): the fd count to come back to.
    command(fifo, "flip *\nflip *\n")
    wait_frames(vs, {0: 2, 1: 2})
    vs.settle()
    fds_before = vs.fd_count()
    before = vs.stats()

    # Head 1 flips: its draw's submit reports the loss.
    command(fifo, "lose-device\nflip 1\n")
    vs.wait_log(r"VK_ERROR_DEVICE_LOST from vkQueueSubmit")
    vs.wait_log(r"a new device \(.*\) replaces the lost one")
    # The frames the guest shows, again: head 0 as before the loss, head 1 the frame it flipped to.
    wait_frames(vs, {0: 2, 1: 3})
    # The next generation renders on the new device (and both buffers are imported again).
    command(fifo, "flip *\n")
    wait_frames(vs, {0: 3, 1: 4})
    after = vs.settle()
    for head in (0, 1):
        assert after[head]["imports"] > before[head]["imports"], (
            f"HEAD-{head}: its buffers were not imported again: {before[head]} -> {after[head]}")
        assert after[head]["renders"] > before[head]["renders"], (before[head], after[head])
    fds_after = vs.fd_count()
    assert fds_after == fds_before, f"fds went from {fds_before} to {fds_after} over a device loss"
    log = vs.log()
    assert log.count("was lost") == 1, f"the loss is logged once: {log[-2000:]}"
    vs.stop()


def test_losses_again_and_again_leak_nothing(vscanout, tmp_path):
    """Five losses in a row, each recovered: the fd count stays where it was."""
    fifo = str(tmp_path / "control")
    vs = vscanout(source=f"{SOURCE},control={fifo}")
    command(fifo, "flip *\nflip *\n")
    wait_frames(vs, {0: 2, 1: 2})
    vs.settle()
    fds_before = vs.fd_count()
    for i in range(1, 6):
        command(fifo, "lose-device\nflip 0\n")
        vs.wait_log(r"a new device \(.*\) replaces the lost one", count=i)
        wait_frames(vs, {0: 2 + i})
    command(fifo, "flip *\n")  # both buffers of each ring imported again
    wait_frames(vs, {0: 8, 1: 3})
    vs.settle()
    assert vs.fd_count() == fds_before, f"fds went from {fds_before} to {vs.fd_count()} over 5 losses"
    assert vs.log().count("was lost") == 5
    vs.stop()


def test_no_signal_while_a_new_device_cannot_be_made(vscanout, tmp_path):
    """The first four attempts at a new device fail: the heads show the no-signal background,
    the failure is logged once, and the retries (with backoff) end with the frames back."""
    fifo = str(tmp_path / "control")
    vs = vscanout(source=f"{SOURCE},control={fifo}", env={"VSCANOUT_FAIL_DEVICE_RECREATE": "4"})
    wait_frames(vs, {0: 0, 1: 0})
    command(fifo, "lose-device\nflip 1\n")
    vs.wait_log(r"a new device cannot be made")

    def background():
        img = vs.capture(0)
        return img.size == MODES[0] and all(img.pixel(x, y) == (32, 32, 48) for x, y in ((0, 0), (100, 100)))

    # The retries wait 250 + 500 + 1000 + 2000 ms: the background shows in between.
    wait_until(background, 3, interval=0.05, what="the no-signal background")
    vs.wait_log(r"a new device \(.*\) replaces the lost one", timeout=20)
    wait_frames(vs, {0: 0, 1: 1})
    log = vs.log()
    assert log.count("a new device cannot be made") == 1, log[-2000:]
    vs.stop()
