// Zero-copy import of a guest dma-buf into Vulkan, in one of two forms (docs/design.md, "Import
// paths"):
//   image:  a VkImage with the plane's explicit DRM format modifier, sampled by the compose shader
//           (VK_EXT_external_memory_dma_buf + VK_EXT_image_drm_format_modifier; tiled modifiers);
//   linear: device memory bound to a VkBuffer that the copy and compose paths read like any other
//           storage buffer (VK_EXT_external_memory_dma_buf alone; LINEAR planes only).
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

struct DmabufBuffer {
	Buffer buffer;
	Memory memory;
	VkDeviceSize size = 0;  // bytes the buffer covers, from byte 0 of the dma-buf
	bool dedicated = false; // the driver asked for a dedicated allocation
};
// Imports a dup of fd as device memory (VkImportMemoryFdInfoKHR, dma-buf handle type, a memory
// type from vkGetMemoryFdPropertiesKHR) bound to a buffer of `size` bytes. The caller keeps its fd.
Result<DmabufBuffer> import_dmabuf_buffer(const VulkanContext &ctx, int fd, VkDeviceSize size,
                                          VkBufferUsageFlags usage);

} // namespace vscanout::render
