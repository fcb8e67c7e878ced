#include "render/head_renderer.hpp"

#include <drm_fourcc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/log.hpp"
#include "core/format.hpp"

namespace vscanout::render {
namespace {

const uint32_t kComposeBufferSpv[] =
#include "compose_buffer.spv.h"
    ;
const uint32_t kComposeImageSpv[] =
#include "compose_image.spv.h"
    ;

// Mirrors the push-constant block of shaders/compose.comp.
struct ComposeParams {
	int32_t region_origin[2];
	int32_t region_size[2];
	int32_t dst_size[2];
	uint32_t dst_offset, dst_stride, dst_layout_unused;
	uint32_t src_mode_unused;
	int32_t src_size[2];
	uint32_t src_offset, src_stride;
	int32_t rect_pos[2];
	int32_t rect_size[2];
	uint32_t src_layout_unused;
	uint32_t cur_on_unused;
	int32_t cur_pos[2];
	int32_t cur_size[2];
	int32_t cur_src_size[2];
	uint32_t cur_offset, cur_stride, cur_layout_unused;
	int32_t text_scale;
	int32_t text_origin[2]; // 8-byte aligned, as an ivec2 is
};
static_assert(sizeof(ComposeParams) == 128, "ComposeParams must match shaders/compose.comp");

core::PixelLayout layout_of(uint32_t fourcc) { return core::find_format(fourcc)->layout; }

// Whether a guest pixel can be copied byte for byte into the target.
bool copyable(core::PixelLayout src, core::PixelLayout dst) {
	using L = core::PixelLayout;
	if (dst == L::xrgb8888) return src == L::xrgb8888 || src == L::argb8888;
	if (dst == L::xbgr8888) return src == L::xbgr8888 || src == L::abgr8888;
	return false; // an alpha target needs 0xFF written, which a copy of an X format would not do
}

Rect intersect(const Rect &a, const Rect &b) {
	int32_t x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
	int32_t x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
	if (x1 <= x0 || y1 <= y0) return {};
	return {x0, y0, x1 - x0, y1 - y0};
}

} // namespace

const char *to_string(ComposePath p) {
	switch (p) {
	case ComposePath::automatic: return "automatic";
	case ComposePath::gpu: return "gpu";
	case ComposePath::cpu: return "cpu";
	}
	return "?";
}

Result<std::unique_ptr<HeadRenderer>> HeadRenderer::create(const VulkanContext &ctx, const RendererOptions &options) {
	std::unique_ptr<HeadRenderer> r(new HeadRenderer(ctx, options));
	if (Status s = r->init(); !s) return s.take_error();
	return r;
}

HeadRenderer::~HeadRenderer() {
	if (ctx_.device()) vkDeviceWaitIdle(ctx_.device());
}

Status HeadRenderer::init() {
	VkDevice dev = ctx_.device();
	path_ = options_.compose;
	std::string why = "user choice";
	if (path_ == ComposePath::automatic) {
		const char *env = std::getenv("VSCANOUT_COMPOSE");
		const std::string e = env ? env : "";
		if (e == "cpu" || e == "gpu") {
			path_ = e == "cpu" ? ComposePath::cpu : ComposePath::gpu;
			why = "VSCANOUT_COMPOSE=" + e;
		} else {
			path_ = ctx_.caps().is_cpu ? ComposePath::cpu : ComposePath::gpu;
			why = ctx_.caps().is_cpu ? "the Vulkan device is a CPU" : "the Vulkan device is a GPU";
		}
	}
	if (path_ == ComposePath::cpu)
		VLOG_INFO("render: scaled frames composed on the CPU (%s, %s kernel)", why.c_str(),
		          cpu_.simd() ? "AVX2" : "scalar");
	else
		VLOG_INFO("render: scaled frames composed by the shader on %s (%s)", ctx_.caps().device_name.c_str(),
		          why.c_str());
	VkSamplerCreateInfo sci{VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO};
	sci.magFilter = sci.minFilter = VK_FILTER_NEAREST;
	sci.addressModeU = sci.addressModeV = sci.addressModeW = VK_SAMPLER_ADDRESS_MODE_CLAMP_TO_EDGE;
	VkSampler sampler;
	if (VkResult r = vkCreateSampler(dev, &sci, nullptr, &sampler); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateSampler", r));
	sampler_ = Sampler(dev, sampler);

	const uint32_t *code[2] = {kComposeBufferSpv, kComposeImageSpv};
	const size_t code_size[2] = {sizeof kComposeBufferSpv, sizeof kComposeImageSpv};
	for (int v = 0; v < 2; v++) {
		VkDescriptorSetLayoutBinding b[3] = {};
		for (uint32_t i = 0; i < 3; i++) {
			b[i].binding = i;
			b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
			b[i].descriptorCount = 1;
			b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
		}
		if (v == 1) {
			b[0].descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
			b[0].pImmutableSamplers = &sampler;
		}
		VkDescriptorSetLayoutCreateInfo dl{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
		dl.bindingCount = 3;
		dl.pBindings = b;
		VkDescriptorSetLayout layout;
		if (VkResult r = vkCreateDescriptorSetLayout(dev, &dl, nullptr, &layout); r != VK_SUCCESS)
			return fail(vk_fail("vkCreateDescriptorSetLayout", r));
		set_layout_[v] = DescriptorSetLayout(dev, layout);

		VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(ComposeParams)};
		VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
		pl.setLayoutCount = 1;
		pl.pSetLayouts = &layout;
		pl.pushConstantRangeCount = 1;
		pl.pPushConstantRanges = &pcr;
		VkPipelineLayout pipeline_layout;
		if (VkResult r = vkCreatePipelineLayout(dev, &pl, nullptr, &pipeline_layout); r != VK_SUCCESS)
			return fail(vk_fail("vkCreatePipelineLayout", r));
		pipeline_layout_[v] = PipelineLayout(dev, pipeline_layout);

		VkShaderModuleCreateInfo smi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
		smi.codeSize = code_size[v];
		smi.pCode = code[v];
		VkShaderModule module;
		if (VkResult r = vkCreateShaderModule(dev, &smi, nullptr, &module); r != VK_SUCCESS)
			return fail(vk_fail("vkCreateShaderModule", r));
		module_[v] = ShaderModule(dev, module);
	}

	VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 6},
	                                 {VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1}};
	VkDescriptorPoolCreateInfo dpi{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
	dpi.maxSets = 2;
	dpi.poolSizeCount = 2;
	dpi.pPoolSizes = sizes;
	VkDescriptorPool pool;
	if (VkResult r = vkCreateDescriptorPool(dev, &dpi, nullptr, &pool); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateDescriptorPool", r));
	pool_ = DescriptorPool(dev, pool);
	VkDescriptorSetLayout layouts[2] = {set_layout_[0].get(), set_layout_[1].get()};
	VkDescriptorSetAllocateInfo dsa{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
	dsa.descriptorPool = pool;
	dsa.descriptorSetCount = 2;
	dsa.pSetLayouts = layouts;
	if (VkResult r = vkAllocateDescriptorSets(dev, &dsa, sets_); r != VK_SUCCESS)
		return fail(vk_fail("vkAllocateDescriptorSets", r));

	auto stream = CommandStream::create(ctx_);
	if (!stream) return stream.take_error();
	stream_ = std::move(*stream);
	cmd_ = stream_.cmd();

	// Bound where a frame has no cursor or no primary: descriptors must always be valid.
	auto dummy = ctx_.create_mapped_buffer(4096, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
	if (!dummy) return dummy.take_error();
	dummy_ = std::move(*dummy);
	return Ok{};
}

Status HeadRenderer::submit_and_wait() {
	Status s = stream_.submit_and_wait();
	// A compose the batch could not record (no pipeline) fails the frame: the output would
	// otherwise be called drawn with the old or half a picture in it.
	if (!compose_error_.empty()) {
		std::string e = std::move(compose_error_);
		compose_error_.clear();
		return fail(e);
	}
	return s;
}

static void barrier(VkCommandBuffer cmd, VkPipelineStageFlags src_stage, VkAccessFlags src,
                    VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
	VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
	mb.srcAccessMask = src;
	mb.dstAccessMask = dst;
	vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

// Imported dma-bufs belong to a foreign queue (the vGPU or the guest's GPU): each frame takes
// ownership for its reads and hands it back, keeping an image's layout GENERAL throughout.
static void transfer_ownership(VkCommandBuffer cmd, const GuestImport &src, uint32_t from, uint32_t to, bool acquire) {
	const VkAccessFlags reads_access = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT;
	const VkAccessFlags src_access = acquire ? 0 : reads_access, dst_access = acquire ? reads_access : 0;
	const VkPipelineStageFlags reads = VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
	const VkPipelineStageFlags top = VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, bottom = VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT;
	const VkPipelineStageFlags src_stage = acquire ? top : reads, dst_stage = acquire ? reads : bottom;
	if (src.sampled()) {
		VkImageMemoryBarrier ib{VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER};
		ib.srcAccessMask = src_access;
		ib.dstAccessMask = dst_access;
		ib.oldLayout = VK_IMAGE_LAYOUT_GENERAL;
		ib.newLayout = VK_IMAGE_LAYOUT_GENERAL;
		ib.srcQueueFamilyIndex = from;
		ib.dstQueueFamilyIndex = to;
		ib.image = src.image();
		ib.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
		vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 0, nullptr, 0, nullptr, 1, &ib);
		return;
	}
	VkBufferMemoryBarrier bb{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
	bb.srcAccessMask = src_access;
	bb.dstAccessMask = dst_access;
	bb.srcQueueFamilyIndex = from;
	bb.dstQueueFamilyIndex = to;
	bb.buffer = src.buffer();
	bb.offset = 0;
	bb.size = VK_WHOLE_SIZE;
	vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 0, nullptr, 1, &bb, 0, nullptr);
}

// A dma-buf output buffer belongs to the display's device: frames take ownership for their writes
// and hand it back.
static void transfer_target(VkCommandBuffer cmd, const OutputTarget &t, uint32_t from, uint32_t to, bool acquire) {
	const VkAccessFlags writes = VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT;
	const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
	VkBufferMemoryBarrier bb{VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER};
	bb.srcAccessMask = acquire ? 0 : writes;
	bb.dstAccessMask = acquire ? writes : 0;
	bb.srcQueueFamilyIndex = from;
	bb.dstQueueFamilyIndex = to;
	bb.buffer = t.buffer();
	bb.offset = 0;
	bb.size = VK_WHOLE_SIZE;
	const VkPipelineStageFlags top = VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, bottom = VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT;
	vkCmdPipelineBarrier(cmd, acquire ? top : stages, acquire ? stages : bottom, 0, 0, nullptr, 1, &bb, 0, nullptr);
}

void HeadRenderer::record_copy(const GuestImport &src, OutputTarget &t) {
	const vgpu::PlaneInfo &p = src.plane();
	const TargetDesc &d = t.desc();
	if (src.sampled()) {
		VkBufferImageCopy bic{};
		bic.bufferRowLength = d.stride / 4;
		bic.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
		bic.imageExtent = {p.width, p.height, 1};
		vkCmdCopyImageToBuffer(cmd_, src.image(), VK_IMAGE_LAYOUT_GENERAL, t.buffer(), 1, &bic);
		return;
	}
	const uint64_t row = uint64_t{p.width} * 4;
	if (p.stride == d.stride) {
		VkBufferCopy c{src.pixel_offset(), 0, uint64_t{p.stride} * (p.height - 1) + row};
		vkCmdCopyBuffer(cmd_, src.buffer(), t.buffer(), 1, &c);
		return;
	}
	std::vector<VkBufferCopy> rows(p.height);
	for (uint32_t y = 0; y < p.height; y++)
		rows[y] = {src.pixel_offset() + uint64_t{y} * p.stride, uint64_t{y} * d.stride, row};
	vkCmdCopyBuffer(cmd_, src.buffer(), t.buffer(), p.height, rows.data());
}

VkPipeline HeadRenderer::pipeline_for(int v, const Variant &variant) {
	auto key = std::make_pair(v, variant);
	if (auto it = pipelines_.find(key); it != pipelines_.end()) return it->second.get();
	VkSpecializationMapEntry entries[5];
	for (uint32_t i = 0; i < 5; i++) entries[i] = {i, i * 4u, 4};
	VkSpecializationInfo spec{5, entries, sizeof(uint32_t) * 5, variant.data()};
	VkComputePipelineCreateInfo cpi{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
	cpi.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
	cpi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	cpi.stage.module = module_[v].get();
	cpi.stage.pName = "main";
	cpi.stage.pSpecializationInfo = &spec;
	cpi.layout = pipeline_layout_[v].get();
	VkPipeline pipeline = VK_NULL_HANDLE;
	if (VkResult r = vkCreateComputePipelines(ctx_.device(), VK_NULL_HANDLE, 1, &cpi, nullptr, &pipeline);
	    r != VK_SUCCESS) {
		VLOG_ERROR("render: vkCreateComputePipelines failed: %s", vk_result_name(r));
		return VK_NULL_HANDLE;
	}
	pipelines_.emplace(key, Pipeline(ctx_.device(), pipeline));
	return pipeline;
}

HeadRenderer::Dst HeadRenderer::dst_of(OutputTarget &t) {
	const TargetDesc &d = t.desc();
	return {t.buffer(), t.size(), d.width, d.height, d.stride, t.layout()};
}

void HeadRenderer::record_compose(const FrameDesc &f, const Dst &d, const Rect &region, const Rect &place) {
	const bool image = f.primary && f.primary->sampled();
	const int v = image ? 1 : 0;
	VkDescriptorSet set = sets_[v];

	VkDescriptorBufferInfo bufs[3] = {
	    {dummy_.buffer.get(), 0, VK_WHOLE_SIZE}, {dummy_.buffer.get(), 0, VK_WHOLE_SIZE}, {d.buffer, 0, d.size}};
	VkDescriptorImageInfo img{VK_NULL_HANDLE, VK_NULL_HANDLE, VK_IMAGE_LAYOUT_GENERAL};
	ComposeParams pc{};
	pc.region_origin[0] = region.x;
	pc.region_origin[1] = region.y;
	pc.region_size[0] = region.w;
	pc.region_size[1] = region.h;
	pc.dst_size[0] = static_cast<int32_t>(d.width);
	pc.dst_size[1] = static_cast<int32_t>(d.height);
	pc.dst_stride = d.stride;
	const int32_t dw = static_cast<int32_t>(d.width), dh = static_cast<int32_t>(d.height);
	pc.text_scale = std::max(1, std::min(dw / 108, dh / 28));
	pc.text_origin[0] = (dw - 53 * pc.text_scale) / 2;
	pc.text_origin[1] = (dh - 7 * pc.text_scale) / 2;
	Variant variant{0, 0, 0, static_cast<uint32_t>(core::PixelLayout::argb8888), static_cast<uint32_t>(d.layout)};
	if (f.primary) {
		const vgpu::PlaneInfo &p = f.primary->plane();
		variant[0] = (place.w == static_cast<int32_t>(p.width) && place.h == static_cast<int32_t>(p.height)) ? 1 : 2;
		pc.src_size[0] = static_cast<int32_t>(p.width);
		pc.src_size[1] = static_cast<int32_t>(p.height);
		pc.src_offset = static_cast<uint32_t>(f.primary->pixel_offset());
		pc.src_stride = p.stride;
		pc.rect_pos[0] = place.x;
		pc.rect_pos[1] = place.y;
		pc.rect_size[0] = place.w;
		pc.rect_size[1] = place.h;
		variant[1] = static_cast<uint32_t>(layout_of(p.drm_format));
		if (image) {
			img.imageView = f.primary->image_view();
		} else {
			bufs[0] = {f.primary->buffer(), 0, f.primary->buffer_size()};
		}
	}
	if (f.cursor && f.cursor->image) {
		const GuestImport &c = *f.cursor->image;
		const vgpu::PlaneInfo &cp = c.plane();
		const Rect cr =
		    cursor_rect(place, f.primary ? f.primary->plane().width : 0, f.primary ? f.primary->plane().height : 0,
		                f.cursor->x, f.cursor->y, cp.width, cp.height);
		variant[2] = 1;
		pc.cur_pos[0] = cr.x;
		pc.cur_pos[1] = cr.y;
		pc.cur_size[0] = cr.w;
		pc.cur_size[1] = cr.h;
		pc.cur_src_size[0] = static_cast<int32_t>(cp.width);
		pc.cur_src_size[1] = static_cast<int32_t>(cp.height);
		pc.cur_offset = static_cast<uint32_t>(c.pixel_offset());
		pc.cur_stride = cp.stride;
		variant[3] = static_cast<uint32_t>(layout_of(cp.drm_format));
		bufs[1] = {c.buffer(), 0, c.buffer_size()};
	}

	VkWriteDescriptorSet w[3] = {};
	for (uint32_t i = 0; i < 3; i++) {
		w[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
		w[i].dstSet = set;
		w[i].dstBinding = i;
		w[i].descriptorCount = 1;
		w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		w[i].pBufferInfo = &bufs[i];
	}
	if (image) {
		w[0].descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER;
		w[0].pBufferInfo = nullptr;
		w[0].pImageInfo = &img;
	}
	vkUpdateDescriptorSets(ctx_.device(), 3, w, 0, nullptr);
	VkPipeline pipeline = pipeline_for(v, variant);
	if (!pipeline) {
		compose_error_ = "render: no compute pipeline for this frame (vkCreateComputePipelines failed)";
		return;
	}
	vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
	vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline_layout_[v].get(), 0, 1, &set, 0, nullptr);
	vkCmdPushConstants(cmd_, pipeline_layout_[v].get(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
	vkCmdDispatch(cmd_, (region.w + 15) / 16, (region.h + 15) / 16, 1);
}

const uint8_t *HeadRenderer::cpu_pixels(const GuestImport &g) {
	const vgpu::PlaneInfo &p = g.plane();
	// The CPU reads LINEAR planes only (INVALID: an implicit layout, linear for a mapped buffer).
	if (p.drm_format_mod != DRM_FORMAT_MOD_LINEAR && p.drm_format_mod != DRM_FORMAT_MOD_INVALID) return nullptr;
	// A copy import shows the copy made at content_changed(), which only the shader reads.
	if (g.form() == ImportForm::copy) return nullptr;
	// Host imports are mapped; a dma-buf import maps its buffer the first time it is asked, once.
	const uint8_t *base = g.cpu_data();
	return base ? base + p.offset : nullptr;
}

namespace {

CpuImage cpu_image(const GuestImport &g, const uint8_t *pixels) {
	const vgpu::PlaneInfo &p = g.plane();
	return {const_cast<uint8_t *>(pixels), p.width, p.height, p.stride, layout_of(p.drm_format)};
}

} // namespace

void HeadRenderer::forget_bars(const OutputTarget &t) {
	std::erase_if(bars_, [&](const Bars &b) { return b.target == &t; });
}

bool HeadRenderer::bars_kept(const OutputTarget &t, const Rect &place) {
	const TargetDesc &d = t.desc();
	auto it = std::find_if(bars_.begin(), bars_.end(), [&](const Bars &b) { return b.target == &t; });
	if (it == bars_.end()) return false;
	const Bars &b = *it;
	if (b.data != d.data || b.buffer != t.buffer() || b.width != d.width || b.height != d.height ||
	    b.stride != d.stride || b.layout != t.layout() || b.place != place)
		return false;
	// The cursor was over a bar: redraw them all.
	const Rect cur = intersect(b.cursor, {0, 0, static_cast<int32_t>(d.width), static_cast<int32_t>(d.height)});
	if (cur.w > 0 && intersect(cur, place) != cur) return false;
	// A few bar pixels, in case the buffer is not what this renderer last wrote (a new buffer at
	// the same address): every corner of the output, and beside the picture's corners.
	auto black_at = [&](int64_t x, int64_t y) {
		if (x < 0 || y < 0 || x >= d.width || y >= d.height) return true;
		if (x >= place.x && y >= place.y && x < int64_t{place.x} + place.w && y < int64_t{place.y} + place.h)
			return true;
		uint32_t w;
		std::memcpy(&w, static_cast<const uint8_t *>(d.data) + y * d.stride + x * 4, 4);
		return w == 0xFF000000u;
	};
	const int64_t W = d.width, H = d.height, x0 = place.x, y0 = place.y, x1 = x0 + place.w, y1 = y0 + place.h;
	for (auto [x, y] : {std::pair<int64_t, int64_t>{0, 0},
	                    {W - 1, 0},
	                    {0, H - 1},
	                    {W - 1, H - 1},
	                    {x0 - 1, y0},
	                    {x1, y0},
	                    {x0 - 1, y1 - 1},
	                    {x1, y1 - 1},
	                    {x0, y0 - 1},
	                    {x1 - 1, y0 - 1},
	                    {x0, y1},
	                    {x1 - 1, y1},
	                    {W / 2, H / 2 - 1 - place.h / 2},
	                    {W / 2, H / 2 + place.h / 2 + 1}})
		if (!black_at(x, y)) return false;
	return true;
}

bool HeadRenderer::compose_on_cpu(const FrameDesc &f, OutputTarget &t, const Rect &place) {
	const uint8_t *primary = cpu_pixels(*f.primary);
	if (!primary) return false;
	const bool has_cursor = f.cursor && f.cursor->image;
	const uint8_t *cursor = has_cursor ? cpu_pixels(*f.cursor->image) : nullptr;
	if (has_cursor && !cursor) return false;
	const TargetDesc &d = t.desc();
	if (!d.data) return false; // a dma-buf output without a CPU mapping
	const CpuImage out{static_cast<uint8_t *>(d.data), d.width, d.height, d.stride, t.layout()};
	std::optional<CpuCursor> cur;
	if (has_cursor) {
		const vgpu::PlaneInfo &pp = f.primary->plane(), &cp = f.cursor->image->plane();
		cur = CpuCursor{cpu_image(*f.cursor->image, cursor),
		                cursor_rect(place, pp.width, pp.height, f.cursor->x, f.cursor->y, cp.width, cp.height)};
	}
	f.primary->begin_read();
	if (has_cursor) f.cursor->image->begin_read();
	// Straight into the output's own memory: a staged target needs no finish().
	const bool keep = bars_kept(t, place);
	cpu_.compose(cpu_image(*f.primary, primary), place, cur ? &*cur : nullptr, out, keep);
	forget_bars(t);
	constexpr size_t kKept = 8; // a few outputs' buffer rings
	if (bars_.size() >= kKept)
		bars_.erase(
		    std::min_element(bars_.begin(), bars_.end(), [](const Bars &a, const Bars &b) { return a.used < b.used; }));
	bars_.push_back({&t, d.data, t.buffer(), d.width, d.height, d.stride, t.layout(), place, cur ? cur->rect : Rect{},
	                 ++cpu_frames_});
	if (has_cursor) f.cursor->image->end_read();
	f.primary->end_read();
	return true;
}

Result<RenderReport> HeadRenderer::draw_no_signal(const FrameDesc &f, OutputTarget &t) {
	const TargetDesc &d = t.desc();
	RenderReport report;
	forget_bars(t);
	// The frame for this size and format: drawn once by the shader into a buffer of its own, and
	// copied into every output buffer from then on.
	auto it = std::find_if(no_signal_.begin(), no_signal_.end(), [&](const NoSignal &n) {
		return n.width == d.width && n.height == d.height && n.layout == t.layout();
	});
	if (it != no_signal_.end()) {
		std::rotate(it, it + 1, no_signal_.end()); // most recently used last
		report.reused = true;
	} else {
		constexpr size_t kKept = 4; // a few heads of different sizes (8 MB each at 1080p)
		if (no_signal_.size() >= kKept) no_signal_.erase(no_signal_.begin());
		auto buf = ctx_.create_mapped_buffer(uint64_t{d.width} * 4 * d.height,
		                                     VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
		if (!buf) return buf.take_error();
		NoSignal n{d.width, d.height, t.layout(), std::move(*buf)};
		const Dst dst{
		    n.buffer.buffer.get(), uint64_t{d.width} * 4 * d.height, d.width, d.height, d.width * 4, t.layout()};
		stream_.begin();
		record_compose(FrameDesc{}, dst, Rect{0, 0, static_cast<int32_t>(d.width), static_cast<int32_t>(d.height)}, {});
		if (Status s = submit_and_wait(); !s) return s.take_error();
		no_signal_.push_back(std::move(n));
		report.composed = {0, 0, static_cast<int32_t>(d.width), static_cast<int32_t>(d.height)};
	}
	const NoSignal &n = no_signal_.back();
	stream_.begin();
	if (t.foreign()) transfer_target(cmd_, t, ctx_.foreign_queue_family(), ctx_.queue_family(), true);
	const uint64_t row = uint64_t{d.width} * 4;
	if (d.stride == row) {
		VkBufferCopy c{0, 0, row * d.height};
		vkCmdCopyBuffer(cmd_, n.buffer.buffer.get(), t.buffer(), 1, &c);
	} else {
		std::vector<VkBufferCopy> rows(d.height);
		for (uint32_t y = 0; y < d.height; y++) rows[y] = {y * row, uint64_t{y} * d.stride, row};
		vkCmdCopyBuffer(cmd_, n.buffer.buffer.get(), t.buffer(), d.height, rows.data());
	}
	const bool has_cursor = f.cursor && f.cursor->image;
	if (has_cursor) {
		const vgpu::PlaneInfo &cp = f.cursor->image->plane();
		const Rect output{0, 0, static_cast<int32_t>(d.width), static_cast<int32_t>(d.height)};
		const Rect cur = intersect(cursor_rect({}, 0, 0, f.cursor->x, f.cursor->y, cp.width, cp.height), output);
		if (cur.w > 0) {
			barrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
			        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT);
			record_compose(f, dst_of(t), cur, {});
			if (report.reused) report.composed = cur;
		}
	}
	if (t.foreign()) transfer_target(cmd_, t, ctx_.queue_family(), ctx_.foreign_queue_family(), false);
	barrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	        VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
	        VK_ACCESS_HOST_READ_BIT);
	if (has_cursor) f.cursor->image->begin_read();
	Status s = submit_and_wait();
	if (has_cursor) f.cursor->image->end_read();
	if (!s) return s.take_error();
	t.finish();
	return report;
}

Result<RenderReport> HeadRenderer::draw(const FrameDesc &f, OutputTarget &t) {
	const TargetDesc &d = t.desc();
	const Rect output{0, 0, static_cast<int32_t>(d.width), static_cast<int32_t>(d.height)};
	RenderReport report;
	if (!f.primary) return draw_no_signal(f, t);
	const Rect place = place_frame(f.primary->plane().width, f.primary->plane().height, d.width, d.height);

	// Same size, not merely the same aspect: place_frame fills the output for both.
	const bool one_to_one = f.primary->plane().width == d.width && f.primary->plane().height == d.height;
	const bool copy = one_to_one && copyable(layout_of(f.primary->plane().drm_format), t.layout());
	if (!copy && path_ == ComposePath::cpu && compose_on_cpu(f, t, place)) {
		report.cpu = true;
		report.composed = output;
		return report;
	}
	forget_bars(t);

	f.primary->begin_read();
	if (f.cursor && f.cursor->image) f.cursor->image->begin_read();
	stream_.begin();
	const bool foreign = f.primary->foreign();
	if (foreign) transfer_ownership(cmd_, *f.primary, ctx_.foreign_queue_family(), ctx_.queue_family(), true);
	if (t.foreign()) transfer_target(cmd_, t, ctx_.foreign_queue_family(), ctx_.queue_family(), true);
	if (copy) {
		record_copy(*f.primary, t);
		report.copied = true;
		if (f.cursor && f.cursor->image) {
			const vgpu::PlaneInfo &cp = f.cursor->image->plane();
			Rect cur{f.cursor->x, f.cursor->y, static_cast<int32_t>(cp.width), static_cast<int32_t>(cp.height)};
			report.composed = intersect(cur, output);
			if (report.composed.w > 0) {
				barrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
				        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_SHADER_READ_BIT);
				record_compose(f, dst_of(t), report.composed, place);
			}
		}
	} else {
		report.composed = output;
		record_compose(f, dst_of(t), output, place);
	}
	if (foreign) transfer_ownership(cmd_, *f.primary, ctx_.queue_family(), ctx_.foreign_queue_family(), false);
	if (t.foreign()) transfer_target(cmd_, t, ctx_.queue_family(), ctx_.foreign_queue_family(), false);
	barrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
	        VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_SHADER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
	        VK_ACCESS_HOST_READ_BIT);
	Status s = submit_and_wait();
	if (f.cursor && f.cursor->image) f.cursor->image->end_read();
	f.primary->end_read();
	if (!s) return s.take_error();
	t.finish();
	return report;
}

Status HeadRenderer::copy_only(const GuestImport &src, OutputTarget &t) {
	forget_bars(t);
	stream_.begin();
	const bool foreign = src.foreign();
	if (foreign) transfer_ownership(cmd_, src, ctx_.foreign_queue_family(), ctx_.queue_family(), true);
	if (t.foreign()) transfer_target(cmd_, t, ctx_.foreign_queue_family(), ctx_.queue_family(), true);
	record_copy(src, t);
	if (t.foreign()) transfer_target(cmd_, t, ctx_.queue_family(), ctx_.foreign_queue_family(), false);
	if (foreign) transfer_ownership(cmd_, src, ctx_.queue_family(), ctx_.foreign_queue_family(), false);
	barrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
	        VK_ACCESS_HOST_READ_BIT);
	Status s = submit_and_wait();
	if (s) t.finish();
	return s;
}

} // namespace vscanout::render
