#include "render/import.hpp"

#include <linux/dma-buf.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <drm_fourcc.h>

#include "base/fd_util.hpp"
#include "base/log.hpp"

namespace vscanout::render {
namespace {

std::string hex(uint64_t v) {
	char b[24];
	std::snprintf(b, sizeof b, "%" PRIx64, v);
	return b;
}

} // namespace

const char *to_string(ImportPath p) {
	switch (p) {
	case ImportPath::dmabuf: return "dmabuf";
	case ImportPath::host: return "host";
	case ImportPath::copy: return "copy";
	}
	return "?";
}

const char *to_string(ImportForm f) {
	switch (f) {
	case ImportForm::dmabuf_image: return "dma-buf image with modifier";
	case ImportForm::dmabuf_linear: return "linear dma-buf buffer";
	case ImportForm::host: return "host memory";
	case ImportForm::copy: return "counted copy";
	}
	return "?";
}

ImportPath path_of(ImportForm f) {
	switch (f) {
	case ImportForm::dmabuf_image:
	case ImportForm::dmabuf_linear: return ImportPath::dmabuf;
	case ImportForm::host: return ImportPath::host;
	case ImportForm::copy: return ImportPath::copy;
	}
	return ImportPath::copy;
}

std::vector<ImportForm> import_order(const DeviceCaps &caps, const vgpu::PlaneInfo &plane, vgpu::BufferKind kind,
                                     const ImportPolicy &policy) {
	std::vector<ImportForm> order;
	const bool linear = plane.drm_format_mod == DRM_FORMAT_MOD_LINEAR;
	// INVALID: the layout is implicit, which for a buffer a CPU maps means linear.
	const bool cpu_readable = linear || plane.drm_format_mod == DRM_FORMAT_MOD_INVALID;
	if (policy.allow_dmabuf && kind == vgpu::BufferKind::dmabuf && caps.dmabuf) {
		if (caps.drm_modifier && plane.drm_format_mod != DRM_FORMAT_MOD_INVALID)
			order.push_back(ImportForm::dmabuf_image);
		if (linear) order.push_back(ImportForm::dmabuf_linear);
	}
	if (!cpu_readable) return order;
	if (policy.allow_host && caps.host_memory) order.push_back(ImportForm::host);
	order.push_back(ImportForm::copy);
	return order;
}

Result<std::shared_ptr<GuestImport>> GuestImport::create(const VulkanContext &ctx, const vgpu::PlaneInfo &plane,
                                                         vgpu::GuestBuffer buffer, const ImportPolicy &policy) {
	std::shared_ptr<GuestImport> imp(new GuestImport(plane, std::move(buffer)));
	const auto order = import_order(ctx.caps(), plane, imp->kind_, policy);
	if (order.empty())
		return fail("modifier 0x" + hex(plane.drm_format_mod) +
		            " is tiled and the Vulkan device cannot import it; the CPU paths read LINEAR only");
	std::string why;
	for (ImportForm form : order) {
		Status s = imp->try_form(ctx, form, policy);
		if (s) {
			imp->form_ = form;
			if (!why.empty())
				VLOG_DEBUG("head %u: %s; imported as %s", plane.head_id, why.c_str(), to_string(form));
			else
				VLOG_DEBUG("head %u: %s plane imported as %s", plane.head_id, vgpu::to_string(plane.type),
				           to_string(form));
			return imp;
		}
		why += (why.empty() ? "" : "; ") + std::string(to_string(form)) + ": " + s.error();
	}
	return fail(why);
}

Status GuestImport::try_form(const VulkanContext &ctx, ImportForm form, const ImportPolicy &policy) {
	switch (form) {
	case ImportForm::dmabuf_image: return try_dmabuf_image(ctx);
	case ImportForm::dmabuf_linear: return try_dmabuf_linear(ctx);
	case ImportForm::host: return try_host(ctx);
	case ImportForm::copy: return try_copy(ctx, policy);
	}
	return fail("unknown import form");
}

Status GuestImport::try_dmabuf_linear(const VulkanContext &ctx) {
	if (!fd_is_dmabuf(fd_.get())) return fail("the fd is not a dma-buf");
	// The shader reads whole 32-bit words: a 16-bit plane's last pixel may sit in a partial word.
	const VkDeviceSize size = align_up(plane_.offset + uint64_t{plane_.stride} * plane_.height, 4);
	if (size > ctx.caps().max_storage_range) return fail("the plane is larger than the device's storage buffer range");
	auto b = import_dmabuf_buffer(ctx, fd_.get(), size,
	                              VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
	if (!b) return b.take_error();
	dmabuf_buffer_ = std::move(*b);
	buffer_size_ = size;
	return Ok{};
}

Status GuestImport::try_dmabuf_image(const VulkanContext &ctx) {
	if (!fd_is_dmabuf(fd_.get())) return fail("the fd is not a dma-buf");
	auto desc = describe_dmabuf_image(plane_);
	if (!desc) return desc.take_error();
	auto img = import_dmabuf_image(ctx, *desc, fd_.get());
	if (!img) return img.take_error();
	dmabuf_ = std::move(*img);
	VkImageViewCreateInfo vci{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
	vci.image = dmabuf_.image.get();
	vci.viewType = VK_IMAGE_VIEW_TYPE_2D;
	vci.format = desc->format;
	vci.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
	VkImageView iv;
	if (VkResult r = vkCreateImageView(ctx.device(), &vci, nullptr, &iv); r != VK_SUCCESS)
		return fail(std::string("vkCreateImageView failed: ") + vk_result_name(r));
	view_ = ImageView(ctx.device(), iv);
	return Ok{};
}

Status GuestImport::try_map() const {
	if (map_) return Ok{};
	// Map whole pages: the import and the shader never touch bytes past offset + size.
	const uint64_t len = align_up(plane_.offset + plane_.size, static_cast<uint64_t>(::getpagesize()));
	void *p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd_.get(), static_cast<off_t>(map_offset_));
	if (p == MAP_FAILED)
		return fail(std::string("mmap of the ") + vgpu::to_string(kind_) + " failed: " + std::strerror(errno));
	map_ = Mapping(p, len);
	return Ok{};
}

Status GuestImport::try_host(const VulkanContext &ctx) {
	if (!ctx.caps().host_memory) return fail("the device has no VK_EXT_external_memory_host");
	if (Status s = try_map(); !s) return s;
	const VkDeviceSize size = align_up(map_.size(), ctx.caps().host_alignment);
	if (size > map_.size()) return fail("the device's host import alignment is larger than a page");
	if (plane_.offset + plane_.size > ctx.caps().max_storage_range)
		return fail("the plane is larger than the device's storage buffer range");
	auto hb = ctx.import_host_buffer(map_.data(), size,
	                                 VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
	if (!hb) return hb.take_error();
	host_ = std::move(*hb);
	buffer_size_ = size;
	return Ok{};
}

Status GuestImport::try_copy(const VulkanContext &ctx, const ImportPolicy &policy) {
	if (Status s = try_map(); !s) return s;
	// The shader reads whole 32-bit words: a 16-bit plane's last pixel may sit in a partial word.
	const VkDeviceSize size = align_up(uint64_t{plane_.stride} * plane_.height, 4);
	if (size > ctx.caps().max_storage_range) return fail("the plane is larger than the device's storage buffer range");
	auto mb = ctx.create_mapped_buffer(size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
	if (!mb) return mb.take_error();
	staging_ = std::move(*mb);
	buffer_size_ = size;
	copy_counter_ = policy.copy_counter;
	copy_bytes_counter_ = policy.copy_bytes_counter;
	form_ = ImportForm::copy;
	content_changed(std::nullopt);
	return Ok{};
}

const uint8_t *GuestImport::cpu_data() const {
	// A zero-copy dma-buf import reads through the GPU; the CPU (--refresh=watch hashing the
	// plane) gets a mapping of its own the first time it asks, if the exporter allows one.
	if (!map_ && !map_tried_ && foreign()) {
		map_tried_ = true;
		if (Status s = try_map(); !s)
			VLOG_DEBUG("head %u: no CPU view of the dma-buf: %s", plane_.head_id, s.error().c_str());
	}
	return map_ ? map_.data() : nullptr;
}

VkBuffer GuestImport::buffer() const {
	switch (form_) {
	case ImportForm::copy: return staging_.buffer.get();
	case ImportForm::host: return host_.buffer.get();
	case ImportForm::dmabuf_linear: return dmabuf_buffer_.buffer.get();
	case ImportForm::dmabuf_image: break;
	}
	return VK_NULL_HANDLE;
}

// Only the rows the source says changed, once a frame (docs/design.md, "Damage rows"); the whole
// plane when it cannot say, and the first time.
void GuestImport::content_changed(const std::optional<vgpu::RowSpan> &rows) {
	if (form_ != ImportForm::copy) return;
	uint32_t first = 0, end = plane_.height;
	if (rows && copied_) {
		first = std::min(rows->first, plane_.height);
		end = std::min(rows->end, plane_.height);
	}
	if (first >= end) return; // no row of the plane changed
	const uint64_t at = uint64_t{first} * plane_.stride, bytes = uint64_t{end - first} * plane_.stride;
	begin_read();
	std::memcpy(static_cast<uint8_t *>(staging_.data) + at, map_.data() + plane_.offset + at, bytes);
	end_read();
	copied_ = true;
	if (copy_counter_) (*copy_counter_)++;
	if (copy_bytes_counter_) *copy_bytes_counter_ += bytes;
}

void GuestImport::begin_read() const {
	if (kind_ != vgpu::BufferKind::dmabuf || !map_) return;
	dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ};
	::ioctl(fd_.get(), DMA_BUF_IOCTL_SYNC, &sync);
}

void GuestImport::end_read() const {
	if (kind_ != vgpu::BufferKind::dmabuf || !map_) return;
	dma_buf_sync sync{DMA_BUF_SYNC_END | DMA_BUF_SYNC_READ};
	::ioctl(fd_.get(), DMA_BUF_IOCTL_SYNC, &sync);
}

} // namespace vscanout::render
