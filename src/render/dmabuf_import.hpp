// Zero-copy import of a guest dma-buf as a Vulkan image with an explicit DRM format modifier
// (VK_EXT_external_memory_dma_buf + VK_EXT_image_drm_format_modifier).
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>

#include "base/result.hpp"
#include "render/vk_context.hpp"
#include "vgpu/plane.hpp"

namespace vscanout::render {

// The Vulkan format whose channels read back as the fourcc's R, G, B, A; UNDEFINED if none.
VkFormat vk_format_for_fourcc(uint32_t fourcc);

// Everything the driver call needs, derived from a (validated) plane. Pure: unit-tested.
struct DmabufImageDesc {
	VkFormat format = VK_FORMAT_UNDEFINED;
	VkExtent3D extent{};
	uint64_t modifier = 0;
	VkSubresourceLayout plane{}; // offset, rowPitch, size of the single memory plane
};
Result<DmabufImageDesc> describe_dmabuf_image(const vgpu::PlaneInfo &plane);

// Whether the device can sample this format + modifier from an imported dma-buf of this size.
Status check_dmabuf_support(const VulkanContext &ctx, const DmabufImageDesc &desc);

struct DmabufImage {
	Image image;
	Memory memory;
};
// Imports a dup of fd; the caller keeps its own fd.
Result<DmabufImage> import_dmabuf_image(const VulkanContext &ctx, const DmabufImageDesc &desc, int fd);

} // namespace vscanout::render
