// The Source interface: where guest heads and their planes come from.
// A source knows nothing of wlroots or Vulkan. It is driven by the compositor's event loop:
// it hands out file descriptors to watch; when one is readable the loop calls dispatch().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "vgpu/plane.hpp"

namespace vscanout::vgpu {

struct SourceEvents {
	std::function<void(uint32_t head)> head_added;
	std::function<void(uint32_t head)> head_removed;
	// Something about this head may have changed (a flip, a mode set, a damage notice):
	// query its planes now rather than at the next poll tick.
	std::function<void(uint32_t head)> head_changed;
	// The source is done for good (QEMU exited and --once was given, the sim's quit command):
	// vscanout exits with status 0, logging end_reason() where the source gives one.
	std::function<void()> ended;
	// Fault injection for the layers after the source (the sim's `lose-device`: the renderer's
	// next queue submit reports VK_ERROR_DEVICE_LOST). Tests only.
	std::function<void(const std::string &what)> inject;
};

class Source {
public:
	virtual ~Source() = default;

	virtual std::string name() const = 0;

	// Why the source ended (SourceEvents::ended), for the exit log; empty where the source logged
	// it itself.
	virtual std::string end_reason() const { return {}; }

	// Heads present now.
	virtual std::vector<uint32_t> heads() const = 0;

	// Current state of one plane. A disabled or unsupported plane is a success.
	virtual Result<PlaneInfo> query(uint32_t head, PlaneType type) = 0;

	// A new descriptor for the buffer a plane names (VFIO_DEVICE_GET_GFX_DMABUF).
	virtual Result<GuestBuffer> open_buffer(const PlaneInfo &plane) = 0;

	// Damage notices: a counter that advances when the guest says it drew into the buffer
	// it is showing. Sources with no such notices return 0 forever.
	virtual uint64_t damage_seq(uint32_t head) const { return 0; }

	// The primary's rows the damage notices after count `since` touched (the union of them; an
	// empty span: none), for the copy import to copy only those (docs/design.md, "Damage rows").
	// Nothing: unknown, the whole frame. Sources that cannot tell answer nothing (VFIO, sim). A
	// source may forget what came before `since` (its one reader, the head's tracker, asks from
	// later counts only): asked from before that again, it answers nothing.
	virtual std::optional<RowSpan> damage_rows(uint32_t head, uint64_t since) { return std::nullopt; }

	// Whether content can change in place without a new buffer id or a damage notice
	// (VFIO region planes): the core then hashes the plane each poll.
	virtual bool needs_content_watch(uint32_t head) const { return false; }

	// False once a head's device is gone for good: the core then drops everything it imported.
	virtual bool connected(uint32_t head) const { return true; }

	// Descriptors to watch for readability, and what to do when one is readable.
	virtual std::vector<int> watch_fds() const { return {}; }
	virtual void dispatch(int fd) {}

	// Sources without change notices are polled at this rate (0: never polled on a timer).
	virtual int poll_hz() const { return 0; }

	// Input for the guest behind a head, for sources that can deliver it (QEMU); others ignore
	// it. Keys and buttons are Linux evdev codes (KEY_*, BTN_*); positions are guest pixels.
	virtual bool takes_input() const { return false; }
	virtual void key(uint32_t head, uint32_t evdev_code, bool pressed) {}
	virtual void pointer_button(uint32_t head, uint32_t evdev_button, bool pressed) {}
	virtual void pointer_to(uint32_t head, uint32_t x, uint32_t y) {}
	virtual void pointer_by(uint32_t head, int32_t dx, int32_t dy) {}
	virtual void pointer_wheel(uint32_t head, int32_t steps) {} // > 0: down
	// Whether the guest's pointer is absolute (a tablet): positions then go as pointer_to.
	virtual bool pointer_absolute(uint32_t head) const { return false; }
	// The window showing a head got this size; a guest may follow with a mode change.
	virtual void window_resized(uint32_t head, uint32_t width, uint32_t height) {}

	void set_events(SourceEvents events) { events_ = std::move(events); }

protected:
	SourceEvents events_;
};

} // namespace vscanout::vgpu
