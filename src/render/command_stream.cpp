#include "render/command_stream.hpp"

namespace vscanout::render {

Result<CommandStream> CommandStream::create(const VulkanContext &ctx) {
	CommandStream s;
	s.ctx_ = &ctx;
	const VkDevice dev = ctx.device();
	VkCommandPoolCreateInfo cpci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
	cpci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
	cpci.queueFamilyIndex = ctx.queue_family();
	VkCommandPool cp;
	if (VkResult r = vkCreateCommandPool(dev, &cpci, nullptr, &cp); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateCommandPool", r));
	s.pool_ = CommandPool(dev, cp);
	VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
	cbai.commandPool = cp;
	cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	cbai.commandBufferCount = 1;
	if (VkResult r = vkAllocateCommandBuffers(dev, &cbai, &s.cmd_); r != VK_SUCCESS)
		return fail(vk_fail("vkAllocateCommandBuffers", r));
	VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
	VkFence fence;
	if (VkResult r = vkCreateFence(dev, &fci, nullptr, &fence); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateFence", r));
	s.fence_ = Fence(dev, fence);
	return s;
}

void CommandStream::begin() const {
	VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
	bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
	vkBeginCommandBuffer(cmd_, &bi);
}

Status CommandStream::submit_and_wait() const {
	if (VkResult r = vkEndCommandBuffer(cmd_); r != VK_SUCCESS) return fail(vk_fail("vkEndCommandBuffer", r));
	VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cmd_;
	VkFence fence = fence_.get();
	if (ctx_->lost()) {
		vkResetCommandBuffer(cmd_, 0);
		return fail("the Vulkan device was lost");
	}
	// A device loss shows at the submit or the wait (docs/design.md, "Device loss").
	const VkResult submitted =
	    inject_device_lost() ? VK_ERROR_DEVICE_LOST : vkQueueSubmit(ctx_->queue(), 1, &si, fence);
	if (VkResult r = ctx_->check(submitted, "vkQueueSubmit"); r != VK_SUCCESS) {
		vkResetCommandBuffer(cmd_, 0);
		return fail(vk_fail("vkQueueSubmit", r));
	}
	VkResult r = ctx_->check(vkWaitForFences(ctx_->device(), 1, &fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
	vkResetFences(ctx_->device(), 1, &fence);
	vkResetCommandBuffer(cmd_, 0);
	if (r != VK_SUCCESS) return fail(vk_fail("vkWaitForFences", r));
	return Ok{};
}

} // namespace vscanout::render
