// Small helpers around descriptors: memfds, sizes, counting open fds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace vscanout {

// A sealed-growable memfd of exactly `size` bytes.
Result<UniqueFd> make_memfd(const char *name, size_t size);

// Size of what an fd refers to: st_size for files/memfds, lseek(SEEK_END) for dma-bufs.
Result<uint64_t> fd_byte_size(int fd);

// Number of open descriptors of this process (reads /proc/self/fd).
int count_open_fds();

// Whether fd is a real dma-buf (it lives on the dma-buf filesystem: fstatfs f_type is
// DMA_BUF_MAGIC). Its size is fixed for its lifetime: a mapping of it cannot be shrunk away.
bool fd_is_dmabuf(int fd);

// Whether fd is a memfd (or another file) sealed against shrinking (F_GET_SEALS has
// F_SEAL_SHRINK): the other side cannot truncate it under a mapping of ours (no SIGBUS).
bool fd_sealed_against_shrink(int fd);

// Whether a buffer another process handed us may be mapped or read: a real dma-buf, or a file
// sealed against shrinking. Anything else can be truncated by its owner while we read it.
inline bool fd_safe_to_map(int fd) { return fd_is_dmabuf(fd) || fd_sealed_against_shrink(fd); }

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

} // namespace vscanout
