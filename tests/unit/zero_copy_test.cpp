// Zero copy, proven on the driver itself (docs/design.md, "Import paths" and "Rendering"): the
// Vulkan device exports a dma-buf of its own memory (as a GPU driver exports a scanout or a
// vGPU's buffer), vscanout imports it the way it imports a guest's, and the test writes new pixels
// into the exporter's memory *without telling the import*. A frame drawn afterwards shows the new
// pixels only if the import reads the very same memory: a copy made at import time would still
// show the old ones. The output side likewise: a frame drawn into a dma-buf output is read back
// through the exporter's buffer.
//
// Runs wherever the device can export dma-bufs (GPU drivers with VK_EXT_external_memory_dma_buf:
// NVIDIA, radv, anv; bench/gpu-check.sh runs it on GPU machines); elsewhere (lavapipe without
// /dev/udmabuf) it skips and says why.
#include <gtest/gtest.h>

#include <drm_fourcc.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "render/command_stream.hpp"
#include "render/dmabuf_export.hpp"
#include "render/head_renderer.hpp"
#include "render/import.hpp"
#include "render/target.hpp"
#include "render/vk_context.hpp"
#include "vgpu/plane.hpp"

namespace vscanout {
namespace {

using render::VulkanContext;

using render::ExportedBuffer;

constexpr VkBufferUsageFlags kUsage =
    VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;

// The exporter's writes and reads, through a command stream of its own.
class Transfer {
public:
	explicit Transfer(const VulkanContext &ctx) : ctx_(ctx) {
		auto s = render::CommandStream::create(ctx);
		if (s) stream_ = std::move(*s);
	}

