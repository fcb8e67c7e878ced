// vscanout: puts a virtual GPU's guest display on screen.
#include <csignal>
#include <cstdio>

#include "base/log.hpp"
#include "base/signals.hpp"
#include "compositor/options.hpp"
#include "compositor/server.hpp"
#include "compositor/wlr.hpp"

namespace {

void to_wlr_log(vscanout::log::Level level, const char *fmt, va_list args) {
	const wlr_log_importance importance = level == vscanout::log::Level::error  ? WLR_ERROR
	                                      : level == vscanout::log::Level::info ? WLR_INFO
	                                                                            : WLR_DEBUG;
	_wlr_vlog(importance, fmt, args);
}

} // namespace

int main(int argc, char **argv) {
	using namespace vscanout;
	auto options = compositor::parse_options(argc, argv);
	if (!options) {
		std::fprintf(stderr, "vscanout: %s\n", options.error().c_str());
		return compositor::kExitUsage;
	}
	if (options->help) {
		std::fputs(compositor::usage(), stdout);
		return 0;
	}
	if (options->version) {
		// The wlroots vscanout was built against: linked statically (the subproject) or the system's
		// libwlroots-0.18.so, whose soname pins the minor version.
		std::printf("vscanout %s (wlroots %s)\n", VSCANOUT_VERSION, WLR_VERSION_STR);
		return 0;
	}
	// Block the signals the event loop handles before any thread exists (Vulkan drivers start
	// threads): a signalfd only sees signals that no thread would take with the default action.
	// Each one that ends vscanout is logged with its sender (docs/design.md, "Exit causes").
	sigset_t handled;
	sigemptyset(&handled);
	for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&handled, sig);
	pthread_sigmask(SIG_BLOCK, &handled, nullptr);
	// A fault still ends the process, but not without a line saying so.
	install_fatal_signal_logger();

	wlr_log_init(options->debug ? WLR_DEBUG : WLR_INFO, nullptr);
	log::set_sink(to_wlr_log);

	compositor::Server server(std::move(*options));
	if (Status s = server.init(); !s) {
		std::fprintf(stderr, "vscanout: %s\n", s.error().c_str());
		std::fprintf(stderr, "vscanout: exiting (status %d): could not start\n", compositor::kExitStartFailed);
		return compositor::kExitStartFailed;
	}
	return server.run();
}
