#include "render/geometry.hpp"

#include <algorithm>

namespace vscanout::render {

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

Rect cursor_rect(const Rect &place, uint32_t gw, uint32_t gh, int32_t x, int32_t y, uint32_t cw, uint32_t ch) {
	const double sx = gw ? double(place.w) / gw : 1.0;
	const double sy = gh ? double(place.h) / gh : 1.0;
	return {place.x + static_cast<int32_t>(x * sx), place.y + static_cast<int32_t>(y * sy),
	        std::max(1, static_cast<int32_t>(cw * sx + 0.5)), std::max(1, static_cast<int32_t>(ch * sy + 0.5))};
}

} // namespace vscanout::render
