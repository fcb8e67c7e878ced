// The QEMU source's org.qemu.Display1.Listener methods, as two layers (docs/design.md, "The QEMU
// source"):
//   - parsing: one sd-bus message -> that method's arguments (parse_scanout, ...), nothing else;
//   - handling: one method's arguments -> what a console shows (on_scanout, ...), with every
//     bound QEMU's input must keep; no sd-bus, no QEMU, no event loop.
// The handlers are what the unit tests and the fuzz target (fuzz/qemu_listener_fuzz.cpp) call,
// on arguments of their choosing; the source's vtable (qemu_console.cpp) calls parse, then
// handle, then answers QEMU.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/mapping.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/plane.hpp"
#include "vgpu/qemu_source.hpp"

struct sd_bus_message;

namespace vscanout::vgpu::qemu {

// A picture in host memory: the primary's pixels (Scanout/Update) or the cursor image, 4 bytes a
// pixel, in a memfd the compositor maps.
struct Picture {
	UniqueFd fd;
	Mapping map;
	uint32_t width = 0, height = 0, stride = 0;
	uint64_t id = 0;

	// A fresh zeroed picture of w x h.
	static Result<Picture> make(const char *name, uint32_t w, uint32_t h, uint64_t id);
	uint8_t *row(uint32_t y) const { return map.data() + size_t(y) * stride; }
};

// Which rows of the primary changed, by damage count: a few spans, the oldest merged into the
// next when there are more, so it stays small however many Updates come. Asked for the rows
// since count n it answers the union of the rows damaged after n, or nothing (unknown: the whole
// frame) when n is older than what it holds. Once answered it forgets everything it held: its
// one reader (the head's tracker) asks next from the count it has seen now. So spans only ever
// merge among notices not yet asked for, whose union the next answer is anyway.
class DamageLog {
public:
	static constexpr size_t kSpans = 16;
	// A new buffer at damage count `seq`: nothing before it is known.
	void reset(uint64_t seq);
	// Damage count `seq` (after the increment) touched `rows`.
	void add(uint64_t seq, RowSpan rows);
	std::optional<RowSpan> since(uint64_t seq);
	// Every row it holds (the union of all its spans), without forgetting any.
	RowSpan held() const;

private:
	struct Span {
		uint64_t seq;
		RowSpan rows;
	};
	std::vector<Span> spans_; // oldest first
	uint64_t floor_ = 0;      // the count the log starts at
};

// What one console shows: the state the listener's calls change.
struct Display {
	// Primary plane: pixels in `picture`, or a dma-buf.
	bool primary_on = false;
	Picture picture;
	UniqueFd dmabuf;
	uint32_t dmabuf_format = 0, dmabuf_width = 0, dmabuf_height = 0, dmabuf_stride = 0;
	uint64_t dmabuf_modifier = 0, dmabuf_id = 0;
	bool dmabuf_is_memfd = false; // a sealed memfd handed as a dma-buf: host memory
	bool flipped_logged = false;
	uint64_t damage = 0; // damage notices (Source::damage_seq)
	DamageLog damage_rows;
	// Cursor plane: the image (premultiplied ARGB8888), its hotspot, where QEMU puts it.
	Picture cursor;
	int32_t hot_x = 0, hot_y = 0, mouse_x = 0, mouse_y = 0;
	bool mouse_on = false;
	// Bytes of new frames made by Update in the current second.
	std::chrono::steady_clock::time_point growth_second{};
	uint64_t growth_bytes = 0;

	// Everything shown is dropped (QEMU went away).
	void clear();
};

// What a call is handled with.
struct CallContext {
	const QemuLimits &limits;
	uint64_t &next_buffer_id; // the source's: buffer ids are never reused across its heads
	std::chrono::steady_clock::time_point now;
	uint32_t head = 0; // for the log
};

// When the compositor hears of a handled call: now, or with the next frame (damage on the
// buffer already shown, coalesced to one notice a frame).
enum class Told { now, next_frame };

// The methods' arguments as QEMU sends them (signatures in qemu_console.cpp's vtable). Pixel
// data points into the message.
struct ScanoutArgs {
	uint32_t width = 0, height = 0, stride = 0, format = 0;
	const uint8_t *data = nullptr;
	size_t size = 0;
};
struct UpdateArgs {
	int32_t x = 0, y = 0, width = 0, height = 0;
	uint32_t stride = 0, format = 0;
	const uint8_t *data = nullptr;
	size_t size = 0;
};
struct ScanoutDmabufArgs {
	int fd = -1; // the message's: duplicated if kept
	uint32_t width = 0, height = 0, stride = 0, fourcc = 0;
	uint64_t modifier = 0;
	bool y0_top = false;
};
struct UpdateDmabufArgs {
	int32_t x = 0, y = 0, width = 0, height = 0;
};
struct MouseSetArgs {
	int32_t x = 0, y = 0, on = 0;
};
struct CursorDefineArgs {
	int32_t width = 0, height = 0, hot_x = 0, hot_y = 0;
	const uint8_t *data = nullptr;
	size_t size = 0;
};
struct NoArgs {};

// Parsing: an error is a malformed message.
Result<ScanoutArgs> parse_scanout(sd_bus_message *m);
Result<UpdateArgs> parse_update(sd_bus_message *m);
Result<ScanoutDmabufArgs> parse_scanout_dmabuf(sd_bus_message *m);
Result<UpdateDmabufArgs> parse_update_dmabuf(sd_bus_message *m);
Result<NoArgs> parse_disable(sd_bus_message *m);
Result<MouseSetArgs> parse_mouse_set(sd_bus_message *m);
Result<CursorDefineArgs> parse_cursor_define(sd_bus_message *m);

// Handling: an error is the call refused (its reason, told to QEMU and logged), the display as
// it was.
Result<Told> on_scanout(Display &d, const ScanoutArgs &a, CallContext &ctx);
Result<Told> on_update(Display &d, const UpdateArgs &a, CallContext &ctx);
Result<Told> on_scanout_dmabuf(Display &d, const ScanoutDmabufArgs &a, CallContext &ctx);
Result<Told> on_update_dmabuf(Display &d, const UpdateDmabufArgs &a, CallContext &ctx);
Result<Told> on_disable(Display &d, const NoArgs &a, CallContext &ctx);
Result<Told> on_mouse_set(Display &d, const MouseSetArgs &a, CallContext &ctx);
Result<Told> on_cursor_define(Display &d, const CursorDefineArgs &a, CallContext &ctx);

// The largest cursor image QEMU may define, a side.
inline constexpr int32_t kMaxCursorSide = 512;

} // namespace vscanout::vgpu::qemu
