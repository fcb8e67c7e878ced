#include "render/target.hpp"

#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"

namespace vscanout::render {

Result<std::unique_ptr<OutputTarget>> OutputTarget::create(const VulkanContext &ctx, const TargetDesc &d) {
	const core::FormatInfo *f = core::find_format(d.drm_format);
	if (!f || !f->supported || f->bytes_per_pixel != 4)
		return fail("output buffer format " + core::describe_fourcc(d.drm_format) + " is not one vscanout writes");
	if (!d.data) return fail("the output buffer has no CPU mapping (dma-buf output buffers are not supported yet)");
	std::unique_ptr<OutputTarget> t(new OutputTarget());
	t->desc_ = d;
	t->layout_ = f->layout;
	t->size_ = uint64_t{d.stride} * d.height;
	const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
	if (ctx.caps().host_memory) {
		// wlroots maps these buffers page-aligned; the tail up to the next page is mapped too.
		const VkDeviceSize a = ctx.caps().host_alignment;
		auto hb = ctx.import_host_buffer(d.data, align_up(t->size_, a), usage);
		if (hb) {
			t->host_ = std::move(*hb);
			return t;
		}
		VLOG_DEBUG("output buffer: host import failed (%s); staging frames", hb.error().c_str());
	}
	auto mb = ctx.create_mapped_buffer(t->size_, usage);
	if (!mb) return mb.take_error();
	t->staging_ = std::move(*mb);
	t->staged_ = true;
	return t;
}

void OutputTarget::finish() {
	if (staged_) std::memcpy(desc_.data, staging_.data, size_);
}

} // namespace vscanout::render
