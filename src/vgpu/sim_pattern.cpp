// The simulated vGPU's test pattern: the formulas in sim.hpp, and the mode syntax.
#include "vgpu/sim.hpp"

#include <bit>
#include <charconv>
#include <cstring>

namespace vscanout::vgpu {

// The pattern is written as native uint32 stores of XRGB/ARGB words, which is the DRM byte
// order (B, G, R, X in memory) only on a little-endian host.
static_assert(std::endian::native == std::endian::little, "the sim writes little-endian pixels");

namespace {

constexpr uint32_t kMaxModeDim = 16384;

bool parse_dim(std::string_view text, uint32_t &out) {
	if (text.empty()) return false;
	const char *end = text.data() + text.size();
	auto [p, ec] = std::from_chars(text.data(), end, out);
	return ec == std::errc() && p == end;
}

} // namespace

Result<Mode> parse_mode(std::string_view text) {
	auto bad = [&](const char *why) {
		return fail("invalid mode '" + std::string(text) + "': " + why + " (expected WIDTHxHEIGHT, e.g. 1280x800)");
	};
	size_t x = text.find('x');
	if (x == std::string_view::npos) return bad("no 'x' between width and height");
	Mode m;
	// from_chars alone would accept "+5" or " 5" on some libraries; digits only keeps it strict.
	auto digits = [](std::string_view s) { return s.find_first_not_of("0123456789") == std::string_view::npos; };
	std::string_view w = text.substr(0, x), h = text.substr(x + 1);
	if (!digits(w) || !digits(h) || !parse_dim(w, m.width) || !parse_dim(h, m.height))
		return bad("width and height must be whole numbers");
	if (m.width == 0 || m.height == 0) return bad("width and height must be at least 1");
	if (m.width > kMaxModeDim || m.height > kMaxModeDim) return bad("width and height must be at most 16384");
	return m;
}

void draw_primary(uint8_t *base, uint32_t stride, uint32_t width, uint32_t height, uint32_t head, uint64_t frame) {
	// Only R varies along a row and only G down the column, so each row is one template word
	// (X, G, B) OR-ed with a precomputed R ramp: a loop the compiler vectorises, which matters
	// because this runs at every flip on buffers of several megabytes.
	const uint32_t b = static_cast<uint32_t>((16 * frame + 85 * uint64_t(head)) & 0xFF);
	const uint32_t r0 = static_cast<uint32_t>(frame & 0xFF);
	const uint32_t g0 = (64u * head) & 0xFF;
	uint32_t ramp[256];
	for (uint32_t i = 0; i < 256; i++) ramp[i] = ((r0 + i) & 0xFF) << 16;

	for (uint32_t y = 0; y < height; y++) {
		auto *row = reinterpret_cast<uint32_t *>(base + size_t(y) * stride);
		const uint32_t word = 0xFF000000u | (((g0 + y) & 0xFF) << 8) | b;
		uint32_t x = 0;
		for (; x + 256 <= width; x += 256)
			for (uint32_t i = 0; i < 256; i++) row[x + i] = word | ramp[i];
		for (uint32_t i = 0; x < width; x++, i++) row[x] = word | ramp[i];
	}
}

void draw_cursor(uint8_t *base, uint32_t stride) {
	for (uint32_t y = 0; y < kCursorSize; y++) {
		auto *row = reinterpret_cast<uint32_t *>(base + size_t(y) * stride);
		for (uint32_t x = 0; x < kCursorSize; x++) row[x] = (x < 16 && y < 16) ? 0xFFFFFFFFu : 0u;
	}
}

Point cursor_hotspot_at(uint64_t frame, Mode mode) {
	if (mode.width == 0 || mode.height == 0) return {0, 0};
	return {static_cast<int32_t>((37 * frame + 100) % mode.width),
	        static_cast<int32_t>((23 * frame + 100) % mode.height)};
}

} // namespace vscanout::vgpu
