// Plane validation: every field of a guest plane is untrusted (docs/design.md, "Validation"). Each rejection must
// blame its own field and name the values, so a user can tell which guest bug it was.
#include <drm_fourcc.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "core/format.hpp"
#include "core/validate.hpp"
#include "vgpu/plane.hpp"

namespace vscanout::core {
namespace {

using vgpu::kNoHotspot;
using vgpu::PlaneInfo;
using vgpu::PlaneState;
using vgpu::PlaneType;

// An enabled, tightly packed plane: stride = width * bpp, size = stride * height.
PlaneInfo good_plane(uint32_t fourcc, uint32_t bpp, uint32_t width, uint32_t height,
                     PlaneType type = PlaneType::primary) {
	PlaneInfo p;
	p.type = type;
	p.state = PlaneState::enabled;
	p.drm_format = fourcc;
	p.width = width;
	p.height = height;
	p.stride = width * bpp;
	p.size = p.stride * height;
	p.buffer_id = 1;
	return p;
}

PlaneInfo xrgb(uint32_t width, uint32_t height, PlaneType type = PlaneType::primary) {
	return good_plane(DRM_FORMAT_XRGB8888, 4, width, height, type);
}

bool contains(const std::string &haystack, const std::string &needle) {
	return haystack.find(needle) != std::string::npos;
}

// Expects a rejection of `field` whose reason mentions every one of `words`.
void expect_rejected(const std::optional<Rejection> &r, const std::string &field,
                     std::initializer_list<std::string> words) {
	ASSERT_TRUE(r.has_value()) << "accepted, expected a rejection of " << field;
	EXPECT_EQ(r->field, field) << "reason: " << r->reason;
	for (const auto &w : words)
		EXPECT_TRUE(contains(r->reason, w)) << "'" << r->reason << "' does not name '" << w << "'";
}

TEST(ValidatePlane, AcceptsEverySupportedFormat) {
	struct Case {
		uint32_t fourcc;
		uint32_t bpp;
	};
	for (const Case c : {Case{DRM_FORMAT_XRGB8888, 4}, Case{DRM_FORMAT_ARGB8888, 4}, Case{DRM_FORMAT_XBGR8888, 4},
	                     Case{DRM_FORMAT_ABGR8888, 4}, Case{DRM_FORMAT_RGB565, 2}}) {
		SCOPED_TRACE(describe_fourcc(c.fourcc));
		const FormatInfo *f = find_format(c.fourcc);
		ASSERT_NE(f, nullptr);
		EXPECT_TRUE(f->supported);
		EXPECT_EQ(f->bytes_per_pixel, c.bpp);
		const PlaneInfo p = good_plane(c.fourcc, c.bpp, 1280, 800);
		auto r = validate_plane(p);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
		// A padded stride (a multiple of bpp above the row) is fine too.
		PlaneInfo padded = p;
		padded.stride = p.stride + 64;
		padded.size = padded.stride * p.height;
		r = validate_plane(padded);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
		// The size may be larger than stride * height (VFIO rounds it up to pages).
		padded.size += 4096;
		r = validate_plane(padded);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
		// An offset that is a multiple of bpp is fine.
		padded.offset = 4 * c.bpp;
		r = validate_plane(padded);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
	}
}

TEST(ValidatePlane, RejectsUnknownFourcc) {
	PlaneInfo p = xrgb(640, 480);
	p.drm_format = 0x39595a5a;
	ASSERT_EQ(find_format(0x39595a5a), nullptr);
	expect_rejected(validate_plane(p), "drm_format", {"0x39595a5a", "not a known fourcc"});
}

TEST(ValidatePlane, RejectsKnownButUnsupportedFourcc) {
	PlaneInfo p = xrgb(640, 480);
	p.drm_format = DRM_FORMAT_NV12;
	const FormatInfo *f = find_format(DRM_FORMAT_NV12);
	ASSERT_NE(f, nullptr);
	EXPECT_FALSE(f->supported);
	expect_rejected(validate_plane(p), "drm_format", {"NV12", "not supported"});
	// The rejection names it differently from an unknown value.
	EXPECT_FALSE(contains(validate_plane(p)->reason, "not a known"));
}

TEST(ValidatePlane, RejectsZeroAndOversizedDimensions) {
	PlaneInfo p = xrgb(640, 480);
	p.width = 0;
	expect_rejected(validate_plane(p), "width", {"width 0", "16384"});

	p = xrgb(640, 480);
	p.height = 0;
	expect_rejected(validate_plane(p), "height", {"height 0", "16384"});

	// 16385 wide with a stride and size that would otherwise fit.
	p = xrgb(kMaxDimension + 1, 2);
	ASSERT_EQ(p.width, 16385u);
	expect_rejected(validate_plane(p), "width", {"width 16385", "16384"});

	p = xrgb(2, kMaxDimension + 1);
	ASSERT_EQ(p.height, 16385u);
	expect_rejected(validate_plane(p), "height", {"height 16385", "16384"});

	// A huge width must not pass because stride * bpp wraps in 32 bits.
	p = xrgb(64, 64);
	p.width = 0x40000001u;
	expect_rejected(validate_plane(p), "width", {"1073741825"});
}

TEST(ValidatePlane, AcceptsTheLargestDimensions) {
	PlaneInfo p = xrgb(kMaxDimension, kMaxDimension);
	ASSERT_EQ(p.stride, 65536u);
	ASSERT_EQ(p.size, 65536u * 16384u);
	auto r = validate_plane(p);
	EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;

	p = good_plane(DRM_FORMAT_RGB565, 2, kMaxDimension, kMaxDimension);
	r = validate_plane(p);
	EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;

	// 1 x 16384 and 16384 x 1 too.
	for (const PlaneInfo &q : {xrgb(1, kMaxDimension), xrgb(kMaxDimension, 1)}) {
		r = validate_plane(q);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
	}
}

TEST(ValidatePlane, RejectsStrideBelowTheRow) {
	PlaneInfo p = xrgb(100, 50);
	p.stride = 396; // a row needs 400
	expect_rejected(validate_plane(p), "stride", {"stride 396", "width 100", "4 bytes per pixel", "400"});

	p = good_plane(DRM_FORMAT_RGB565, 2, 100, 50);
	p.stride = 198; // a row needs 200
	expect_rejected(validate_plane(p), "stride", {"stride 198", "width 100", "2 bytes per pixel", "200"});

	p = xrgb(100, 50);
	p.stride = 0;
	expect_rejected(validate_plane(p), "stride", {"stride 0", "400"});

	// One byte short is still short.
	p = xrgb(100, 50);
	p.stride = 399;
	expect_rejected(validate_plane(p), "stride", {"stride 399", "400"});
}

TEST(ValidatePlane, RejectsStrideNotAMultipleOfThePixelSize) {
	PlaneInfo p = xrgb(100, 50);
	p.stride = 402;
	p.size = 402 * 50;
	expect_rejected(validate_plane(p), "stride", {"stride 402", "multiple of 4"});

	p = good_plane(DRM_FORMAT_RGB565, 2, 100, 50);
	p.stride = 201;
	p.size = 201 * 50;
	expect_rejected(validate_plane(p), "stride", {"stride 201", "multiple of 2"});
}

TEST(ValidatePlane, RejectsOffsetNotAMultipleOfThePixelSize) {
	PlaneInfo p = xrgb(100, 50);
	p.offset = 2;
	expect_rejected(validate_plane(p), "offset", {"offset 2", "multiple of 4"});

	p = good_plane(DRM_FORMAT_RGB565, 2, 100, 50);
	p.offset = 4097;
	expect_rejected(validate_plane(p), "offset", {"offset 4097", "multiple of 2"});

	p = xrgb(100, 50);
	p.offset = std::numeric_limits<uint64_t>::max() - 10; // 2^64 - 11 = 1 mod 4
	expect_rejected(validate_plane(p), "offset", {"18446744073709551605"});
}

TEST(ValidatePlane, RejectsSizeBelowStrideTimesHeight) {
	PlaneInfo p = xrgb(100, 50);
	p.size = 400 * 50 - 1;
	expect_rejected(validate_plane(p), "size", {"stride 400", "height 50", "20000", "size 19999"});

	p = xrgb(100, 50);
	p.size = 0;
	expect_rejected(validate_plane(p), "size", {"20000", "size 0"});

	// stride * height above 4 GiB must be computed in 64 bits, not wrap to something small.
	p = xrgb(16384, 16384);
	p.stride = 0x40000; // 262144: 16384 rows of it are 4 GiB, which wraps to 0 in 32 bits
	p.size = 4096;
	expect_rejected(validate_plane(p), "size", {"4294967296", "size 4096"});
}

TEST(ValidatePlane, CursorLargerThan512IsRejectedOnlyForTheCursorPlane) {
	const PlaneInfo wide = good_plane(DRM_FORMAT_ARGB8888, 4, 513, 64, PlaneType::cursor);
	auto r = validate_plane(wide);
	ASSERT_TRUE(r.has_value());
	EXPECT_EQ(r->field, "width") << r->reason;
	EXPECT_TRUE(contains(r->reason, "513x64")) << r->reason;
	EXPECT_TRUE(contains(r->reason, "512x512")) << r->reason;

	const PlaneInfo tall = good_plane(DRM_FORMAT_ARGB8888, 4, 64, 513, PlaneType::cursor);
	r = validate_plane(tall);
	ASSERT_TRUE(r.has_value());
	EXPECT_TRUE(contains(r->reason, "64x513")) << r->reason;
	EXPECT_TRUE(contains(r->reason, "512x512")) << r->reason;

	// The same sizes are ordinary primary planes.
	for (PlaneInfo p : {wide, tall}) {
		p.type = PlaneType::primary;
		r = validate_plane(p);
		EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
	}

	// 512x512 is the largest cursor.
	const PlaneInfo max_cursor = good_plane(DRM_FORMAT_ARGB8888, 4, 512, 512, PlaneType::cursor);
	r = validate_plane(max_cursor);
	EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
}

TEST(ValidatePlane, TallCursorBlamesHeight) {
	// The field at fault is the dimension over the limit.
	const PlaneInfo tall = good_plane(DRM_FORMAT_ARGB8888, 4, 64, 513, PlaneType::cursor);
	auto r = validate_plane(tall);
	ASSERT_TRUE(r.has_value());
	EXPECT_EQ(r->field, "height") << r->reason;
}

TEST(ValidatePlane, DisabledAndUnsupportedPlanesCarryNoFieldsToCheck) {
	PlaneInfo garbage;
	garbage.drm_format = 0x39595a5a;
	garbage.width = 0;
	garbage.height = 0xFFFFFFFFu;
	garbage.stride = 3;
	garbage.size = 1;
	garbage.offset = 7;
	for (const PlaneState state : {PlaneState::disabled, PlaneState::unsupported}) {
		for (const PlaneType type : {PlaneType::primary, PlaneType::cursor}) {
			PlaneInfo p = garbage;
			p.state = state;
			p.type = type;
			auto r = validate_plane(p);
			EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
			r = validate_backing(p, 0);
			EXPECT_FALSE(r.has_value()) << r->field << ": " << r->reason;
			// The same garbage is rejected once the plane claims to be enabled.
			p.state = PlaneState::enabled;
			EXPECT_TRUE(validate_plane(p).has_value());
		}
	}
}

TEST(ValidateBacking, AcceptsAPlaneInsideItsBuffer) {
	PlaneInfo p = xrgb(32, 32); // size 4096
	EXPECT_FALSE(validate_backing(p, 4096).has_value());
	EXPECT_FALSE(validate_backing(p, 1 << 20).has_value());
	p.offset = 4096;
	EXPECT_FALSE(validate_backing(p, 8192).has_value()); // ends exactly at the end
}

TEST(ValidateBacking, RejectsAPlaneBeyondItsBuffer) {
	PlaneInfo p = xrgb(32, 32); // size 4096
	expect_rejected(validate_backing(p, 4095), "offset", {"offset 0", "size 4096", "4095-byte buffer"});

	p.offset = 4096;
	expect_rejected(validate_backing(p, 8191), "offset", {"offset 4096", "size 4096", "8191-byte buffer"});

	// An offset past the end, even with a small size.
	p.offset = 8192;
	expect_rejected(validate_backing(p, 4096), "offset", {"offset 8192", "4096-byte buffer"});

	// An empty buffer.
	p.offset = 0;
	expect_rejected(validate_backing(p, 0), "offset", {"size 4096", "0-byte buffer"});
}

TEST(ValidateBacking, RejectsOffsetPlusSizeThatOverflows) {
	PlaneInfo p = xrgb(32, 32); // size 4096
	p.offset = std::numeric_limits<uint64_t>::max() - 10;
	expect_rejected(validate_backing(p, 1 << 20), "offset",
	                {"18446744073709551605", "size 4096", "1048576-byte buffer"});

	// offset + size wraps to 4085, which a naive sum would find inside even a small buffer.
	expect_rejected(validate_backing(p, 8192), "offset", {"18446744073709551605"});
	// ... or inside a buffer as large as it gets: the offset fits, the size does not.
	expect_rejected(validate_backing(p, std::numeric_limits<uint64_t>::max()), "offset", {"18446744073709551605"});

	// The largest 32-bit size past a small offset.
	p.offset = 4;
	p.size = std::numeric_limits<uint32_t>::max();
	expect_rejected(validate_backing(p, 1 << 20), "offset", {"size 4294967295"});
	// ... which fits a buffer exactly that large.
	EXPECT_FALSE(validate_backing(p, uint64_t{4} + std::numeric_limits<uint32_t>::max()).has_value());
	EXPECT_TRUE(validate_backing(p, uint64_t{3} + std::numeric_limits<uint32_t>::max()).has_value());
}

TEST(ValidateHotspot, KeepsAHotspotInsideTheImage) {
	PlaneInfo c = xrgb(64, 64, PlaneType::cursor);
	c.x_hot = 3;
	c.y_hot = 4;
	PlaneInfo n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, 3u);
	EXPECT_EQ(n.y_hot, 4u);

