// Pixel tests of the render layer: every test draws into a CPU-visible output buffer and checks
// the pixels it gets against values computed here from first principles (never from the code
// under test). Runs on whatever Vulkan device VulkanContext picks (lavapipe on machines with no GPU).
#include <gtest/gtest.h>

#include <drm_fourcc.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "render/cpu_compose.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"
#include "render/target.hpp"
#include "render/vk_context.hpp"
#include "vgpu/plane.hpp"

namespace vscanout {
namespace {

using render::FrameDesc;
using render::GuestImport;
using render::HeadRenderer;
using render::ImportPath;
using render::ImportPolicy;
using render::OutputTarget;
using render::Rect;
using render::RenderReport;
using render::SoftwareCursor;
using render::TargetDesc;
using render::VulkanContext;

const uint64_t kPage = uint64_t(::getpagesize());

struct Rgb {
	int r = 0, g = 0, b = 0;
	bool operator==(const Rgb &) const = default;
};

std::string to_string(const Rgb &c) {
	return "(" + std::to_string(c.r) + "," + std::to_string(c.g) + "," + std::to_string(c.b) + ")";
}

// An XRGB8888/ARGB8888 word: B G R X in memory, i.e. 0xXXRRGGBB as a little-endian word.
uint32_t xrgb(int r, int g, int b, int x = 0) {
	return (uint32_t(x & 0xff) << 24) | (uint32_t(r & 0xff) << 16) | (uint32_t(g & 0xff) << 8) | uint32_t(b & 0xff);
}
Rgb rgb_of_xrgb(uint32_t w) { return {int((w >> 16) & 0xff), int((w >> 8) & 0xff), int(w & 0xff)}; }

// A pattern where neighbouring pixels and neighbouring rows differ in every channel.
Rgb pattern(int x, int y, int salt = 0) {
	return {(x * 7 + y * 3 + salt) & 0xff, (x * 13 + y * 29 + 91 + salt * 5) & 0xff,
	        (x * 5 + y * 17 + 200 + salt * 11) & 0xff};
}

// A guest plane in a memfd the test keeps mapped and can redraw at any time.
struct Guest {
	UniqueFd fd;
	Mapping map;
	vgpu::PlaneInfo plane;
	uint64_t bytes = 0;

	uint8_t *pixel_ptr(uint32_t x, uint32_t y, uint32_t bpp) {
		return map.data() + plane.offset + uint64_t{y} * plane.stride + uint64_t{x} * bpp;
	}
	void set32(uint32_t x, uint32_t y, uint32_t word) { std::memcpy(pixel_ptr(x, y, 4), &word, 4); }
	uint32_t get32(uint32_t x, uint32_t y) {
		uint32_t w;
		std::memcpy(&w, pixel_ptr(x, y, 4), 4);
		return w;
	}
	void set16(uint32_t x, uint32_t y, uint16_t v) { std::memcpy(pixel_ptr(x, y, 2), &v, 2); }
	void fill32(const std::function<uint32_t(uint32_t, uint32_t)> &f) {
		for (uint32_t y = 0; y < plane.height; y++)
			for (uint32_t x = 0; x < plane.width; x++) set32(x, y, f(x, y));
	}
	vgpu::GuestBuffer buffer(vgpu::BufferKind kind = vgpu::BufferKind::memfd) const {
		vgpu::GuestBuffer b;
		b.fd = UniqueFd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
		b.kind = kind;
		b.byte_size = bytes;
		return b;
	}
};

// stride 0: width * bytes per pixel.
Guest make_guest(uint32_t fourcc, uint32_t w, uint32_t h, uint32_t stride = 0, uint64_t offset = 0,
                 vgpu::PlaneType type = vgpu::PlaneType::primary) {
	const uint32_t bpp = fourcc == DRM_FORMAT_RGB565 ? 2 : 4;
	Guest g;
	g.plane.head_id = 0;
	g.plane.type = type;
	g.plane.state = vgpu::PlaneState::enabled;
	g.plane.drm_format = fourcc;
	g.plane.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	g.plane.width = w;
	g.plane.height = h;
	g.plane.stride = stride ? stride : w * bpp;
	g.plane.size = g.plane.stride * h;
	g.plane.offset = offset;
	g.bytes = align_up(offset + g.plane.size, kPage);
	auto fd = make_memfd("guest", g.bytes);
	EXPECT_TRUE(fd.ok()) << (fd.ok() ? "" : fd.error());
	if (!fd) return g;
	g.fd = std::move(*fd);
	auto m = Mapping::map(g.fd.get(), g.bytes, PROT_READ | PROT_WRITE);
	EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error());
	if (!m) return g;
	g.map = std::move(*m);
	// Bytes outside the plane (offset, stride padding) hold a value no test expects to see.
	std::memset(g.map.data(), 0xC3, g.bytes);
	return g;
}

// An output buffer in a page-aligned memfd mapping, as wlroots' shm buffers are.
struct Target {
	UniqueFd fd;
	Mapping map;
	TargetDesc desc;
	std::unique_ptr<OutputTarget> out;

	uint32_t word(uint32_t x, uint32_t y) const {
		uint32_t w;
		std::memcpy(&w, static_cast<const uint8_t *>(desc.data) + uint64_t{y} * desc.stride + uint64_t{x} * 4, 4);
		return w;
	}
	Rgb rgb(uint32_t x, uint32_t y) const { return rgb_of_xrgb(word(x, y)); }
	// A value no frame writes, so pixels a frame should not touch can be told from ones it does.
	void poison() { std::memset(map.data(), 0x5A, map.size()); }
};

std::unique_ptr<Target> make_target(const VulkanContext &ctx, uint32_t w, uint32_t h, uint32_t stride = 0,
                                    uint32_t fourcc = DRM_FORMAT_XRGB8888) {
	auto t = std::make_unique<Target>();
	t->desc.stride = stride ? stride : w * 4;
	t->desc.width = w;
	t->desc.height = h;
	t->desc.drm_format = fourcc;
	const uint64_t bytes = align_up(uint64_t{t->desc.stride} * h, kPage);
	auto fd = make_memfd("target", bytes);
	EXPECT_TRUE(fd.ok()) << (fd.ok() ? "" : fd.error());
	if (!fd) return nullptr;
	t->fd = std::move(*fd);
	auto m = Mapping::map(t->fd.get(), bytes, PROT_READ | PROT_WRITE);
	EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error());
	if (!m) return nullptr;
	t->map = std::move(*m);
	t->desc.data = t->map.data();
	t->poison();
	auto out = OutputTarget::create(ctx, t->desc);
	EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error());
	if (!out) return nullptr;
	t->out = std::move(*out);
	return t;
}

std::shared_ptr<GuestImport> import(const VulkanContext &ctx, const Guest &g, const ImportPolicy &policy,
                                    vgpu::BufferKind kind = vgpu::BufferKind::memfd) {
	auto imp = GuestImport::create(ctx, g.plane, g.buffer(kind), policy);
	EXPECT_TRUE(imp.ok()) << (imp.ok() ? "" : imp.error());
	if (!imp) return nullptr;
	return std::move(*imp);
}

// Checks every pixel of the target against expect(x, y); tol is per channel. Reports the number
// of wrong pixels and the first few.
::testing::AssertionResult frame_matches(const Target &t, const std::function<Rgb(uint32_t, uint32_t)> &expect,
                                         int tol = 0) {
	uint64_t bad = 0;
	std::string first;
	for (uint32_t y = 0; y < t.desc.height; y++) {
		for (uint32_t x = 0; x < t.desc.width; x++) {
			const Rgb want = expect(x, y), got = t.rgb(x, y);
			if (std::abs(want.r - got.r) > tol || std::abs(want.g - got.g) > tol || std::abs(want.b - got.b) > tol) {
				if (bad < 5)
					first += " (" + std::to_string(x) + "," + std::to_string(y) + "): want " + to_string(want) +
					         " got " + to_string(got) + ";";
				bad++;
			}
		}
	}
	if (bad == 0) return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << bad << " of " << uint64_t{t.desc.width} * t.desc.height
	                                     << " pixels differ (tolerance " << tol << "):" << first;
}

