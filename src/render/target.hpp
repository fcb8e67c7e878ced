// An output's back buffer as the renderer writes it, in the first way the device allows
// (docs/design.md, "Rendering"):
//   dmabuf: the buffer is a dma-buf (the DRM backend's dumb buffers) and the device imports it
//           as device memory bound to a storage buffer: frames are drawn straight into it;
//   host:   its CPU mapping (wlroots' shm or dumb buffers) imported as host memory;
//   staged: a staging buffer, copied out to the CPU mapping after each frame.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>

#include "base/result.hpp"
#include "core/format.hpp"
#include "render/dmabuf_import.hpp"
#include "render/vk_context.hpp"

namespace vscanout::render {

enum class OutputPath { dmabuf, host, staged };
const char *to_string(OutputPath p);

struct TargetDesc {
	void *data = nullptr; // the CPU mapping, or nullptr where there is none
	uint32_t stride = 0;
	uint32_t width = 0;
	uint32_t height = 0;
	uint32_t drm_format = 0;
	// The buffer as a dma-buf (single plane), where it is one: tried first.
	int dmabuf_fd = -1;
	uint64_t dmabuf_offset = 0; // only 0 is written through the dma-buf (dumb buffers)
	uint64_t modifier = 0;      // DRM_FORMAT_MOD_*; only LINEAR is written through the dma-buf
};

class OutputTarget {
public:
	// allow_dmabuf false: skip the dma-buf form (tests and --import host|copy drive the others).
	static Result<std::unique_ptr<OutputTarget>> create(const VulkanContext &ctx, const TargetDesc &desc,
	                                                    bool allow_dmabuf = true);

	const TargetDesc &desc() const { return desc_; }
	VkBuffer buffer() const;
	VkDeviceSize size() const { return size_; }
	core::PixelLayout layout() const { return layout_; }
	OutputPath path() const { return path_; }
	bool staged() const { return path_ == OutputPath::staged; }
	// The memory belongs to another device (the display's): writes take ownership first.
	bool foreign() const { return path_ == OutputPath::dmabuf; }
	bool matches(const TargetDesc &d) const {
		return d.data == desc_.data && d.stride == desc_.stride && d.width == desc_.width && d.height == desc_.height &&
		       d.drm_format == desc_.drm_format && d.dmabuf_offset == desc_.dmabuf_offset &&
		       d.modifier == desc_.modifier && (d.dmabuf_fd >= 0) == (desc_.dmabuf_fd >= 0);
	}
	// After the GPU finished: copy a staged frame out to the real buffer.
	void finish();

private:
	Status try_dmabuf(const VulkanContext &ctx);
	TargetDesc desc_;
	core::PixelLayout layout_ = core::PixelLayout::xrgb8888;
	VkDeviceSize size_ = 0;
	OutputPath path_ = OutputPath::host;
	VulkanContext::HostBuffer host_;
	VulkanContext::MappedBuffer staging_;
	DmabufBuffer dmabuf_;
};

} // namespace vscanout::render
