// Where a guest frame sits on an output, and the one mapping between guest pixels and output
// pixels: the renderer draws the frame into frame(), the KMS cursor is placed and scaled with it,
// and pointer input goes back from the output to the guest through it.
#pragma once

#include <cstdint>

namespace vscanout::render {

struct Rect {
	int32_t x = 0, y = 0, w = 0, h = 0;
	bool operator==(const Rect &) const = default;
};

// Where a guest frame of gw x gh lands on an output of ow x oh: the largest rectangle with the
// guest's aspect ratio, centred; exactly the output when the sizes match.
Rect place_frame(uint32_t gw, uint32_t gh, uint32_t ow, uint32_t oh);

struct Point {
	int32_t x = 0, y = 0;
	bool operator==(const Point &) const = default;
};

class FrameMap {
public:
	FrameMap(uint32_t guest_width, uint32_t guest_height, uint32_t output_width, uint32_t output_height);

	// False when a size is empty: nothing maps.
	bool valid() const { return frame_.w > 0 && frame_.h > 0; }
	// The frame on the output (letterboxed when the aspect ratios differ).
	const Rect &frame() const { return frame_; }
	// The frame's scale, output pixels per guest pixel, as a ratio (the same both ways, up to
	// rounding of the frame's size): scale_num() / scale_den().
	uint32_t scale_num() const { return static_cast<uint32_t>(frame_.w); }
	uint32_t scale_den() const { return guest_w_; }

	// A guest position (guest pixels) on the output, rounded to the nearest output pixel as the
	// frame's pixels are.
	Point to_output(int64_t guest_x, int64_t guest_y) const;
	// The guest pixel under a point of the output (output pixels, fractions allowed), clamped to
	// the frame: a point on the letterbox maps to the frame's nearest edge.
	Point to_guest(double output_x, double output_y) const;
	// A guest position moved by a motion in output pixels, clamped to the frame.
	Point move(Point guest, double output_dx, double output_dy) const;

private:
	uint32_t guest_w_, guest_h_;
	Rect frame_;
};

} // namespace vscanout::render