	c.x_hot = 63;
	c.y_hot = 63;
	n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, 63u);
	EXPECT_EQ(n.y_hot, 63u);

	c.x_hot = 0;
	c.y_hot = 0;
	n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, 0u);
	EXPECT_EQ(n.y_hot, 0u);
	// Nothing else is touched.
	EXPECT_EQ(n.width, 64u);
	EXPECT_EQ(n.stride, c.stride);
	EXPECT_EQ(n.buffer_id, c.buffer_id);
}

TEST(ValidateHotspot, AHotspotOutsideTheImageMeansNone) {
	PlaneInfo c = xrgb(64, 32, PlaneType::cursor);
	c.x_hot = 64; // x_hot >= width
	c.y_hot = 5;
	PlaneInfo n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, kNoHotspot);
	EXPECT_EQ(n.y_hot, kNoHotspot);

	c.x_hot = 5;
	c.y_hot = 32; // y_hot >= height (the image is 64 wide, so 32 would be a good x)
	n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, kNoHotspot);
	EXPECT_EQ(n.y_hot, kNoHotspot);

	c.x_hot = 1000;
	c.y_hot = 1000;
	n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, kNoHotspot);
	EXPECT_EQ(n.y_hot, kNoHotspot);

	// Only one half unknown: the other half means nothing alone.
	c.x_hot = kNoHotspot;
	c.y_hot = 5;
	n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, kNoHotspot);
	EXPECT_EQ(n.y_hot, kNoHotspot);
}

