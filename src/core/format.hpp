// DRM fourcc formats vscanout knows: which it can show, and how their pixels are laid out.
#pragma once

#include <cstdint>
#include <string>

namespace vscanout::core {

// How the compose shader unpacks a pixel (shaders/compose.comp has the same numbers).
enum class PixelLayout : uint32_t {
	xrgb8888 = 0, // B G R X in memory
	argb8888 = 1, // B G R A
	xbgr8888 = 2, // R G B X
	abgr8888 = 3, // R G B A
	rgb565 = 4,
};

struct FormatInfo {
	uint32_t fourcc;
	const char *name;
	bool supported;           // vscanout can show it
	uint32_t bytes_per_pixel; // 0 for formats vscanout does not show
	bool has_alpha;
	PixelLayout layout;
};

// nullptr: not a fourcc vscanout has heard of.
const FormatInfo *find_format(uint32_t fourcc);

// "XR24 (XRGB8888)" or "0x5a5a5a39" for a value that is no fourcc.
std::string describe_fourcc(uint32_t fourcc);

} // namespace vscanout::core
