#include "core/head_tracker.hpp"

#include <time.h>

#include "core/format.hpp"

#include <xxhash.h>

namespace vscanout::core {

using vgpu::PlaneInfo;

PlaneKey key_of(const PlaneInfo &p) {
	return PlaneKey{p.type,   p.buffer_id, p.drm_format, p.drm_format_mod, p.width,
	                p.height, p.stride,    p.size,       p.offset,         p.region_index};
}

uint64_t monotonic_ms() {
	timespec ts{};
	::clock_gettime(CLOCK_MONOTONIC, &ts);
	return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

size_t PlaneKeyHash::operator()(const PlaneKey &k) const {
	uint64_t h = 1469598103934665603ull;
	for (uint64_t v :
	     {uint64_t{static_cast<uint32_t>(k.type)}, k.buffer_id, uint64_t{k.drm_format}, k.modifier, uint64_t{k.width},
	      uint64_t{k.height}, uint64_t{k.stride}, uint64_t{k.size}, k.offset, uint64_t{k.region_index}})
		h = (h ^ v) * 1099511628211ull;
	return static_cast<size_t>(h);
}

uint64_t hash_plane(const uint8_t *base, const PlaneInfo &p) {
	const FormatInfo *f = find_format(p.drm_format);
	const size_t row = size_t{p.width} * f->bytes_per_pixel;
	XXH3_state_t *st = XXH3_createState();
	XXH3_64bits_reset(st);
	for (uint32_t y = 0; y < p.height; y++) XXH3_64bits_update(st, base + size_t{y} * p.stride, row);
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

template class BasicHeadTracker<ImportedBuffer>;

} // namespace vscanout::core
