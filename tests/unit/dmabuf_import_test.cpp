// The dma-buf import layer: the pure fourcc/plane -> Vulkan description, the device check, and
// GuestImport's fallback when a buffer that claims to be a dma-buf cannot be imported as one.
#include <gtest/gtest.h>

#include <drm_fourcc.h>
#include <fcntl.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "render/dmabuf_import.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"
#include "render/target.hpp"
#include "render/vk_context.hpp"
#include "vgpu/plane.hpp"

namespace vscanout {
namespace {

using render::DmabufImageDesc;
using render::VulkanContext;

vgpu::PlaneInfo plane_of(uint32_t fourcc, uint64_t modifier, uint32_t w, uint32_t h, uint32_t stride,
                         uint64_t offset = 0) {
	vgpu::PlaneInfo p;
	p.state = vgpu::PlaneState::enabled;
	p.drm_format = fourcc;
	p.drm_format_mod = modifier;
	p.width = w;
	p.height = h;
	p.stride = stride;
	p.size = stride * h;
	p.offset = offset;
	return p;
}

TEST(DmabufFormat, SupportedFourccsMapToByteOrderedFormats) {
	// XRGB8888 is the little-endian word 0xXXRRGGBB: bytes B G R X, i.e. B8G8R8A8.
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_XRGB8888), VK_FORMAT_B8G8R8A8_UNORM);
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_ARGB8888), VK_FORMAT_B8G8R8A8_UNORM);
	// XBGR8888: bytes R G B X.
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_XBGR8888), VK_FORMAT_R8G8B8A8_UNORM);
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_ABGR8888), VK_FORMAT_R8G8B8A8_UNORM);
	// RGB565: a 16-bit word with R in bits 15..11, as R5G6B5_UNORM_PACK16.
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_RGB565), VK_FORMAT_R5G6B5_UNORM_PACK16);
}

TEST(DmabufFormat, UnsupportedFourccsAreUndefined) {
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_NV12), VK_FORMAT_UNDEFINED);
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_YUYV), VK_FORMAT_UNDEFINED);
	EXPECT_EQ(render::vk_format_for_fourcc(DRM_FORMAT_XRGB2101010), VK_FORMAT_UNDEFINED);
	EXPECT_EQ(render::vk_format_for_fourcc(0), VK_FORMAT_UNDEFINED);
}

TEST(DmabufDescribe, LinearPlane) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 48, 320, 8192));
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(d->format, VK_FORMAT_B8G8R8A8_UNORM);
	EXPECT_EQ(d->extent.width, 64u);
	EXPECT_EQ(d->extent.height, 48u);
	EXPECT_EQ(d->extent.depth, 1u);
	EXPECT_EQ(d->modifier, DRM_FORMAT_MOD_LINEAR);
	EXPECT_EQ(d->plane.offset, 8192u);
	EXPECT_EQ(d->plane.rowPitch, 320u);
	EXPECT_EQ(d->plane.size, 0u); // Vulkan requires 0 in an explicit layout
	EXPECT_EQ(d->plane.arrayPitch, 0u);
	EXPECT_EQ(d->plane.depthPitch, 0u);
}

TEST(DmabufDescribe, IntelXTiledPlane) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_XBGR8888, I915_FORMAT_MOD_X_TILED, 1920, 1080, 7680));
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(d->format, VK_FORMAT_R8G8B8A8_UNORM);
	EXPECT_EQ(d->extent.width, 1920u);
	EXPECT_EQ(d->extent.height, 1080u);
	EXPECT_EQ(d->extent.depth, 1u);
	EXPECT_EQ(d->modifier, I915_FORMAT_MOD_X_TILED);
	EXPECT_EQ(d->plane.offset, 0u);
	EXPECT_EQ(d->plane.rowPitch, 7680u);
	EXPECT_EQ(d->plane.size, 0u);
}

TEST(DmabufDescribe, Rgb565Plane) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_RGB565, DRM_FORMAT_MOD_LINEAR, 800, 600, 1600, 64));
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(d->format, VK_FORMAT_R5G6B5_UNORM_PACK16);
	EXPECT_EQ(d->plane.rowPitch, 1600u);
	EXPECT_EQ(d->plane.offset, 64u);
}

TEST(DmabufDescribe, InvalidModifierIsAnError) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_INVALID, 64, 64, 256));
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("modifier"), std::string::npos) << d.error();
}

TEST(DmabufDescribe, UnsupportedFourccIsAnError) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_NV12, DRM_FORMAT_MOD_LINEAR, 64, 64, 64));
	ASSERT_FALSE(d.ok());
	EXPECT_FALSE(d.error().empty());
}

