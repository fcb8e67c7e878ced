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

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

} // namespace vscanout
