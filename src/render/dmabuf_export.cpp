#include "render/dmabuf_export.hpp"

#include "base/fd_util.hpp"

namespace vscanout::render {

namespace {
constexpr VkExternalMemoryHandleTypeFlagBits kDmabuf = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
}

std::string dmabuf_export_unsupported(const VulkanContext &ctx, VkBufferUsageFlags usage) {
	if (!ctx.caps().dmabuf) return "the device has no VK_EXT_external_memory_dma_buf";
	VkPhysicalDeviceExternalBufferInfo info{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO};
	info.usage = usage;
	info.handleType = kDmabuf;
	VkExternalBufferProperties props{VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
	vkGetPhysicalDeviceExternalBufferProperties(ctx.physical(), &info, &props);
	if (!(props.externalMemoryProperties.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_EXPORTABLE_BIT))
		return "the device cannot export a buffer's memory as a dma-buf";
	return "";
}

Result<ExportedBuffer> export_dmabuf_buffer(const VulkanContext &ctx, VkDeviceSize size, VkBufferUsageFlags usage) {
	ExportedBuffer e;
	e.size = size;
	VkExternalMemoryBufferCreateInfo ext{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
	ext.handleTypes = kDmabuf;
	VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bci.pNext = &ext;
	bci.size = size;
	bci.usage = usage;
	VkBuffer buf;
	if (VkResult r = vkCreateBuffer(ctx.device(), &bci, nullptr, &buf); r != VK_SUCCESS)
		return fail(std::string("vkCreateBuffer (exportable): ") + vk_result_name(r));
	e.buffer = Buffer(ctx.device(), buf);
	VkMemoryRequirements req;
	vkGetBufferMemoryRequirements(ctx.device(), buf, &req);
	int type = ctx.find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
	if (type < 0) type = ctx.find_memory_type(req.memoryTypeBits, 0);
	if (type < 0) return fail("no memory type for an exportable buffer");
	VkMemoryDedicatedAllocateInfo dedicated{VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO};
	dedicated.buffer = buf;
	VkExportMemoryAllocateInfo exp{VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO};
	exp.pNext = &dedicated;
	exp.handleTypes = kDmabuf;
	VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	mai.pNext = &exp;
	mai.allocationSize = req.size;
	mai.memoryTypeIndex = static_cast<uint32_t>(type);
	VkDeviceMemory mem;
	if (VkResult r = vkAllocateMemory(ctx.device(), &mai, nullptr, &mem); r != VK_SUCCESS)
		return fail(std::string("vkAllocateMemory (exportable): ") + vk_result_name(r));
	e.memory = Memory(ctx.device(), mem);
	if (VkResult r = vkBindBufferMemory(ctx.device(), buf, mem, 0); r != VK_SUCCESS)
		return fail(std::string("vkBindBufferMemory: ") + vk_result_name(r));
	auto get_fd = reinterpret_cast<PFN_vkGetMemoryFdKHR>(vkGetDeviceProcAddr(ctx.device(), "vkGetMemoryFdKHR"));
	if (!get_fd) return fail("the device has no vkGetMemoryFdKHR");
	VkMemoryGetFdInfoKHR gfi{VK_STRUCTURE_TYPE_MEMORY_GET_FD_INFO_KHR};
	gfi.memory = mem;
	gfi.handleType = kDmabuf;
	int fd = -1;
	if (VkResult r = get_fd(ctx.device(), &gfi, &fd); r != VK_SUCCESS)
		return fail(std::string("vkGetMemoryFdKHR (dma-buf): ") + vk_result_name(r));
	e.fd = UniqueFd(fd);
	if (!fd_is_dmabuf(e.fd.get())) return fail("the exported fd is no dma-buf (fstatfs)");
	return e;
}

} // namespace vscanout::render
