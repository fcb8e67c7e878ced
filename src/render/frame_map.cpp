#include "render/frame_map.hpp"

#include <algorithm>

namespace vscanout::render {
namespace {

int32_t clamp_to(double v, uint32_t size) {
	return static_cast<int32_t>(std::clamp(v, 0.0, static_cast<double>(size - 1)));
}

} // namespace

Rect place_frame(uint32_t gw, uint32_t gh, uint32_t ow, uint32_t oh) {
	if (gw == 0 || gh == 0 || ow == 0 || oh == 0) return {};
	if (gw == ow && gh == oh) return {0, 0, static_cast<int32_t>(ow), static_cast<int32_t>(oh)};
	// Compare ow/gw with oh/gh in integers: the narrower ratio decides.
	uint64_t w, h;
	if (uint64_t{ow} * gh <= uint64_t{oh} * gw) {
		w = ow;
		h = std::max<uint64_t>(1, (uint64_t{gh} * ow + gw / 2) / gw);
	} else {
		h = oh;
		w = std::max<uint64_t>(1, (uint64_t{gw} * oh + gh / 2) / gh);
	}
	return {static_cast<int32_t>((ow - w) / 2), static_cast<int32_t>((oh - h) / 2), static_cast<int32_t>(w),
	        static_cast<int32_t>(h)};
}

FrameMap::FrameMap(uint32_t guest_width, uint32_t guest_height, uint32_t output_width, uint32_t output_height)
    : guest_w_(guest_width), guest_h_(guest_height),
      frame_(place_frame(guest_width, guest_height, output_width, output_height)) {}

Point FrameMap::to_output(int64_t guest_x, int64_t guest_y) const {
	if (!valid()) return {};
	const int64_t gw = guest_w_, gh = guest_h_;
	return {static_cast<int32_t>(frame_.x + (2 * guest_x * frame_.w + gw) / (2 * gw)),
	        static_cast<int32_t>(frame_.y + (2 * guest_y * frame_.h + gh) / (2 * gh))};
}

Point FrameMap::to_guest(double output_x, double output_y) const {
	if (!valid()) return {};
	return {clamp_to((output_x - frame_.x) * guest_w_ / frame_.w, guest_w_),
	        clamp_to((output_y - frame_.y) * guest_h_ / frame_.h, guest_h_)};
}

Point FrameMap::move(Point guest, double output_dx, double output_dy) const {
	if (!valid()) return {};
	return {clamp_to(guest.x + output_dx * guest_w_ / frame_.w, guest_w_),
	        clamp_to(guest.y + output_dy * guest_h_ / frame_.h, guest_h_)};
}

} // namespace vscanout::render
