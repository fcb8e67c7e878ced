#include "vgpu/plane.hpp"

namespace vscanout::vgpu {

const char *to_string(PlaneType t) { return t == PlaneType::cursor ? "cursor" : "primary"; }

const char *to_string(BufferKind k) {
	switch (k) {
	case BufferKind::memfd: return "memfd";
	case BufferKind::dmabuf: return "dma-buf";
	case BufferKind::region: return "region";
	}
	return "?";
}

} // namespace vscanout::vgpu
