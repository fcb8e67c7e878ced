// The simulated vGPU's text inputs (vgpu/sim_script.cpp): scenario scripts, control-channel
// commands through a real SimSource's control FIFO, and the sim option string.
//
// The first byte picks what the rest is:
//   'c'  control: the next byte is a chunk size (0: all at once); the rest goes down a real
//        SimSource's control FIFO in chunks of that size, dispatch() after each. Afterwards every
//        head's planes are checked against plane validation (a head without a fault injected
//        must pass it, with the buffer open_buffer gives).
//   'o'  a sim option string (what follows "sim:"); script= is not followed (no file reads).
//   else a script: parsed, and every script that parses is written back as text and must parse
//        to the same events.
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/validate.hpp"
#include "fuzz_common.hpp"
#include "vgpu/sim.hpp"

namespace vscanout::fuzz {
namespace {

using vgpu::ScriptEvent;
using K = ScriptEvent::Kind;

const char *command_name(K k) {
	switch (k) {
	case K::disable: return "disable";
	case K::enable: return "enable";
	case K::mode: return "mode";
	case K::plug: return "plug";
	case K::unplug: return "unplug";
	case K::cursor_on:
	case K::cursor_off: return "cursor";
	case K::draw: return "draw";
	case K::flip: return "flip";
	case K::fps: return "fps";
	case K::fault: return "fault";
	case K::fence: return "fence";
	case K::signal: return "signal";
	case K::quit: return "quit";
	case K::lose_device: return "lose-device";
	}
	broken("an event kind with no command");
}

std::string to_text(const ScriptEvent &ev) {
	std::string s = std::to_string(ev.at_ms) + " " + command_name(ev.kind);
	if (ev.kind == K::quit || ev.kind == K::lose_device) return s; // no arguments
	s += " ";
	if (ev.kind == K::fps) {
		char buf[64];
		auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ev.fps); // shortest exact form
		FUZZ_CHECK(ec == std::errc());
		return s + std::string(buf, end);
	}
	s += ev.head ? std::to_string(*ev.head) : "*";
	if (ev.kind == K::mode || ev.kind == K::plug)
		s += " " + std::to_string(ev.mode.width) + "x" + std::to_string(ev.mode.height);
	if (ev.kind == K::cursor_on) s += " on";
	if (ev.kind == K::cursor_off) s += " off";
	if (ev.kind == K::fault) s += std::string(" ") + vgpu::to_string(ev.fault);
	return s;
}

bool same(const ScriptEvent &a, const ScriptEvent &b) {
	if (a.at_ms != b.at_ms || a.kind != b.kind || a.head != b.head) return false;
	if ((a.kind == K::mode || a.kind == K::plug) && !(a.mode == b.mode)) return false;
	if (a.kind == K::fps && a.fps != b.fps) return false;
	if (a.kind == K::fault && a.fault != b.fault) return false;
	return true;
}

void check_event(const ScriptEvent &ev) {
	if (ev.kind == K::mode || ev.kind == K::plug)
		FUZZ_CHECK(ev.mode.width >= 1 && ev.mode.width <= 16384 && ev.mode.height >= 1 && ev.mode.height <= 16384);
	if (ev.kind == K::fps) FUZZ_CHECK(std::isfinite(ev.fps) && ev.fps >= 0 && ev.fps <= 2000);
	if (ev.kind == K::mode || ev.kind == K::plug || ev.kind == K::unplug || ev.kind == K::fault)
		FUZZ_CHECK(ev.head.has_value());
}

void fuzz_script(std::string_view text) {
	auto script = vgpu::parse_script(text);
	if (!script) {
		FUZZ_CHECK(script.error().rfind("script line ", 0) == 0); // errors name the line
		return;
	}
	std::string again;
	for (size_t i = 0; i < script->size(); i++) {
		check_event((*script)[i]);
		if (i) FUZZ_CHECK((*script)[i].at_ms >= (*script)[i - 1].at_ms);
		again += to_text((*script)[i]) + "\n";
	}
	auto reparsed = vgpu::parse_script(again);
	FUZZ_CHECK(reparsed.ok());
	FUZZ_CHECK(reparsed->size() == script->size());
	for (size_t i = 0; i < script->size(); i++) FUZZ_CHECK(same((*script)[i], (*reparsed)[i]));
}

void fuzz_options(std::string_view spec) {
	// script=FILE reads a file: the script parser is fuzzed on its own above.
	if (spec.find("script=") != std::string_view::npos) return;
	auto o = vgpu::parse_sim_options(spec);
	if (!o) return;
	FUZZ_CHECK(o->heads >= 1 && o->heads <= 16);
	FUZZ_CHECK(o->buffers >= 1 && o->buffers <= 8);
	FUZZ_CHECK(std::isfinite(o->fps) && o->fps >= 0 && o->fps <= 2000);
	for (const vgpu::Mode &m : o->modes)
		FUZZ_CHECK(m.width >= 1 && m.width <= 16384 && m.height >= 1 && m.height <= 16384);
}

// The control FIFO's path, in a directory of this process's own.
const std::string &fifo_path() {
	static const std::string path = [] {
		static char dir[] = "/tmp/vscanout-fuzz-XXXXXX";
		if (!::mkdtemp(dir)) broken("mkdtemp");
		std::atexit([] { // libFuzzer ends a run with exit(): nothing is left in /tmp
			::unlink((std::string(dir) + "/control").c_str());
			::rmdir(dir);
		});
		return std::string(dir) + "/control";
	}();
	return path;
}

// Commands that would make the sim allocate much (a mode of many megabytes on every ring
// buffer, many plugged heads) are left out: they are parsed (above) but not applied here.
bool cheap(std::string_view text) {
	int plugs = 0;
	size_t start = 0;
	while (start <= text.size()) {
		size_t nl = text.find('\n', start);
		if (nl == std::string_view::npos) nl = text.size();
		auto ev = vgpu::parse_command(text.substr(start, nl - start));
		if (ev && *ev) {
			const ScriptEvent &e = **ev;
			if ((e.kind == K::mode || e.kind == K::plug) && uint64_t{e.mode.width} * e.mode.height > 256 * 256)
				return false;
			if (e.kind == K::plug && ++plugs > 8) return false;
		}
		start = nl + 1;
	}
	return true;
}

void fuzz_control(uint8_t chunk, std::string_view text) {
	if (!cheap(text)) return;
	vgpu::SimOptions o;
	o.heads = 2;
	o.modes = {{64, 48}, {33, 17}};
	o.fps = 0;
	o.dmabuf = vgpu::DmabufPolicy::off;
	o.control = fifo_path();
	auto sim = vgpu::SimSource::create(o);
	if (!sim) broken("the sim does not start");
	const std::vector<int> fds = (*sim)->watch_fds();
	int control = -1;
	for (int fd : fds) {
		struct stat st {};
		if (::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) control = fd;
	}
	FUZZ_CHECK(control >= 0);
	const size_t step = chunk ? chunk : text.size() + 1;
	for (size_t at = 0; at < text.size(); at += step) {
		const std::string_view part = text.substr(at, step);
		// The source reads its FIFO read-write: the same descriptor takes our writes.
		if (::write(control, part.data(), part.size()) != static_cast<ssize_t>(part.size())) return;
		(*sim)->dispatch(control);
	}
	for (uint32_t head : (*sim)->heads()) {
		for (auto type : {vgpu::PlaneType::primary, vgpu::PlaneType::cursor}) {
			auto plane = (*sim)->query(head, type);
			FUZZ_CHECK(plane.ok());
			if (!plane->enabled() || core::validate_plane(*plane)) continue;
			auto buffer = (*sim)->open_buffer(*plane);
			FUZZ_CHECK(buffer.ok());
			// A plane that passes validation fits the buffer behind it, or it is the offset fault.
			if (core::validate_backing(*plane, buffer->byte_size)) FUZZ_CHECK(plane->offset == plane->size);
		}
	}
}

} // namespace
} // namespace vscanout::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace vscanout::fuzz;
	quiet_logs();
	if (size == 0) return 0;
	const std::string_view rest(reinterpret_cast<const char *>(data) + 1, size - 1);
	switch (data[0]) {
	case 'c':
		if (rest.empty()) return 0;
		fuzz_control(static_cast<uint8_t>(rest[0]), rest.substr(1));
		break;
	case 'o': fuzz_options(rest); break;
	default: fuzz_script(rest); break;
	}
	return 0;
}
