// The Vulkan instance and device vscanout renders with, and what that device can import.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.hpp"
#include "render/vk_handles.hpp"

namespace vscanout::render {

struct DeviceCaps {
	std::string device_name;
	bool is_cpu = false;        // lavapipe / llvmpipe
	bool host_memory = false;   // VK_EXT_external_memory_host
	VkDeviceSize host_alignment = 0;
	bool dmabuf = false;        // VK_EXT_external_memory_dma_buf + VK_KHR_external_memory_fd
	bool drm_modifier = false;  // VK_EXT_image_drm_format_modifier
	VkDeviceSize max_storage_range = 0;
};

struct ContextOptions {
	// Substring of the device name to prefer (e.g. "llvmpipe"); empty: the first GPU, else the CPU.
	std::string device;
	// Pretend an extension is missing, so tests can drive the fallback paths on any machine.
	bool disable_host_memory = false;
	bool disable_dmabuf = false;
};

class VulkanContext {
public:
	static Result<std::unique_ptr<VulkanContext>> create(const ContextOptions &options = {});
	~VulkanContext();
	VulkanContext(const VulkanContext &) = delete;
	VulkanContext &operator=(const VulkanContext &) = delete;

	VkInstance instance() const { return instance_; }
	VkPhysicalDevice physical() const { return physical_; }
	VkDevice device() const { return device_; }
	VkQueue queue() const { return queue_; }
	uint32_t queue_family() const { return queue_family_; }
	const DeviceCaps &caps() const { return caps_; }
	// The queue family imported dma-bufs are owned by outside our device.
	uint32_t foreign_queue_family() const {
		return has_foreign_family_ ? VK_QUEUE_FAMILY_FOREIGN_EXT : VK_QUEUE_FAMILY_EXTERNAL;
	}

	// A memory type index among type_bits with all of `flags`, or -1.
	int find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const;

	// Imports [ptr, ptr + size) of host memory as a buffer (VK_EXT_external_memory_host).
	// ptr and size must be multiples of caps().host_alignment: checked here, the driver may not.
	struct HostBuffer {
		Buffer buffer;
		Memory memory;
	};
	Result<HostBuffer> import_host_buffer(void *ptr, VkDeviceSize size, VkBufferUsageFlags usage) const;

	// A buffer in host-visible memory, mapped (the counted-copy path).
	struct MappedBuffer {
		Buffer buffer;
		Memory memory;
		void *data = nullptr;
	};
	Result<MappedBuffer> create_mapped_buffer(VkDeviceSize size, VkBufferUsageFlags usage) const;

	// Extension entry points (null when the extension is off).
	PFN_vkGetMemoryHostPointerPropertiesEXT get_host_pointer_properties = nullptr;
	PFN_vkGetMemoryFdPropertiesKHR get_memory_fd_properties = nullptr;

private:
	VulkanContext() = default;
	// Allocates memory of `type` (next: an import chain, or null) and binds it to buf.
	Result<Memory> bind_memory(VkBuffer buf, VkDeviceSize size, uint32_t type, const void *next) const;
	VkInstance instance_ = VK_NULL_HANDLE;
	VkPhysicalDevice physical_ = VK_NULL_HANDLE;
	VkDevice device_ = VK_NULL_HANDLE;
	VkQueue queue_ = VK_NULL_HANDLE;
	uint32_t queue_family_ = 0;
	DeviceCaps caps_;
	bool has_foreign_family_ = false;
	VkPhysicalDeviceMemoryProperties memory_props_{};
};

const char *vk_result_name(VkResult r);

} // namespace vscanout::render
