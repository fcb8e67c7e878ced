#include "base/fd_util.hpp"
#include "base/mapping.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vscanout {

Result<Mapping> Mapping::map(int fd, size_t len, int prot) {
	void *p = ::mmap(nullptr, len, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) return fail(std::string("mmap failed: ") + std::strerror(errno));
	return Mapping(p, len);
}

Result<UniqueFd> make_memfd(const char *name, size_t size) {
	UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (!fd) return fail(std::string("memfd_create failed: ") + std::strerror(errno));
	if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
		return fail(std::string("ftruncate of memfd failed: ") + std::strerror(errno));
	// The buffer's size is part of what consumers validate against: forbid shrinking it
	// underneath them (a shrunk memfd would SIGBUS a mapping).
	if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK) != 0)
		return fail(std::string("sealing a memfd failed: ") + std::strerror(errno));
	return fd;
}

bool fd_is_dmabuf(int fd) {
	struct statfs fs {};
	return ::fstatfs(fd, &fs) == 0 && static_cast<unsigned long>(fs.f_type) == DMA_BUF_MAGIC;
}

bool fd_sealed_against_shrink(int fd) {
	const int seals = ::fcntl(fd, F_GET_SEALS);
	return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
}

Result<uint64_t> fd_byte_size(int fd) {
	struct stat st {};
	if (::fstat(fd, &st) < 0) return fail(std::string("fstat failed: ") + std::strerror(errno));
	if (S_ISREG(st.st_mode) && st.st_size > 0) return static_cast<uint64_t>(st.st_size);
	off_t end = ::lseek(fd, 0, SEEK_END);
	if (end < 0) return fail(std::string("cannot tell buffer size: ") + std::strerror(errno));
	::lseek(fd, 0, SEEK_SET);
	return static_cast<uint64_t>(end);
}

int count_open_fds() {
	DIR *d = ::opendir("/proc/self/fd");
	if (!d) return -1;
	int n = 0;
	while (struct dirent *e = ::readdir(d))
		if (e->d_name[0] != '.') n++;
	::closedir(d);
	return n - 1; // the DIR's own descriptor
}

} // namespace vscanout
