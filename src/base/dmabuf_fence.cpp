#include "base/dmabuf_fence.hpp"

#include <fcntl.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace vscanout {

bool fence_signalled(int fence_fd) {
	pollfd p{fence_fd, POLLIN, 0};
	int r;
	do r = ::poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	// An error (POLLERR, POLLNVAL) will never turn into a signal: count it as done rather than
	// waiting forever; the read then shows what the buffer holds.
	return r != 0;
}

Result<ReadFence> read_fence(int dmabuf_fd) {
	ReadFence out;
	// The common case, a buffer with no writer in flight, costs one poll.
	if (fence_signalled(dmabuf_fd)) return out;
	dma_buf_export_sync_file req{DMA_BUF_SYNC_READ, -1};
	if (::ioctl(dmabuf_fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &req) == 0) {
		out.fd.reset(req.fd);
		out.sync_file = true;
		if (fence_signalled(out.fd.get())) out.fd.reset();
		return out;
	}
	if (errno != ENOTTY && errno != EINVAL)
		return fail(std::string("DMA_BUF_IOCTL_EXPORT_SYNC_FILE failed: ") + std::strerror(errno));
	out.fd.reset(::fcntl(dmabuf_fd, F_DUPFD_CLOEXEC, 0));
	if (!out.fd) return fail(std::string("cannot duplicate the dma-buf: ") + std::strerror(errno));
	return out;
}

} // namespace vscanout
