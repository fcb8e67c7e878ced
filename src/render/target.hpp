// An output's back buffer as the renderer writes it: host memory (wlroots' shm or dumb
// buffers) imported as a Vulkan storage buffer, or, where the device cannot import that
// memory, a staging buffer copied out after each frame.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>

#include "base/result.hpp"
#include "core/format.hpp"
#include "render/vk_context.hpp"

namespace vscanout::render {

struct TargetDesc {
	void *data = nullptr;
	uint32_t stride = 0;
	uint32_t width = 0;
	uint32_t height = 0;
	uint32_t drm_format = 0;
};

class OutputTarget {
public:
	static Result<std::unique_ptr<OutputTarget>> create(const VulkanContext &ctx, const TargetDesc &desc);

	const TargetDesc &desc() const { return desc_; }
	VkBuffer buffer() const { return staged_ ? staging_.buffer.get() : host_.buffer.get(); }
	VkDeviceSize size() const { return size_; }
	core::PixelLayout layout() const { return layout_; }
	bool staged() const { return staged_; }
	bool matches(const TargetDesc &d) const {
		return d.data == desc_.data && d.stride == desc_.stride && d.width == desc_.width &&
		       d.height == desc_.height && d.drm_format == desc_.drm_format;
	}
	// After the GPU finished: copy a staged frame out to the real buffer.
	void finish();

private:
	TargetDesc desc_;
	core::PixelLayout layout_ = core::PixelLayout::xrgb8888;
	VkDeviceSize size_ = 0;
	bool staged_ = false;
	VulkanContext::HostBuffer host_;
	VulkanContext::MappedBuffer staging_;
};

} // namespace vscanout::render