class DmabufDevice : public ::testing::Test {
protected:
	static void SetUpTestSuite() {
		auto c = VulkanContext::create();
		ASSERT_TRUE(c.ok()) << c.error();
		ctx_ = std::move(*c).release();
	}
	static void TearDownTestSuite() {
		delete ctx_;
		ctx_ = nullptr;
	}
	void SetUp() override {
		if (!ctx_) GTEST_FAIL() << "no Vulkan context";
	}
	static VulkanContext *ctx_;
};

VulkanContext *DmabufDevice::ctx_ = nullptr;

TEST_F(DmabufDevice, SupportCheckMatchesTheDeviceCaps) {
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256));
	ASSERT_TRUE(d.ok()) << d.error();
	Status s = render::check_dmabuf_support(*ctx_, *d);
	if (!ctx_->caps().dmabuf) {
		// lavapipe: no VK_EXT_external_memory_dma_buf.
		ASSERT_FALSE(s.ok());
		EXPECT_NE(s.error().find("cannot import dma-bufs"), std::string::npos) << s.error();
	} else if (!ctx_->caps().drm_modifier) {
		ASSERT_FALSE(s.ok());
		EXPECT_NE(s.error().find("modifier"), std::string::npos) << s.error();
	} else {
		// Every driver with modifiers can sample a small LINEAR XRGB8888 dma-buf.
		EXPECT_TRUE(s.ok()) << s.error();
	}
}

TEST(DmabufDisabled, SupportCheckFailsWhenDmabufIsDisabled) {
	auto c = VulkanContext::create(render::ContextOptions{.disable_dmabuf = true});
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_FALSE((*c)->caps().dmabuf);
	EXPECT_FALSE((*c)->caps().drm_modifier);
	auto d = render::describe_dmabuf_image(plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256));
	ASSERT_TRUE(d.ok()) << d.error();
	Status s = render::check_dmabuf_support(**c, *d);
	ASSERT_FALSE(s.ok());
	EXPECT_NE(s.error().find("cannot import dma-bufs"), std::string::npos) << s.error();
}

TEST_F(DmabufDevice, NonDmabufFallsBackToHostImport) {
	if (!ctx_->caps().host_memory) GTEST_SKIP() << "device has no VK_EXT_external_memory_host";
	// A memfd that a source calls a dma-buf: lavapipe cannot import dma-bufs at all, and a GPU
	// driver refuses a memfd as one; either way the import must land on the host path.
	const uint32_t w = 64, h = 32, stride = w * 4;
	const uint64_t bytes = 4096 * 3;
	vgpu::PlaneInfo p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, w, h, stride, 4096);
	auto fd = make_memfd("fake-dmabuf", bytes);
	ASSERT_TRUE(fd.ok()) << fd.error();
	auto map = Mapping::map(fd->get(), bytes, PROT_READ | PROT_WRITE);
	ASSERT_TRUE(map.ok()) << map.error();
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			const uint32_t word = (x * 4 + 1) << 16 | (y * 8 + 2) << 8 | ((x ^ y) & 0xff);
			std::memcpy(map->data() + p.offset + y * stride + x * 4, &word, 4);
		}

	const int fds_before = count_open_fds();
	{
		vgpu::GuestBuffer b;
		b.fd = UniqueFd(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
		b.kind = vgpu::BufferKind::dmabuf;
		b.byte_size = bytes;
		uint64_t copies = 0;
		auto imp = render::GuestImport::create(*ctx_, p, std::move(b), render::ImportPolicy{true, true, &copies});
		ASSERT_TRUE(imp.ok()) << imp.error();
		EXPECT_EQ((*imp)->kind(), render::ImportPath::host);
		EXPECT_EQ(copies, 0u);
		ASSERT_NE((*imp)->cpu_data(), nullptr);
		EXPECT_EQ(std::memcmp((*imp)->cpu_data(), map->data(), bytes), 0);

		// And it draws the guest's pixels.
		auto tfd = make_memfd("target", 4096 * 2);
		ASSERT_TRUE(tfd.ok()) << tfd.error();
		auto tmap = Mapping::map(tfd->get(), 4096 * 2, PROT_READ | PROT_WRITE);
		ASSERT_TRUE(tmap.ok()) << tmap.error();
		std::memset(tmap->data(), 0x5A, 4096 * 2);
		render::TargetDesc td{tmap->data(), w * 4, w, h, DRM_FORMAT_XRGB8888};
		auto target = render::OutputTarget::create(*ctx_, td);
		ASSERT_TRUE(target.ok()) << target.error();
		auto hr = render::HeadRenderer::create(*ctx_);
		ASSERT_TRUE(hr.ok()) << hr.error();
		render::FrameDesc f;
		f.primary = imp->get();
		auto rep = (*hr)->draw(f, **target);
		ASSERT_TRUE(rep.ok()) << rep.error();
		EXPECT_TRUE(rep->copied);
		int bad = 0;
		for (uint32_t y = 0; y < h; y++)
			for (uint32_t x = 0; x < w; x++) {
				uint32_t got;
				std::memcpy(&got, tmap->data() + y * w * 4 + x * 4, 4);
				const uint32_t want = (x * 4 + 1) << 16 | (y * 8 + 2) << 8 | ((x ^ y) & 0xff);
				if ((got & 0xFFFFFFu) != want) bad++;
			}
		EXPECT_EQ(bad, 0);
	}
	EXPECT_EQ(count_open_fds(), fds_before);
}

} // namespace
} // namespace vscanout

