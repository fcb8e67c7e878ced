#include "base/guarded_copy.hpp"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace vscanout {
namespace {

// Volatile, and fenced: the compiler knows memcmp and memcpy read no globals, and would
// otherwise sink the stores past them (or drop them as dead).
struct Guard {
	sigjmp_buf *volatile jump = nullptr;
	volatile uintptr_t lo = 0, hi = 0; // the source range being read
	volatile int signo = 0;            // what ended the copy
};
thread_local Guard guard;
struct sigaction previous_bus, previous_segv;

void on_fault(int signo, siginfo_t *info, void *ctx) {
	const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
	if (guard.jump && info->si_code > 0 && addr >= guard.lo && addr < guard.hi) {
		guard.signo = signo;
		siglongjmp(*guard.jump, 1);
	}
	// Not ours: the handler before takes it (the fault comes again when this returns).
	::sigaction(signo, signo == SIGBUS ? &previous_bus : &previous_segv, nullptr);
	if (info->si_code <= 0) ::raise(signo);
}

void install_once() {
	static std::once_flag once;
	std::call_once(once, [] {
		struct sigaction sa {};
		sa.sa_sigaction = on_fault;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		::sigaction(SIGBUS, &sa, &previous_bus);
		::sigaction(SIGSEGV, &sa, &previous_segv);
	});
}

} // namespace

Result<bool> guarded_copy_changed(uint8_t *dst, const uint8_t *src, size_t len) {
	install_once();
	constexpr size_t kChunk = 4096;
	sigjmp_buf jump;
	volatile bool changed = false;
	guard.lo = reinterpret_cast<uintptr_t>(src);
	guard.hi = guard.lo + len;
	guard.signo = 0;
	if (sigsetjmp(jump, 1) != 0) {
		guard.jump = nullptr;
		return fail(std::string("the mapping went away (") + (guard.signo == SIGBUS ? "SIGBUS" : "SIGSEGV") +
		            " while reading it)");
	}
	guard.jump = &jump;
	std::atomic_signal_fence(std::memory_order_seq_cst);
	for (size_t at = 0; at < len; at += kChunk) {
		const size_t n = len - at < kChunk ? len - at : kChunk;
		if (std::memcmp(dst + at, src + at, n) != 0) {
			std::memcpy(dst + at, src + at, n);
			changed = true;
		}
	}
	std::atomic_signal_fence(std::memory_order_seq_cst);
	guard.jump = nullptr;
	return static_cast<bool>(changed);
}

} // namespace vscanout