// Fills a 32-bit guest with pattern(); X byte varies so a test that compares it would notice.
void fill_pattern(Guest &g, int salt = 0) {
	g.fill32([&](uint32_t x, uint32_t y) {
		Rgb c = pattern(int(x), int(y), salt);
		return xrgb(c.r, c.g, c.b, int(x * 31 + y) & 0xff);
	});
}

std::function<Rgb(uint32_t, uint32_t)> expect_pattern(int salt = 0) {
	return [salt](uint32_t x, uint32_t y) { return pattern(int(x), int(y), salt); };
}

// One Vulkan context for the whole suite, and a renderer per compose path: every RenderTest runs
// twice, once with frames composed by the shader (gpu) and once on the CPU (cpu), against the
// same expectations. (Frames the CPU cannot read, such as copy imports, go by the shader in both.)
class RenderTest : public ::testing::TestWithParam<render::ComposePath> {
protected:
	static void SetUpTestSuite() {
		auto c = VulkanContext::create();
		ASSERT_TRUE(c.ok()) << c.error();
		ctx_ = std::move(*c).release();
		for (auto path : {render::ComposePath::gpu, render::ComposePath::cpu}) {
			auto r = HeadRenderer::create(*ctx_, render::RendererOptions{path});
			ASSERT_TRUE(r.ok()) << r.error();
			renderers_[int(path)] = std::move(*r).release();
		}
	}
	static void TearDownTestSuite() {
		for (auto &r : renderers_) {
			delete r;
			r = nullptr;
		}
		delete ctx_;
		ctx_ = nullptr;
	}
	void SetUp() override {
		if (!ctx_ || !renderers_[int(GetParam())]) GTEST_FAIL() << "no Vulkan context";
	}
	static const VulkanContext &ctx() { return *ctx_; }
	static HeadRenderer &renderer() { return *renderers_[int(GetParam())]; }
	static render::RendererOptions options() { return render::RendererOptions{GetParam()}; }

	static RenderReport draw(const FrameDesc &f, Target &t) {
		auto r = renderer().draw(f, *t.out);
		EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
		return r.ok() ? *r : RenderReport{};
	}

	// A 1:1 XRGB8888 frame of w x h with the given guest stride/offset and target stride.
	void check_one_to_one(uint32_t w, uint32_t h, uint32_t guest_stride, uint64_t offset, uint32_t target_stride,
	                      const ImportPolicy &policy, ImportPath want_path) {
		SCOPED_TRACE("guest stride " + std::to_string(guest_stride) + " offset " + std::to_string(offset) +
		             " target stride " + std::to_string(target_stride) + " path " + render::to_string(want_path));
		Guest g = make_guest(DRM_FORMAT_XRGB8888, w, h, guest_stride, offset);
		fill_pattern(g);
		auto imp = import(ctx(), g, policy);
		ASSERT_TRUE(imp);
		ASSERT_EQ(imp->kind(), want_path);
		auto t = make_target(ctx(), w, h, target_stride);
		ASSERT_TRUE(t);
		FrameDesc f;
		f.primary = imp.get();
		RenderReport rep = draw(f, *t);
		EXPECT_TRUE(rep.copied);
		EXPECT_EQ(rep.composed, Rect{});
		EXPECT_TRUE(frame_matches(*t, expect_pattern()));
	}

	static VulkanContext *ctx_;
	static HeadRenderer *renderers_[3];
};

VulkanContext *RenderTest::ctx_ = nullptr;
HeadRenderer *RenderTest::renderers_[3] = {nullptr, nullptr, nullptr};

INSTANTIATE_TEST_SUITE_P(Compose, RenderTest, ::testing::Values(render::ComposePath::gpu, render::ComposePath::cpu),
                         [](const ::testing::TestParamInfo<render::ComposePath> &i) {
	                         return std::string(render::to_string(i.param));
                         });

const ImportPolicy kHostPolicy{false, true, nullptr};
const ImportPolicy kCopyPolicy{false, false, nullptr};

// ---------------------------------------------------------------------------------------------
// place_frame

TEST(RenderPlaceFrame, EqualSizesFillTheOutput) {
	EXPECT_EQ(render::place_frame(1920, 1080, 1920, 1080), (Rect{0, 0, 1920, 1080}));
	EXPECT_EQ(render::place_frame(64, 48, 64, 48), (Rect{0, 0, 64, 48}));
}

TEST(RenderPlaceFrame, SameAspectScalesToTheOutput) {
	EXPECT_EQ(render::place_frame(640, 480, 1280, 960), (Rect{0, 0, 1280, 960}));
	EXPECT_EQ(render::place_frame(1920, 1080, 1280, 720), (Rect{0, 0, 1280, 720}));
}

TEST(RenderPlaceFrame, Pillarbox) {
	// 4:3 into 16:9: full height, width 1080 * 4 / 3 = 1440, centred: (1920 - 1440) / 2 = 240.
	EXPECT_EQ(render::place_frame(640, 480, 1920, 1080), (Rect{240, 0, 1440, 1080}));
	EXPECT_EQ(render::place_frame(1024, 768, 1920, 1080), (Rect{240, 0, 1440, 1080}));
	// 1:1 into 2:1.
	EXPECT_EQ(render::place_frame(50, 50, 200, 100), (Rect{50, 0, 100, 100}));
}

TEST(RenderPlaceFrame, Letterbox) {
	// 16:9 into 5:4: full width 1280, height 1280 * 9 / 16 = 720, centred: (1024 - 720) / 2 = 152.
	EXPECT_EQ(render::place_frame(1920, 1080, 1280, 1024), (Rect{0, 152, 1280, 720}));
	// 2:1 into 1:1 (the scaled pixel test's geometry).
	EXPECT_EQ(render::place_frame(100, 50, 200, 200), (Rect{0, 50, 200, 100}));
}

TEST(RenderPlaceFrame, RoundsToTheNearestPixel) {
	// 3:2 into 100x100: height 100 * 2 / 3 = 66.67 -> 67, centred at (100 - 67) / 2 = 16.
	EXPECT_EQ(render::place_frame(3, 2, 100, 100), (Rect{0, 16, 100, 67}));
	EXPECT_EQ(render::place_frame(2, 3, 100, 100), (Rect{16, 0, 67, 100}));
	// 800x600 into 1366x768: width 768 * 4 / 3 = 1024 exactly, x (1366 - 1024) / 2 = 171.
	EXPECT_EQ(render::place_frame(800, 600, 1366, 768), (Rect{171, 0, 1024, 768}));
}

TEST(RenderPlaceFrame, OnePixelEdges) {
	EXPECT_EQ(render::place_frame(1, 1, 1, 1), (Rect{0, 0, 1, 1}));
	EXPECT_EQ(render::place_frame(1, 1, 100, 50), (Rect{25, 0, 50, 50}));
	EXPECT_EQ(render::place_frame(1920, 1080, 1, 1), (Rect{0, 0, 1, 1}));
	// A very wide guest still gets one row, never zero.
	EXPECT_EQ(render::place_frame(1000, 1, 10, 10), (Rect{0, 4, 10, 1}));
	EXPECT_EQ(render::place_frame(1, 1000, 10, 10), (Rect{4, 0, 1, 10}));
}

TEST(RenderPlaceFrame, ZeroSizesGiveAnEmptyRect) {
	EXPECT_EQ(render::place_frame(0, 480, 640, 480), Rect{});
	EXPECT_EQ(render::place_frame(640, 0, 640, 480), Rect{});
	EXPECT_EQ(render::place_frame(640, 480, 0, 480), Rect{});
	EXPECT_EQ(render::place_frame(640, 480, 640, 0), Rect{});
	EXPECT_EQ(render::place_frame(0, 0, 0, 0), Rect{});
}

// ---------------------------------------------------------------------------------------------
// 1:1 copies

