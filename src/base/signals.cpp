#include "base/signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "base/log.hpp"

namespace vscanout {

std::string signal_name(int signo) {
	switch (signo) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	case SIGQUIT: return "SIGQUIT";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	case SIGPIPE: return "SIGPIPE";
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	case SIGKILL: return "SIGKILL";
	default: return "signal " + std::to_string(signo);
	}
}

std::string describe_signal(int signo, int code, pid_t pid, uid_t uid) {
	std::string text = signal_name(signo);
	if (code == SI_USER || code == SI_QUEUE || code == SI_TKILL) {
		text += " from pid " + std::to_string(pid);
		std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
		std::string name;
		if (comm && std::getline(comm, name) && !name.empty())
			text += " (" + log::escape(name, 32) + ")";
		else
			text += " (gone already)";
		text += ", uid " + std::to_string(uid);
	} else if (code == SI_KERNEL) {
		text += " from the kernel (a terminal's Ctrl+C or hangup, or the session)";
	} else {
		text += " (si_code " + std::to_string(code) + ")";
	}
	return text;
}

namespace {

constexpr int kFatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
struct sigaction previous[NSIG];

// Async-signal-safe: only write(2) and integer formatting on the stack.
void append(char *buf, size_t &len, size_t cap, const char *s) {
	while (*s && len + 1 < cap) buf[len++] = *s++;
}

void append_hex(char *buf, size_t &len, size_t cap, uintptr_t v) {
	char digits[2 * sizeof v];
	int n = 0;
	do {
		digits[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v && n < static_cast<int>(sizeof digits));
	append(buf, len, cap, "0x");
	while (n > 0 && len + 1 < cap) buf[len++] = digits[--n];
}

void on_fatal(int signo, siginfo_t *info, void *) {
	const char *name = signo == SIGSEGV  ? "SIGSEGV"
	                   : signo == SIGBUS ? "SIGBUS"
	                   : signo == SIGFPE ? "SIGFPE"
	                   : signo == SIGILL ? "SIGILL"
	                                     : "SIGABRT";
	char line[160];
	size_t len = 0;
	append(line, len, sizeof line, "vscanout: exiting: fatal signal ");
	append(line, len, sizeof line, name);
	if (signo != SIGABRT) {
		append(line, len, sizeof line, " at address ");
		append_hex(line, len, sizeof line, reinterpret_cast<uintptr_t>(info->si_addr));
	}
	append(line, len, sizeof line, " (status 128 + the signal number)\n");
	ssize_t ignored = ::write(STDERR_FILENO, line, len);
	(void)ignored;
	// Back to the handler before ours. A fault comes again when this returns (the instruction
	// runs again); a sent or raised signal (abort) is raised again.
	::sigaction(signo, &previous[signo], nullptr);
	if (info->si_code <= 0) ::raise(signo);
}

} // namespace

void install_fatal_signal_logger() {
	struct sigaction sa {};
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (int sig : kFatal) ::sigaction(sig, &sa, &previous[sig]);
}

} // namespace vscanout