	// Writes bytes into the exported memory through the exporter's buffer, then hands the buffer
	// to the foreign queue family, as a driver releases a buffer it shares.
	Status upload(const ExportedBuffer &e, const std::vector<uint8_t> &bytes) {
		auto staging = ctx_.create_mapped_buffer(bytes.size(), VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
		if (!staging) return staging.take_error();
		std::memcpy(staging->data, bytes.data(), bytes.size());
		return run([&](VkCommandBuffer cmd) {
			VkBufferCopy c{0, 0, bytes.size()};
			vkCmdCopyBuffer(cmd, staging->buffer.get(), e.buffer.get(), 1, &c);
			VkBufferMemoryBarrier rel{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
			rel.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
			rel.srcQueueFamilyIndex = ctx_.queue_family();
			rel.dstQueueFamilyIndex = ctx_.foreign_queue_family();
			rel.buffer = e.buffer.get();
			rel.size = VK_WHOLE_SIZE;
			vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0,
			                     nullptr, 1, &rel, 0, nullptr);
		});
	}

	// Reads the exported memory back through the exporter's buffer.
	Result<std::vector<uint8_t>> download(const ExportedBuffer &e, VkDeviceSize bytes) {
		auto staging = ctx_.create_mapped_buffer(bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
		if (!staging) return staging.take_error();
		Status s = run([&](VkCommandBuffer cmd) {
			VkBufferMemoryBarrier acq{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
			acq.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
			acq.srcQueueFamilyIndex = ctx_.foreign_queue_family();
			acq.dstQueueFamilyIndex = ctx_.queue_family();
			acq.buffer = e.buffer.get();
			acq.size = VK_WHOLE_SIZE;
			vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, nullptr,
			                     1, &acq, 0, nullptr);
			VkBufferCopy c{0, 0, bytes};
			vkCmdCopyBuffer(cmd, e.buffer.get(), staging->buffer.get(), 1, &c);
			VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
			mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
			mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
			vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr,
			                     0, nullptr);
		});
		if (!s) return s.take_error();
		const auto *p = static_cast<const uint8_t *>(staging->data);
		return std::vector<uint8_t>(p, p + bytes);
	}

private:
	Status run(const std::function<void(VkCommandBuffer)> &record) {
		if (stream_.cmd() == VK_NULL_HANDLE) return fail("no command stream");
		stream_.begin();
		record(stream_.cmd());
		return stream_.submit_and_wait();
	}

	const VulkanContext &ctx_;
	render::CommandStream stream_;
};

// XRGB8888 words in which neighbouring pixels differ in every channel; salt changes all of them.
uint32_t word_at(uint32_t x, uint32_t y, uint32_t salt) {
	const uint32_t r = (x * 7 + y * 3 + salt * 41) & 0xff, g = (x * 13 + y * 29 + 91 + salt * 5) & 0xff,
	               b = (x * 5 + y * 17 + 200 + salt * 11) & 0xff;
	return (r << 16) | (g << 8) | b;
}

std::vector<uint8_t> frame_bytes(uint32_t w, uint32_t h, const std::function<uint32_t(uint32_t, uint32_t)> &px) {
	std::vector<uint8_t> v(uint64_t{w} * h * 4);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			const uint32_t word = px(x, y);
			std::memcpy(v.data() + (uint64_t{y} * w + x) * 4, &word, 4);
		}
	return v;
}

vgpu::PlaneInfo linear_plane(uint32_t w, uint32_t h) {
	vgpu::PlaneInfo p;
	p.type = vgpu::PlaneType::primary;
	p.state = vgpu::PlaneState::enabled;
	p.drm_format = DRM_FORMAT_XRGB8888;
	p.drm_format_mod = DRM_FORMAT_MOD_LINEAR;
	p.width = w;
	p.height = h;
	p.stride = w * 4;
	p.size = p.stride * h;
	p.buffer_id = 1;
	return p;
}

vgpu::GuestBuffer guest_buffer(const ExportedBuffer &e) {
	vgpu::GuestBuffer b;
	b.fd = UniqueFd(::fcntl(e.fd.get(), F_DUPFD_CLOEXEC, 0));
	b.kind = vgpu::BufferKind::dmabuf;
	b.byte_size = e.size;
	return b;
}

// Counts the pixels of a w x h XRGB8888 picture (rows of `stride` bytes) whose RGB differs from
// want(x, y); reports the first few.
::testing::AssertionResult pixels_match(const uint8_t *data, uint32_t w, uint32_t h, uint32_t stride,
                                        const std::function<uint32_t(uint32_t, uint32_t)> &want) {
	uint64_t bad = 0;
	std::string first;
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t got;
			std::memcpy(&got, data + uint64_t{y} * stride + uint64_t{x} * 4, 4);
			if ((got & 0xffffff) != (want(x, y) & 0xffffff)) {
				if (bad++ < 4) {
					char s[96];
					std::snprintf(s, sizeof s, " (%u,%u): want %06x got %06x;", x, y, want(x, y) & 0xffffff,
					              got & 0xffffff);
					first += s;
				}
			}
		}
	if (bad == 0) return ::testing::AssertionSuccess();
	return ::testing::AssertionFailure() << bad << " of " << uint64_t{w} * h << " pixels differ:" << first;
}

class ZeroCopy : public ::testing::Test {
protected:
	static void SetUpTestSuite() {
		auto c = VulkanContext::create();
		if (!c) {
			setup_error_ = new std::string(c.error());
			return;
		}
		ctx_ = std::move(*c).release();
		// The shader composes every scaled frame here, whatever the device (the CPU compose
		// would read a dma-buf through a CPU mapping instead).
		auto r = render::HeadRenderer::create(*ctx_, render::RendererOptions{render::ComposePath::gpu});
		if (!r) {
			setup_error_ = new std::string(r.error());
			return;
		}
		renderer_ = std::move(*r).release();
	}
	static void TearDownTestSuite() {
		delete renderer_;
		renderer_ = nullptr;
		delete ctx_;
		ctx_ = nullptr;
		delete setup_error_;
		setup_error_ = nullptr;
	}
	void SetUp() override {
		if (setup_error_) GTEST_FAIL() << *setup_error_;
		const std::string why = render::dmabuf_export_unsupported(*ctx_, kUsage);
		if (!why.empty()) GTEST_SKIP() << ctx_->caps().device_name << ": " << why;
		std::printf("[          ] device: %s\n", ctx_->caps().device_name.c_str());
	}

