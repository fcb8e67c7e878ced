#include "render/geometry.hpp"

#include <algorithm>

namespace vscanout::render {

Rect cursor_rect(const Rect &place, uint32_t gw, uint32_t gh, int32_t x, int32_t y, uint32_t cw, uint32_t ch) {
	const double sx = gw ? double(place.w) / gw : 1.0;
	const double sy = gh ? double(place.h) / gh : 1.0;
	return {place.x + static_cast<int32_t>(x * sx), place.y + static_cast<int32_t>(y * sy),
	        std::max(1, static_cast<int32_t>(cw * sx + 0.5)), std::max(1, static_cast<int32_t>(ch * sy + 0.5))};
}

} // namespace vscanout::render
