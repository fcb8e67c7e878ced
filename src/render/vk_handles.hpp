// RAII owners for Vulkan handles that belong to a VkDevice.
#pragma once

#include <vulkan/vulkan.h>

#include <utility>

namespace vscanout::render {

template <typename T, void (*Destroy)(VkDevice, T, const VkAllocationCallbacks *)> class DeviceHandle {
public:
	DeviceHandle() = default;
	DeviceHandle(VkDevice dev, T h) : dev_(dev), h_(h) {}
	DeviceHandle(const DeviceHandle &) = delete;
	DeviceHandle &operator=(const DeviceHandle &) = delete;
	DeviceHandle(DeviceHandle &&o) noexcept : dev_(o.dev_), h_(std::exchange(o.h_, VK_NULL_HANDLE)) {}
	DeviceHandle &operator=(DeviceHandle &&o) noexcept {
		if (this != &o) {
			reset();
			dev_ = o.dev_;
			h_ = std::exchange(o.h_, VK_NULL_HANDLE);
		}
		return *this;
	}
	~DeviceHandle() { reset(); }

	T get() const { return h_; }
	explicit operator bool() const { return h_ != VK_NULL_HANDLE; }
	void reset() {
		if (h_ != VK_NULL_HANDLE) Destroy(dev_, h_, nullptr);
		h_ = VK_NULL_HANDLE;
	}

private:
	VkDevice dev_ = VK_NULL_HANDLE;
	T h_ = VK_NULL_HANDLE;
};

using Buffer = DeviceHandle<VkBuffer, vkDestroyBuffer>;
using Image = DeviceHandle<VkImage, vkDestroyImage>;
using ImageView = DeviceHandle<VkImageView, vkDestroyImageView>;
using Memory = DeviceHandle<VkDeviceMemory, vkFreeMemory>;
using Sampler = DeviceHandle<VkSampler, vkDestroySampler>;
using ShaderModule = DeviceHandle<VkShaderModule, vkDestroyShaderModule>;
using Pipeline = DeviceHandle<VkPipeline, vkDestroyPipeline>;
using PipelineLayout = DeviceHandle<VkPipelineLayout, vkDestroyPipelineLayout>;
using DescriptorSetLayout = DeviceHandle<VkDescriptorSetLayout, vkDestroyDescriptorSetLayout>;
using DescriptorPool = DeviceHandle<VkDescriptorPool, vkDestroyDescriptorPool>;
using CommandPool = DeviceHandle<VkCommandPool, vkDestroyCommandPool>;
using Fence = DeviceHandle<VkFence, vkDestroyFence>;

} // namespace vscanout::render