TEST_P(RenderTest, OneToOneCopyIsExact) { check_one_to_one(96, 64, 0, 0, 0, kHostPolicy, ImportPath::host); }

TEST_P(RenderTest, OneToOneCopyWithPaddedStrides) {
	// Same padded stride on both sides: one block copy that must skip nothing.
	check_one_to_one(96, 64, 96 * 4 + 64, 0, 96 * 4 + 64, kHostPolicy, ImportPath::host);
}

TEST_P(RenderTest, OneToOneCopyGuestStrideLargerThanTarget) {
	check_one_to_one(96, 64, 96 * 4 + 128, 0, 0, kHostPolicy, ImportPath::host);
}

TEST_P(RenderTest, OneToOneCopyWithPlaneOffset) {
	check_one_to_one(96, 64, 0, 516, 0, kHostPolicy, ImportPath::host);
	check_one_to_one(96, 64, 96 * 4 + 36, 4100, 0, kHostPolicy, ImportPath::host);
}

TEST_P(RenderTest, OneToOneCopyThroughCopyImport) {
	check_one_to_one(96, 64, 0, 0, 0, kCopyPolicy, ImportPath::copy);
	check_one_to_one(96, 64, 96 * 4 + 36, 4100, 0, kCopyPolicy, ImportPath::copy);
}

TEST_P(RenderTest, CopyOnlyMatchesDraw) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 80, 60, 80 * 4 + 32, 256);
	fill_pattern(g, 3);
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto a = make_target(ctx(), 80, 60);
	auto b = make_target(ctx(), 80, 60);
	ASSERT_TRUE(a && b);
	FrameDesc f;
	f.primary = imp.get();
	EXPECT_TRUE(draw(f, *a).copied);
	Status s = renderer().copy_only(*imp, *b->out);
	ASSERT_TRUE(s.ok()) << s.error();
	for (uint32_t y = 0; y < 60; y++)
		for (uint32_t x = 0; x < 80; x++) ASSERT_EQ(a->word(x, y), b->word(x, y)) << "at " << x << "," << y;
	EXPECT_TRUE(frame_matches(*b, expect_pattern(3)));
}

// ---------------------------------------------------------------------------------------------
// Software cursor

// Premultiplied ARGB8888 cursor made of 8x8 tiles: opaque white, fully transparent and 50% grey
// (0x80404040: alpha 128, colour 64 already multiplied).
enum class CursorTexel { opaque, clear, half };
CursorTexel cursor_texel(int cx, int cy) { return static_cast<CursorTexel>((cx / 8 + cy / 8) % 3); }
uint32_t cursor_word(CursorTexel t) {
	switch (t) {
	case CursorTexel::opaque: return 0xFFFFFFFFu;
	case CursorTexel::clear: return 0x00000000u;
	case CursorTexel::half: return 0x80404040u;
	}
	return 0;
}

Guest make_cursor(uint32_t stride = 0, uint64_t offset = 0) {
	Guest c = make_guest(DRM_FORMAT_ARGB8888, 64, 64, stride, offset, vgpu::PlaneType::cursor);
	c.fill32([](uint32_t x, uint32_t y) { return cursor_word(cursor_texel(int(x), int(y))); });
	return c;
}

// out = cursor + (1 - a) * under, per channel, in 0..255.
Rgb blend(CursorTexel t, Rgb under) {
	switch (t) {
	case CursorTexel::opaque: return {255, 255, 255};
	case CursorTexel::clear: return under;
	case CursorTexel::half: {
		auto ch = [](int u) { return int(std::lround(64.0 + (1.0 - 128.0 / 255.0) * u)); };
		return {ch(under.r), ch(under.g), ch(under.b)};
	}
	}
	return {};
}

// Checks a frame of guest pattern() with the cursor at (cx, cy): exact outside the cursor and
// for opaque/clear cursor texels, within 1 for the 50% ones.
void check_cursor_frame(const Target &t, int cx, int cy, int salt) {
	uint64_t bad = 0;
	std::string first;
	int seen[3] = {0, 0, 0};
	for (uint32_t y = 0; y < t.desc.height; y++) {
		for (uint32_t x = 0; x < t.desc.width; x++) {
			const Rgb under = pattern(int(x), int(y), salt);
			Rgb want = under;
			int tol = 0;
			const int qx = int(x) - cx, qy = int(y) - cy;
			if (qx >= 0 && qy >= 0 && qx < 64 && qy < 64) {
				CursorTexel ct = cursor_texel(qx, qy);
				seen[int(ct)]++;
				want = blend(ct, under);
				tol = ct == CursorTexel::half ? 1 : 0;
			}
			const Rgb got = t.rgb(x, y);
			if (std::abs(want.r - got.r) > tol || std::abs(want.g - got.g) > tol || std::abs(want.b - got.b) > tol) {
				if (bad < 5)
					first += " (" + std::to_string(x) + "," + std::to_string(y) + "): want " + to_string(want) +
					         " got " + to_string(got) + ";";
				bad++;
			}
		}
	}
	EXPECT_EQ(bad, 0u) << first;
	// The visible part of the cursor must have shown all three kinds of texel.
	EXPECT_GT(seen[0], 0);
	EXPECT_GT(seen[1], 0);
	EXPECT_GT(seen[2], 0);
}

TEST_P(RenderTest, CursorOffTopLeftOnCopiedFrame) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 128, 96);
	fill_pattern(g, 1);
	Guest c = make_cursor();
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 128, 96);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), -20, -10};
	RenderReport rep = draw(f, *t);
	EXPECT_TRUE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 44, 54}));
	check_cursor_frame(*t, -20, -10, 1);
}

TEST_P(RenderTest, CursorOffBottomRightOnCopiedFrame) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 128, 96);
	fill_pattern(g, 2);
	Guest c = make_cursor(64 * 4 + 32, 128); // padded rows and an offset: the shader must use both
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 128, 96);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 100, 70};
	RenderReport rep = draw(f, *t);
	EXPECT_TRUE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{100, 70, 28, 26}));
	check_cursor_frame(*t, 100, 70, 2);
}

TEST_P(RenderTest, CursorInsideOnCopyImports) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 128, 96, 128 * 4 + 16, 64);
	fill_pattern(g, 4);
	Guest c = make_cursor(64 * 4 + 16, 4096 + 64);
	auto gi = import(ctx(), g, kCopyPolicy);
	auto ci = import(ctx(), c, kCopyPolicy);
	ASSERT_TRUE(gi && ci);
	ASSERT_EQ(gi->kind(), ImportPath::copy);
	ASSERT_EQ(ci->kind(), ImportPath::copy);
	auto t = make_target(ctx(), 128, 96);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 30, 17};
	RenderReport rep = draw(f, *t);
	EXPECT_TRUE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{30, 17, 64, 64}));
	check_cursor_frame(*t, 30, 17, 4);
}

TEST_P(RenderTest, CursorWithoutAlphaIsOpaque) {
	// An XRGB8888 cursor has no alpha: whatever its X bytes hold, it covers the guest.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64);
	fill_pattern(g, 15);
	Guest c = make_guest(DRM_FORMAT_XRGB8888, 16, 16, 0, 0, vgpu::PlaneType::cursor);
	c.fill32([](uint32_t x, uint32_t y) { return xrgb(int(x * 16), int(y * 16), 77, 0x00); });
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 8, 40};
	RenderReport rep = draw(f, *t);
	EXPECT_TRUE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{8, 40, 16, 16}));
	EXPECT_TRUE(frame_matches(*t, [](uint32_t x, uint32_t y) {
		if (x >= 8 && x < 24 && y >= 40 && y < 56) return Rgb{int(x - 8) * 16, int(y - 40) * 16, 77};
		return pattern(int(x), int(y), 15);
	}));
}

TEST_P(RenderTest, CursorEntirelyOffTheOutputComposesNothing) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64);
	fill_pattern(g);
	Guest c = make_cursor();
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), -64, 10};
	RenderReport rep = draw(f, *t);
	EXPECT_TRUE(rep.copied);
	EXPECT_EQ(rep.composed, Rect{});
	EXPECT_TRUE(frame_matches(*t, expect_pattern()));
}