namespace vscanout {
namespace {

using render::import_order;
using render::ImportForm;
using Forms = std::vector<ImportForm>;

render::DeviceCaps caps_of(bool dmabuf, bool modifiers, bool host) {
	render::DeviceCaps c;
	c.dmabuf = dmabuf;
	c.drm_modifier = modifiers;
	c.host_memory = host;
	return c;
}

const render::ImportPolicy kAuto{true, true, nullptr};

TEST(ImportOrder, GpuWithModifiersTriesTheImageFirstThenTheLinearBuffer) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256);
	EXPECT_EQ(import_order(caps_of(true, true, true), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::dmabuf_image, ImportForm::dmabuf_linear, ImportForm::host, ImportForm::copy}));
}

TEST(ImportOrder, LavapipeOfMesa25ImportsALinearDmabufAsABuffer) {
	// VK_EXT_external_memory_dma_buf without VK_EXT_image_drm_format_modifier.
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256);
	EXPECT_EQ(import_order(caps_of(true, false, true), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::dmabuf_linear, ImportForm::host, ImportForm::copy}));
}

TEST(ImportOrder, NoDmabufExtensionGoesToHostMemoryThenCopy) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256);
	EXPECT_EQ(import_order(caps_of(false, false, true), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::host, ImportForm::copy}));
	EXPECT_EQ(import_order(caps_of(false, false, false), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::copy}));
}

TEST(ImportOrder, OnlyDmabufsTakeTheDmabufForms) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256);
	for (auto kind : {vgpu::BufferKind::memfd, vgpu::BufferKind::region})
		EXPECT_EQ(import_order(caps_of(true, true, true), p, kind, kAuto), (Forms{ImportForm::host, ImportForm::copy}));
}

TEST(ImportOrder, TiledModifiersNeedTheImageFormAndNeverReachTheCpuPaths) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, I915_FORMAT_MOD_X_TILED, 64, 64, 256);
	EXPECT_EQ(import_order(caps_of(true, true, true), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::dmabuf_image}));
	// lavapipe cannot detile, and neither can a CPU copy that reads rows: nothing to try.
	EXPECT_TRUE(import_order(caps_of(true, false, true), p, vgpu::BufferKind::dmabuf, kAuto).empty());
}

TEST(ImportOrder, ImplicitModifierIsLinearForTheCpuButNotAnImage) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_INVALID, 64, 64, 256);
	EXPECT_EQ(import_order(caps_of(true, true, true), p, vgpu::BufferKind::dmabuf, kAuto),
	          (Forms{ImportForm::host, ImportForm::copy}));
}

TEST(ImportOrder, PolicyForcesHostOrCopy) {
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 64, 256);
	const render::ImportPolicy host{false, true, nullptr}, copy{false, false, nullptr};
	EXPECT_EQ(import_order(caps_of(true, true, true), p, vgpu::BufferKind::dmabuf, host),
	          (Forms{ImportForm::host, ImportForm::copy}));
	EXPECT_EQ(import_order(caps_of(true, true, true), p, vgpu::BufferKind::dmabuf, copy), (Forms{ImportForm::copy}));
}

TEST(ImportOrder, PathsNameTheStatsValues) {
	EXPECT_STREQ(render::to_string(render::path_of(ImportForm::dmabuf_image)), "dmabuf");
	EXPECT_STREQ(render::to_string(render::path_of(ImportForm::dmabuf_linear)), "dmabuf");
	EXPECT_STREQ(render::to_string(render::path_of(ImportForm::host)), "host");
	EXPECT_STREQ(render::to_string(render::path_of(ImportForm::copy)), "copy");
}

TEST(DmabufFd, AMemfdIsNotADmabuf) {
	auto fd = make_memfd("not-a-dmabuf", 4096);
	ASSERT_TRUE(fd.ok()) << fd.error();
	EXPECT_FALSE(fd_is_dmabuf(fd->get()));
	EXPECT_FALSE(fd_is_dmabuf(-1));
}

