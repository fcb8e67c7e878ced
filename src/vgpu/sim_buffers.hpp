// The simulated vGPU's buffers and where they come from: memfds, udmabufs over memfds, or vgem
// dumb buffers exported as dma-bufs. vgem is the one that attaches and signals write fences on
// request, so the fence path of vscanout can be tested against real kernel fences.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/mapping.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/plane.hpp"
#include "vgpu/sim.hpp"

namespace vscanout::vgpu {

// A GEM handle on the allocator's vgem node, closed with the buffer. The node outlives it.
class GemHandle {
public:
	GemHandle() = default;
	GemHandle(int node, uint32_t handle) : node_(node), handle_(handle) {}
	GemHandle(GemHandle &&o) noexcept : node_(std::exchange(o.node_, -1)), handle_(o.handle_) {}
	GemHandle &operator=(GemHandle &&o) noexcept {
		if (this != &o) {
			reset();
			node_ = std::exchange(o.node_, -1);
			handle_ = o.handle_;
		}
		return *this;
	}
	~GemHandle() { reset(); }
	uint32_t get() const { return handle_; }
	explicit operator bool() const { return node_ >= 0; }
	void reset();

private:
	int node_ = -1;
	uint32_t handle_ = 0;
};

struct SimBuffer {
	uint64_t id = 0;
	uint64_t size = 0;
	UniqueFd memfd;  // owns the pages of memfd and udmabuf buffers; the sim draws through `map`
	UniqueFd dmabuf; // what consumers get when dma-bufs are on
	GemHandle gem;   // vgem buffers
	Mapping map;

	int export_fd() const { return dmabuf ? dmabuf.get() : memfd.get(); }
	BufferKind kind() const { return dmabuf ? BufferKind::dmabuf : BufferKind::memfd; }
};

class SimAllocator {
public:
	enum class Kind { memfd, udmabuf, vgem };
	// Opens what the policy asks for; `automatic` falls back (logged) where the kernel has neither.
	static Result<std::unique_ptr<SimAllocator>> open(DmabufPolicy policy);

	Kind kind() const { return kind_; }
	const char *name() const;
	// A buffer of at least `bytes` (a whole number of pages), mapped read-write; id left 0.
	Result<SimBuffer> make(uint64_t bytes, const char *name) const;
	// vgem only: a write fence on the buffer, signalled by signal_fence() (or by vgem itself
	// after 10 s); its number.
	Result<uint32_t> attach_write_fence(const SimBuffer &buffer) const;
	Status signal_fence(uint32_t fence) const;

private:
	Kind kind_ = Kind::memfd;
	UniqueFd dev_; // /dev/udmabuf, or the vgem node
};

} // namespace vscanout::vgpu
