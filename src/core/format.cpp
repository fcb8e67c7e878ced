#include "core/format.hpp"

#include <drm_fourcc.h>

#include <cctype>
#include <cstdio>

namespace vscanout::core {
namespace {

constexpr FormatInfo kFormats[] = {
    {DRM_FORMAT_XRGB8888, "XRGB8888", true, 4, false, PixelLayout::xrgb8888},
    {DRM_FORMAT_ARGB8888, "ARGB8888", true, 4, true, PixelLayout::argb8888},
    {DRM_FORMAT_XBGR8888, "XBGR8888", true, 4, false, PixelLayout::xbgr8888},
    {DRM_FORMAT_ABGR8888, "ABGR8888", true, 4, true, PixelLayout::abgr8888},
    {DRM_FORMAT_RGB565, "RGB565", true, 2, false, PixelLayout::rgb565},
    // Real formats a vGPU may report that vscanout does not show (yet).
    {DRM_FORMAT_BGRX8888, "BGRX8888", false, 0, false, {}},
    {DRM_FORMAT_BGRA8888, "BGRA8888", false, 0, false, {}},
    {DRM_FORMAT_XRGB2101010, "XRGB2101010", false, 0, false, {}},
    {DRM_FORMAT_XBGR2101010, "XBGR2101010", false, 0, false, {}},
    {DRM_FORMAT_RGB888, "RGB888", false, 0, false, {}},
    {DRM_FORMAT_BGR888, "BGR888", false, 0, false, {}},
    {DRM_FORMAT_C8, "C8", false, 0, false, {}},
    {DRM_FORMAT_XRGB1555, "XRGB1555", false, 0, false, {}},
    {DRM_FORMAT_NV12, "NV12", false, 0, false, {}},
    {DRM_FORMAT_YUYV, "YUYV", false, 0, false, {}},
    {DRM_FORMAT_XBGR16161616F, "XBGR16161616F", false, 0, false, {}},
};

} // namespace

const FormatInfo *find_format(uint32_t fourcc) {
	for (const auto &f : kFormats)
		if (f.fourcc == fourcc) return &f;
	return nullptr;
}

std::string describe_fourcc(uint32_t fourcc) {
	char code[5];
	bool printable = true;
	for (int i = 0; i < 4; i++) {
		code[i] = static_cast<char>((fourcc >> (8 * i)) & 0xff);
		if (!std::isprint(static_cast<unsigned char>(code[i]))) printable = false;
	}
	code[4] = 0;
	char buf[64];
	const FormatInfo *f = find_format(fourcc);
	if (f)
		std::snprintf(buf, sizeof buf, "%s (%s)", code, f->name);
	else if (printable)
		std::snprintf(buf, sizeof buf, "'%s' (0x%08x)", code, fourcc);
	else
		std::snprintf(buf, sizeof buf, "0x%08x", fourcc);
	return buf;
}

} // namespace vscanout::core
