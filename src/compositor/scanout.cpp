#include "compositor/scanout.hpp"

namespace vscanout::compositor {
namespace {

struct ScanoutBuffer {
	wlr_buffer base; // first: wlroots hands us &base
	std::shared_ptr<const render::GuestImport> import;
	wlr_dmabuf_attributes attribs{};
};

ScanoutBuffer *scanout(wlr_buffer *b) { return reinterpret_cast<ScanoutBuffer *>(b); }

const wlr_buffer_impl kScanoutImpl = {
	.destroy = [](wlr_buffer *b) { delete scanout(b); },
	.get_dmabuf =
		[](wlr_buffer *b, wlr_dmabuf_attributes *attribs) {
			*attribs = scanout(b)->attribs;
			return true;
		},
	.get_shm = nullptr,
	.begin_data_ptr_access = nullptr,
	.end_data_ptr_access = nullptr,
};

} // namespace

wlr_buffer *make_scanout_buffer(std::shared_ptr<const render::GuestImport> import) {
	if (!import || import->dmabuf_fd() < 0) return nullptr;
	const vgpu::PlaneInfo &p = import->plane();
	auto *b = new ScanoutBuffer{};
	b->attribs.width = static_cast<int32_t>(p.width);
	b->attribs.height = static_cast<int32_t>(p.height);
	b->attribs.format = p.drm_format;
	b->attribs.modifier = p.drm_format_mod;
	b->attribs.n_planes = 1;
	b->attribs.offset[0] = static_cast<uint32_t>(p.offset);
	b->attribs.stride[0] = p.stride;
	b->attribs.fd[0] = import->dmabuf_fd();
	b->import = std::move(import);
	wlr_buffer_init(&b->base, &kScanoutImpl, static_cast<int>(p.width), static_cast<int>(p.height));
	return &b->base;
}

} // namespace vscanout::compositor
