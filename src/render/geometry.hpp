// Output geometry shared by the GPU (compose.comp) and CPU (cpu_compose) compose paths.
#pragma once

#include <cstdint>

#include "render/frame_map.hpp" // Rect, place_frame

namespace vscanout::render {

// Where a cursor image of cw x ch whose top-left is at (x, y) in guest coordinates lands on the
// output, with the guest placed at `place` (gw x gh, or 0 x 0 for the no-signal frame: 1:1 from
// the output's corner). Both compose paths scale the cursor into this rectangle by nearest
// texel: texel = q * image size / rectangle size.
Rect cursor_rect(const Rect &place, uint32_t gw, uint32_t gh, int32_t x, int32_t y, uint32_t cw, uint32_t ch);

} // namespace vscanout::render
