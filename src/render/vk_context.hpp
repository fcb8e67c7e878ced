// The Vulkan instance and device vscanout renders with, and what that device can import.
#pragma once

#include <sys/types.h>
#include <vulkan/vulkan.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "render/vk_handles.hpp"

namespace vscanout::render {

struct DeviceCaps {
	std::string device_name;
	bool is_cpu = false;      // lavapipe / llvmpipe
	bool host_memory = false; // VK_EXT_external_memory_host
	VkDeviceSize host_alignment = 0;
	bool dmabuf = false;       // VK_EXT_external_memory_dma_buf + VK_KHR_external_memory_fd
	bool drm_modifier = false; // VK_EXT_image_drm_format_modifier
	VkDeviceSize max_storage_range = 0;
};

struct ContextOptions {
	// The user's choice (--vulkan-device): a decimal index into vkEnumeratePhysicalDevices' order,
	// else a substring of the device name (any case, e.g. "llvmpipe"). Empty: choose_device().
	std::string device;
	// Pretend an extension is missing, so tests can drive the fallback paths on any machine.
	bool disable_host_memory = false;
	bool disable_dmabuf = false;
	// The DRM device the frames are for (kiosk: the KMS device; VFIO: the vGPU's parent device),
	// matched against the devices' DRM nodes where they tell them (VK_EXT_physical_device_drm),
	// and what it is, for the log: "the KMS device", "the vGPU's parent device".
	std::optional<dev_t> drm_device;
	std::string drm_reason;
};

// One Vulkan physical device as the choice sees it.
struct PhysicalDeviceInfo {
	uint32_t index = 0; // position in vkEnumeratePhysicalDevices' order
	std::string name;
	VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
	// Its DRM nodes (VkPhysicalDeviceDrmPropertiesEXT); empty where the device does not tell.
	std::optional<dev_t> drm_primary;
	std::optional<dev_t> drm_render;
};

struct DeviceChoice {
	size_t position = 0; // in the list given
	std::string why;     // for the log: "user choice", "matches the KMS device 226:0", "first GPU", ...
};

// Which device to use, and why: the user's choice (index or name; an index out of range or a name
// nothing matches is an error), else the first device whose DRM primary or render node is
// drm_device, else the first GPU (any device that is not a CPU), else the first CPU device. Pure:
// unit-tested without a GPU.
Result<DeviceChoice> choose_device(const std::vector<PhysicalDeviceInfo> &devices, const std::string &user,
                                   std::optional<dev_t> drm_device, const std::string &drm_reason);

// "226:0".
std::string dev_text(dev_t dev);
// The device a DRM fd is open on (its st_rdev): the KMS device of wlroots' DRM backend.
Result<dev_t> drm_device_of_fd(int fd);
// The DRM device (primary node, "major:minor" of drm/card*/dev) that a VFIO device's display is
// rendered by, from its sysfs directory: for an mdev, the device it was created on (the
// directory above its real path); for an SR-IOV virtual function, its physical function
// (physfn); else the device itself.
Result<dev_t> drm_device_of_vfio(const std::string &sysfs_path);

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
	// Why this device: choose_device()'s reason ("user choice", "first GPU", ...).
	const std::string &device_reason() const { return device_reason_; }
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

	// Device loss (docs/design.md, "Device loss"): VK_ERROR_DEVICE_LOST from any call that was
	// checked marks the context lost, logged once; every later use fails, and the compositor
	// makes a new context. check() passes r through.
	bool lost() const { return lost_; }
	VkResult check(VkResult r, const char *what) const;

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
	std::string device_reason_;
	bool has_foreign_family_ = false;
	VkPhysicalDeviceMemoryProperties memory_props_{};
	mutable bool lost_ = false;
};

// Fault injection for tests (docs/design.md, "Device loss"): after arm_device_loss() (the sim's
// `lose-device` command), the next queue submit of the process reports VK_ERROR_DEVICE_LOST
// instead of submitting, as a GPU hang would. inject_device_lost() is asked at each submit.
void arm_device_loss();
bool inject_device_lost();

const char *vk_result_name(VkResult r);
// "<what> failed: VK_ERROR_...": the one wording of a failed Vulkan call.
std::string vk_fail(const char *what, VkResult r);

} // namespace vscanout::render
