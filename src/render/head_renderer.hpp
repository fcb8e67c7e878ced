// Draws one head into an output buffer with vscanout's own compute shader (shaders/compose.comp):
// guest primary 1:1 or scaled with aspect kept and letterboxed, software cursor, "no signal".
// A 1:1 frame whose pixels the output can take as they are goes by a plain buffer copy; the
// shader then runs only over the cursor's rectangle. Where the Vulkan device is a CPU
// (lavapipe), every other frame is composed on the CPU instead (render/cpu_compose.hpp), straight
// into the output's memory: the same picture at a fraction of the cost. The no-signal frame is
// drawn once per output size and format and copied from then on.
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "render/command_stream.hpp"
#include "render/cpu_compose.hpp"
#include "render/frame_map.hpp"
#include "render/geometry.hpp"
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
	bool copied = false; // the primary went by plain copy
	Rect composed;       // the area the shader (or the CPU compose) drew (empty when none)
	bool cpu = false;    // composed on the CPU (render/cpu_compose.hpp)
	bool reused = false; // the no-signal frame drawn before for this output size, copied
};

// Where frames that are not a plain copy are composed.
enum class ComposePath {
	automatic, // the CPU where the Vulkan device is a CPU, else the shader; VSCANOUT_COMPOSE=gpu|cpu overrides
	gpu,       // always the shader
	cpu,       // the CPU wherever the frame's pixels are CPU-readable (host imports, LINEAR dma-bufs)
};
const char *to_string(ComposePath p);

struct RendererOptions {
	ComposePath compose = ComposePath::automatic;
	CpuKernel cpu_kernel = CpuKernel::best;
};

class HeadRenderer {
public:
	static Result<std::unique_ptr<HeadRenderer>> create(const VulkanContext &ctx, const RendererOptions &options = {});
	~HeadRenderer();

	// Records, submits and waits: when this returns the target holds the frame.
	Result<RenderReport> draw(const FrameDesc &frame, OutputTarget &target);

	// Baseline for benchmarks: a plain copy of src into the target, nothing else.
	Status copy_only(const GuestImport &src, OutputTarget &target);

	// The path scaled frames take (never automatic).
	ComposePath compose_path() const { return path_; }

private:
	// Where the shader writes: an output target, or the no-signal frame's own buffer.
	struct Dst {
		VkBuffer buffer = VK_NULL_HANDLE;
		VkDeviceSize size = 0;
		uint32_t width = 0, height = 0, stride = 0;
		core::PixelLayout layout = core::PixelLayout::xrgb8888;
	};
	struct NoSignal {
		uint32_t width = 0, height = 0;
		core::PixelLayout layout = core::PixelLayout::xrgb8888;
		VulkanContext::MappedBuffer buffer; // tightly packed rows
	};
	// What the CPU compose last left in an output buffer: black bars around `place`, and the
	// cursor over them where `cursor` meets them. A buffer whose next frame has the same
	// geometry keeps its bars (checked at a few pixels); any other write forgets it.
	struct Bars {
		const OutputTarget *target = nullptr;
		void *data = nullptr;
		VkBuffer buffer = VK_NULL_HANDLE;
		uint32_t width = 0, height = 0, stride = 0;
		core::PixelLayout layout = core::PixelLayout::xrgb8888;
		Rect place, cursor;
		uint64_t used = 0;
	};

	HeadRenderer(const VulkanContext &ctx, const RendererOptions &options)
	    : ctx_(ctx), options_(options), cpu_(options.cpu_kernel) {}
	Status init();
	Status submit_and_wait();
	static Dst dst_of(OutputTarget &t);
	void record_copy(const GuestImport &src, OutputTarget &target);
	void record_compose(const FrameDesc &frame, const Dst &dst, const Rect &region, const Rect &placement);
	Result<RenderReport> draw_no_signal(const FrameDesc &frame, OutputTarget &target);
	// Composes a frame on the CPU; false (nothing drawn) where its pixels are not CPU-readable.
	bool compose_on_cpu(const FrameDesc &frame, OutputTarget &target, const Rect &placement);
	// Pixel (0, 0) of a plane as the CPU reads it, or nullptr.
	const uint8_t *cpu_pixels(const GuestImport &import);
	// Whether the target's bars for `place` are still there from the last CPU frame.
	bool bars_kept(const OutputTarget &target, const Rect &place);
	void forget_bars(const OutputTarget &target);
	// Specialization constants of compose.comp: mode, source layout, cursor on, cursor layout,
	// output layout. One pipeline per combination, made when first needed.
	using Variant = std::array<uint32_t, 5>;
	VkPipeline pipeline_for(int source_kind, const Variant &variant);

	const VulkanContext &ctx_;
	RendererOptions options_;
	ComposePath path_ = ComposePath::gpu;
	CpuComposer cpu_;
	std::vector<Bars> bars_; // a few output buffers' worth
	uint64_t cpu_frames_ = 0;
	std::vector<NoSignal> no_signal_;   // most recently used last
	DescriptorSetLayout set_layout_[2]; // [0] buffer source, [1] image source
	PipelineLayout pipeline_layout_[2];
	ShaderModule module_[2];
	std::map<std::pair<int, Variant>, Pipeline> pipelines_;
	DescriptorPool pool_;
	VkDescriptorSet sets_[2] = {VK_NULL_HANDLE, VK_NULL_HANDLE};
	Sampler sampler_;
	CommandStream stream_;
	std::string compose_error_;            // set while recording: the batch lacks a compose it needed
	VkCommandBuffer cmd_ = VK_NULL_HANDLE; // stream_.cmd()
	VulkanContext::MappedBuffer dummy_;
};

} // namespace vscanout::render
