// A guest buffer made readable by the GPU, in the first way the device allows:
//   dmabuf: the dma-buf imported as an image with its DRM format modifier (zero copy);
//   host:   the buffer mmap()ed and that memory imported (VK_EXT_external_memory_host, zero copy);
//   copy:   the pixels copied into a Vulkan buffer each time they change (counted).
#pragma once

#include <vulkan/vulkan.h>

#include <memory>

#include "base/mapping.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "core/head_tracker.hpp"
#include "render/dmabuf_import.hpp"
#include "render/vk_context.hpp"
#include "vgpu/plane.hpp"

namespace vscanout::render {

enum class ImportPath { dmabuf, host, copy };
const char *to_string(ImportPath p);

struct ImportPolicy {
	bool allow_dmabuf = true;
	bool allow_host = true;
	uint64_t *copy_counter = nullptr; // incremented for every counted copy
};

class GuestImport final : public core::ImportedBuffer {
public:
	static Result<std::shared_ptr<GuestImport>> create(const VulkanContext &ctx, const vgpu::PlaneInfo &plane,
	                                                   vgpu::GuestBuffer buffer, const ImportPolicy &policy);
	~GuestImport() override = default;

	const char *path() const override { return to_string(path_); }
	const uint8_t *cpu_data() const override;
	void content_changed() override;

	ImportPath kind() const { return path_; }
	VkBuffer buffer() const;          // host and copy paths
	VkImage image() const { return dmabuf_.image.get(); }
	VkImageView image_view() const { return view_.get(); }
	VkDeviceSize buffer_size() const { return buffer_size_; }
	// Byte offset of pixel (0,0) inside buffer(): the plane offset for host imports, 0 for copies.
	uint64_t pixel_offset() const { return path_ == ImportPath::copy ? 0 : plane_.offset; }
	const vgpu::PlaneInfo &plane() const { return plane_; }
	// The guest's dma-buf (open as long as this import lives), or -1 for other buffers.
	int dmabuf_fd() const { return kind_ == vgpu::BufferKind::dmabuf ? fd_.get() : -1; }

	// Brackets GPU or CPU reads of a mapped dma-buf with DMA_BUF_IOCTL_SYNC.
	void begin_read() const;
	void end_read() const;

private:
	GuestImport(const vgpu::PlaneInfo &plane, vgpu::GuestBuffer buffer)
		: plane_(plane), fd_(std::move(buffer.fd)), kind_(buffer.kind), map_offset_(buffer.map_offset),
		  byte_size_(buffer.byte_size) {}
	Status try_dmabuf(const VulkanContext &ctx);
	Status try_map();
	Status try_host(const VulkanContext &ctx);
	Status try_copy(const VulkanContext &ctx, uint64_t *counter);

	vgpu::PlaneInfo plane_;
	UniqueFd fd_;
	vgpu::BufferKind kind_;
	uint64_t map_offset_;
	uint64_t byte_size_;
	ImportPath path_ = ImportPath::copy;
	Mapping map_;
	VulkanContext::HostBuffer host_;
	VulkanContext::MappedBuffer staging_;
	DmabufImage dmabuf_;
	ImageView view_;
	VkDeviceSize buffer_size_ = 0;
	uint64_t *copy_counter_ = nullptr;
};

// A head tracker (core/head_tracker.hpp) that keeps this layer's imports as what they are: its
// users reach a GuestImport's dma-buf fd and CPU mapping without a downcast.
using HeadTracker = core::BasicHeadTracker<GuestImport>;
using ShownPlane = HeadTracker::ShownPlane;
using Importer = HeadTracker::Importer;

} // namespace vscanout::render
