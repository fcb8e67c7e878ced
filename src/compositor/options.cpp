#include "compositor/options.hpp"

#include <getopt.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace vscanout::compositor {
namespace {

Result<long> parse_int(const char *opt, const char *text, long lo, long hi) {
	char *end = nullptr;
	long v = std::strtol(text, &end, 10);
	if (!*text || *end || v < lo || v > hi)
		return fail(std::string(opt) + " takes a number from " + std::to_string(lo) + " to " + std::to_string(hi) +
		            ", not '" + text + "'");
	return v;
}

// --allow-x (yes), --allow-x=yes, --allow-x=no.
Result<bool> parse_yes_no(const char *opt, const char *text) {
	if (!text || std::strcmp(text, "yes") == 0) return true;
	if (std::strcmp(text, "no") == 0) return false;
	return fail(std::string(opt) + " takes =yes or =no, not '" + text + "'");
}

// The error for what getopt_long refused (':' or '?'). A short option is named by itself: optind
// may still be at its cluster ("-Xd") or past it. glibc leaves optopt 0 for an unknown long option
// and sets it to the option's value for a long option given a value it takes none of; optind has
// passed a long option.
std::string refused(int c, const char *shorts, const char *last) {
	const std::string arg = last, name = arg.substr(0, arg.find('='));
	const bool is_long = arg.rfind("--", 0) == 0;
	if (c == ':') return "option " + (is_long ? name : std::string("-") + static_cast<char>(optopt)) + " needs a value";
	if (optopt == 0) return "unknown option " + name + " (see --help)";
	if (optopt < 256 && (optopt == ':' || !std::strchr(shorts, optopt)))
		return std::string("unknown option -") + static_cast<char>(optopt) + " (see --help)";
	return "option " + name + " takes no value";
}

} // namespace

