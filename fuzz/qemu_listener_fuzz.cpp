// libFuzzer target: the QEMU source's listener methods (src/vgpu/qemu_listener.hpp) driven by a
// hostile QEMU of the fuzzer's making. One input is a sequence of calls on one console's display
// (Scanout, Update, ScanoutDMABUF, UpdateDMABUF, Disable, MouseSet, CursorDefine), each with
// fuzzer-chosen arguments: sizes and rectangles near the bounds and at int32's ends, pixel data
// shorter and longer than announced, fds of every kind (sealed and unsealed memfds, a pipe, none).
// Some calls go through the parsing layer on a real sd-bus message, some with arguments of the
// wrong types. After every call the display is checked against what the rest of vscanout relies
// on (the frame within max-mib, its mapping as large as its rows, damaged rows inside the frame,
// the cursor's hotspot inside its image, positions clamped); a broken one aborts.
//
// Build: meson setup build-fuzz -Dfuzz=true (clang; this target needs vgpu_dep only), or by hand:
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
//     -Isrc -I/usr/include/libdrm fuzz/qemu_listener_fuzz.cpp src/vgpu/qemu_listener.cpp
//     src/vgpu/qemu_bounds.cpp src/base/fd_util.cpp src/base/log.cpp -lsystemd -o qemu_listener_fuzz
// Seeds: fuzz/corpus/qemu_listener/ (inputs this target found, the longest call sequences).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/qemu_listener.hpp"
#include "vgpu/sd_bus_ref.hpp"

using namespace vscanout;
using namespace vscanout::vgpu;
using namespace vscanout::vgpu::qemu;

namespace {

constexpr uint32_t kFormats[] = {0x20020888, 0x20028888, 0x10020565, 0x10020555, 0x18020888, 0, 0xffffffff};
constexpr int kMaxCalls = 48;

[[noreturn]] void broken(const char *what) {
	std::fprintf(stderr, "qemu_listener_fuzz: invariant broken: %s\n", what);
	std::abort();
}

// Small values mostly, the edges sometimes: the bounds live at both.
int32_t pick_i32(FuzzedDataProvider &in) {
	switch (in.ConsumeIntegralInRange<int>(0, 7)) {
	case 0: return in.ConsumeIntegral<int32_t>();
	case 1: return INT32_MAX - in.ConsumeIntegralInRange<int32_t>(0, 2);
	case 2: return INT32_MIN + in.ConsumeIntegralInRange<int32_t>(0, 2);
	case 3: return 16384 + in.ConsumeIntegralInRange<int32_t>(-2, 2);
	case 4: return in.ConsumeIntegralInRange<int32_t>(-2, 2);
	default: return in.ConsumeIntegralInRange<int32_t>(0, 300);
	}
}
uint32_t pick_u32(FuzzedDataProvider &in) {
	switch (in.ConsumeIntegralInRange<int>(0, 5)) {
	case 0: return in.ConsumeIntegral<uint32_t>();
	case 1: return UINT32_MAX - in.ConsumeIntegralInRange<uint32_t>(0, 2);
	case 2: return 16384 + in.ConsumeIntegralInRange<uint32_t>(0, 2) - 1;
	default: return in.ConsumeIntegralInRange<uint32_t>(0, 300);
	}
}
uint32_t pick_format(FuzzedDataProvider &in) {
	return in.ConsumeBool() ? kFormats[in.ConsumeIntegralInRange<size_t>(0, std::size(kFormats) - 1)]
	                        : in.ConsumeIntegral<uint32_t>();
}

// The pixel bytes of a call: about as many as the rectangle needs (a little short or long, or
// what the input has left), capped so one input stays cheap.
std::vector<uint8_t> pick_bytes(FuzzedDataProvider &in, uint64_t need) {
	constexpr uint64_t kCap = 512u << 10;
	uint64_t n = need;
	switch (in.ConsumeIntegralInRange<int>(0, 3)) {
	case 0: n = need ? need - 1 : 0; break;
	case 1: n = need + in.ConsumeIntegralInRange<uint64_t>(0, 64); break;
	case 2: n = in.ConsumeIntegralInRange<uint64_t>(0, 4096); break;
	default: break;
	}
	n = std::min(n, kCap);
	std::vector<uint8_t> v(n, in.ConsumeIntegral<uint8_t>() ^ 0x5a); // not the zeroes of a new frame
	const std::string some = in.ConsumeBytesAsString(std::min<size_t>(n, in.ConsumeIntegralInRange<size_t>(0, 64)));
	if (!some.empty()) std::memcpy(v.data(), some.data(), some.size());
	return v;
}

uint64_t need_of(uint32_t w, uint32_t h, uint32_t stride, uint32_t bpp) {
	if (!w || !h) return 0;
	return uint64_t{stride} * (h - 1) + uint64_t{w} * (bpp ? bpp : 4);
}

// An fd of a kind the input picks, owned by the caller.
UniqueFd pick_fd(FuzzedDataProvider &in, uint64_t bytes) {
	bytes = std::min<uint64_t>(bytes, 8u << 20);
	switch (in.ConsumeIntegralInRange<int>(0, 4)) {
	case 0:
	case 1: { // a memfd, sealed against shrinking (what vscanout takes) or not
		UniqueFd fd(::memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING));
		if (!fd || ::ftruncate(fd.get(), off_t(bytes)) != 0) return {};
		if (in.ConsumeBool()) ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK);
		return fd;
	}
	case 2: {
		int p[2];
		if (::pipe2(p, O_CLOEXEC) != 0) return {};
		::close(p[1]);
		return UniqueFd(p[0]);
	}
	case 3: {
		int sv[2];
		if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return {};
		::close(sv[1]);
		return UniqueFd(sv[0]);
	}
	default: return {}; // -1
	}
}

