// What every fuzz target shares: logs formatted and dropped, and a check that aborts (libFuzzer
// then keeps the input as a crash).
#pragma once

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/log.hpp"

namespace vscanout::fuzz {

// Every log line is still formatted, so a format argument that does not match its directive is
// caught by the sanitizers, but nothing is written (the fuzzers run millions of inputs).
// VSCANOUT_FUZZ_LOG=1 keeps the logs on stderr, to read what a reproducer does.
inline void quiet_sink(log::Level, const char *fmt, va_list args) {
	char buf[512];
	std::vsnprintf(buf, sizeof buf, fmt, args);
}

inline void quiet_logs() {
	static const bool once = [] {
		const char *keep = std::getenv("VSCANOUT_FUZZ_LOG");
		if (!keep || std::string_view(keep) != "1") log::set_sink(quiet_sink);
		return true;
	}();
	(void)once;
}

// An invariant of the code under test did not hold for this input.
[[noreturn]] inline void broken(const char *what) {
	std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
	std::abort();
}
#define FUZZ_CHECK(cond)                                                                                               \
	do {                                                                                                               \
		if (!(cond)) ::vscanout::fuzz::broken(#cond " (" __FILE__ ")");                                                \
	} while (0)

} // namespace vscanout::fuzz