TEST_F(DmabufDevice, AMemfdCalledADmabufIsRefusedByTheDmabufForms) {
	// A peer (QEMU's ScanoutDMABUF, a source) may hand over any fd as a "dma-buf"; its owner
	// could shrink it under the import. The dma-buf forms take real dma-bufs only.
	if (!ctx_->caps().host_memory) GTEST_SKIP() << "device has no VK_EXT_external_memory_host";
	const uint64_t bytes = 4096 * 4;
	auto fd = make_memfd("fake-dmabuf", bytes);
	ASSERT_TRUE(fd.ok()) << fd.error();
	vgpu::GuestBuffer b;
	b.fd = UniqueFd(::fcntl(fd->get(), F_DUPFD_CLOEXEC, 0));
	b.kind = vgpu::BufferKind::dmabuf;
	b.byte_size = bytes;
	auto p = plane_of(DRM_FORMAT_XRGB8888, DRM_FORMAT_MOD_LINEAR, 64, 32, 256);
	auto imp = render::GuestImport::create(*ctx_, p, std::move(b), kAuto);
	ASSERT_TRUE(imp.ok()) << imp.error();
	EXPECT_EQ((*imp)->form(), ImportForm::host);
	EXPECT_STREQ((*imp)->path(), "host");
}

TEST_F(DmabufDevice, ATiledPlaneThatNoFormCanReadIsAClearError) {
	if (ctx_->caps().drm_modifier) GTEST_SKIP() << "this device may import tiled images";
	auto fd = make_memfd("tiled", 4096 * 64);
	ASSERT_TRUE(fd.ok()) << fd.error();
	vgpu::GuestBuffer b;
	b.fd = std::move(*fd);
	b.kind = vgpu::BufferKind::dmabuf;
	b.byte_size = 4096 * 64;
	auto p = plane_of(DRM_FORMAT_XRGB8888, I915_FORMAT_MOD_X_TILED, 128, 64, 512);
	auto imp = render::GuestImport::create(*ctx_, p, std::move(b), kAuto);
	ASSERT_FALSE(imp.ok());
	EXPECT_NE(imp.error().find("tiled"), std::string::npos) << imp.error();
	EXPECT_NE(imp.error().find("LINEAR"), std::string::npos) << imp.error();
}

} // namespace
} // namespace vscanout

namespace vscanout {
namespace {

TEST_F(DmabufDevice, AnOutputBufferThatIsNoDmabufIsWrittenAsHostMemory) {
	if (!ctx_->caps().host_memory) GTEST_SKIP() << "device has no VK_EXT_external_memory_host";
	const uint32_t w = 64, h = 16;
	auto fd = make_memfd("output", 4096 * 2);
	ASSERT_TRUE(fd.ok()) << fd.error();
	auto map = Mapping::map(fd->get(), 4096 * 2, PROT_READ | PROT_WRITE);
	ASSERT_TRUE(map.ok()) << map.error();
	render::TargetDesc d{map->data(), w * 4, w, h, DRM_FORMAT_XRGB8888};
	d.dmabuf_fd = fd->get(); // a memfd posing as the output's dma-buf
	d.modifier = DRM_FORMAT_MOD_LINEAR;
	auto t = render::OutputTarget::create(*ctx_, d);
	ASSERT_TRUE(t.ok()) << t.error();
	EXPECT_EQ((*t)->path(), render::OutputPath::host);
	EXPECT_STREQ(render::to_string((*t)->path()), "host");
	auto forced = render::OutputTarget::create(*ctx_, d, false);
	ASSERT_TRUE(forced.ok()) << forced.error();
	EXPECT_EQ((*forced)->path(), render::OutputPath::host);
}

TEST_F(DmabufDevice, AnOutputBufferWithNeitherFormIsAClearError) {
	auto fd = make_memfd("output", 4096);
	ASSERT_TRUE(fd.ok()) << fd.error();
	render::TargetDesc d{nullptr, 256, 64, 16, DRM_FORMAT_XRGB8888};
	d.dmabuf_fd = fd->get();
	d.modifier = DRM_FORMAT_MOD_LINEAR;
	auto t = render::OutputTarget::create(*ctx_, d);
	ASSERT_FALSE(t.ok());
	EXPECT_NE(t.error().find("no CPU mapping"), std::string::npos) << t.error();
	EXPECT_NE(t.error().find("not a dma-buf"), std::string::npos) << t.error();
	d.modifier = I915_FORMAT_MOD_X_TILED;
	auto tiled = render::OutputTarget::create(*ctx_, d);
	ASSERT_FALSE(tiled.ok());
	EXPECT_NE(tiled.error().find("not LINEAR"), std::string::npos) << tiled.error();
}

} // namespace
} // namespace vscanout