// A peer-to-peer connection that is never served: only for building messages on.
sd_bus *message_bus() {
	static dbus::Bus bus;
	static UniqueFd peer;
	if (!bus) {
		int sv[2];
		if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) std::abort();
		peer = UniqueFd(sv[1]);
		if (sd_bus_new(bus.out()) < 0 || sd_bus_set_fd(bus.get(), sv[0], sv[0]) < 0 ||
		    sd_bus_negotiate_fds(bus.get(), 1) < 0 || sd_bus_start(bus.get()) < 0)
			std::abort();
	}
	return bus.get();
}

dbus::Message new_message(const char *member) {
	dbus::Message m;
	if (sd_bus_message_new_method_call(message_bus(), m.out(), nullptr, "/org/qemu/Display1/Listener",
	                                   "org.qemu.Display1.Listener", member) < 0)
		std::abort();
	return m;
}

bool seal(dbus::Message &m) {
	static uint64_t cookie = 0;
	return sd_bus_message_seal(m.get(), ++cookie, 0) >= 0;
}

// What the rest of vscanout relies on, after every call.
void check(const Display &d, const QemuLimits &limits) {
	if (d.picture.fd) {
		const Picture &p = d.picture;
		if (!p.width || !p.height || p.width > 16384 || p.height > 16384) broken("picture side");
		if (uint64_t{p.width} * p.height * 4 > limits.max_frame_bytes()) broken("picture past max-mib");
		if (p.stride != p.width * 4 || p.map.size() < size_t(p.stride) * p.height) broken("picture mapping");
		// Damaged rows are the frame's.
		if (const RowSpan r = d.damage_rows.held(); !r.empty() && r.end > p.height)
			broken("damaged rows past the picture");
		// Touch its last byte: the mapping is really that large.
		volatile uint8_t last = p.map.data()[size_t(p.stride) * p.height - 1];
		(void)last;
	}
	if (d.dmabuf) {
		if (!d.dmabuf_width || !d.dmabuf_height ||
		    uint64_t{d.dmabuf_width} * d.dmabuf_height * 4 > limits.max_frame_bytes())
			broken("dma-buf size");
		if (d.picture.fd) broken("a dma-buf and a picture at once");
		if (const RowSpan r = d.damage_rows.held(); !r.empty() && r.end > d.dmabuf_height)
			broken("damaged rows past the dma-buf");
	}
	if (d.cursor.fd) {
		if (d.hot_x < 0 || d.hot_y < 0 || uint32_t(d.hot_x) >= d.cursor.width || uint32_t(d.hot_y) >= d.cursor.height)
			broken("hotspot outside the cursor");
		if (d.cursor.width > uint32_t(kMaxCursorSide) || d.cursor.height > uint32_t(kMaxCursorSide))
			broken("cursor size");
	}
	if (d.mouse_x < -32768 || d.mouse_x > 32768 || d.mouse_y < -32768 || d.mouse_y > 32768) broken("mouse position");
}

