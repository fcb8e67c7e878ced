// Exit causes and guarded reads (base/signals.hpp, base/guarded_copy.hpp).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/guarded_copy.hpp"
#include "base/mapping.hpp"
#include "base/signals.hpp"
#include "base/unique_fd.hpp"

using namespace vscanout;

TEST(Signals, ASentSignalNamesItsSender) {
	const std::string t = describe_signal(SIGTERM, SI_USER, ::getpid(), 1234);
	EXPECT_EQ(t.rfind("SIGTERM from pid " + std::to_string(::getpid()) + " (", 0), 0u) << t;
	EXPECT_NE(t.find("unit_tests"), std::string::npos) << "the sender's command name: " << t;
	EXPECT_NE(t.find("uid 1234"), std::string::npos) << t;
}

TEST(Signals, AKernelSignalAndAGoneSender) {
	EXPECT_NE(describe_signal(SIGINT, SI_KERNEL, 0, 0).find("SIGINT from the kernel"), std::string::npos);
	// pid_max is at most 2^22: this pid cannot exist.
	EXPECT_NE(describe_signal(SIGHUP, SI_USER, 99999999, 0).find("SIGHUP from pid 99999999 (gone already)"),
	          std::string::npos);
	EXPECT_EQ(signal_name(SIGBUS), "SIGBUS");
	EXPECT_EQ(signal_name(64), "signal 64");
}

namespace {

struct Region {
	UniqueFd fd;
	Mapping map;
	size_t size;
	explicit Region(size_t n) : size(n) {
		fd = UniqueFd(::memfd_create("guarded", MFD_CLOEXEC));
		EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(n)), 0);
		auto m = Mapping::map(fd.get(), n, PROT_READ | PROT_WRITE);
		EXPECT_TRUE(m.ok());
		map = std::move(*m);
	}
};

} // namespace

TEST(GuardedCopy, CopiesOnlyWhatChangedAndSaysSo) {
	Region src(3 * 4096 + 100);
	std::vector<uint8_t> dst(src.size, 0);
	auto r = guarded_copy_changed(dst.data(), src.map.data(), src.size);
	ASSERT_TRUE(r.ok());
	EXPECT_FALSE(*r) << "zeros over zeros: no change";
	src.map.data()[3 * 4096 + 99] = 7; // the last byte, in the partial last page
	r = guarded_copy_changed(dst.data(), src.map.data(), src.size);
	ASSERT_TRUE(r.ok());
	EXPECT_TRUE(*r);
	EXPECT_EQ(dst.back(), 7);
	r = guarded_copy_changed(dst.data(), src.map.data(), src.size);
	ASSERT_TRUE(r.ok());
	EXPECT_FALSE(*r);
}

TEST(GuardedCopy, ARevokedMappingIsAnErrorNotTheEndOfTheProcess) {
	Region src(4 * 4096);
	std::memset(src.map.data(), 0x5a, src.size);
	std::vector<uint8_t> dst(src.size, 0);
	ASSERT_EQ(::ftruncate(src.fd.get(), 4096), 0); // pages 1..3 now raise SIGBUS when touched
	for (int i = 0; i < 3; i++) {                  // and again: the guard is re-armed each time
		auto r = guarded_copy_changed(dst.data(), src.map.data(), src.size);
		ASSERT_FALSE(r.ok());
		EXPECT_NE(r.error().find("SIGBUS"), std::string::npos) << r.error();
	}
	EXPECT_EQ(dst[0], 0x5a) << "the page still there was copied";
	// A fault outside the guarded range is not swallowed: it still kills (checked in a child).
	EXPECT_EXIT(
	    {
		    volatile uint8_t v = src.map.data()[2 * 4096];
		    (void)v;
		    ::_exit(0);
	    },
	    [](int status) {
		    // Killed by SIGBUS; under AddressSanitizer its own SIGBUS report exits non-zero instead.
		    return (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) || (WIFEXITED(status) && WEXITSTATUS(status));
	    },
	    "");
}
