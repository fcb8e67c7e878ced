// Direct scan-out: a guest dma-buf handed to KMS as it is, with no composition, when the guest
// frame matches the connector's mode and the driver takes the buffer (checked with a test-only
// commit). The wlr_buffer keeps the import, and with it the dma-buf fd, alive for as long as KMS
// holds it.
#pragma once

#include <cstdint>
#include <memory>

#include "compositor/wlr.hpp"
#include "render/import.hpp"

namespace vscanout::compositor {

// nullptr when the import holds no dma-buf.
wlr_buffer *make_scanout_buffer(std::shared_ptr<const render::GuestImport> import);

// A copy of ARGB8888 pixels in memory, readable by wlroots' renderer (a guest cursor image for
// the parent's pointer). nullptr for an empty image.
wlr_buffer *make_pixel_buffer(const uint8_t *pixels, uint32_t stride, uint32_t width, uint32_t height);

} // namespace vscanout::compositor
