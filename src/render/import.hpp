// A guest buffer made readable by the GPU, in the first way the device allows (docs/design.md,
// "Import paths"):
//   dmabuf: the dma-buf imported by the driver itself, zero copy: as an image with its DRM format
//           modifier where the device has VK_EXT_image_drm_format_modifier, else (LINEAR planes)
//           as device memory bound to a storage buffer;
//   host:   the buffer mmap()ed and that memory imported (VK_EXT_external_memory_host, zero copy);
//   copy:   the pixels copied into a Vulkan buffer each time they change (counted).
// The CPU paths (host, copy) read LINEAR planes only.
#pragma once

#include <vulkan/vulkan.h>

#include <memory>
#include <optional>
#include <vector>

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

// How an import was made, one step finer than ImportPath: the two dma-buf forms.
enum class ImportForm { dmabuf_image, dmabuf_linear, host, copy };
const char *to_string(ImportForm f);
ImportPath path_of(ImportForm f);

struct ImportPolicy {
	bool allow_dmabuf = true;
	bool allow_host = true;
	uint64_t *copy_counter = nullptr;       // incremented for every counted copy
	uint64_t *copy_bytes_counter = nullptr; // the bytes each copied
};

// The forms worth trying for this plane on a device with these capabilities, best first. A
// dma-buf form only for a buffer that is a dma-buf; the CPU forms only for LINEAR (or implicit)
// layouts. Empty: nothing can show the plane. Pure: unit-tested against capability sets.
std::vector<ImportForm> import_order(const DeviceCaps &caps, const vgpu::PlaneInfo &plane, vgpu::BufferKind kind,
                                     const ImportPolicy &policy);

class GuestImport final : public core::ImportedBuffer {
public:
	static Result<std::shared_ptr<GuestImport>> create(const VulkanContext &ctx, const vgpu::PlaneInfo &plane,
	                                                   vgpu::GuestBuffer buffer, const ImportPolicy &policy);
	~GuestImport() override = default;

	const char *path() const override { return to_string(kind()); }
	const uint8_t *cpu_data() const override;
	// The copy form copies `rows` (all of them when not known, or before its first copy).
	void content_changed(const std::optional<vgpu::RowSpan> &rows) override;

	ImportPath kind() const { return path_of(form_); }
	ImportForm form() const { return form_; }
	// Read through the sampled image (dmabuf_image), else through buffer().
	bool sampled() const { return form_ == ImportForm::dmabuf_image; }
	// The memory belongs to another device (the vGPU, a GPU): reads take ownership first.
	bool foreign() const { return form_ == ImportForm::dmabuf_image || form_ == ImportForm::dmabuf_linear; }
	VkBuffer buffer() const; // every form but dmabuf_image
	VkImage image() const { return dmabuf_.image.get(); }
	VkImageView image_view() const { return view_.get(); }
	VkDeviceSize buffer_size() const { return buffer_size_; }
	// Byte offset of pixel (0,0) inside buffer(): the plane offset, but 0 for copies.
	uint64_t pixel_offset() const { return form_ == ImportForm::copy ? 0 : plane_.offset; }
	const vgpu::PlaneInfo &plane() const { return plane_; }
	// The guest's dma-buf (open as long as this import lives), or -1 for other buffers.
	int dmabuf_fd() const override { return kind_ == vgpu::BufferKind::dmabuf ? fd_.get() : -1; }

	// Brackets GPU or CPU reads of a mapped dma-buf with DMA_BUF_IOCTL_SYNC.
	void begin_read() const;
	void end_read() const;

private:
	GuestImport(const vgpu::PlaneInfo &plane, vgpu::GuestBuffer buffer)
	    : plane_(plane), fd_(std::move(buffer.fd)), kind_(buffer.kind), map_offset_(buffer.map_offset),
	      byte_size_(buffer.byte_size) {}
	Status try_form(const VulkanContext &ctx, ImportForm form, const ImportPolicy &policy);
	Status try_dmabuf_image(const VulkanContext &ctx);
	Status try_dmabuf_linear(const VulkanContext &ctx);
	Status try_map() const;
	Status try_host(const VulkanContext &ctx);
	Status try_copy(const VulkanContext &ctx, const ImportPolicy &policy);

	vgpu::PlaneInfo plane_;
	UniqueFd fd_;
	vgpu::BufferKind kind_;
	uint64_t map_offset_;
	uint64_t byte_size_;
	ImportForm form_ = ImportForm::copy;
	mutable Mapping map_; // host and copy forms; a dma-buf form maps only when asked for cpu_data()
	mutable bool map_tried_ = false;
	VulkanContext::HostBuffer host_;
	VulkanContext::MappedBuffer staging_;
	DmabufImage dmabuf_;
	DmabufBuffer dmabuf_buffer_;
	ImageView view_;
	VkDeviceSize buffer_size_ = 0;
	uint64_t *copy_counter_ = nullptr, *copy_bytes_counter_ = nullptr;
	bool copied_ = false; // the copy form has copied the whole plane once
};

// A head tracker (core/head_tracker.hpp) that keeps this layer's imports as what they are: its
// users reach a GuestImport's dma-buf fd and CPU mapping without a downcast.
using HeadTracker = core::BasicHeadTracker<GuestImport>;
using ShownPlane = HeadTracker::ShownPlane;
using Importer = HeadTracker::Importer;

} // namespace vscanout::render
