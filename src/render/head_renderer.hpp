// Draws one head into an output buffer with vscanout's own compute shader (shaders/compose.comp):
// guest primary 1:1 or scaled with aspect kept and letterboxed, software cursor, "no signal".
// A 1:1 frame whose pixels the output can take as they are goes by a plain buffer copy; the
// shader then runs only over the cursor's rectangle.
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>

#include "base/result.hpp"
#include "render/frame_map.hpp"
#include "render/import.hpp"
#include "render/target.hpp"
#include "render/vk_context.hpp"

namespace vscanout::render {

struct SoftwareCursor {
	const GuestImport *image = nullptr;
	int32_t x = 0, y = 0; // image top-left in guest primary coordinates
};

struct FrameDesc {
	const GuestImport *primary = nullptr; // nullptr: the "no signal" frame
	std::optional<SoftwareCursor> cursor;
};

struct RenderReport {
	bool copied = false;  // the primary went by plain copy
	Rect composed;        // the area the shader covered (empty when none)
};

class HeadRenderer {
public:
	static Result<std::unique_ptr<HeadRenderer>> create(const VulkanContext &ctx);
	~HeadRenderer();

	// Records, submits and waits: when this returns the target holds the frame.
	Result<RenderReport> draw(const FrameDesc &frame, OutputTarget &target);

	// Baseline for benchmarks: a plain copy of src into the target, nothing else.
	Status copy_only(const GuestImport &src, OutputTarget &target);

private:
	explicit HeadRenderer(const VulkanContext &ctx) : ctx_(ctx) {}
	Status init();
	Status submit_and_wait();
	void record_copy(const GuestImport &src, OutputTarget &target);
	void record_compose(const FrameDesc &frame, OutputTarget &target, const Rect &region, const Rect &placement);
	// Specialization constants of compose.comp: mode, source layout, cursor on, cursor layout,
	// output layout. One pipeline per combination, made when first needed.
	using Variant = std::array<uint32_t, 5>;
	VkPipeline pipeline_for(int source_kind, const Variant &variant);

	const VulkanContext &ctx_;
	DescriptorSetLayout set_layout_[2]; // [0] buffer source, [1] image source
	PipelineLayout pipeline_layout_[2];
	ShaderModule module_[2];
	std::map<std::pair<int, Variant>, Pipeline> pipelines_;
	DescriptorPool pool_;
	VkDescriptorSet sets_[2] = {VK_NULL_HANDLE, VK_NULL_HANDLE};
	Sampler sampler_;
	CommandPool cmd_pool_;
	VkCommandBuffer cmd_ = VK_NULL_HANDLE;
	Fence fence_;
	VulkanContext::MappedBuffer dummy_;
};

} // namespace vscanout::render
