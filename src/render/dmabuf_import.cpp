#include "render/dmabuf_import.hpp"

#include <drm_fourcc.h>
#include <fcntl.h>

#include <string>
#include <vector>

#include "base/fd_util.hpp"
#include "base/unique_fd.hpp"

namespace vscanout::render {
namespace {

// Imports a dup of the dma-buf `fd` as req.size bytes of memory of a type that suits both the
// resource (req) and the dma-buf; `dedicated` (or nullptr) names the image or buffer it is for.
// The caller keeps its own fd.
Result<Memory> import_memory(const VulkanContext &ctx, int fd, const VkMemoryRequirements &req,
                             const VkMemoryDedicatedAllocateInfo *dedicated) {
	VkDevice dev = ctx.device();
	UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
	if (!dup) return fail("cannot duplicate the dma-buf fd");
	VkMemoryFdPropertiesKHR fdp{VK_STRUCTURE_TYPE_MEMORY_FD_PROPERTIES_KHR};
	if (VkResult r = ctx.get_memory_fd_properties(dev, VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT, dup.get(), &fdp);
	    r != VK_SUCCESS)
		return fail(std::string("vkGetMemoryFdPropertiesKHR failed: ") + vk_result_name(r));
	int type = ctx.find_memory_type(req.memoryTypeBits & fdp.memoryTypeBits, 0);
	if (type < 0) return fail("no Vulkan memory type can hold this dma-buf");
	VkImportMemoryFdInfoKHR imp{VK_STRUCTURE_TYPE_IMPORT_MEMORY_FD_INFO_KHR};
	imp.pNext = dedicated;
	imp.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
	imp.fd = dup.get();
	VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	mai.pNext = &imp;
	mai.allocationSize = req.size;
	mai.memoryTypeIndex = static_cast<uint32_t>(type);
	VkDeviceMemory mem;
	if (VkResult r = ctx.check(vkAllocateMemory(dev, &mai, nullptr, &mem), "vkAllocateMemory (dma-buf import)");
	    r != VK_SUCCESS)
		return fail(std::string("importing the dma-buf failed: ") + vk_result_name(r));
	dup.release(); // a successful import owns the fd
	return Memory(dev, mem);
}

} // namespace

VkFormat vk_format_for_fourcc(uint32_t fourcc) {
	// DRM fourccs name packed little-endian words; Vulkan's *_UNORM_PACK/byte formats name bytes.
	switch (fourcc) {
	case DRM_FORMAT_XRGB8888:
	case DRM_FORMAT_ARGB8888: return VK_FORMAT_B8G8R8A8_UNORM;
	case DRM_FORMAT_XBGR8888:
	case DRM_FORMAT_ABGR8888: return VK_FORMAT_R8G8B8A8_UNORM;
	case DRM_FORMAT_RGB565: return VK_FORMAT_R5G6B5_UNORM_PACK16;
	default: return VK_FORMAT_UNDEFINED;
	}
}

Result<DmabufImageDesc> describe_dmabuf_image(const vgpu::PlaneInfo &p) {
	DmabufImageDesc d;
	d.format = vk_format_for_fourcc(p.drm_format);
	if (d.format == VK_FORMAT_UNDEFINED) return fail("no Vulkan format for this fourcc");
	if (p.drm_format_mod == DRM_FORMAT_MOD_INVALID)
		return fail("the plane has no explicit modifier (DRM_FORMAT_MOD_INVALID)");
	d.extent = {p.width, p.height, 1};
	d.modifier = p.drm_format_mod;
	d.plane.offset = p.offset;
	d.plane.rowPitch = p.stride;
	// Vulkan requires size 0 in explicit plane layouts; the driver derives it.
	d.plane.size = 0;
	return d;
}

Status check_dmabuf_support(const VulkanContext &ctx, const DmabufImageDesc &d) {
	if (!ctx.caps().dmabuf) return fail("the Vulkan device cannot import dma-bufs");
	if (!ctx.caps().drm_modifier) return fail("the Vulkan device has no VK_EXT_image_drm_format_modifier");

	VkDrmFormatModifierPropertiesListEXT list{VK_STRUCTURE_TYPE_DRM_FORMAT_MODIFIER_PROPERTIES_LIST_EXT};
	VkFormatProperties2 fp{VK_STRUCTURE_TYPE_FORMAT_PROPERTIES_2};
	fp.pNext = &list;
	vkGetPhysicalDeviceFormatProperties2(ctx.physical(), d.format, &fp);
	std::vector<VkDrmFormatModifierPropertiesEXT> mods(list.drmFormatModifierCount);
	list.pDrmFormatModifierProperties = mods.data();
	vkGetPhysicalDeviceFormatProperties2(ctx.physical(), d.format, &fp);
	bool listed = false;
	for (const auto &m : mods)
		if (m.drmFormatModifier == d.modifier && m.drmFormatModifierPlaneCount == 1 &&
		    (m.drmFormatModifierTilingFeatures & VK_FORMAT_FEATURE_SAMPLED_IMAGE_BIT))
			listed = true;
	if (!listed) return fail("modifier " + std::to_string(d.modifier) + " is not sampleable with this format");

	VkPhysicalDeviceImageDrmFormatModifierInfoEXT mi{
	    VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_IMAGE_DRM_FORMAT_MODIFIER_INFO_EXT};
	mi.drmFormatModifier = d.modifier;
	mi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	VkPhysicalDeviceExternalImageFormatInfo ei{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_IMAGE_FORMAT_INFO};
	ei.pNext = &mi;
	ei.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
	VkPhysicalDeviceImageFormatInfo2 ifi{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_IMAGE_FORMAT_INFO_2};
	ifi.pNext = &ei;
	ifi.format = d.format;
	ifi.type = VK_IMAGE_TYPE_2D;
	ifi.tiling = VK_IMAGE_TILING_DRM_FORMAT_MODIFIER_EXT;
	ifi.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT;
	VkExternalImageFormatProperties eip{VK_STRUCTURE_TYPE_EXTERNAL_IMAGE_FORMAT_PROPERTIES};
	VkImageFormatProperties2 ip{VK_STRUCTURE_TYPE_IMAGE_FORMAT_PROPERTIES_2};
	ip.pNext = &eip;
	if (VkResult r = vkGetPhysicalDeviceImageFormatProperties2(ctx.physical(), &ifi, &ip); r != VK_SUCCESS)
		return fail(std::string("the device cannot import this format + modifier: ") + vk_result_name(r));
	if (!(eip.externalMemoryProperties.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT))
		return fail("dma-bufs of this format + modifier are not importable");
	const VkExtent3D &max = ip.imageFormatProperties.maxExtent;
	if (d.extent.width > max.width || d.extent.height > max.height)
		return fail("the plane is larger than the device's " + std::to_string(max.width) + "x" +
		            std::to_string(max.height));
	return Ok{};
}

Result<DmabufImage> import_dmabuf_image(const VulkanContext &ctx, const DmabufImageDesc &d, int fd) {
	if (Status s = check_dmabuf_support(ctx, d); !s) return s.take_error();
	VkDevice dev = ctx.device();

	VkImageDrmFormatModifierExplicitCreateInfoEXT mod{
	    VK_STRUCTURE_TYPE_IMAGE_DRM_FORMAT_MODIFIER_EXPLICIT_CREATE_INFO_EXT};
	mod.drmFormatModifier = d.modifier;
	mod.drmFormatModifierPlaneCount = 1;
	mod.pPlaneLayouts = &d.plane;
	VkExternalMemoryImageCreateInfo ext{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_IMAGE_CREATE_INFO};
	ext.pNext = &mod;
	ext.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
	VkImageCreateInfo ici{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
	ici.pNext = &ext;
	ici.imageType = VK_IMAGE_TYPE_2D;
	ici.format = d.format;
	ici.extent = d.extent;
	ici.mipLevels = 1;
	ici.arrayLayers = 1;
	ici.samples = VK_SAMPLE_COUNT_1_BIT;
	ici.tiling = VK_IMAGE_TILING_DRM_FORMAT_MODIFIER_EXT;
	ici.usage = VK_IMAGE_USAGE_SAMPLED_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT;
	ici.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
	ici.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
	VkImage img;
	if (VkResult r = vkCreateImage(dev, &ici, nullptr, &img); r != VK_SUCCESS)
		return fail(std::string("vkCreateImage for the dma-buf failed: ") + vk_result_name(r));
	DmabufImage out{Image(dev, img), {}};

	VkMemoryRequirements req;
	vkGetImageMemoryRequirements(dev, img, &req);
	VkMemoryDedicatedAllocateInfo ded{VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO};
	ded.image = img;
	auto mem = import_memory(ctx, fd, req, &ded);
	if (!mem) return mem.take_error();
	out.memory = std::move(*mem);
	if (VkResult r = vkBindImageMemory(dev, img, out.memory.get(), 0); r != VK_SUCCESS)
		return fail(std::string("vkBindImageMemory failed: ") + vk_result_name(r));
	return out;
}

Result<DmabufBuffer> import_dmabuf_buffer(const VulkanContext &ctx, int fd, VkDeviceSize size,
                                          VkBufferUsageFlags usage) {
	if (!ctx.caps().dmabuf) return fail("the Vulkan device cannot import dma-bufs");
	VkDevice dev = ctx.device();

	VkPhysicalDeviceExternalBufferInfo ebi{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO};
	ebi.usage = usage;
	ebi.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
	VkExternalBufferProperties ebp{VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
	vkGetPhysicalDeviceExternalBufferProperties(ctx.physical(), &ebi, &ebp);
	const VkExternalMemoryProperties &emp = ebp.externalMemoryProperties;
	if (!(emp.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_IMPORTABLE_BIT))
		return fail("the device cannot import dma-bufs as buffers");
	const bool needs_dedicated = emp.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_DEDICATED_ONLY_BIT;

	VkExternalMemoryBufferCreateInfo ext{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
	ext.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT;
	VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bci.pNext = &ext;
	bci.size = size;
	bci.usage = usage;
	VkBuffer buf;
	if (VkResult r = vkCreateBuffer(dev, &bci, nullptr, &buf); r != VK_SUCCESS)
		return fail(std::string("vkCreateBuffer for the dma-buf failed: ") + vk_result_name(r));
	DmabufBuffer out{Buffer(dev, buf), {}, size, false};

	VkMemoryDedicatedRequirements dr{VK_STRUCTURE_TYPE_MEMORY_DEDICATED_REQUIREMENTS};
	VkMemoryRequirements2 req2{VK_STRUCTURE_TYPE_MEMORY_REQUIREMENTS_2};
	req2.pNext = &dr;
	VkBufferMemoryRequirementsInfo2 rqi{VK_STRUCTURE_TYPE_BUFFER_MEMORY_REQUIREMENTS_INFO_2};
	rqi.buffer = buf;
	vkGetBufferMemoryRequirements2(dev, &rqi, &req2);
	const VkMemoryRequirements &req = req2.memoryRequirements;
	auto dmabuf_size = fd_byte_size(fd);
	if (!dmabuf_size) return dmabuf_size.take_error();
	// The buffer's requirement (its size rounded to the driver's alignment) must fit inside the
	// dma-buf; that much of it is what the memory object covers.
	if (req.size > *dmabuf_size)
		return fail("the buffer needs " + std::to_string(req.size) + " bytes, the dma-buf has " +
		            std::to_string(*dmabuf_size));
	out.dedicated = needs_dedicated || dr.prefersDedicatedAllocation || dr.requiresDedicatedAllocation;
	VkMemoryDedicatedAllocateInfo ded{VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO};
	ded.buffer = buf;
	auto mem = import_memory(ctx, fd, req, out.dedicated ? &ded : nullptr);
	if (!mem) return mem.take_error();
	out.memory = std::move(*mem);
	if (VkResult r = vkBindBufferMemory(dev, buf, out.memory.get(), 0); r != VK_SUCCESS)
		return fail(std::string("vkBindBufferMemory failed: ") + vk_result_name(r));
	return out;
}

} // namespace vscanout::render