struct Run {
	Display d;
	QemuLimits limits;
	uint64_t next_id = 1;
	std::chrono::steady_clock::time_point now{std::chrono::seconds(100)};
	CallContext ctx() { return CallContext{limits, next_id, now, 0}; }

	// The copy import, as the head's tracker drives it: a buffer shown anew is copied whole, then
	// only the rows the log names since the last copy. After each copy it must equal the frame:
	// a row the log left out would differ.
	std::vector<uint8_t> copy_of;
	uint64_t copy_id = 0, copied = 0;
	void copy() {
		const Picture &p = d.picture;
		if (!p.fd) return;
		const size_t bytes = size_t(p.stride) * p.height;
		std::optional<RowSpan> rows;
		if (p.id == copy_id) rows = d.damage_rows.since(copied);
		copy_id = p.id;
		copied = d.damage;
		if (!rows) {
			copy_of.assign(p.map.data(), p.map.data() + bytes);
		} else if (!rows->empty()) {
			if (rows->end > p.height) broken("damaged rows past the picture");
			std::memcpy(copy_of.data() + size_t(rows->first) * p.stride, p.row(rows->first),
			            size_t(rows->end - rows->first) * p.stride);
		}
		if (copy_of.size() != bytes || std::memcmp(copy_of.data(), p.map.data(), bytes) != 0)
			broken("the copy of the damaged rows differs from the frame");
	}
};

