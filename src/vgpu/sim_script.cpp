// The simulated vGPU's user-facing syntax: fault names, scenario scripts and the option string.
#include "vgpu/sim.hpp"

#include <cerrno>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vscanout::vgpu {
namespace {

constexpr struct {
	Fault fault;
	const char *name;
} kFaultNames[] = {
    {Fault::none, "none"},
    {Fault::fourcc_unknown, "fourcc-unknown"},
    {Fault::fourcc_unsupported, "fourcc-unsupported"},
    {Fault::width_zero, "width-zero"},
    {Fault::height_zero, "height-zero"},
    {Fault::too_large, "too-large"},
    {Fault::stride, "stride"},
    {Fault::size, "size"},
    {Fault::offset, "offset"},
    {Fault::cursor_too_large, "cursor-too-large"},
    {Fault::hotspot, "hotspot"},
};

constexpr double kMaxFps = 2000;
constexpr const char *kValidKeys = "heads, modes, fps, buffers, cursor, flips, dmabuf, script, control";

template <typename T> bool parse_uint(std::string_view text, T &out) {
	// Digits only: from_chars would otherwise read "-1" into a signed detour or stop at "12abc".
	if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return false;
	auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
	return ec == std::errc() && p == text.data() + text.size();
}

bool parse_fps(std::string_view text, double &out) {
	if (text.empty()) return false;
	auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
	return ec == std::errc() && p == text.data() + text.size() && std::isfinite(out) && out >= 0 && out <= kMaxFps;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
	std::vector<std::string_view> parts;
	size_t start = 0;
	while (true) {
		size_t end = text.find(sep, start);
		parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
		if (end == std::string_view::npos) break;
		start = end + 1;
	}
	return parts;
}

std::vector<std::string_view> tokens(std::string_view line) {
	std::vector<std::string_view> out;
	size_t i = 0;
	while (i < line.size()) {
		while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) i++;
		size_t start = i;
		while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) i++;
		if (i > start) out.push_back(line.substr(start, i - start));
	}
	return out;
}

struct CommandSpec {
	const char *name;
	ScriptEvent::Kind kind;
	const char *usage; // the arguments after the command, as the error message shows them
	bool any_head;     // whether '*' may stand for every head
	size_t args;
};

constexpr CommandSpec kCommands[] = {
    {"disable", ScriptEvent::Kind::disable, "<head|*>", true, 1},
    {"enable", ScriptEvent::Kind::enable, "<head|*>", true, 1},
    {"mode", ScriptEvent::Kind::mode, "<head> <W>x<H>", false, 2},
    {"plug", ScriptEvent::Kind::plug, "<head> <W>x<H>", false, 2},
    {"unplug", ScriptEvent::Kind::unplug, "<head>", false, 1},
    {"cursor", ScriptEvent::Kind::cursor_on, "<head|*> on|off", true, 2},
    {"draw", ScriptEvent::Kind::draw, "<head|*>", true, 1},
    {"flip", ScriptEvent::Kind::flip, "<head|*>", true, 1},
    {"fps", ScriptEvent::Kind::fps, "<F>", false, 1},
    {"fault", ScriptEvent::Kind::fault, "<head> <class>", false, 2},
    {"fence", ScriptEvent::Kind::fence, "<head|*>", true, 1},
    {"signal", ScriptEvent::Kind::signal, "<head|*>", true, 1},
    {"quit", ScriptEvent::Kind::quit, "", false, 0},
    {"lose-device", ScriptEvent::Kind::lose_device, "", false, 0},
};

// One line already split into tokens, without its time; errors are completed by the caller.
Result<ScriptEvent> parse_event(const std::vector<std::string_view> &tok) {
	const CommandSpec *spec = nullptr;
	for (const auto &c : kCommands)
		if (tok[1] == c.name) spec = &c;
	if (!spec) {
		std::string names;
		for (const auto &c : kCommands) names += std::string(names.empty() ? "" : ", ") + c.name;
		return fail("unknown command '" + std::string(tok[1]) + "' (commands: " + names + ")");
	}
	const std::string usage = std::string("usage: <ms> ") + spec->name + " " + spec->usage;
	if (tok.size() - 2 != spec->args)
		return fail("wrong number of arguments to '" + std::string(tok[1]) + "'; " + usage);

	ScriptEvent ev;
	ev.kind = spec->kind;
	if (spec->args == 0) return ev;
	if (ev.kind == ScriptEvent::Kind::fps) {
		if (!parse_fps(tok[2], ev.fps))
			return fail("invalid frame rate '" + std::string(tok[2]) + "' (a number from 0 to 2000)");
		return ev;
	}
	if (tok[2] == "*") {
		if (!spec->any_head) return fail("'" + std::string(tok[1]) + "' needs one head number, not '*'; " + usage);
	} else {
		uint32_t h = 0;
		if (!parse_uint(tok[2], h)) return fail("invalid head '" + std::string(tok[2]) + "'; " + usage);
		ev.head = h;
	}
	switch (ev.kind) {
	case ScriptEvent::Kind::mode:
	case ScriptEvent::Kind::plug: {
		auto m = parse_mode(tok[3]);
		if (!m) return m.take_error();
		ev.mode = *m;
		break;
	}
	case ScriptEvent::Kind::cursor_on:
		if (tok[3] == "off")
			ev.kind = ScriptEvent::Kind::cursor_off;
		else if (tok[3] != "on")
			return fail("cursor must be 'on' or 'off', not '" + std::string(tok[3]) + "'");
		break;
	case ScriptEvent::Kind::fault: {
		auto f = parse_fault(tok[3]);
		if (!f) return f.take_error();
		ev.fault = *f;
		break;
	}
	default: break;
	}
	return ev;
}

