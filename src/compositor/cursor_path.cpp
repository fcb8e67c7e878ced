#include "compositor/cursor_path.hpp"

#include "base/log.hpp"

namespace vscanout::compositor {

bool CursorPaths::use(CursorPath *path) {
	if (path == current_) return false;
	const bool redraw = path->in_frame() || current_->in_frame();
	current_ = path;
	return redraw;
}

bool CursorPaths::set_device(std::unique_ptr<CursorPath> device, bool use_now) {
	const bool redraw = use(&software_);
	device_ = std::move(device);
	refused_ = false;
	return (device_ && use_now ? use(device_.get()) : false) || redraw;
}

bool CursorPaths::offer_image(const render::ShownPlane &cursor, const render::ShownPlane &primary,
                              const render::FrameMap &map, const char *output) {
	if (!device_) return false;
	switch (device_->set_image(cursor, primary, map)) {
	case CursorPath::Shown::yes:
		if (refused_) VLOG_INFO("%s: the cursor is back on the %s cursor path", output, device_->name());
		refused_ = false;
		return use(device_.get());
	case CursorPath::Shown::refused:
		if (!refused_) VLOG_INFO("%s: %s; drawing it in software", output, device_->refusal());
		refused_ = true;
		return use(&software_);
	case CursorPath::Shown::none: break; // nothing to show: whichever path shows the cursor goes on
	}
	return false;
}

} // namespace vscanout::compositor