	// An exported guest frame holding frame_bytes(w, h, px).
	static Result<ExportedBuffer> guest(uint32_t w, uint32_t h, const std::function<uint32_t(uint32_t, uint32_t)> &px) {
		auto e = render::export_dmabuf_buffer(*ctx_, uint64_t{w} * h * 4, kUsage);
		if (!e) return e.take_error();
		Transfer t(*ctx_);
		if (Status s = t.upload(*e, frame_bytes(w, h, px)); !s) return s.take_error();
		return e;
	}

	static VulkanContext *ctx_;
	static render::HeadRenderer *renderer_;
	static std::string *setup_error_;
};
VulkanContext *ZeroCopy::ctx_ = nullptr;
render::HeadRenderer *ZeroCopy::renderer_ = nullptr;
std::string *ZeroCopy::setup_error_ = nullptr;

// A host-memory output (wlroots' shm and dumb buffers are): a page-aligned memfd mapping.
struct HostOutput {
	UniqueFd fd;
	Mapping map;
	std::unique_ptr<render::OutputTarget> target;
};
Result<HostOutput> host_output(const VulkanContext &ctx, uint32_t w, uint32_t h) {
	HostOutput o;
	const uint64_t bytes = align_up(uint64_t{w} * h * 4, uint64_t(::getpagesize()));
	auto fd = make_memfd("zero-copy-output", bytes);
	if (!fd) return fd.take_error();
	o.fd = std::move(*fd);
	auto m = Mapping::map(o.fd.get(), bytes, PROT_READ | PROT_WRITE);
	if (!m) return m.take_error();
	o.map = std::move(*m);
	std::memset(o.map.data(), 0x5A, bytes);
	auto t = render::OutputTarget::create(ctx, render::TargetDesc{o.map.data(), w * 4, w, h, DRM_FORMAT_XRGB8888});
	if (!t) return t.take_error();
	o.target = std::move(*t);
	return o;
}

TEST_F(ZeroCopy, AnImportedGuestDmabufIsTheExportersMemory) {
	const uint32_t w = 1920, h = 1080;
	auto g = guest(w, h, [](uint32_t x, uint32_t y) { return word_at(x, y, 0); });
	ASSERT_TRUE(g.ok()) << g.error();
	uint64_t copies = 0;
	render::ImportPolicy policy;
	policy.copy_counter = &copies;
	auto imp = render::GuestImport::create(*ctx_, linear_plane(w, h), guest_buffer(*g), policy);
	ASSERT_TRUE(imp.ok()) << imp.error();
	std::printf("[          ] guest import form: %s\n", render::to_string((*imp)->form()));
	ASSERT_EQ((*imp)->kind(), render::ImportPath::dmabuf) << "took " << render::to_string((*imp)->form());
	auto out = host_output(*ctx_, w, h);
	ASSERT_TRUE(out.ok()) << out.error();

	auto r = renderer_->draw(render::FrameDesc{imp->get(), std::nullopt}, *out->target);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_TRUE(pixels_match(out->map.data(), w, h, w * 4, [](uint32_t x, uint32_t y) { return word_at(x, y, 0); }));

	// New pixels written by the exporter, and the import is not told: only the same memory
	// shows them.
	Transfer t(*ctx_);
	ASSERT_TRUE(t.upload(*g, frame_bytes(w, h, [](uint32_t x, uint32_t y) { return word_at(x, y, 1); })).ok());
	r = renderer_->draw(render::FrameDesc{imp->get(), std::nullopt}, *out->target);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_TRUE(pixels_match(out->map.data(), w, h, w * 4, [](uint32_t x, uint32_t y) { return word_at(x, y, 1); }))
	    << "the import kept the old pixels: it is a copy, not the exporter's memory";
	EXPECT_EQ(copies, 0u);
}

TEST_F(ZeroCopy, TheShaderScalesStraightFromTheGuestDmabuf) {
	// A uniform frame, so that every scaled pixel has one right value whatever the filter; the
	// exporter then changes it, unannounced, as above.
	const uint32_t w = 1920, h = 1080, ow = 1280, oh = 1024; // 1280x720 picture, 152-row bars
	auto g = guest(w, h, [](uint32_t, uint32_t) { return 0x00336699u; });
	ASSERT_TRUE(g.ok()) << g.error();
	auto imp = render::GuestImport::create(*ctx_, linear_plane(w, h), guest_buffer(*g), render::ImportPolicy{});
	ASSERT_TRUE(imp.ok()) << imp.error();
	ASSERT_EQ((*imp)->kind(), render::ImportPath::dmabuf);
	auto out = host_output(*ctx_, ow, oh);
	ASSERT_TRUE(out.ok()) << out.error();
	auto expect = [&](uint32_t colour) {
		return [=](uint32_t, uint32_t y) { return y < 152 || y >= 872 ? 0u : colour; };
	};
	auto r = renderer_->draw(render::FrameDesc{imp->get(), std::nullopt}, *out->target);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_FALSE(r->cpu);
	EXPECT_TRUE(pixels_match(out->map.data(), ow, oh, ow * 4, expect(0x336699)));

	Transfer t(*ctx_);
	ASSERT_TRUE(t.upload(*g, frame_bytes(w, h, [](uint32_t, uint32_t) { return 0x00c0ffeeu; })).ok());
	r = renderer_->draw(render::FrameDesc{imp->get(), std::nullopt}, *out->target);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_TRUE(pixels_match(out->map.data(), ow, oh, ow * 4, expect(0xc0ffee)));
}

TEST_F(ZeroCopy, FramesAreDrawnStraightIntoADmabufOutput) {
	const uint32_t w = 1280, h = 800;
	auto g = guest(w, h, [](uint32_t x, uint32_t y) { return word_at(x, y, 2); });
	ASSERT_TRUE(g.ok()) << g.error();
	auto imp = render::GuestImport::create(*ctx_, linear_plane(w, h), guest_buffer(*g), render::ImportPolicy{});
	ASSERT_TRUE(imp.ok()) << imp.error();
	// The output: another exported dma-buf with no CPU mapping at all, as a KMS dumb or GBM
	// buffer handed over as a dma-buf; only the exporter's buffer reads it back.
	auto o = render::export_dmabuf_buffer(*ctx_, uint64_t{w} * h * 4, kUsage);
	ASSERT_TRUE(o.ok()) << o.error();
	render::TargetDesc desc{nullptr, w * 4, w, h, DRM_FORMAT_XRGB8888};
	desc.dmabuf_fd = o->fd.get();
	desc.modifier = DRM_FORMAT_MOD_LINEAR;
	auto target = render::OutputTarget::create(*ctx_, desc);
	ASSERT_TRUE(target.ok()) << target.error();
	ASSERT_EQ((*target)->path(), render::OutputPath::dmabuf);

	auto r = renderer_->draw(render::FrameDesc{imp->get(), std::nullopt}, **target);
	ASSERT_TRUE(r.ok()) << r.error();
	Transfer t(*ctx_);
	auto back = t.download(*o, uint64_t{w} * h * 4);
	ASSERT_TRUE(back.ok()) << back.error();
	EXPECT_TRUE(pixels_match(back->data(), w, h, w * 4, [](uint32_t x, uint32_t y) { return word_at(x, y, 2); }));
}

} // namespace
} // namespace vscanout