TEST_P(RenderTest, CursorOverShaderDrawnFrame) {
	// An XBGR8888 guest into an XRGB8888 output cannot be copied: the shader draws the whole
	// output and blends the cursor on the way.
	Guest g = make_guest(DRM_FORMAT_XBGR8888, 96, 80);
	g.fill32([](uint32_t x, uint32_t y) {
		Rgb c = pattern(int(x), int(y), 5);
		return uint32_t(c.r) | uint32_t(c.g) << 8 | uint32_t(c.b) << 16 | 0x77000000u; // R G B X in memory
	});
	Guest c = make_cursor();
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 96, 80);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 50, -30};
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 96, 80}));
	check_cursor_frame(*t, 50, -30, 5);
}

// ---------------------------------------------------------------------------------------------
// "No signal"

// The glyphs of "NO SIGNAL", 5 columns by 7 rows, as drawn in shaders/font.glsl's comment:
// re-encoded here as pictures so the test does not reuse the shader's table.
const char *const kGlyphN[7] = {"#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"};
const char *const kGlyphO[7] = {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."};
const char *const kGlyphS[7] = {".####", "#....", "#....", ".###.", "....#", "....#", "####."};
const char *const kGlyphI[7] = {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."};
const char *const kGlyphG[7] = {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"};
const char *const kGlyphA[7] = {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"};
const char *const kGlyphL[7] = {"#....", "#....", "#....", "#....", "#....", "#....", "#####"};

const char *const *glyph_for(char ch) {
	switch (ch) {
	case 'N': return kGlyphN;
	case 'O': return kGlyphO;
	case 'S': return kGlyphS;
	case 'I': return kGlyphI;
	case 'G': return kGlyphG;
	case 'A': return kGlyphA;
	case 'L': return kGlyphL;
	default: return nullptr;
	}
}

// The set of output pixels "NO SIGNAL" covers on a w x h output: 6-column cells (5 + gap),
// scale s = max(1, min(w / 108, h / 28)), text 53s x 7s centred.
std::set<std::pair<int, int>> no_signal_pixels(int w, int h) {
	const char *text = "NO SIGNAL";
	const int s = std::max(1, std::min(w / 108, h / 28));
	const int ox = (w - 53 * s) / 2, oy = (h - 7 * s) / 2;
	std::set<std::pair<int, int>> on;
	for (int i = 0; text[i]; i++) {
		const char *const *gl = glyph_for(text[i]);
		if (!gl) continue;
		for (int row = 0; row < 7; row++)
			for (int col = 0; col < 5; col++)
				if (gl[row][col] == '#')
					for (int dy = 0; dy < s; dy++)
						for (int dx = 0; dx < s; dx++) {
							const int x = ox + (i * 6 + col) * s + dx, y = oy + row * s + dy;
							if (x >= 0 && y >= 0 && x < w && y < h) on.insert({x, y});
						}
	}
	return on;
}

void check_no_signal(const VulkanContext &ctx, HeadRenderer &hr, uint32_t w, uint32_t h) {
	SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
	auto t = make_target(ctx, w, h);
	ASSERT_TRUE(t);
	auto r = hr.draw(FrameDesc{}, *t->out);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_FALSE(r->copied);
	// Drawn by the shader the first time for this size, copied from that frame after.
	if (!r->reused)
		EXPECT_EQ(r->composed, (Rect{0, 0, int32_t(w), int32_t(h)}));
	else
		EXPECT_EQ(r->composed, Rect{});

	const Rgb bg{32, 32, 48}, fg{224, 224, 224};
	for (auto [x, y] : {std::pair<uint32_t, uint32_t>{0, 0}, {w - 1, 0}, {0, h - 1}, {w - 1, h - 1}})
		EXPECT_EQ(t->rgb(x, y), bg) << "corner " << x << "," << y << " is " << to_string(t->rgb(x, y));

	const auto expected_text = no_signal_pixels(int(w), int(h));
	ASSERT_FALSE(expected_text.empty());
	std::set<std::pair<int, int>> got_text;
	uint64_t other = 0;
	std::string first;
	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			const Rgb c = t->rgb(x, y);
			if (c == fg)
				got_text.insert({int(x), int(y)});
			else if (!(c == bg)) {
				if (other < 5) first += " (" + std::to_string(x) + "," + std::to_string(y) + ")=" + to_string(c);
				other++;
			}
		}
	}
	EXPECT_EQ(other, 0u) << "pixels neither background nor text:" << first;
	EXPECT_EQ(got_text.size(), expected_text.size());
	EXPECT_TRUE(got_text == expected_text) << "the text pixels differ from the 5x7 font's";
}

TEST_P(RenderTest, NoSignal1024x768) { check_no_signal(ctx(), renderer(), 1024, 768); }

TEST_P(RenderTest, NoSignal640x480) { check_no_signal(ctx(), renderer(), 640, 480); }

TEST_P(RenderTest, NoSignalHeightLimitedScale) {
	// 432 / 108 = 4 but 108 / 28 = 3: the height decides the scale.
	check_no_signal(ctx(), renderer(), 432, 108);
}

TEST_P(RenderTest, NoSignalSmall) {
	// Below 108 x 28 the scale stays 1 and the text is clipped, never scaled to 0.
	check_no_signal(ctx(), renderer(), 100, 20);
}

// ---------------------------------------------------------------------------------------------
// Scaling

TEST_P(RenderTest, ScaledSolidColourLetterboxed) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 100, 50);
	g.fill32([](uint32_t, uint32_t) { return xrgb(0x33, 0x66, 0x99, 0x12); });
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 200, 200);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 200, 200}));
	EXPECT_TRUE(frame_matches(*t, [](uint32_t, uint32_t y) {
		return (y < 50 || y >= 150) ? Rgb{0, 0, 0} : Rgb{0x33, 0x66, 0x99};
	}));
}

TEST_P(RenderTest, ScaledHalvesKeepTheirColours) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 100, 50);
	g.fill32([](uint32_t x, uint32_t) { return x < 50 ? xrgb(255, 0, 0) : xrgb(0, 0, 255); });
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 200, 200);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	for (uint32_t y = 0; y < 200; y++) {
		const bool inside = y >= 50 && y < 150;
		EXPECT_EQ(t->rgb(10, y), inside ? (Rgb{255, 0, 0}) : (Rgb{0, 0, 0})) << "y " << y;
		EXPECT_EQ(t->rgb(190, y), inside ? (Rgb{0, 0, 255}) : (Rgb{0, 0, 0})) << "y " << y;
		EXPECT_EQ(t->rgb(0, y), inside ? (Rgb{255, 0, 0}) : (Rgb{0, 0, 0})) << "y " << y;
		EXPECT_EQ(t->rgb(199, y), inside ? (Rgb{0, 0, 255}) : (Rgb{0, 0, 0})) << "y " << y;
	}
	// Bilinear: the seam between the halves blends and stays within the two colours.
	const Rgb mid = t->rgb(99, 100);
	EXPECT_EQ(mid.g, 0);
	EXPECT_EQ(mid.r + mid.b, 255) << to_string(mid);
}

