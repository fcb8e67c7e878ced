#include "compositor/fence_watch.hpp"

#include <algorithm>

namespace vscanout::compositor {

FenceWatch::~FenceWatch() {
	stop_fd();
	if (timer_) wl_event_source_remove(timer_);
}

void FenceWatch::stop_fd() {
	if (fd_source_) wl_event_source_remove(fd_source_);
	fd_source_ = nullptr;
}

void FenceWatch::update(int fd, uint64_t wait, int timeout_ms) {
	if (fd < 0) {
		stop_fd();
		watched_ = 0;
	} else if (wait != watched_) {
		stop_fd();
		watched_ = wait;
		// wayland-server watches a duplicate of fd: the tracker keeps its own.
		fd_source_ = wl_event_loop_add_fd(loop_, fd, WL_EVENT_READABLE, on_readable, this);
	}
	const int ms = timeout_ms;
	if (ms >= 0 && !timer_) timer_ = wl_event_loop_add_timer(loop_, on_timer, this);
	if (timer_) wl_event_source_timer_update(timer_, ms >= 0 ? std::max(ms, 1) : 0);
}

int FenceWatch::on_readable(int, uint32_t, void *data) {
	auto *self = static_cast<FenceWatch *>(data);
	const uint64_t wait = self->watched_;
	self->wake_();
	// Still the same wait (the head could not take the frame this time, e.g. its query failed):
	// a readable fence would wake us again at once, for ever. The head's next poll settles it.
	if (self->watched_ == wait) self->stop_fd();
	return 0;
}

int FenceWatch::on_timer(void *data) {
	static_cast<FenceWatch *>(data)->wake_();
	return 0;
}

} // namespace vscanout::compositor
