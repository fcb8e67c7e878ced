#include "render/target.hpp"

#include <drm_fourcc.h>

#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"

namespace vscanout::render {

const char *to_string(OutputPath p) {
	switch (p) {
	case OutputPath::dmabuf: return "dmabuf";
	case OutputPath::host: return "host";
	case OutputPath::staged: return "staged";
	}
	return "?";
}

Status OutputTarget::try_dmabuf(const VulkanContext &ctx) {
	if (desc_.dmabuf_fd < 0) return fail("the output buffer is no dma-buf");
	if (desc_.modifier != DRM_FORMAT_MOD_LINEAR && desc_.modifier != DRM_FORMAT_MOD_INVALID)
		return fail("the output buffer's modifier is not LINEAR");
	if (desc_.dmabuf_offset != 0) return fail("the output buffer's pixels do not start at byte 0");
	if (!fd_is_dmabuf(desc_.dmabuf_fd)) return fail("the output buffer's fd is not a dma-buf");
	auto b = import_dmabuf_buffer(ctx, desc_.dmabuf_fd, size_,
	                              VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT);
	if (!b) return b.take_error();
	dmabuf_ = std::move(*b);
	return Ok{};
}

Result<std::unique_ptr<OutputTarget>> OutputTarget::create(const VulkanContext &ctx, const TargetDesc &d,
                                                           bool allow_dmabuf) {
	const core::FormatInfo *f = core::find_format(d.drm_format);
	if (!f || !f->supported || f->bytes_per_pixel != 4)
		return fail("output buffer format " + core::describe_fourcc(d.drm_format) + " is not one vscanout writes");
	std::unique_ptr<OutputTarget> t(new OutputTarget());
	t->desc_ = d;
	t->layout_ = f->layout;
	t->size_ = uint64_t{d.stride} * d.height;
	std::string why;
	if (allow_dmabuf && d.dmabuf_fd >= 0) {
		Status s = t->try_dmabuf(ctx);
		if (s) {
			t->path_ = OutputPath::dmabuf;
			return t;
		}
		why = "dma-buf: " + s.error();
	}
	if (!d.data) return fail("the output buffer has no CPU mapping" + (why.empty() ? "" : " and " + why));
	const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
	if (ctx.caps().host_memory) {
		// wlroots maps these buffers page-aligned; the tail up to the next page is mapped too.
		const VkDeviceSize a = ctx.caps().host_alignment;
		auto hb = ctx.import_host_buffer(d.data, align_up(t->size_, a), usage);
		if (hb) {
			t->host_ = std::move(*hb);
			t->path_ = OutputPath::host;
			if (!why.empty()) VLOG_DEBUG("output buffer: %s; writing it as host memory", why.c_str());
			return t;
		}
		why += (why.empty() ? "" : "; ") + std::string("host import: ") + hb.error();
	}
	VLOG_DEBUG("output buffer: %s; staging frames", why.empty() ? "no host-memory import" : why.c_str());
	auto mb = ctx.create_mapped_buffer(t->size_, usage);
	if (!mb) return mb.take_error();
	t->staging_ = std::move(*mb);
	t->path_ = OutputPath::staged;
	return t;
}

VkBuffer OutputTarget::buffer() const {
	switch (path_) {
	case OutputPath::dmabuf: return dmabuf_.buffer.get();
	case OutputPath::host: return host_.buffer.get();
	case OutputPath::staged: return staging_.buffer.get();
	}
	return VK_NULL_HANDLE;
}

void OutputTarget::finish() {
	if (path_ == OutputPath::staged) std::memcpy(desc_.data, staging_.data, size_);
}

} // namespace vscanout::render