TEST_P(RenderTest, ScaledDownPillarboxed) {
	// 128x64 solid into 64x64: width 64, height 32, rows 16..47.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 128, 64);
	g.fill32([](uint32_t, uint32_t) { return xrgb(10, 200, 30); });
	auto imp = import(ctx(), g, kCopyPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_TRUE(frame_matches(*t, [](uint32_t, uint32_t y) {
		return (y < 16 || y >= 48) ? Rgb{0, 0, 0} : Rgb{10, 200, 30};
	}));
}

// Bilinear from first principles, as scaled_frame_problems (tests/common/vscanout_pixels.py)
// computes it: output pixel q of a dst-wide picture samples the source at
// s = (q + 0.5) * src / dst - 0.5 and blends texels floor(s) and floor(s) + 1, clamped.
struct Tap {
	int t0, t1;
	double f;
};
Tap tap(int q, int src, int dst) {
	const double s = (q + 0.5) * src / dst - 0.5;
	const int t = int(std::floor(s));
	return {std::clamp(t, 0, src - 1), std::clamp(t + 1, 0, src - 1), s - std::floor(s)};
}
struct RgbF {
	double r, g, b;
};
RgbF bilinear(const std::function<Rgb(int, int)> &texel, int gw, int gh, const Rect &place, int x, int y) {
	const Tap tx = tap(x - place.x, gw, place.w), ty = tap(y - place.y, gh, place.h);
	auto lerp = [](double a, double b, double f) { return a + (b - a) * f; };
	const Rgb a = texel(tx.t0, ty.t0), b = texel(tx.t1, ty.t0), c = texel(tx.t0, ty.t1), d = texel(tx.t1, ty.t1);
	return {lerp(lerp(a.r, b.r, tx.f), lerp(c.r, d.r, tx.f), ty.f),
	        lerp(lerp(a.g, b.g, tx.f), lerp(c.g, d.g, tx.f), ty.f),
	        lerp(lerp(a.b, b.b, tx.f), lerp(c.b, d.b, tx.f), ty.f)};
}

// Every pixel of a gw x gh pattern() guest scaled into the target: bars exactly black, the
// picture within 1 of the bilinear pattern, and where `cursor` (make_cursor's tiles, guest
// coordinates) lands, scaled by nearest texel and blended: opaque texels exactly white.
::testing::AssertionResult scaled_pattern_matches(const Target &t, int gw, int gh, int salt,
                                                  std::optional<std::pair<int, int>> cursor = std::nullopt) {
	const int W = int(t.desc.width), H = int(t.desc.height);
	const Rect place = render::place_frame(uint32_t(gw), uint32_t(gh), uint32_t(W), uint32_t(H));
	Rect cr{};
	if (cursor) {
		const double sx = double(place.w) / gw, sy = double(place.h) / gh;
		cr = {place.x + int(cursor->first * sx), place.y + int(cursor->second * sy), std::max(1, int(64 * sx + 0.5)),
		      std::max(1, int(64 * sy + 0.5))};
	}
	auto texel = [salt](int x, int y) { return pattern(x, y, salt); };
	uint64_t bad = 0, cursor_pixels = 0;
	std::string first;
	for (int y = 0; y < H; y++) {
		for (int x = 0; x < W; x++) {
			const Rgb got = t.rgb(uint32_t(x), uint32_t(y));
			const bool inside = x >= place.x && y >= place.y && x < place.x + place.w && y < place.y + place.h;
			RgbF want{0, 0, 0};
			double tol = 0;
			if (inside) {
				want = bilinear(texel, gw, gh, place, x, y);
				tol = 1;
			}
			if (cursor && x >= cr.x && y >= cr.y && x < cr.x + cr.w && y < cr.y + cr.h) {
				cursor_pixels++;
				switch (cursor_texel((x - cr.x) * 64 / cr.w, (y - cr.y) * 64 / cr.h)) {
				case CursorTexel::opaque: want = {255, 255, 255}, tol = 0; break;
				case CursorTexel::clear: break;
				case CursorTexel::half: {
					const double k = 1.0 - 128.0 / 255.0;
					want = {64 + k * want.r, 64 + k * want.g, 64 + k * want.b};
					tol = 1.5; // the picture's rounding, scaled, plus the blend's
					break;
				}
				}
			}
			if (std::abs(got.r - want.r) > tol || std::abs(got.g - want.g) > tol || std::abs(got.b - want.b) > tol) {
				if (bad < 5)
					first += " (" + std::to_string(x) + "," + std::to_string(y) + "): got " + to_string(got) +
					         " want (" + std::to_string(want.r) + "," + std::to_string(want.g) + "," +
					         std::to_string(want.b) + ");";
				bad++;
			}
		}
	}
	if (cursor && cursor_pixels == 0) return ::testing::AssertionFailure() << "the cursor is not on the output";
	if (bad == 0) return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << bad << " of " << W * H << " pixels off; picture " << place.w << "x"
	                                     << place.h << " at " << place.x << "," << place.y << ":" << first;
}

TEST_P(RenderTest, ScaledDownPatternIsBilinear) {
	// 1920x1080 -> 1280x1024 at a tenth: 192x108 into 128x102, bars above and below.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 192, 108);
	fill_pattern(g, 17);
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 128, 102);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.cpu, GetParam() == render::ComposePath::cpu);
	EXPECT_TRUE(scaled_pattern_matches(*t, 192, 108, 17));
}

TEST_P(RenderTest, ScaledUpPatternIsBilinear) {
	// Upscaling, 1024x768 -> 1920x1080 at a sixteenth (64x48 into 120x68, bars left and right),
	// and a factor that is no simple fraction (37x23 into 200x150).
	for (auto [gw, gh, ow, oh] : {std::array<uint32_t, 4>{64, 48, 120, 68}, {37, 23, 200, 150}}) {
		SCOPED_TRACE(std::to_string(gw) + "x" + std::to_string(gh) + " -> " + std::to_string(ow) + "x" +
		             std::to_string(oh));
		Guest g = make_guest(DRM_FORMAT_XRGB8888, gw, gh);
		fill_pattern(g, 18);
		auto imp = import(ctx(), g, kHostPolicy);
		ASSERT_TRUE(imp);
		auto t = make_target(ctx(), ow, oh);
		ASSERT_TRUE(t);
		FrameDesc f;
		f.primary = imp.get();
		RenderReport rep = draw(f, *t);
		EXPECT_FALSE(rep.copied);
		EXPECT_EQ(rep.cpu, GetParam() == render::ComposePath::cpu);
		EXPECT_TRUE(scaled_pattern_matches(*t, int(gw), int(gh), 18));
	}
}

TEST_P(RenderTest, ScaledUpFullSizeWithCursor) {
	// The issue's upscaling case at full size: 1024x768 into 1920x1080, the cursor scaled 1.40625x.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 1024, 768);
	fill_pattern(g, 19);
	Guest c = make_cursor();
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 1920, 1080);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 1000, 300}; // partly off the guest's right edge
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 1920, 1080}));
	EXPECT_TRUE(scaled_pattern_matches(*t, 1024, 768, 19, std::pair{1000, 300}));
}

TEST_P(RenderTest, ScaledDownWithCursorIntoPaddedXbgrOutput) {
	// Downscaling with the cursor over the bar and the picture, into an R G B output whose rows
	// have padding: channels swapped, padding untouched.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 300, 160, 300 * 4 + 64, 4096 + 128);
	fill_pattern(g, 20);
	Guest c = make_cursor(64 * 4 + 32, 64);
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	const uint32_t stride = 200 * 4 + 36;
	auto t = make_target(ctx(), 200, 150, stride, DRM_FORMAT_XBGR8888);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	f.cursor = SoftwareCursor{ci.get(), 250, -20};
	draw(f, *t);
	// Read back as X R G B by swapping the bytes into a copy.
	Target x;
	x.desc = t->desc;
	std::vector<uint8_t> bytes(uint64_t{stride} * 150);
	for (uint32_t y = 0; y < 150; y++)
		for (uint32_t i = 0; i < 200; i++) {
			const uint8_t *p = static_cast<const uint8_t *>(t->desc.data) + uint64_t{y} * stride + i * 4;
			uint8_t *o = bytes.data() + uint64_t{y} * stride + i * 4;
			o[0] = p[2], o[1] = p[1], o[2] = p[0], o[3] = p[3];
			EXPECT_EQ(p[3], 0xFF);
		}
	x.desc.data = bytes.data();
	EXPECT_TRUE(scaled_pattern_matches(x, 300, 160, 20, std::pair{250, -20}));
	uint64_t touched = 0;
	for (uint32_t y = 0; y < 150; y++)
		for (uint32_t b = 200 * 4; b < stride; b++)
			if (t->map.data()[uint64_t{y} * stride + b] != 0x5A) touched++;
	EXPECT_EQ(touched, 0u);
}

