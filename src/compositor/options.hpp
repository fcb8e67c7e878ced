// Command-line options.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace vscanout::compositor {

enum class RefreshPolicy {
	generation, // render and commit only when a generation advances (default)
	watch,      // also hash the primary each poll: guests drawing into the front buffer
	poll,       // repaint at a fixed rate, as QEMU does
};

enum class ImportChoice { automatic, host, copy };

struct Options {
	std::vector<std::string> sources; // empty: the simulated vGPU
	size_t cache = 8;
	RefreshPolicy refresh = RefreshPolicy::generation;
	double refresh_hz = 0; // poll:HZ
	int poll_hz = 60;
	std::string stats_path;
	std::string socket;
	std::string vk_device;
	ImportChoice import = ImportChoice::automatic;
	bool keep_running = false; // nested: stay up (headless) after the last window closed
	bool debug = false;
	bool help = false;
	bool version = false;
};

Result<Options> parse_options(int argc, char **argv);
const char *usage();

} // namespace vscanout::compositor
