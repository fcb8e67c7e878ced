#include "compositor/scanout.hpp"

#include <drm_fourcc.h>

#include <cstring>
#include <vector>

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

struct PixelBuffer {
	wlr_buffer base; // first: wlroots hands us &base
	std::vector<uint8_t> pixels;
	uint32_t stride = 0;
};

PixelBuffer *pixel(wlr_buffer *b) { return reinterpret_cast<PixelBuffer *>(b); }

const wlr_buffer_impl kPixelImpl = {
    .destroy = [](wlr_buffer *b) { delete pixel(b); },
    .get_dmabuf = nullptr,
    .get_shm = nullptr,
    .begin_data_ptr_access =
        [](wlr_buffer *b, uint32_t flags, void **data, uint32_t *format, size_t *stride) {
	        if (flags & WLR_BUFFER_DATA_PTR_ACCESS_WRITE) return false;
	        *data = pixel(b)->pixels.data();
	        *format = DRM_FORMAT_ARGB8888;
	        *stride = pixel(b)->stride;
	        return true;
        },
    .end_data_ptr_access = [](wlr_buffer *) {},
};

} // namespace

wlr_buffer *make_pixel_buffer(const uint8_t *pixels, uint32_t stride, uint32_t width, uint32_t height) {
	if (!pixels || width == 0 || height == 0) return nullptr;
	auto *b = new PixelBuffer{};
	b->stride = width * 4;
	b->pixels.resize(size_t(b->stride) * height);
	for (uint32_t y = 0; y < height; y++)
		std::memcpy(b->pixels.data() + size_t(y) * b->stride, pixels + size_t(y) * stride, b->stride);
	wlr_buffer_init(&b->base, &kPixelImpl, static_cast<int>(width), static_cast<int>(height));
	return &b->base;
}

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