Result<std::vector<ScriptEvent>> read_script_file(const std::string &path) {
	std::ifstream in(path, std::ios::binary);
	if (!in) return fail("cannot read sim script '" + path + "': " + std::strerror(errno));
	std::ostringstream text;
	text << in.rdbuf();
	auto script = parse_script(text.str());
	if (!script) return fail(path + ": " + script.error());
	return script;
}

} // namespace

const char *to_string(Fault f) {
	for (const auto &n : kFaultNames)
		if (n.fault == f) return n.name;
	return "?";
}

Result<Fault> parse_fault(std::string_view text) {
	std::string names;
	for (const auto &n : kFaultNames) {
		if (text == n.name) return n.fault;
		names += std::string(names.empty() ? "" : ", ") + n.name;
	}
	return fail("unknown fault class '" + std::string(text) + "' (classes: " + names + ")");
}

Result<std::vector<ScriptEvent>> parse_script(std::string_view text) {
	std::vector<ScriptEvent> events;
	size_t line_no = 0;
	for (std::string_view line : split(text, '\n')) {
		line_no++;
		auto where = [&] { return "script line " + std::to_string(line_no) + ": "; };
		if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
		auto tok = tokens(line);
		if (tok.empty()) continue;
		uint64_t at = 0;
		if (!parse_uint(tok[0], at))
			return fail(where() + "expected a time in milliseconds, got '" + std::string(tok[0]) + "'");
		if (tok.size() < 2) return fail(where() + "missing command after the time");
		auto ev = parse_event(tok);
		if (!ev) return fail(where() + ev.error());
		if (!events.empty() && at < events.back().at_ms)
			return fail(where() + "time " + std::to_string(at) + " ms is before the previous event's " +
			            std::to_string(events.back().at_ms) + " ms (times must not decrease)");
		ev->at_ms = at;
		events.push_back(*ev);
	}
	return events;
}

Result<std::optional<ScriptEvent>> parse_command(std::string_view line) {
	if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
	auto tok = tokens(line);
	if (tok.empty()) return std::optional<ScriptEvent>();
	tok.insert(tok.begin(), "0"); // a script line at time 0
	auto ev = parse_event(tok);
	if (!ev) return ev.take_error();
	return std::optional<ScriptEvent>(*ev);
}

Result<SimOptions> parse_sim_options(std::string_view spec) {
	SimOptions o;
	if (spec.empty()) return o;
	for (std::string_view item : split(spec, ',')) {
		if (item.empty()) continue; // tolerate "a=1,,b=2" and a trailing comma
		size_t eq = item.find('=');
		if (eq == std::string_view::npos)
			return fail("sim option '" + std::string(item) + "' has no value (expected key=value; keys: " + kValidKeys +
			            ")");
		std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
		std::string k(key), v(val);
		auto bad = [&](const char *expected) { return fail("sim option " + k + "='" + v + "': expected " + expected); };
		if (key == "heads") {
			if (!parse_uint(val, o.heads) || o.heads < 1 || o.heads > 16) return bad("a head count from 1 to 16");
		} else if (key == "modes") {
			o.modes.clear();
			for (std::string_view m : split(val, '/')) {
				auto mode = parse_mode(m);
				if (!mode) return fail("sim option modes: " + mode.error());
				o.modes.push_back(*mode);
			}
		} else if (key == "fps") {
			if (!parse_fps(val, o.fps)) return bad("a frame rate from 0 to 2000 (0: no flips)");
		} else if (key == "buffers") {
			if (!parse_uint(val, o.buffers) || o.buffers < 1 || o.buffers > 8) return bad("a ring size from 1 to 8");
		} else if (key == "cursor") {
			if (val != "on" && val != "off") return bad("on or off");
			o.cursor = val == "on";
		} else if (key == "flips") {
			if (!parse_uint(val, o.flips)) return bad("a flip count (0: never stop)");
		} else if (key == "dmabuf") {
			if (val == "auto")
				o.dmabuf = DmabufPolicy::automatic;
			else if (val == "on")
				o.dmabuf = DmabufPolicy::on;
			else if (val == "off")
				o.dmabuf = DmabufPolicy::off;
			else if (val == "udmabuf")
				o.dmabuf = DmabufPolicy::udmabuf;
			else if (val == "vgem")
				o.dmabuf = DmabufPolicy::vgem;
			else
				return bad("auto, on, off, udmabuf or vgem");
		} else if (key == "control") {
			if (val.empty()) return bad("a FIFO path");
			o.control = v;
		} else if (key == "script") {
			if (val.empty()) return bad("a script file name");
			auto script = read_script_file(v);
			if (!script) return script.take_error();
			o.script = std::move(*script);
		} else {
			return fail("unknown sim option '" + k + "' (valid: " + kValidKeys + ")");
		}
	}
	return o;
}

} // namespace vscanout::vgpu