// One call through the parsing layer: a message with the method's signature (or, sometimes, a
// wrong one), parsed, then handled when it parsed.
void through_message(Run &run, FuzzedDataProvider &in) {
	const int method = in.ConsumeIntegralInRange<int>(0, 5);
	const bool wrong = in.ConsumeIntegralInRange<int>(0, 7) == 0;
	static const char *const kMembers[] = {"Scanout",      "Update",   "ScanoutDMABUF",
	                                       "UpdateDMABUF", "MouseSet", "CursorDefine"};
	dbus::Message m = new_message(kMembers[method]);
	std::vector<uint8_t> bytes = pick_bytes(in, in.ConsumeIntegralInRange<uint64_t>(0, 1 << 16));
	UniqueFd fd;
	int r = 0;
	if (wrong) {
		// A signature of the input's choosing, with no values past the first few basic ones.
		const std::string sig = in.ConsumeRandomLengthString(8);
		for (char t : sig) {
			if (r < 0) break;
			switch (t) {
			case 'u': r = sd_bus_message_append_basic(m.get(), 'u', &run.next_id); break;
			case 'i': r = sd_bus_message_append(m.get(), "i", pick_i32(in)); break;
			case 's': r = sd_bus_message_append(m.get(), "s", "x"); break;
			case 'y': r = sd_bus_message_append_array(m.get(), 'y', bytes.data(), bytes.size()); break;
			default: break;
			}
		}
	} else {
		switch (method) {
		case 0:
			r = sd_bus_message_append(m.get(), "uuuu", pick_u32(in), pick_u32(in), pick_u32(in), pick_format(in));
			break;
		case 1:
			r = sd_bus_message_append(m.get(), "iiiiuu", pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in),
			                          pick_u32(in), pick_format(in));
			break;
		case 2:
			fd = pick_fd(in, in.ConsumeIntegralInRange<uint64_t>(0, 1 << 20));
			if (!fd) fd = pick_fd(in, 0); // "h" needs a real fd: take what comes, else none
			if (fd)
				r = sd_bus_message_append(m.get(), "huuuutb", fd.get(), pick_u32(in), pick_u32(in), pick_u32(in),
				                          in.ConsumeIntegral<uint32_t>(), in.ConsumeIntegral<uint64_t>(),
				                          int(in.ConsumeBool()));
			break;
		case 3:
			r = sd_bus_message_append(m.get(), "iiii", pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in));
			break;
		case 4: r = sd_bus_message_append(m.get(), "iii", pick_i32(in), pick_i32(in), pick_i32(in)); break;
		case 5:
			r = sd_bus_message_append(m.get(), "iiii", pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in));
			break;
		}
		if (r >= 0 && (method == 0 || method == 1 || method == 5))
			r = sd_bus_message_append_array(m.get(), 'y', bytes.data(), bytes.size());
	}
	if (r < 0 || !seal(m)) return;
	auto ctx = run.ctx();
	switch (method) {
	case 0:
		if (auto a = parse_scanout(m.get())) (void)on_scanout(run.d, *a, ctx);
		break;
	case 1:
		if (auto a = parse_update(m.get())) (void)on_update(run.d, *a, ctx);
		break;
	case 2:
		if (auto a = parse_scanout_dmabuf(m.get())) (void)on_scanout_dmabuf(run.d, *a, ctx);
		break;
	case 3:
		if (auto a = parse_update_dmabuf(m.get())) (void)on_update_dmabuf(run.d, *a, ctx);
		break;
	case 4:
		if (auto a = parse_mouse_set(m.get())) (void)on_mouse_set(run.d, *a, ctx);
		break;
	case 5:
		if (auto a = parse_cursor_define(m.get())) (void)on_cursor_define(run.d, *a, ctx);
		break;
	}
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
	// Refusals are expected here: their log would drown the fuzzer's output.
	log::set_sink([](log::Level, const char *, va_list) {});
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	FuzzedDataProvider in(data, size);
	Run run;
	run.limits.max_mib = in.ConsumeIntegralInRange<uint32_t>(1, 4); // bounded memory an input
	for (int call = 0; call < kMaxCalls && in.remaining_bytes() > 0; call++) {
		auto ctx = run.ctx();
		switch (in.ConsumeIntegralInRange<int>(0, 9)) {
		case 0: {
			ScanoutArgs a{pick_u32(in), pick_u32(in), 0, pick_format(in)};
			a.stride = in.ConsumeBool() ? a.width * qemu_pixel_bytes(a.format) : pick_u32(in);
			auto bytes = pick_bytes(in, need_of(a.width, a.height, a.stride, qemu_pixel_bytes(a.format)));
			a.data = bytes.data();
			a.size = bytes.size();
			(void)on_scanout(run.d, a, ctx);
			break;
		}
		case 1: {
			UpdateArgs a{pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in), 0, pick_format(in)};
			a.stride = in.ConsumeBool() ? uint32_t(a.width) * qemu_pixel_bytes(a.format) : pick_u32(in);
			auto bytes =
			    pick_bytes(in, need_of(uint32_t(a.width), uint32_t(a.height), a.stride, qemu_pixel_bytes(a.format)));
			a.data = bytes.data();
			a.size = bytes.size();
			(void)on_update(run.d, a, ctx);
			break;
		}
		case 2: {
			ScanoutDmabufArgs a;
			a.width = pick_u32(in);
			a.height = pick_u32(in);
			a.stride = pick_u32(in);
			a.fourcc = in.ConsumeIntegral<uint32_t>();
			a.modifier = in.ConsumeIntegral<uint64_t>();
			a.y0_top = in.ConsumeBool();
			UniqueFd fd = pick_fd(in, uint64_t{a.stride} * std::min<uint32_t>(a.height, 4096));
			a.fd = fd.get();
			(void)on_scanout_dmabuf(run.d, a, ctx);
			break;
		}
		case 3:
			(void)on_update_dmabuf(run.d, UpdateDmabufArgs{pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in)},
			                       ctx);
			break;
		case 4: (void)on_disable(run.d, NoArgs{}, ctx); break;
		case 5: (void)on_mouse_set(run.d, MouseSetArgs{pick_i32(in), pick_i32(in), pick_i32(in)}, ctx); break;
		case 6: {
			CursorDefineArgs a{pick_i32(in), pick_i32(in), pick_i32(in), pick_i32(in)};
			auto bytes = pick_bytes(in, a.width > 0 && a.height > 0 && a.width <= 4096 && a.height <= 4096
			                                ? uint64_t(a.width) * uint64_t(a.height) * 4
			                                : 0);
			a.data = bytes.data();
			a.size = bytes.size();
			(void)on_cursor_define(run.d, a, ctx);
			break;
		}
		case 7: through_message(run, in); break;
		case 8: run.now += std::chrono::milliseconds(in.ConsumeIntegralInRange<int>(0, 2000)); break;
		case 9: run.copy(); break;
		}
		check(run.d, run.limits);
		if (in.ConsumeBool()) run.copy(); // a frame: the tracker copies what was damaged
	}
	run.copy();
	check(run.d, run.limits);
	return 0;
}
