// The other direction of dma-buf sharing: device memory of ours exported as a dma-buf, as a GPU
// driver exports a scanout buffer or a vGPU its planes. vscanout's display paths never need it;
// it lets the zero-copy tests and benchmarks (tests/unit/zero_copy_test.cpp,
// bench/compose_bench.cpp) give the import and output paths a real driver's dma-buf on any
// device that can export one (docs/design.md, "Testing").
#pragma once
#include <vulkan/vulkan.h>

#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "render/vk_context.hpp"

namespace vscanout::render {

// Why this device cannot export a buffer's memory with this usage as a dma-buf; empty where it can.
std::string dmabuf_export_unsupported(const VulkanContext &ctx, VkBufferUsageFlags usage);

struct ExportedBuffer {
	Buffer buffer; // the exporter's own view of the memory
	Memory memory;
	UniqueFd fd; // the dma-buf
	VkDeviceSize size = 0;
};

// A buffer of `size` bytes in device-local memory (any memory where there is none), allocated
// exportable and exported as a dma-buf (a dedicated allocation, vkGetMemoryFdKHR).
Result<ExportedBuffer> export_dmabuf_buffer(const VulkanContext &ctx, VkDeviceSize size, VkBufferUsageFlags usage);

} // namespace vscanout::render
