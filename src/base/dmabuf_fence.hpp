// Implicit fences on a dma-buf: what a reader must wait for before the buffer's content is
// complete (docs/design.md, "Fences"). A guest buffer written by a GPU or another device can
// still be in flight when its plane names it; reading it then shows a half-drawn frame, and a
// CPU access (DMA_BUF_IOCTL_SYNC) would block the event loop until the writer is done.
#pragma once

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace vscanout {

// A descriptor that becomes readable (POLLIN) once every write fence of the dma-buf signalled:
// a sync file of the fences attached now (DMA_BUF_IOCTL_EXPORT_SYNC_FILE, Linux 6.0+), or, where
// the kernel cannot export one, a duplicate of the dma-buf itself (its POLLIN waits for the same
// fences, including ones attached later). An empty UniqueFd: nothing to wait for right now.
struct ReadFence {
	UniqueFd fd;
	bool sync_file = false; // false: fd is the dma-buf
};
Result<ReadFence> read_fence(int dmabuf_fd);

// Whether a fence descriptor from read_fence() has signalled, without blocking.
bool fence_signalled(int fence_fd);

} // namespace vscanout