TEST(ValidateHotspot, UnknownHotspotStaysUnknown) {
	PlaneInfo c = xrgb(64, 64, PlaneType::cursor);
	c.x_hot = 0xFFFFFFFFu;
	c.y_hot = 0xFFFFFFFFu;
	PlaneInfo n = normalize_hotspot(c);
	EXPECT_EQ(n.x_hot, 0xFFFFFFFFu);
	EXPECT_EQ(n.y_hot, 0xFFFFFFFFu);
}

TEST(ValidateFormat, DescribesKnownAndUnknownFourccs) {
	EXPECT_EQ(describe_fourcc(DRM_FORMAT_XRGB8888), "XR24 (XRGB8888)");
	EXPECT_EQ(describe_fourcc(DRM_FORMAT_RGB565), "RG16 (RGB565)");
	EXPECT_EQ(describe_fourcc(DRM_FORMAT_NV12), "NV12 (NV12)");
	// Printable but unknown: the characters and the value.
	const std::string zzy9 = describe_fourcc(0x39595a5a);
	EXPECT_TRUE(contains(zzy9, "0x39595a5a")) << zzy9;
	EXPECT_TRUE(contains(zzy9, "ZZY9")) << zzy9;
	EXPECT_FALSE(contains(zzy9, "XRGB")) << zzy9;
	// Not printable: only the value.
	EXPECT_EQ(describe_fourcc(0x00000001), "0x00000001");
	EXPECT_EQ(describe_fourcc(0xFFFFFFFF), "0xffffffff");
	EXPECT_EQ(describe_fourcc(0), "0x00000000");
}

} // namespace
} // namespace vscanout::core

