// The plane model: what a source says about one plane of one guest head.
// Mirrors struct vfio_device_gfx_plane_info (<linux/vfio.h>) plus what the VFIO API leaves
// implicit: the head it belongs to, its state and a byte offset into its buffer.
#pragma once

#include <cstdint>
#include <string>

#include "base/unique_fd.hpp"

namespace vscanout::vgpu {

enum class PlaneType : uint32_t { primary = 1, cursor = 2 }; // DRM_PLANE_TYPE_* values

enum class PlaneState {
	enabled,
	disabled,    // no mode programmed yet, or the guest turned the plane off
	unsupported, // the device has no such plane
};

inline constexpr uint32_t kNoHotspot = 0xFFFFFFFFu;

struct PlaneInfo {
	uint32_t head_id = 0;
	PlaneType type = PlaneType::primary;
	PlaneState state = PlaneState::disabled;

	uint32_t drm_format = 0; // DRM fourcc
	uint64_t drm_format_mod = 0;
	uint32_t width = 0;
	uint32_t height = 0;
	uint32_t stride = 0;
	uint32_t size = 0; // bytes of the plane, as the device reports it (page aligned for VFIO)
	// Cursor image top-left on the primary plane. The kernel has them as __u32: read as signed,
	// a cursor hanging off the top/left edge is negative.
	int32_t x_pos = 0;
	int32_t y_pos = 0;
	uint32_t x_hot = kNoHotspot;
	uint32_t y_hot = kNoHotspot;
	uint64_t buffer_id = 0;    // VFIO dmabuf_id; region planes: the source's id for the configuration
	uint64_t offset = 0;       // byte offset of pixel (0,0) in the buffer (0 for VFIO)
	uint32_t region_index = 0; // VFIO region planes: the region holding the plane

	bool enabled() const { return state == PlaneState::enabled; }
};

// Rows [first, end) of a plane: what a damage notice touched (docs/design.md, "Damage rows").
struct RowSpan {
	uint32_t first = 0, end = 0;
	bool empty() const { return end <= first; }
	bool operator==(const RowSpan &) const = default;
};

// How a buffer reaches us.
enum class BufferKind {
	memfd,  // host memory (sim): mappable, no sync needed
	dmabuf, // a dma-buf: importable by a GPU with its modifier; mmap needs DMA_BUF_IOCTL_SYNC
	region, // a device region mapped at map_offset (no source hands these out now: a VFIO region
	        // plane comes as a memfd snapshot, docs/design.md "VFIO")
};

struct GuestBuffer {
	UniqueFd fd;
	BufferKind kind = BufferKind::memfd;
	uint64_t byte_size = 0;  // what the fd holds; validation checks offset + size against it
	uint64_t map_offset = 0; // mmap offset of the buffer's byte 0 (VFIO region offset)
};

const char *to_string(PlaneType t);
const char *to_string(BufferKind k);

} // namespace vscanout::vgpu