TEST_P(RenderTest, BarsStayRightFrameAfterFrame) {
	// The CPU compose writes a buffer's bars once per geometry: frame after frame, with the cursor
	// crossing a bar and leaving it, after a shader frame, and in a buffer whose bars are gone
	// (a new buffer at the same place), the bars are exactly black and the picture right.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 192, 108);
	Guest c = make_cursor();
	auto gi = import(ctx(), g, kHostPolicy);
	auto ci = import(ctx(), c, kHostPolicy);
	ASSERT_TRUE(gi && ci);
	auto t = make_target(ctx(), 128, 102);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = gi.get();
	int salt = 30;
	auto frame = [&](std::optional<std::pair<int, int>> cursor, const char *what) {
		SCOPED_TRACE(what);
		fill_pattern(g, ++salt);
		f.cursor.reset();
		if (cursor) f.cursor = SoftwareCursor{ci.get(), cursor->first, cursor->second};
		draw(f, *t);
		EXPECT_TRUE(scaled_pattern_matches(*t, 192, 108, salt, cursor));
	};
	frame(std::nullopt, "first frame");
	frame(std::nullopt, "same geometry");
	frame(std::pair{20, -40}, "cursor over the top bar");
	frame(std::pair{20, 10}, "cursor back inside: the bar under it redrawn");
	frame(std::nullopt, "no cursor");
	ASSERT_TRUE(renderer().draw(FrameDesc{}, *t->out).ok()); // no signal: the bars overwritten
	frame(std::nullopt, "after the no-signal frame");
	t->poison();
	frame(std::nullopt, "a buffer whose bars are gone");
	std::memset(t->map.data(), 0, t->map.size());
	frame(std::nullopt, "a zeroed buffer (alpha 0 in the bars)");
	for (uint32_t y : {0u, 101u})
		for (uint32_t x : {0u, 127u}) EXPECT_EQ(t->word(x, y), 0xFF000000u) << x << "," << y;
}

TEST_P(RenderTest, NoSignalIsDrawnOnceAndReused) {
	const uint32_t w = 300, h = 90;
	check_no_signal(ctx(), renderer(), w, h);      // drawn (or reused from an earlier test)
	auto t = make_target(ctx(), w, h, w * 4 + 20); // another buffer of that size, padded rows
	ASSERT_TRUE(t);
	auto r = renderer().draw(FrameDesc{}, *t->out);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_TRUE(r->reused);
	EXPECT_EQ(r->composed, Rect{});
	auto ref = make_target(ctx(), w, h);
	ASSERT_TRUE(ref);
	ASSERT_TRUE(renderer().draw(FrameDesc{}, *ref->out).ok());
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) ASSERT_EQ(t->rgb(x, y), ref->rgb(x, y)) << x << "," << y;
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t b = w * 4; b < w * 4 + 20; b++) ASSERT_EQ(t->map.data()[uint64_t{y} * (w * 4 + 20) + b], 0x5A);
	check_no_signal(ctx(), renderer(), w, h);
	// Another size is drawn anew, and an XBGR output gets a frame of its own.
	check_no_signal(ctx(), renderer(), 320, 100);
	auto bgr = make_target(ctx(), w, h, 0, DRM_FORMAT_XBGR8888);
	ASSERT_TRUE(bgr);
	r = renderer().draw(FrameDesc{}, *bgr->out);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_FALSE(r->reused);
	EXPECT_EQ(bgr->word(0, 0) & 0xFFFFFF, 0x302020u); // (32, 32, 48) as R G B bytes
}

// ---------------------------------------------------------------------------------------------
// The CPU kernels: AVX2 and plain C++ give the same bytes

TEST(RenderCpuCompose, SimdAndScalarAgreeBitForBit) {
	render::CpuComposer simd(render::CpuKernel::best), scalar(render::CpuKernel::scalar);
	if (!simd.simd()) GTEST_SKIP() << "no AVX2 on this CPU: only the scalar kernel runs";
	using L = core::PixelLayout;
	struct Case {
		uint32_t gw, gh, ow, oh;
		L src, dst;
	};
	const Case cases[] = {{192, 108, 128, 102, L::xrgb8888, L::xrgb8888}, {64, 48, 121, 69, L::argb8888, L::xbgr8888},
	                      {37, 23, 200, 150, L::xbgr8888, L::argb8888},   {1, 1, 17, 9, L::xrgb8888, L::xrgb8888},
	                      {1, 40, 33, 20, L::abgr8888, L::abgr8888},      {50, 31, 50, 31, L::rgb565, L::xrgb8888},
	                      {333, 7, 29, 61, L::xrgb8888, L::xrgb8888}};
	for (const Case &c : cases) {
		SCOPED_TRACE(std::to_string(c.gw) + "x" + std::to_string(c.gh) + " -> " + std::to_string(c.ow) + "x" +
		             std::to_string(c.oh));
		const uint32_t bpp = c.src == L::rgb565 ? 2 : 4, sstride = c.gw * bpp + 12;
		std::vector<uint8_t> src(uint64_t{sstride} * c.gh);
		for (size_t i = 0; i < src.size(); i++) src[i] = uint8_t(i * 131 + (i >> 7) * 17);
		std::vector<uint8_t> cur(64 * 64 * 4);
		for (size_t i = 0; i < cur.size(); i++) cur[i] = uint8_t(i * 7);
		for (size_t i = 0; i < cur.size(); i += 4) cur[i + 3] = std::max({cur[i], cur[i + 1], cur[i + 2], cur[i + 3]});
		const render::CpuImage in{src.data(), c.gw, c.gh, sstride, c.src};
		const Rect place = render::place_frame(c.gw, c.gh, c.ow, c.oh);
		const render::CpuCursor cursor{{cur.data(), 64, 64, 256, L::argb8888}, {place.x - 5, place.y + 2, 20, 30}};
		std::vector<uint8_t> a(uint64_t{c.ow} * 4 * c.oh, 1), b(a.size(), 2);
		simd.compose(in, place, &cursor, {a.data(), c.ow, c.oh, c.ow * 4, c.dst});
		scalar.compose(in, place, &cursor, {b.data(), c.ow, c.oh, c.ow * 4, c.dst});
		EXPECT_TRUE(a == b);
	}
}

// ---------------------------------------------------------------------------------------------
// Formats

TEST_P(RenderTest, Xbgr8888GuestGoesThroughTheShader) {
	Guest g = make_guest(DRM_FORMAT_XBGR8888, 64, 48);
	g.fill32([](uint32_t x, uint32_t y) {
		Rgb c = pattern(int(x), int(y), 6);
		return uint32_t(c.r) | uint32_t(c.g) << 8 | uint32_t(c.b) << 16 | 0xA5000000u; // R G B X in memory
	});
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 48);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 64, 48}));
	EXPECT_TRUE(frame_matches(*t, expect_pattern(6)));
}

TEST_P(RenderTest, Argb8888GuestIsCopiedAsIs) {
	Guest g = make_guest(DRM_FORMAT_ARGB8888, 64, 48);
	fill_pattern(g, 7);
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 48);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	EXPECT_TRUE(draw(f, *t).copied);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(7)));
}

int expand(int v, int max) { return (v * 255 + max / 2) / max; }

