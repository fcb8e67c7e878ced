// Command-line options.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "compositor/privilege.hpp"

namespace vscanout::compositor {

enum class RefreshPolicy {
	generation, // render and commit only when a generation advances (default)
	watch,      // also hash the primary each poll: guests drawing into the front buffer
	poll,       // repaint at a fixed rate, as QEMU does
};

enum class ImportChoice { automatic, host, copy };

// The mode a KMS connector is set to.
enum class ModeChoice {
	preferred, // the monitor's preferred mode; the guest frame is scaled into it (default)
	guest,     // the guest's own mode where the connector lists it (pixel exact), else preferred
};

struct Options {
	std::vector<std::string> sources; // empty: the simulated vGPU
	size_t cache = 8;
	RefreshPolicy refresh = RefreshPolicy::generation;
	double refresh_hz = 0; // poll:HZ
	int poll_hz = 60;
	std::string stats_path;
	std::string socket;
	std::string vk_device; // --vulkan-device (alias --vk-device): an index or a part of the name
	ImportChoice import = ImportChoice::automatic;
	uint32_t fence_timeout_ms = 1000;           // a guest buffer's write fences later than this are logged
	bool keep_running = false;                  // nested: stay up (headless) after the last window closed
	std::map<uint32_t, std::string> output_map; // --output HEAD-<id>=<connector>
	ModeChoice mode = ModeChoice::preferred;
	bool allow_vt_switch = false; // kiosk: Ctrl+Alt+Fn switches VTs
	PrivilegeOptions privileges;  // --allow-capture, --allow-input (unset: the mode's default)
	bool edid = true;             // vfio: write the device's EDID for the size that shows it (--no-edid)
	bool once = false;            // qemu source: exit when QEMU exits instead of waiting for the next
	bool debug = false;
	bool help = false;
	bool version = false;
};

Result<Options> parse_options(int argc, char **argv);
const char *usage();

} // namespace vscanout::compositor