// Grouped as the man page's OPTIONS (docs/vscanout.1.scd): an option is one entry line here, with
// its short form, long form(s) and argument, and one entry there; tests/integration/test_manpage.py
// checks that both list the same options.
const char *usage() {
	return "Usage: vscanout [options]\n"
	       "Shows a virtual GPU's guest display: one wlroots output per guest head. See vscanout(1).\n"
	       "\n"
	       "General:\n"
	       "  -h, --help            this text\n"
	       "  -v, --version         print the version (and the wlroots vscanout was built with)\n"
	       "      --socket NAME     Wayland socket name (default: first free wayland-N)\n"
	       "\n"
	       "Sources:\n"
	       "      --source SPEC     where guest planes come from (default: sim)\n"
	       "                          sim[:key=value,...]  the built-in simulated vGPU; keys: heads, modes,\n"
	       "                            fps, buffers, cursor, flips, dmabuf, script,\n"
	       "                            control (see vscanout(1))\n"
	       "                          vfio:<mdev UUID | PCI address | sysfs path>[,size=WxH][,edid=off]\n"
	       "                            a VFIO device with a display; repeat --source for more heads, one\n"
	       "                            per device; size=WxH: the preferred mode of the EDID given to the\n"
	       "                            guest at start (headless); edid=off: leave the device's EDID alone\n"
	       "                          vfio-fd:<n>[:<device>][,size=WxH][,edid=off]  a VFIO device fd handed\n"
	       "                            over by a launcher; naming its device lets vscanout notice its removal\n"
	       "                          qemu[:<D-Bus address>]  a QEMU VM run with -display dbus, on the\n"
	       "                            session bus or the bus given; one head per graphic console\n"
	       "                          qemu:qmp:<QMP socket>  the same with -display dbus,p2p=yes: no bus,\n"
	       "                            a connection asked for over QMP\n"
	       "                          either qemu form takes ,max-heads=N (consoles shown, default 8) and\n"
	       "                            ,max-mib=M (the largest frame of a head, default 64)\n"
	       "      --once            qemu source: exit when QEMU exits (default: wait for the next one)\n"
	       "      --no-edid         vfio: never write a device's EDID (the guest keeps its own modes)\n"
	       "      --poll-hz N       rate for sources that must be polled (default 60)\n"
	       "\n"
	       "Rendering:\n"
	       "  -c, --cache N         imported buffers kept per head (LRU, default 8)\n"
	       "  -r, --refresh MODE    generation (default): draw only when the guest changed something;\n"
	       "                        watch: also hash the primary each poll (front-buffer drawing);\n"
	       "                        poll:HZ: repaint HZ times a second, as QEMU does\n"
	       "      --import PATH     auto (default), host or copy: force a guest-buffer import path\n"
	       "      --fence-timeout MS\n"
	       "                        a new guest frame waits for its dma-buf's write fences; a wait\n"
	       "                        longer than MS (default 1000) is logged, the last frame stays up\n"
	       "      --vulkan-device DEV, --vk-device DEV\n"
	       "                        the Vulkan device to render with: its index in the Vulkan loader's\n"
	       "                        order, or a part of its name (e.g. llvmpipe); default: the device\n"
	       "                        of the KMS or vGPU parent's DRM node where the driver tells it,\n"
	       "                        else the first GPU, else the CPU\n"
	       "\n"
	       "Headless (WLR_BACKENDS=headless):\n"
	       "                        no options of its own; each head is an output of the guest's size\n"
	       "                        (a vfio spec's size=WxH offers the guest a mode)\n"
	       "\n"
	       "Nested (in WAYLAND_DISPLAY or DISPLAY):\n"
	       "      --keep-running    keep running after the last window is closed\n"
	       "\n"
	       "Kiosk (DRM/KMS):\n"
	       "      --output HEAD-<id>=<connector>\n"
	       "                        show that head on that connector (e.g. HEAD-0=HDMI-A-1);\n"
	       "                        other heads take the connected connectors in connector order\n"
	       "      --mode MODE       preferred (default): the monitor's preferred mode, the guest\n"
	       "                        frame scaled into it; guest: the guest's own mode where the\n"
	       "                        connector lists it\n"
	       "  -s, --allow-vt-switch\n"
	       "                        let Ctrl+Alt+F<n> switch virtual terminals (off by default)\n"
	       "\n"
	       "Privileges (of local Wayland clients; never for sandboxed ones):\n"
	       "      --allow-capture[=yes|no]\n"
	       "                        whether local Wayland clients may read the guest's screen\n"
	       "                        (wlr-screencopy: grim, wayvnc); default: yes headless and nested,\n"
	       "                        no in a kiosk (DRM)\n"
	       "      --allow-input[=yes|no]\n"
	       "                        whether local clients may type and point into the guest (virtual\n"
	       "                        keyboard and pointer: wtype, wayvnc); defaults as --allow-capture\n"
	       "\n"
	       "Debugging:\n"
	       "      --stats FILE      write per-head counters (JSON lines) at exit and on SIGUSR1\n"
	       "  -d, --debug           debug logs\n"
	       "\n"
	       "The wlroots backend follows WLR_BACKENDS (headless, wayland, x11, drm); without it, vscanout\n"
	       "nests in WAYLAND_DISPLAY or DISPLAY when set, else runs on DRM/KMS.\n"
	       "\n"
	       "Every exit logs its cause (\"exiting (status N): ...\", a signal with its sender's pid). Exit status:\n"
	       "  0    SIGINT, SIGTERM or SIGHUP; the sim's quit command; the last window closed (nested);\n"
	       "       the source ended (qemu with --once)\n"
	       "  1    could not start (the message says why)\n"
	       "  2    a bad command line\n"
	       "  3    the display went away: a wlroots backend was destroyed (the parent compositor or\n"
	       "       X server hung up, the session ended)\n"
	       "  128+N  a fatal signal N (SIGSEGV, SIGBUS, SIGABRT, ...), after one line on stderr\n";
}