void check_rgb565(const VulkanContext &ctx, HeadRenderer &hr, const ImportPolicy &policy, uint32_t w, uint32_t h,
                  uint32_t stride, uint64_t offset = 0) {
	SCOPED_TRACE("rgb565 " + std::to_string(w) + "x" + std::to_string(h) + " stride " + std::to_string(stride) +
	             " offset " + std::to_string(offset) + (policy.allow_host ? " host" : " copy"));
	Guest g = make_guest(DRM_FORMAT_RGB565, w, h, stride, offset);
	auto r5 = [](uint32_t x, uint32_t y) { return int((x + y * 3) % 32); };
	auto g6 = [](uint32_t x, uint32_t y) { return int((x * 5 + y) % 64); };
	auto b5 = [](uint32_t x, uint32_t y) { return int((x * 3 + y * 7 + 11) % 32); };
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) g.set16(x, y, uint16_t(r5(x, y) << 11 | g6(x, y) << 5 | b5(x, y)));
	auto imp = import(ctx, g, policy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx, w, h);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	auto rep = hr.draw(f, *t->out);
	ASSERT_TRUE(rep.ok()) << rep.error();
	EXPECT_FALSE(rep->copied);
	EXPECT_TRUE(frame_matches(
	    *t,
	    [&](uint32_t x, uint32_t y) {
		    return Rgb{expand(r5(x, y), 31), expand(g6(x, y), 63), expand(b5(x, y), 31)};
	    },
	    1));
}

TEST_P(RenderTest, Rgb565GuestIsExpanded) {
	check_rgb565(ctx(), renderer(), kHostPolicy, 64, 40, 0);
	check_rgb565(ctx(), renderer(), kCopyPolicy, 64, 40, 0);
	// A stride that is not a multiple of 4 and an offset of one pixel: rows start in either half
	// of a 32-bit word.
	check_rgb565(ctx(), renderer(), kHostPolicy, 63, 17, 63 * 2, 2);
}

TEST_P(RenderTest, Rgb565CopyImportWithOddStride) {
	// Validation accepts any even stride for RGB565; the last pixel of such a plane ends 2 bytes
	// into a 32-bit word.
	// The copy buffer is rounded up to whole words so that word reaches the shader.
	check_rgb565(ctx(), renderer(), kCopyPolicy, 63, 17, 63 * 2);
}

TEST_P(RenderTest, XrgbGuestIntoXbgrOutputSwapsChannels) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 48);
	fill_pattern(g, 13);
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 48, 0, DRM_FORMAT_XBGR8888);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	// XBGR8888 output: bytes R G B X, read here as the word's low three bytes.
	uint64_t bad = 0;
	for (uint32_t y = 0; y < 48; y++)
		for (uint32_t x = 0; x < 64; x++) {
			const uint32_t w = t->word(x, y);
			const Rgb got{int(w & 0xff), int((w >> 8) & 0xff), int((w >> 16) & 0xff)};
			if (!(got == pattern(int(x), int(y), 13))) bad++;
		}
	EXPECT_EQ(bad, 0u);
}

TEST_P(RenderTest, ArgbOutputGetsOpaqueAlpha) {
	// An X guest cannot be copied into an output with alpha: the X byte would become its alpha.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 48);
	fill_pattern(g, 14); // X bytes vary, many of them far from 0xFF
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 48, 0, DRM_FORMAT_ARGB8888);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(14)));
	uint64_t not_opaque = 0;
	for (uint32_t y = 0; y < 48; y++)
		for (uint32_t x = 0; x < 64; x++)
			if ((t->word(x, y) >> 24) != 0xFF) not_opaque++;
	EXPECT_EQ(not_opaque, 0u);
}

TEST_P(RenderTest, ShaderRespectsPaddedOutputStride) {
	// A scaled frame into an output whose rows have padding: pixels land at y * stride and the
	// padding stays as it was.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 32, 16);
	g.fill32([](uint32_t, uint32_t y) { return y < 8 ? xrgb(0, 255, 0) : xrgb(255, 0, 255); });
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	const uint32_t stride = 64 * 4 + 48;
	auto t = make_target(ctx(), 64, 64, stride);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	// 32x16 into 64x64: 64x32 at y 16, 2x upscale. Output row 16 + q samples guest row q / 2 - 0.25:
	// only guest rows < 8 for q <= 14, only rows >= 8 for q >= 17.
	for (uint32_t x = 0; x < 64; x += 9) {
		for (uint32_t y : {0u, 15u, 48u, 63u}) EXPECT_EQ(t->rgb(x, y), (Rgb{0, 0, 0})) << x << "," << y;
		for (uint32_t y : {16u, 24u, 30u}) EXPECT_EQ(t->rgb(x, y), (Rgb{0, 255, 0})) << x << "," << y;
		for (uint32_t y : {33u, 40u, 47u}) EXPECT_EQ(t->rgb(x, y), (Rgb{255, 0, 255})) << x << "," << y;
	}
	uint64_t touched = 0;
	for (uint32_t y = 0; y < 64; y++)
		for (uint32_t b = 64 * 4; b < stride; b++)
			if (t->map.data()[uint64_t{y} * stride + b] != 0x5A) touched++;
	EXPECT_EQ(touched, 0u);
}

TEST_P(RenderTest, SameAspectUpscaleIsScaledNotCopied) {
	// A 64x32 guest on a 128x64 output has the output's aspect ratio: place_frame gives the whole
	// output, but the guest still has to be scaled 2x.
	// Same aspect is not same size: this must be scaled, not copied.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 32);
	g.fill32([](uint32_t, uint32_t) { return xrgb(0x12, 0x34, 0x56); });
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 128, 64);
	ASSERT_TRUE(t);
	EXPECT_EQ(render::place_frame(64, 32, 128, 64), (Rect{0, 0, 128, 64}));
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_EQ(rep.composed, (Rect{0, 0, 128, 64}));
	EXPECT_TRUE(frame_matches(*t, [](uint32_t, uint32_t) { return Rgb{0x12, 0x34, 0x56}; }));
}

TEST_P(RenderTest, SameAspectDownscaleStaysInsideTheOutput) {
	// A larger guest with the output's aspect ratio must be scaled down, never copied past the
	// end of the output buffer.
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 128, 64);
	g.fill32([](uint32_t, uint32_t) { return xrgb(0x65, 0x43, 0x21); });
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	auto t = make_target(ctx(), 64, 32);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	RenderReport rep = draw(f, *t);
	EXPECT_FALSE(rep.copied);
	EXPECT_TRUE(frame_matches(*t, [](uint32_t, uint32_t) { return Rgb{0x65, 0x43, 0x21}; }));
}

// ---------------------------------------------------------------------------------------------
// Import paths

TEST_P(RenderTest, HostImportIsZeroCopy) {
	if (!ctx().caps().host_memory) GTEST_SKIP() << "device has no VK_EXT_external_memory_host";
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64);
	fill_pattern(g, 8);
	uint64_t copies = 0;
	auto imp = import(ctx(), g, ImportPolicy{false, true, &copies});
	ASSERT_TRUE(imp);
	EXPECT_EQ(imp->kind(), ImportPath::host);
	EXPECT_STREQ(imp->path(), "host");
	EXPECT_NE(imp->cpu_data(), nullptr);
	EXPECT_EQ(copies, 0u);
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(8)));

	// The guest draws into the same buffer: the next frame shows it with no content_changed().
	fill_pattern(g, 9);
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(9)));
	EXPECT_EQ(copies, 0u);
}

TEST_P(RenderTest, CopyImportIsCountedAndRefreshedOnlyWhenTold) {
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64, 64 * 4 + 64, 128);
	fill_pattern(g, 10);
	uint64_t copies = 0;
	auto imp = import(ctx(), g, ImportPolicy{true, false, &copies});
	ASSERT_TRUE(imp);
	EXPECT_EQ(imp->kind(), ImportPath::copy);
	EXPECT_STREQ(imp->path(), "copy");
	EXPECT_EQ(copies, 1u);
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(10)));

	// New guest content without a notice: the copy still shows the old frame.
	fill_pattern(g, 11);
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(10)));
	EXPECT_EQ(copies, 1u);

	imp->content_changed(std::nullopt);
	EXPECT_EQ(copies, 2u);
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(11)));

	imp->content_changed(std::nullopt);
	EXPECT_EQ(copies, 3u);
}