namespace vscanout::core {
namespace {

TEST(ValidateCursor, OnlyArgbCursorsAreTaken) {
	// Every cursor path reads 4-byte ARGB: a 16-bit or alpha-less cursor would show wrong pixels
	// (or read past the plane).
	for (uint32_t fourcc : {DRM_FORMAT_RGB565, DRM_FORMAT_XRGB8888, DRM_FORMAT_XBGR8888, DRM_FORMAT_ABGR8888}) {
		vgpu::PlaneInfo c;
		c.type = vgpu::PlaneType::cursor;
		c.state = vgpu::PlaneState::enabled;
		c.drm_format = fourcc;
		c.width = c.height = 64;
		c.stride = 256;
		c.size = 256 * 64;
		auto r = validate_plane(c);
		ASSERT_TRUE(r.has_value()) << describe_fourcc(fourcc);
		EXPECT_EQ(r->field, "drm_format");
		EXPECT_NE(r->reason.find("ARGB8888 only"), std::string::npos) << r->reason;
	}
}

TEST(ValidateCursor, ExtremePositionsAreClampedIntoRange) {
	vgpu::PlaneInfo c;
	c.type = vgpu::PlaneType::cursor;
	c.width = c.height = 64;
	c.x_hot = c.y_hot = 4;
	for (auto [x, y] : {std::pair{INT32_MAX, INT32_MIN}, std::pair{INT32_MIN, INT32_MAX}, std::pair{-513, 16385}}) {
		c.x_pos = x;
		c.y_pos = y;
		const vgpu::PlaneInfo n = normalize_hotspot(c);
		EXPECT_GE(n.x_pos, kMinCursorPosition);
		EXPECT_LE(n.x_pos, kMaxCursorPosition);
		EXPECT_GE(n.y_pos, kMinCursorPosition);
		EXPECT_LE(n.y_pos, kMaxCursorPosition);
		// Scaled by the largest factor a frame can have and moved by the largest offset, still 32-bit.
		EXPECT_LE(int64_t{n.x_pos} * kMaxDimension + kMaxDimension, int64_t{INT32_MAX});
		EXPECT_GE(int64_t{n.y_pos} * kMaxDimension - kMaxDimension, int64_t{INT32_MIN});
	}
	c.x_pos = -20;
	c.y_pos = 700;
	const vgpu::PlaneInfo n = normalize_hotspot(c);
	EXPECT_EQ(n.x_pos, -20) << "positions in range are left as they are";
	EXPECT_EQ(n.y_pos, 700);
}

} // namespace
} // namespace vscanout::core
