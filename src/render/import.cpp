#include "render/import.hpp"

#include <linux/dma-buf.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"

namespace vscanout::render {

const char *to_string(ImportPath p) {
	switch (p) {
	case ImportPath::dmabuf: return "dmabuf";
	case ImportPath::host: return "host";
	case ImportPath::copy: return "copy";
	}
	return "?";
}

Result<std::shared_ptr<GuestImport>> GuestImport::create(const VulkanContext &ctx, const vgpu::PlaneInfo &plane,
                                                         vgpu::GuestBuffer buffer, const ImportPolicy &policy) {
	std::shared_ptr<GuestImport> imp(new GuestImport(plane, std::move(buffer)));
	std::string why;
	if (policy.allow_dmabuf && imp->kind_ == vgpu::BufferKind::dmabuf) {
		Status s = imp->try_dmabuf(ctx);
		if (s) return imp;
		why = "dma-buf import: " + s.error();
	}
	if (policy.allow_host) {
		Status s = imp->try_host(ctx);
		if (s) return imp;
		why += (why.empty() ? "" : "; ") + std::string("host-memory import: ") + s.error();
	}
	if (!why.empty()) VLOG_DEBUG("head %u: %s; falling back to a counted copy", plane.head_id, why.c_str());
	Status s = imp->try_copy(ctx, policy.copy_counter);
	if (!s) return fail(why.empty() ? s.error() : why + "; copy: " + s.error());
	return imp;
}

Status GuestImport::try_dmabuf(const VulkanContext &ctx) {
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
	path_ = ImportPath::dmabuf;
	return Ok{};
}

Status GuestImport::try_map() {
	if (map_) return Ok{};
	// Map whole pages: the import and the shader never touch bytes past offset + size.
	const uint64_t len = align_up(plane_.offset + plane_.size, static_cast<uint64_t>(::getpagesize()));
	void *p = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd_.get(), static_cast<off_t>(map_offset_));
	if (p == MAP_FAILED) return fail(std::string("mmap of the ") + vgpu::to_string(kind_) + " failed: " +
	                                 std::strerror(errno));
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
	path_ = ImportPath::host;
	return Ok{};
}

Status GuestImport::try_copy(const VulkanContext &ctx, uint64_t *counter) {
	if (Status s = try_map(); !s) return s;
	// The shader reads whole 32-bit words: a 16-bit plane's last pixel may sit in a partial word.
	const VkDeviceSize size = align_up(uint64_t{plane_.stride} * plane_.height, 4);
	if (size > ctx.caps().max_storage_range) return fail("the plane is larger than the device's storage buffer range");
	auto mb = ctx.create_mapped_buffer(size, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
	if (!mb) return mb.take_error();
	staging_ = std::move(*mb);
	buffer_size_ = size;
	copy_counter_ = counter;
	path_ = ImportPath::copy;
	content_changed();
	return Ok{};
}

const uint8_t *GuestImport::cpu_data() const { return map_ ? map_.data() : nullptr; }

VkBuffer GuestImport::buffer() const {
	return path_ == ImportPath::copy ? staging_.buffer.get() : host_.buffer.get();
}

void GuestImport::content_changed() {
	if (path_ != ImportPath::copy) return;
	begin_read();
	std::memcpy(staging_.data, map_.data() + plane_.offset, uint64_t{plane_.stride} * plane_.height);
	end_read();
	if (copy_counter_) (*copy_counter_)++;
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