// Damage rows (docs/design.md, "Damage rows"): told which rows changed, the copy import copies
// those and no others; the rest of the frame stays as it was copied before.
TEST_P(RenderTest, CopyImportCopiesOnlyTheDamagedRows) {
	const uint32_t stride = 64 * 4 + 64;
	Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64, stride, 128);
	fill_pattern(g, 10);
	uint64_t copies = 0, bytes = 0;
	ImportPolicy policy{true, false, &copies};
	policy.copy_bytes_counter = &bytes;
	auto imp = import(ctx(), g, policy);
	ASSERT_TRUE(imp);
	ASSERT_EQ(imp->kind(), ImportPath::copy);
	EXPECT_EQ(copies, 1u);
	EXPECT_EQ(bytes, uint64_t{stride} * 64); // the first copy: whole
	auto t = make_target(ctx(), 64, 64);
	ASSERT_TRUE(t);
	FrameDesc f;
	f.primary = imp.get();

	// The guest redraws everything but says rows 10..12: only they are copied.
	fill_pattern(g, 11);
	imp->content_changed(vgpu::RowSpan{10, 13});
	EXPECT_EQ(copies, 2u);
	EXPECT_EQ(bytes, uint64_t{stride} * (64 + 3));
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(
	    frame_matches(*t, [](uint32_t x, uint32_t y) { return pattern(int(x), int(y), y >= 10 && y < 13 ? 11 : 10); }));
	// Rows past the plane are cut off; none of its rows, nothing copied.
	imp->content_changed(vgpu::RowSpan{60, 100000});
	EXPECT_EQ(bytes, uint64_t{stride} * (64 + 3 + 4));
	imp->content_changed(vgpu::RowSpan{64, 80});
	imp->content_changed(vgpu::RowSpan{});
	EXPECT_EQ(copies, 3u);
	EXPECT_EQ(bytes, uint64_t{stride} * (64 + 3 + 4));
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(
	    *t, [](uint32_t x, uint32_t y) { return pattern(int(x), int(y), (y >= 10 && y < 13) || y >= 60 ? 11 : 10); }));
	// Unknown rows: the whole plane.
	imp->content_changed(std::nullopt);
	EXPECT_EQ(copies, 4u);
	EXPECT_EQ(bytes, uint64_t{stride} * (64 + 3 + 4 + 64));
	t->poison();
	draw(f, *t);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(11)));
}

TEST_P(RenderTest, WithoutHostMemoryEverythingIsCopiedAndStaged) {
	auto c = VulkanContext::create(render::ContextOptions{.disable_host_memory = true});
	ASSERT_TRUE(c.ok()) << c.error();
	const VulkanContext &ctx2 = **c;
	EXPECT_FALSE(ctx2.caps().host_memory);
	auto hr = HeadRenderer::create(ctx2, options());
	ASSERT_TRUE(hr.ok()) << hr.error();

	Guest g = make_guest(DRM_FORMAT_XRGB8888, 96, 64, 96 * 4 + 32, 64);
	fill_pattern(g, 12);
	uint64_t copies = 0;
	auto imp = import(ctx2, g, ImportPolicy{true, true, &copies});
	ASSERT_TRUE(imp);
	EXPECT_EQ(imp->kind(), ImportPath::copy);
	EXPECT_EQ(copies, 1u);

	auto t = make_target(ctx2, 96, 64);
	ASSERT_TRUE(t);
	EXPECT_TRUE(t->out->staged());
	FrameDesc f;
	f.primary = imp.get();
	auto rep = (*hr)->draw(f, *t->out);
	ASSERT_TRUE(rep.ok()) << rep.error();
	EXPECT_TRUE(rep->copied);
	EXPECT_TRUE(frame_matches(*t, expect_pattern(12)));

	// A shader-drawn frame reaches the staged buffer too.
	auto big = make_target(ctx2, 192, 192);
	ASSERT_TRUE(big);
	EXPECT_TRUE(big->out->staged());
	rep = (*hr)->draw(f, *big->out);
	ASSERT_TRUE(rep.ok()) << rep.error();
	EXPECT_FALSE(rep->copied);
	// 96x64 into 192x192: 192x128 at y 32. Check the letterbox bars here, the inside with a solid
	// guest below (a bilinear upscale of the pattern blends neighbours).
	for (uint32_t x = 0; x < 192; x += 7) {
		EXPECT_EQ(big->rgb(x, 0), (Rgb{0, 0, 0}));
		EXPECT_EQ(big->rgb(x, 31), (Rgb{0, 0, 0}));
		EXPECT_EQ(big->rgb(x, 160), (Rgb{0, 0, 0}));
		EXPECT_EQ(big->rgb(x, 191), (Rgb{0, 0, 0}));
	}
	g.fill32([](uint32_t, uint32_t) { return xrgb(200, 100, 50); });
	imp->content_changed(std::nullopt);
	rep = (*hr)->draw(f, *big->out);
	ASSERT_TRUE(rep.ok()) << rep.error();
	EXPECT_TRUE(frame_matches(*big, [](uint32_t, uint32_t y) {
		return (y < 32 || y >= 160) ? Rgb{0, 0, 0} : Rgb{200, 100, 50};
	}));

	// The "no signal" frame, staged.
	check_no_signal(ctx2, **hr, 256, 64);
}

TEST_P(RenderTest, UnalignedOutputBufferIsStaged) {
	// Host import needs page-aligned memory: an output buffer that starts mid-page is drawn
	// through a staging buffer and copied out.
	auto fd = make_memfd("target", 3 * kPage);
	ASSERT_TRUE(fd.ok()) << fd.error();
	auto m = Mapping::map(fd->get(), 3 * kPage, PROT_READ | PROT_WRITE);
	ASSERT_TRUE(m.ok()) << m.error();
	std::memset(m->data(), 0x5A, 3 * kPage);
	Target t;
	t.desc = TargetDesc{m->data() + 64, 48 * 4, 48, 40, DRM_FORMAT_XRGB8888};
	auto out = OutputTarget::create(ctx(), t.desc);
	ASSERT_TRUE(out.ok()) << out.error();
	t.out = std::move(*out);
	EXPECT_TRUE(t.out->staged());

	Guest g = make_guest(DRM_FORMAT_XRGB8888, 48, 40);
	fill_pattern(g, 16);
	auto imp = import(ctx(), g, kHostPolicy);
	ASSERT_TRUE(imp);
	FrameDesc f;
	f.primary = imp.get();
	auto rep = renderer().draw(f, *t.out);
	ASSERT_TRUE(rep.ok()) << rep.error();
	EXPECT_TRUE(rep->copied);
	// Target::rgb reads through desc.data, i.e. from the unaligned start.
	EXPECT_TRUE(frame_matches(t, expect_pattern(16)));
	// Nothing before the buffer or after its last row was written.
	for (uint32_t i = 0; i < 64; i++) EXPECT_EQ(m->data()[i], 0x5A) << i;
	for (uint64_t i = 64 + 48 * 4 * 40; i < 3 * kPage; i++) ASSERT_EQ(m->data()[i], 0x5A) << i;
}

TEST_P(RenderTest, ImportsDoNotLeakFds) {
	// Warm up: a driver may open descriptors of its own on first use.
	{
		Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 64);
		auto a = import(ctx(), g, kHostPolicy);
		auto b = import(ctx(), g, kCopyPolicy);
		ASSERT_TRUE(a && b);
	}
	const int before = count_open_fds();
	ASSERT_GT(before, 0);
	for (int i = 0; i < 50; i++) {
		Guest g = make_guest(DRM_FORMAT_XRGB8888, 64, 32 + i % 5, 0, uint64_t(i % 3) * 256);
		const ImportPolicy policy = (i % 2) ? kHostPolicy : kCopyPolicy;
		const vgpu::BufferKind kind = (i % 4 == 3) ? vgpu::BufferKind::dmabuf : vgpu::BufferKind::memfd;
		auto imp = import(ctx(), g, ImportPolicy{true, policy.allow_host, nullptr}, kind);
		ASSERT_TRUE(imp) << "import " << i;
	}
	EXPECT_EQ(count_open_fds(), before);
}

} // namespace
} // namespace vscanout