Result<Options> parse_options(int argc, char **argv) {
	enum {
		opt_poll_hz = 1000,
		opt_import,
		opt_fence_timeout,
		opt_vk_device,
		opt_stats,
		opt_socket,
		opt_keep_running,
		opt_no_edid,
		opt_source,
		opt_output,
		opt_mode,
		opt_once,
		opt_allow_capture,
		opt_allow_input
	};
	static const option longopts[] = {
	    {"source", required_argument, nullptr, opt_source},
	    {"output", required_argument, nullptr, opt_output},
	    {"mode", required_argument, nullptr, opt_mode},
	    {"allow-vt-switch", no_argument, nullptr, 's'},
	    {"once", no_argument, nullptr, opt_once},
	    {"allow-capture", optional_argument, nullptr, opt_allow_capture},
	    {"allow-input", optional_argument, nullptr, opt_allow_input},
	    {"cache", required_argument, nullptr, 'c'},
	    {"refresh", required_argument, nullptr, 'r'},
	    {"poll-hz", required_argument, nullptr, opt_poll_hz},
	    {"import", required_argument, nullptr, opt_import},
	    {"fence-timeout", required_argument, nullptr, opt_fence_timeout},
	    {"vulkan-device", required_argument, nullptr, opt_vk_device},
	    {"vk-device", required_argument, nullptr, opt_vk_device},
	    {"stats", required_argument, nullptr, opt_stats},
	    {"socket", required_argument, nullptr, opt_socket},
	    {"keep-running", no_argument, nullptr, opt_keep_running},
	    {"no-edid", no_argument, nullptr, opt_no_edid},
	    {"debug", no_argument, nullptr, 'd'},
	    {"help", no_argument, nullptr, 'h'},
	    {"version", no_argument, nullptr, 'v'},
	    {nullptr, 0, nullptr, 0},
	};
	Options o;
	// 0, not 1: glibc's getopt then forgets everything of an earlier call, which may have stopped
	// inside a cluster of short options ("-Xd") with a pointer into an argv that is gone now.
	optind = 0;
	opterr = 0;
	int c;
	static const char shorts[] = ":sc:r:dhv";
	while ((c = getopt_long(argc, argv, shorts, longopts, nullptr)) != -1) {
		switch (c) {
		case opt_source: o.sources.push_back(optarg); break;
		case 's': o.allow_vt_switch = true; break;
		case opt_once: o.once = true; break;
		case opt_allow_capture:
		case opt_allow_input: {
			const char *name = c == opt_allow_capture ? "--allow-capture" : "--allow-input";
			auto v = parse_yes_no(name, optarg);
			if (!v) return v.take_error();
			(c == opt_allow_capture ? o.privileges.capture : o.privileges.input) = *v;
			break;
		}
		case opt_output: {
			const std::string arg = optarg;
			const size_t eq = arg.find('=');
			const std::string head = arg.substr(0, eq);
			if (eq == std::string::npos || head.rfind("HEAD-", 0) != 0 || eq + 1 == arg.size())
				return fail("--output takes HEAD-<id>=<connector>, not '" + arg + "'");
			auto id = parse_int("--output HEAD-<id>", head.c_str() + 5, 0, UINT32_MAX);
			if (!id) return id.take_error();
			const std::string connector = arg.substr(eq + 1);
			for (const auto &[other, name] : o.output_map)
				if (name == connector && other != static_cast<uint32_t>(*id))
					return fail("--output: connector " + connector + " is already given to HEAD-" +
					            std::to_string(other));
			o.output_map[static_cast<uint32_t>(*id)] = connector;
			break;
		}
		case opt_mode:
			if (std::strcmp(optarg, "preferred") == 0)
				o.mode = ModeChoice::preferred;
			else if (std::strcmp(optarg, "guest") == 0)
				o.mode = ModeChoice::guest;
			else
				return fail(std::string("--mode takes preferred or guest, not '") + optarg + "'");
			break;
		case 'c': {
			auto v = parse_int("--cache", optarg, 2, 1024);
			if (!v) return v.take_error();
			o.cache = static_cast<size_t>(*v);
			break;
		}
		case 'r':
			if (std::strcmp(optarg, "generation") == 0) {
				o.refresh = RefreshPolicy::generation;
			} else if (std::strcmp(optarg, "watch") == 0) {
				o.refresh = RefreshPolicy::watch;
			} else if (std::strncmp(optarg, "poll:", 5) == 0) {
				auto v = parse_int("--refresh poll:", optarg + 5, 1, 1000);
				if (!v) return v.take_error();
				o.refresh = RefreshPolicy::poll;
				o.refresh_hz = static_cast<double>(*v);
			} else {
				return fail(std::string("--refresh takes generation, watch or poll:HZ, not '") + optarg + "'");
			}
			break;
		case opt_poll_hz: {
			auto v = parse_int("--poll-hz", optarg, 1, 1000);
			if (!v) return v.take_error();
			o.poll_hz = static_cast<int>(*v);
			break;
		}
		case opt_import:
			if (std::strcmp(optarg, "auto") == 0)
				o.import = ImportChoice::automatic;
			else if (std::strcmp(optarg, "host") == 0)
				o.import = ImportChoice::host;
			else if (std::strcmp(optarg, "copy") == 0)
				o.import = ImportChoice::copy;
			else
				return fail(std::string("--import takes auto, host or copy, not '") + optarg + "'");
			break;
		case opt_fence_timeout: {
			auto v = parse_int("--fence-timeout", optarg, 1, 600000);
			if (!v) return v.take_error();
			o.fence_timeout_ms = static_cast<uint32_t>(*v);
			break;
		}
		case opt_vk_device: o.vk_device = optarg; break;
		case opt_stats: o.stats_path = optarg; break;
		case opt_socket: o.socket = optarg; break;
		case opt_keep_running: o.keep_running = true; break;
		case opt_no_edid: o.edid = false; break;
		case 'd': o.debug = true; break;
		case 'h': o.help = true; break;
		case 'v': o.version = true; break;
		default: return fail(refused(c, shorts, argv[optind - 1]));
		}
	}
	if (optind < argc) return fail(std::string("unexpected argument '") + argv[optind] + "' (see --help)");
	return o;
}

} // namespace vscanout::compositor
