// One command buffer with its pool and fence: recorded, submitted and waited for, one batch at a
// time. The renderer draws through one per head; the zero-copy tests and the benchmarks move
// bytes through their own. A device loss at the submit or the wait (a real one, or one injected
// with inject_device_lost()) marks the context lost (docs/design.md, "Device loss").
#pragma once
#include <vulkan/vulkan.h>

#include "base/result.hpp"
#include "render/vk_context.hpp"
#include "render/vk_handles.hpp"

namespace vscanout::render {

class CommandStream {
public:
	CommandStream() = default;
	static Result<CommandStream> create(const VulkanContext &ctx);

	VkCommandBuffer cmd() const { return cmd_; }
	// Starts recording a one-time batch into cmd().
	void begin() const;
	// Ends the batch, submits it and waits for it; the command buffer is reset either way.
	Status submit_and_wait() const;

private:
	const VulkanContext *ctx_ = nullptr;
	CommandPool pool_;
	VkCommandBuffer cmd_ = VK_NULL_HANDLE; // freed with pool_
	Fence fence_;
};

} // namespace vscanout::render
