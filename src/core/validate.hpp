// Guest planes are untrusted: every field is checked before anything maps or imports them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "vgpu/plane.hpp"

namespace vscanout::core {

inline constexpr uint32_t kMaxDimension = 16384;
inline constexpr uint32_t kMaxCursorDimension = 512;
// Cursor positions are clamped into this range (guest values are any 32-bit number).
inline constexpr int32_t kMinCursorPosition = -static_cast<int32_t>(kMaxCursorDimension);
inline constexpr int32_t kMaxCursorPosition = static_cast<int32_t>(kMaxDimension);

struct Rejection {
	std::string field;  // the field at fault, e.g. "stride"
	std::string reason; // a sentence naming the field and its values
};

// Checks the fields of an enabled plane (disabled planes carry no fields to check).
std::optional<Rejection> validate_plane(const vgpu::PlaneInfo &plane);

// Checks the plane against the buffer that backs it, once that buffer is open.
std::optional<Rejection> validate_backing(const vgpu::PlaneInfo &plane, uint64_t buffer_bytes);

// A hotspot outside the cursor image means "no hotspot" (docs/design.md, "VFIO quirks"); the
// position is clamped into [kMinCursorPosition, kMaxCursorPosition].
vgpu::PlaneInfo normalize_hotspot(vgpu::PlaneInfo plane);

} // namespace vscanout::core
