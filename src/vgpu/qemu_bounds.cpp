// The QEMU source's spec and the bounds of what QEMU sends: sizes, strides and bytes of the
// pixel calls, pixel formats (pure functions, unit-tested on synthetic input).
#include <drm_fourcc.h>

#include <algorithm>
#include <cstring>

#include "vgpu/qemu_source.hpp"

namespace vscanout::vgpu {
namespace {

constexpr uint32_t kPixmanX8R8G8B8 = 0x20020888, kPixmanA8R8G8B8 = 0x20028888;
constexpr uint32_t kPixmanR5G6B5 = 0x10020565, kPixmanX1R5G5B5 = 0x10020555; // 16- and 15-bpp guest modes
constexpr uint32_t kMaxSide = 16384;

// "N" -> N within 1..max.
bool parse_bound(const std::string &text, uint32_t max, uint32_t &out) {
	if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) return false;
	const unsigned long v = std::stoul(text);
	if (v < 1 || v > max) return false;
	out = static_cast<uint32_t>(v);
	return true;
}

// Takes trailing ",max-heads=N" / ",max-mib=M" off `rest` (a D-Bus address has commas of its
// own, but no such keys).
Status take_limits(std::string &rest, QemuLimits &limits) {
	for (;;) {
		const size_t comma = rest.rfind(',');
		const std::string last = comma == std::string::npos ? rest : rest.substr(comma + 1);
		const bool heads = last.rfind("max-heads=", 0) == 0, mib = last.rfind("max-mib=", 0) == 0;
		if (!heads && !mib) return Ok{};
		const std::string value = last.substr(last.find('=') + 1);
		if (heads && !parse_bound(value, 64, limits.max_heads))
			return fail("max-heads takes 1..64, not '" + value + "'");
		if (mib && !parse_bound(value, 4096, limits.max_mib)) return fail("max-mib takes 1..4096, not '" + value + "'");
		rest.erase(comma == std::string::npos ? 0 : comma);
	}
}

} // namespace

Result<QemuOptions> parse_qemu_spec(const std::string &spec) {
	QemuOptions o;
	if (spec == "qemu") return o;
	if (spec.rfind("qemu:", 0) != 0) return fail("expected qemu, qemu:<D-Bus address> or qemu:qmp:<QMP socket>");
	std::string rest = spec.substr(5);
	const bool had_rest = !rest.empty();
	if (Status s = take_limits(rest, o.limits); !s) return s.take_error();
	if (rest.rfind("qmp:", 0) == 0) {
		o.qmp = rest.substr(4);
		if (o.qmp.empty()) return fail("qemu:qmp: needs the path of QEMU's QMP socket");
		return o;
	}
	o.address = rest;
	if (!had_rest) return fail("qemu: needs a D-Bus address after the colon (e.g. unix:path=/run/qemu-bus)");
	return o; // empty: only limits after the colon, the session bus
}

Status check_scanout(uint32_t w, uint32_t h, uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp) {
	if (w == 0 || h == 0 || w > kMaxSide || h > kMaxSide) return fail("a frame outside 1..16384 pixels a side");
	if (uint64_t{w} * h * 4 > limits.max_frame_bytes())
		return fail("a " + std::to_string(w) + "x" + std::to_string(h) +
		            " frame is past max-mib=" + std::to_string(limits.max_mib));
	if (stride < uint64_t{w} * bpp || bytes < uint64_t{stride} * (h - 1) + uint64_t{w} * bpp)
		return fail("fewer bytes than the rectangle");
	return Ok{};
}

Result<FrameAfterUpdate> frame_after_update(uint32_t fw, uint32_t fh, int32_t x, int32_t y, int32_t w, int32_t h,
                                            uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp) {
	if (x < 0 || y < 0 || w <= 0 || h <= 0 || uint64_t(x) + uint64_t(w) > kMaxSide ||
	    uint64_t(y) + uint64_t(h) > kMaxSide)
		return fail("a rectangle outside 1..16384");
	const auto uw = uint32_t(w), uh = uint32_t(h), ux = uint32_t(x), uy = uint32_t(y);
	if (stride < uint64_t{uw} * bpp || bytes < uint64_t{stride} * (uh - 1) + uint64_t{uw} * bpp)
		return fail("fewer bytes than the rectangle");
	FrameAfterUpdate f;
	// The frame keeps its buffer while the size stays: updates are damage notices. An Update
	// reaching past the frame means a new surface (QEMU 7.2 sends no Scanout when a VGA mode
	// changes): one that starts at the origin begins it (the frame becomes its extent), the next
	// ones grow it.
	const bool outside = uint64_t{ux} + uw > fw || uint64_t{uy} + uh > fh;
	f.keep = !(outside && ux == 0 && uy == 0);
	f.width = f.keep ? std::max(fw, ux + uw) : ux + uw;
	f.height = f.keep ? std::max(fh, uy + uh) : uy + uh;
	f.resized = f.width != fw || f.height != fh;
	if (f.resized && uint64_t{f.width} * f.height * 4 > limits.max_frame_bytes())
		return fail("an update that would make the frame " + std::to_string(f.width) + "x" + std::to_string(f.height) +
		            ", past max-mib=" + std::to_string(limits.max_mib));
	return f;
}

uint32_t qemu_pixel_bytes(uint32_t pixman_format) {
	switch (pixman_format) {
	case kPixmanX8R8G8B8:
	case kPixmanA8R8G8B8: return 4;
	case kPixmanR5G6B5:
	case kPixmanX1R5G5B5: return 2;
	default: return 0;
	}
}

void qemu_row_to_xrgb8888(uint32_t pixman_format, const uint8_t *src, uint8_t *dst, uint32_t pixels) {
	if (qemu_pixel_bytes(pixman_format) == 4) {
		std::memcpy(dst, src, size_t{pixels} * 4);
		return;
	}
	const bool r565 = pixman_format == kPixmanR5G6B5;
	for (uint32_t i = 0; i < pixels; i++) {
		const uint32_t v = uint32_t{src[2 * i]} | uint32_t{src[2 * i + 1]} << 8; // little-endian 16 bits
		const uint32_t r5 = r565 ? v >> 11 : (v >> 10) & 31, b5 = v & 31;
		const uint32_t g = r565 ? ((v >> 5) & 63) * 255 / 63 : ((v >> 5) & 31) * 255 / 31;
		dst[4 * i + 0] = static_cast<uint8_t>(b5 * 255 / 31);
		dst[4 * i + 1] = static_cast<uint8_t>(g);
		dst[4 * i + 2] = static_cast<uint8_t>(r5 * 255 / 31);
		dst[4 * i + 3] = 0xff;
	}
}

uint32_t drm_format_of_pixman(uint32_t pixman_format) {
	switch (pixman_format) {
	case kPixmanX8R8G8B8: return DRM_FORMAT_XRGB8888;
	case kPixmanA8R8G8B8: return DRM_FORMAT_XRGB8888; // a display surface's alpha means nothing
	default: return 0;
	}
}

} // namespace vscanout::vgpu
