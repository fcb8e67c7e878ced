// Puts a head's fence wait (core::HeadTracker::fence_fd) on the event loop: the head polls again
// the moment the fence signals, or when the wait becomes late (the tracker then logs it). No
// head ever blocks on a fence, so a fence that never signals costs only its own head
// (docs/design.md, "Fences").
#pragma once

#include <wayland-server-core.h>

#include <cstdint>
#include <functional>

namespace vscanout::compositor {

class FenceWatch {
public:
	FenceWatch(wl_event_loop *loop, std::function<void()> wake) : loop_(loop), wake_(std::move(wake)) {}
	~FenceWatch();
	FenceWatch(const FenceWatch &) = delete;
	FenceWatch &operator=(const FenceWatch &) = delete;

	// Follows the tracker's wait after each of its polls: its fence_fd(), the number of the wait
	// (stats().fence_waits) and fence_timeout_in_ms().
	template <class Tracker> void update(const Tracker &tracker) {
		update(tracker.fence_fd(), tracker.stats().fence_waits, tracker.fence_timeout_in_ms());
	}
	void update(int fd, uint64_t wait, int timeout_ms);

private:
	static int on_readable(int fd, uint32_t mask, void *data);
	static int on_timer(void *data);
	void stop_fd();

	wl_event_loop *loop_;
	std::function<void()> wake_;
	wl_event_source *fd_source_ = nullptr;
	wl_event_source *timer_ = nullptr;
	// The wait being watched, by its number (core::HeadStats::fence_waits): fd numbers are reused.
	uint64_t watched_ = 0;
	bool waking_ = false;
};

} // namespace vscanout::compositor
