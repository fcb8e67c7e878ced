#include "compositor/device_cursor.hpp"

#include "compositor/scanout.hpp"

namespace vscanout::compositor {
namespace {

// The guest's hotspot, (0, 0) when it gave none.
std::pair<int32_t, int32_t> hotspot(const vgpu::PlaneInfo &c) {
	if (c.x_hot == vgpu::kNoHotspot) return {0, 0};
	return {static_cast<int32_t>(c.x_hot), static_cast<int32_t>(c.y_hot)};
}

} // namespace

std::unique_ptr<KmsCursorPath> KmsCursorPath::create(wlr_output *output, wlr_allocator *allocator,
                                                     core::HeadStats &stats) {
	auto plane = KmsCursor::create(output, allocator);
	if (!plane) return nullptr;
	return std::unique_ptr<KmsCursorPath>(new KmsCursorPath(std::move(plane), stats));
}

CursorPath::Shown KmsCursorPath::set_image(const render::ShownPlane &c, const render::ShownPlane &p,
                                           const render::FrameMap &map) {
	stats_.cursor_images++;
	if (!c.visible() || !p.visible() || !c.buffer->cpu_data()) {
		plane_->hide();
		return Shown::none;
	}
	const auto [hx, hy] = hotspot(c.info);
	c.buffer->begin_read();
	const bool ok = plane_->set_image(c.buffer->cpu_data() + c.info.offset, c.info.stride, c.info.width, c.info.height,
	                                  hx, hy, map.scale_num(), map.scale_den());
	c.buffer->end_read();
	if (!ok) {
		plane_->hide();
		return Shown::refused;
	}
	return Shown::yes;
}

void KmsCursorPath::move(const render::ShownPlane &c, const render::FrameMap &map) {
	if (!c.visible() || !c.buffer->cpu_data() || !map.valid()) return;
	stats_.cursor_moves++;
	const auto [hx, hy] = hotspot(c.info);
	const render::Point at = map.to_output(int64_t{c.info.x_pos} + hx, int64_t{c.info.y_pos} + hy);
	plane_->move(at.x, at.y);
}

ParentCursorPath::ParentCursorPath(wlr_output *output, core::HeadStats &stats)
    : output_(output), cursor_(wlr_output_cursor_create(output)), stats_(stats) {}

ParentCursorPath::~ParentCursorPath() {
	if (cursor_) wlr_output_cursor_destroy(cursor_);
}

CursorPath::Shown ParentCursorPath::set_image(const render::ShownPlane &c, const render::ShownPlane &,
                                              const render::FrameMap &) {
	if (!cursor_) return Shown::refused;
	stats_.cursor_images++;
	if (!c.visible() || !c.buffer->cpu_data()) {
		// The parent's pointer shows no cursor, as the guest shows none: still this path.
		wlr_output_cursor_set_buffer(cursor_, nullptr, 0, 0);
		return Shown::yes;
	}
	const auto [hx, hy] = hotspot(c.info);
	c.buffer->begin_read();
	wlr_buffer *image =
	    make_pixel_buffer(c.buffer->cpu_data() + c.info.offset, c.info.stride, c.info.width, c.info.height);
	c.buffer->end_read();
	// wlroots renders it into a cursor buffer of the parent's and keeps what it needs.
	wlr_output_cursor_set_buffer(cursor_, image, hx, hy);
	if (image) wlr_buffer_drop(image);
	if (output_->hardware_cursor != cursor_) {
		wlr_output_cursor_set_buffer(cursor_, nullptr, 0, 0); // not a software cursor of wlroots'
		return Shown::refused;
	}
	return Shown::yes;
}

} // namespace vscanout::compositor
