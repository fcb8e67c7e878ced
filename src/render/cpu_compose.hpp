// The scaled compose on the CPU, for Vulkan devices that are CPUs themselves (lavapipe): the
// guest primary bilinear-scaled into its place on the output, black bars around it, the software
// cursor blended over, written straight into the output's mapped memory. Same picture as
// shaders/compose.comp within 1 per channel (both round once, at the end); the bars exact.
//
// Separable and in fixed point: each source row a frame needs is scaled horizontally once
// (16-bit, 7 fraction bits, weights of 15 bits) into a two-row cache, and every output row is a
// vertical blend of two cached rows (the same), in cache order, top to bottom.
// AVX2 where the CPU has it, else plain C++ with the same integer arithmetic, bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "core/format.hpp"
#include "render/geometry.hpp"

namespace vscanout::render {

// Pixels in CPU memory: a guest plane (read) or an output buffer (written).
struct CpuImage {
	uint8_t *data = nullptr; // pixel (0, 0)
	uint32_t width = 0, height = 0;
	uint32_t stride = 0; // bytes
	core::PixelLayout layout = core::PixelLayout::xrgb8888;
};

struct CpuCursor {
	CpuImage image;
	Rect rect; // where it lands on the output and how large (render::cursor_rect)
};

enum class CpuKernel {
	best,   // AVX2 where the CPU has it, else scalar
	scalar, // plain C++ (what non-x86 CPUs run); same results
};

class CpuComposer {
public:
	explicit CpuComposer(CpuKernel kernel = CpuKernel::best);

	// Draws the whole output: `primary` scaled into `place` (inside the output), black (opaque)
	// around it, then the cursor, if any. The output's layout must be a 32-bit one. keep_bars:
	// the bars around `place` already hold opaque black (an earlier frame of the same geometry
	// in this buffer) and are not written again.
	void compose(const CpuImage &primary, const Rect &place, const CpuCursor *cursor, const CpuImage &out,
	             bool keep_bars = false);

	// Blends the cursor into `out` over what is there (the no-signal frame).
	static void blend_cursor(const CpuCursor &cursor, const CpuImage &out);

	bool simd() const { return avx2_; }

private:
	// Per output column: the source pixel pair (i, i + 1) and the second one's weight.
	struct Columns {
		uint32_t src_w = 0, dst_w = 0;
		std::vector<uint32_t> index;  // i
		std::vector<int16_t> weights; // w of 32768, four times (once per channel)
		std::vector<uint32_t> perm;   // per group of four columns: where their pairs are (AVX2)
	};
	const int16_t *horizontal_row(const CpuImage &src, uint32_t row, uint32_t keep);

	bool avx2_ = false;
	Columns cols_;
	std::vector<int16_t> rows_[2];
	int64_t row_tag_[2] = {-1, -1};
	std::vector<uint8_t> convert_; // a source row as B G R X bytes, one pixel of padding
};

} // namespace vscanout::render
