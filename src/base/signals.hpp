// Signals as exit causes (docs/design.md, "Exit causes"): who sent one, and one line on stderr
// before a fatal signal ends the process.
#pragma once

#include <sys/types.h>

#include <string>

namespace vscanout {

// "SIGTERM from pid 1234 (kill), uid 0" / "SIGINT from the kernel (a terminal's Ctrl+C or
// hangup)": how a signal that ended vscanout came, for the log. code is siginfo's si_code; pid
// and uid count only for signals a process sent (SI_USER, SI_QUEUE, SI_TKILL). The sender's
// command name is read from /proc while it still exists, escaped.
std::string describe_signal(int signo, int code, pid_t pid, uid_t uid);

// "SIGTERM", "SIGBUS", ... or "signal N".
std::string signal_name(int signo);

// Installs handlers for the signals that end a process with a fault (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGABRT): each writes one line naming the signal and the faulting address to stderr,
// then hands the signal to whatever handled it before (the default action, or a sanitizer's), so
// the process still dies of it (status 128 + N in a shell).
void install_fatal_signal_logger();

} // namespace vscanout
