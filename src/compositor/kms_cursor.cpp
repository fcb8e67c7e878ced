#include "compositor/kms_cursor.hpp"

#include <drm_fourcc.h>

#include <algorithm>
#include <cstring>

namespace vscanout::compositor {
namespace {

wlr_buffer *make_cursor_buffer(wlr_allocator *allocator, int width, int height) {
	uint64_t linear = DRM_FORMAT_MOD_LINEAR;
	wlr_drm_format format{};
	format.format = DRM_FORMAT_ARGB8888;
	format.len = format.capacity = 1;
	format.modifiers = &linear;
	return wlr_allocator_create_buffer(allocator, width, height, &format);
}

} // namespace

std::unique_ptr<KmsCursor> KmsCursor::create(wlr_output *output, wlr_allocator *allocator) {
	if (!wlr_output_is_drm(output) || !output->impl->set_cursor || !output->impl->move_cursor) return nullptr;
	if (!(allocator->buffer_caps & WLR_BUFFER_CAP_DMABUF)) return nullptr;
	if (output->impl->get_cursor_formats) {
		const wlr_drm_format_set *formats = output->impl->get_cursor_formats(output, WLR_BUFFER_CAP_DMABUF);
		if (!formats || !wlr_drm_format_set_has(formats, DRM_FORMAT_ARGB8888, DRM_FORMAT_MOD_LINEAR)) {
			wlr_log(WLR_INFO, "%s: the cursor plane takes no linear ARGB8888", output->name);
			return nullptr;
		}
	}
	// The plane's largest size: a guest cursor scaled up with the frame fits more often.
	int w = 64, h = 64;
	size_t n = 0;
	const wlr_output_cursor_size *sizes =
	    output->impl->get_cursor_sizes ? output->impl->get_cursor_sizes(output, &n) : nullptr;
	if (sizes && n > 0) {
		w = sizes[0].width, h = sizes[0].height;
		for (size_t i = 1; i < n; i++)
			if (int64_t{sizes[i].width} * sizes[i].height > int64_t{w} * h) w = sizes[i].width, h = sizes[i].height;
	}
	std::unique_ptr<KmsCursor> c(new KmsCursor(output, w, h));
	for (wlr_buffer *&b : c->buffers_) {
		b = make_cursor_buffer(allocator, w, h);
		if (!b) {
			wlr_log(WLR_ERROR, "%s: cannot allocate a %dx%d cursor buffer", output->name, w, h);
			return nullptr;
		}
	}
	return c;
}

KmsCursor::~KmsCursor() {
	if (shown_) output_->impl->set_cursor(output_, nullptr, 0, 0);
	for (wlr_buffer *b : buffers_)
		if (b) wlr_buffer_drop(b);
}

bool KmsCursor::set_image(const uint8_t *pixels, uint32_t stride, uint32_t width, uint32_t height, int32_t hot_x,
                          int32_t hot_y, uint32_t num, uint32_t den) {
	if (num == 0 || den == 0 || width == 0 || height == 0) return false;
	// Only the visible part goes to the plane: guest cursors are often a small arrow in a
	// 64x64 image, which scaled up would no longer fit a 64x64 plane.
	uint32_t x0 = width, y0 = height, x1 = 0, y1 = 0;
	for (uint32_t y = 0; y < height; y++) {
		const auto *row = reinterpret_cast<const uint32_t *>(pixels + size_t(y) * stride);
		for (uint32_t x = 0; x < width; x++)
			if (row[x]) {
				x0 = std::min(x0, x), x1 = std::max(x1, x + 1);
				y0 = std::min(y0, y), y1 = std::max(y1, y + 1);
			}
	}
	if (x0 >= x1) { // fully transparent: nothing to show
		hide();
		return true;
	}
	const uint64_t vw = x1 - x0, vh = y1 - y0;
	const uint64_t sw = (vw * num + den - 1) / den, sh = (vh * num + den - 1) / den;
	if (sw > static_cast<uint64_t>(width_) || sh > static_cast<uint64_t>(height_)) return false;
	wlr_buffer *buf = buffers_[next_];
	void *data = nullptr;
	uint32_t format = 0;
	size_t dst_stride = 0;
	if (!wlr_buffer_begin_data_ptr_access(buf, WLR_BUFFER_DATA_PTR_ACCESS_WRITE, &data, &format, &dst_stride))
		return false;
	auto *dst = static_cast<uint8_t *>(data);
	for (int y = 0; y < height_; y++) {
		auto *row = reinterpret_cast<uint32_t *>(dst + size_t(y) * dst_stride);
		std::fill(row, row + width_, 0u);
		if (static_cast<uint64_t>(y) >= sh) continue;
		const uint64_t sy = y0 + std::min<uint64_t>(vh - 1, uint64_t(y) * den / num);
		const auto *src = reinterpret_cast<const uint32_t *>(pixels + size_t(sy) * stride);
		for (uint64_t x = 0; x < sw; x++) row[x] = src[x0 + std::min<uint64_t>(vw - 1, x * den / num)];
	}
	wlr_buffer_end_data_ptr_access(buf);
	// The hotspot, relative to the visible part, scaled like the image.
	const int hx = static_cast<int>(((int64_t{hot_x} - x0) * 2 * num + den) / (2 * int64_t{den}));
	const int hy = static_cast<int>(((int64_t{hot_y} - y0) * 2 * num + den) / (2 * int64_t{den}));
	if (!output_->impl->set_cursor(output_, buf, hx, hy)) return false;
	next_ = (next_ + 1) % buffers_.size();
	shown_ = true;
	return true;
}

void KmsCursor::hide() {
	if (!shown_) return;
	output_->impl->set_cursor(output_, nullptr, 0, 0);
	shown_ = false;
}

bool KmsCursor::move(int32_t x, int32_t y) { return output_->impl->move_cursor(output_, x, y); }

} // namespace vscanout::compositor
