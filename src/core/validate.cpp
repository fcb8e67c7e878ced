#include "core/validate.hpp"

#include <drm_fourcc.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

#include "core/format.hpp"

namespace vscanout::core {
namespace {

[[gnu::format(printf, 2, 3)]] Rejection reject(const char *field, const char *fmt, ...) {
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	std::vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return Rejection{field, buf};
}

} // namespace

std::optional<Rejection> validate_plane(const vgpu::PlaneInfo &p) {
	if (!p.enabled()) return std::nullopt;
	const FormatInfo *f = find_format(p.drm_format);
	if (!f) return reject("drm_format", "drm_format %s is not a known fourcc", describe_fourcc(p.drm_format).c_str());
	if (!f->supported)
		return reject("drm_format", "drm_format %s is not supported by vscanout",
		              describe_fourcc(p.drm_format).c_str());
	if (p.width == 0 || p.width > kMaxDimension)
		return reject("width", "width %u is outside 1..%u", p.width, kMaxDimension);
	if (p.height == 0 || p.height > kMaxDimension)
		return reject("height", "height %u is outside 1..%u", p.height, kMaxDimension);
	// Every cursor path (the KMS cursor plane, the parent's pointer image, the compose shader)
	// reads cursor pixels as 32-bit ARGB: take no other layout for a cursor.
	if (p.type == vgpu::PlaneType::cursor && p.drm_format != DRM_FORMAT_ARGB8888)
		return reject("drm_format", "cursor format %s: cursors are shown as ARGB8888 only",
		              describe_fourcc(p.drm_format).c_str());
	if (p.type == vgpu::PlaneType::cursor && (p.width > kMaxCursorDimension || p.height > kMaxCursorDimension))
		return reject(p.width > kMaxCursorDimension ? "width" : "height", "cursor %ux%u is larger than %ux%u", p.width,
		              p.height, kMaxCursorDimension, kMaxCursorDimension);
	const uint64_t row = uint64_t{p.width} * f->bytes_per_pixel;
	if (p.stride < row)
		return reject("stride", "stride %u is below width %u x %u bytes per pixel = %" PRIu64, p.stride, p.width,
		              f->bytes_per_pixel, row);
	if (p.stride % f->bytes_per_pixel != 0)
		return reject("stride", "stride %u is not a multiple of %u bytes per pixel", p.stride, f->bytes_per_pixel);
	if (p.offset % f->bytes_per_pixel != 0)
		return reject("offset", "offset %" PRIu64 " is not a multiple of %u bytes per pixel", p.offset,
		              f->bytes_per_pixel);
	const uint64_t need = uint64_t{p.stride} * p.height;
	if (need > p.size)
		return reject("size", "stride %u x height %u = %" PRIu64 " bytes is above size %u", p.stride, p.height, need,
		              p.size);
	return std::nullopt;
}

std::optional<Rejection> validate_backing(const vgpu::PlaneInfo &p, uint64_t buffer_bytes) {
	if (!p.enabled()) return std::nullopt;
	// offset and size are both guest-controlled 64/32-bit values: compare without overflow.
	if (p.offset > buffer_bytes || p.size > buffer_bytes - p.offset)
		return reject("offset", "offset %" PRIu64 " + size %u is beyond the %" PRIu64 "-byte buffer", p.offset, p.size,
		              buffer_bytes);
	return std::nullopt;
}

vgpu::PlaneInfo normalize_hotspot(vgpu::PlaneInfo p) {
	if (p.x_hot >= p.width || p.y_hot >= p.height) {
		p.x_hot = vgpu::kNoHotspot;
		p.y_hot = vgpu::kNoHotspot;
	}
	// A cursor wholly off any possible primary is invisible wherever it is: keeping positions in
	// this range keeps every later sum and scaling of them inside 32 bits.
	p.x_pos = std::clamp<int32_t>(p.x_pos, kMinCursorPosition, kMaxCursorPosition);
	p.y_pos = std::clamp<int32_t>(p.y_pos, kMinCursorPosition, kMaxCursorPosition);
	return p;
}

} // namespace vscanout::core
