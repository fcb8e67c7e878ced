// The guest cursor on a KMS cursor plane.
//
// This drives the output's cursor interface (wlr_output_impl set_cursor/move_cursor, what
// wlr_output_cursor itself uses) with buffers of our own, because the image is scaled with the
// guest frame and cropped to its visible part here, from the guest's pixels: ARGB8888 dumb buffers
// of the plane's largest size, from the output's allocator (LINEAR, which cursor planes take), two
// of them so the plane never scans out a buffer being written.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "compositor/wlr.hpp"

namespace vscanout::compositor {

class KmsCursor {
public:
	// nullptr when the output has no cursor plane (or no way to reach it).
	static std::unique_ptr<KmsCursor> create(wlr_output *output, wlr_allocator *allocator);
	~KmsCursor();
	KmsCursor(const KmsCursor &) = delete;
	KmsCursor &operator=(const KmsCursor &) = delete;

	// Shows an ARGB8888 image (premultiplied, as the guest has it) scaled by num/den with nearest
	// sampling; the hotspot scales with it. Only its visible (non-zero) part is placed on the
	// plane, at the same place on screen. False when that part, scaled, does not fit the plane
	// or the plane refused it: then the caller draws the cursor itself.
	bool set_image(const uint8_t *pixels, uint32_t stride, uint32_t width, uint32_t height, int32_t hot_x,
	               int32_t hot_y, uint32_t num, uint32_t den);
	void hide();
	// Places the hotspot at (x, y) in output pixels.
	bool move(int32_t x, int32_t y);

	int width() const { return width_; }
	int height() const { return height_; }

private:
	KmsCursor(wlr_output *output, int width, int height) : output_(output), width_(width), height_(height) {}

	wlr_output *output_;
	int width_, height_;
	std::array<wlr_buffer *, 2> buffers_{};
	size_t next_ = 0;
	bool shown_ = false;
};

} // namespace vscanout::compositor
