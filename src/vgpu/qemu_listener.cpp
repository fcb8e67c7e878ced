// The listener's methods: parsing (sd-bus message -> arguments) and handling (arguments -> what a
// console shows). See qemu_listener.hpp.
#include "vgpu/qemu_listener.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <systemd/sd-bus.h>

#include <algorithm>
#include <cstring>

#include "base/fd_util.hpp"
#include "base/log.hpp"

namespace vscanout::vgpu::qemu {
namespace {

constexpr uint32_t kMaxSide = 16384;
// Where QEMU may put the cursor: around the largest frame, so that no position arithmetic
// downstream (scaling, adding the hotspot) comes near int32's ends.
constexpr int32_t kMaxCursorPos = 2 * int32_t{kMaxSide};

// A new picture of w x h with the old one's pixels where they overlap.
Result<Picture> resized(const Picture &old, uint32_t w, uint32_t h, uint64_t id) {
	auto p = Picture::make("vscanout-qemu", w, h, id);
	if (!p) return p;
	if (old.fd)
		for (uint32_t row = 0; row < std::min(old.height, h); row++)
			std::memcpy(p->row(row), old.row(row), size_t(std::min(old.width, w)) * 4);
	return p;
}

RowSpan span_union(RowSpan a, RowSpan b) {
	if (a.empty()) return b;
	if (b.empty()) return a;
	return {std::min(a.first, b.first), std::max(a.end, b.end)};
}

// The pixel array every pixel call ends with.
bool read_bytes(sd_bus_message *m, const uint8_t *&data, size_t &size) {
	const void *p = nullptr;
	size = 0;
	if (sd_bus_message_read_array(m, 'y', &p, &size) <= 0) return false; // 0: no array there
	data = static_cast<const uint8_t *>(p);
	return true;
}

Error malformed() { return fail("malformed arguments"); }

// Copies a rectangle of QEMU's pixels (any format qemu_pixel_bytes takes) into the primary.
void put_pixels(Picture &pic, uint32_t format, const uint8_t *data, uint32_t stride, uint32_t x, uint32_t y, uint32_t w,
                uint32_t h) {
	for (uint32_t row = 0; row < h; row++)
		qemu_row_to_xrgb8888(format, data + size_t(row) * stride, pic.row(y + row) + size_t(x) * 4, w);
}

} // namespace

Result<Picture> Picture::make(const char *name, uint32_t w, uint32_t h, uint64_t id) {
	Picture p;
	p.width = w;
	p.height = h;
	p.stride = w * 4;
	p.id = id;
	auto fd = make_memfd(name, size_t(p.stride) * h);
	if (!fd) return fd.take_error();
	p.fd = std::move(*fd);
	auto map = Mapping::map(p.fd.get(), size_t(p.stride) * h, PROT_READ | PROT_WRITE);
	if (!map) return map.take_error();
	p.map = std::move(*map);
	return p;
}

// ---- the damage log

void DamageLog::reset(uint64_t seq) {
	spans_.clear();
	floor_ = seq;
}

void DamageLog::add(uint64_t seq, RowSpan rows) {
	if (!spans_.empty() && spans_.back().seq >= seq) return; // counts only grow; never told twice
	if (spans_.size() == kSpans) {
		// The oldest two become one: asked from between them, the answer is a little larger.
		spans_[1].rows = span_union(spans_[0].rows, spans_[1].rows);
		spans_.erase(spans_.begin());
	}
	spans_.push_back({seq, rows});
}

std::optional<RowSpan> DamageLog::since(uint64_t seq) {
	if (seq < floor_) return std::nullopt; // from before this buffer, or forgotten: unknown
	RowSpan out;
	for (const Span &s : spans_)
		if (s.seq > seq) out = span_union(out, s.rows);
	if (!spans_.empty()) floor_ = std::max(floor_, spans_.back().seq);
	spans_.clear();
	return out;
}

RowSpan DamageLog::held() const {
	RowSpan out;
	for (const Span &s : spans_) out = span_union(out, s.rows);
	return out;
}

void Display::clear() {
	primary_on = false;
	picture = Picture{};
	dmabuf.reset();
	cursor = Picture{};
	mouse_on = false;
	damage_rows.reset(damage);
}

// ---- parsing

Result<ScanoutArgs> parse_scanout(sd_bus_message *m) {
	ScanoutArgs a;
	if (sd_bus_message_read(m, "uuuu", &a.width, &a.height, &a.stride, &a.format) < 0 || !read_bytes(m, a.data, a.size))
		return malformed();
	return a;
}

Result<UpdateArgs> parse_update(sd_bus_message *m) {
	UpdateArgs a;
	if (sd_bus_message_read(m, "iiiiuu", &a.x, &a.y, &a.width, &a.height, &a.stride, &a.format) < 0 ||
	    !read_bytes(m, a.data, a.size))
		return malformed();
	return a;
}

Result<ScanoutDmabufArgs> parse_scanout_dmabuf(sd_bus_message *m) {
	ScanoutDmabufArgs a;
	int y0_top = 0;
	if (sd_bus_message_read(m, "huuuutb", &a.fd, &a.width, &a.height, &a.stride, &a.fourcc, &a.modifier, &y0_top) < 0)
		return malformed();
	a.y0_top = y0_top != 0;
	return a;
}

Result<UpdateDmabufArgs> parse_update_dmabuf(sd_bus_message *m) {
	UpdateDmabufArgs a;
	if (sd_bus_message_read(m, "iiii", &a.x, &a.y, &a.width, &a.height) < 0) return malformed();
	return a;
}

Result<NoArgs> parse_disable(sd_bus_message *) { return NoArgs{}; }

Result<MouseSetArgs> parse_mouse_set(sd_bus_message *m) {
	MouseSetArgs a;
	if (sd_bus_message_read(m, "iii", &a.x, &a.y, &a.on) < 0) return malformed();
	return a;
}

Result<CursorDefineArgs> parse_cursor_define(sd_bus_message *m) {
	CursorDefineArgs a;
	if (sd_bus_message_read(m, "iiii", &a.width, &a.height, &a.hot_x, &a.hot_y) < 0 || !read_bytes(m, a.data, a.size))
		return malformed();
	return a;
}

// ---- handling

Result<Told> on_scanout(Display &d, const ScanoutArgs &a, CallContext &ctx) {
	// 32-bpp surfaces as they are; 16- and 15-bpp ones (a guest's 16-bit mode) become XRGB8888
	// in our frame as they are copied in.
	const uint32_t bpp = qemu_pixel_bytes(a.format);
	if (!bpp) return fail("a surface format other than x8r8g8b8, a8r8g8b8, r5g6b5 and x1r5g5b5");
	if (Status st = check_scanout(a.width, a.height, a.stride, a.size, ctx.limits, bpp); !st) return st.take_error();
	const bool fresh = !d.picture.fd || d.picture.width != a.width || d.picture.height != a.height;
	if (fresh) {
		auto p = Picture::make("vscanout-qemu", a.width, a.height, ctx.next_buffer_id++);
		if (!p) return p.take_error();
		d.picture = std::move(*p);
	}
	put_pixels(d.picture, a.format, a.data, a.stride, 0, 0, a.width, a.height);
	d.dmabuf.reset();
	d.primary_on = true;
	d.damage++;
	if (fresh)
		d.damage_rows.reset(d.damage); // a new buffer: copied whole
	else
		d.damage_rows.add(d.damage, {0, a.height});
	return Told::now;
}

Result<Told> on_update(Display &d, const UpdateArgs &a, CallContext &ctx) {
	const uint32_t bpp = qemu_pixel_bytes(a.format);
	if (!bpp) return fail("a surface format other than x8r8g8b8, a8r8g8b8, r5g6b5 and x1r5g5b5");
	auto f = frame_after_update(d.picture.width, d.picture.height, a.x, a.y, a.width, a.height, a.stride, a.size,
	                            ctx.limits, bpp);
	if (!f) return f.take_error();
	if (f->resized) {
		// How often: each new size is a new buffer (and import, and output mode).
		if (ctx.now - d.growth_second >= std::chrono::seconds(1)) {
			d.growth_second = ctx.now;
			d.growth_bytes = 0;
		}
		const uint64_t bytes = uint64_t{f->width} * f->height * 4;
		if (d.growth_bytes + bytes > QemuLimits::kUpdateGrowthFramesPerSecond * ctx.limits.max_frame_bytes())
			return fail("Updates making new frames of more than " +
			            std::to_string(QemuLimits::kUpdateGrowthFramesPerSecond * ctx.limits.max_mib) +
			            " MiB in a second");
		d.growth_bytes += bytes;
	}
	const auto x = uint32_t(a.x), y = uint32_t(a.y), w = uint32_t(a.width), h = uint32_t(a.height);
	const bool fresh = !d.picture.fd || d.picture.width != f->width || d.picture.height != f->height;
	bool coalesce = false; // damage on the buffer already shown: told once a frame, not once a call
	if (fresh) {
		auto p = f->keep ? resized(d.picture, f->width, f->height, ctx.next_buffer_id++)
		                 : Picture::make("vscanout-qemu", f->width, f->height, ctx.next_buffer_id++);
		if (!p) return p.take_error();
		VLOG_DEBUG("qemu: head %u: an update outside the frame: now %ux%u", ctx.head, f->width, f->height);
		d.picture = std::move(*p);
	} else {
		coalesce = d.primary_on && !d.dmabuf;
	}
	put_pixels(d.picture, a.format, a.data, a.stride, x, y, w, h);
	d.dmabuf.reset();
	d.primary_on = true;
	d.damage++;
	if (fresh)
		d.damage_rows.reset(d.damage);
	else
		d.damage_rows.add(d.damage, {y, y + h});
	return coalesce ? Told::next_frame : Told::now;
}

Result<Told> on_scanout_dmabuf(Display &d, const ScanoutDmabufArgs &a, CallContext &ctx) {
	if (a.width == 0 || a.height == 0 || a.width > kMaxSide || a.height > kMaxSide)
		return fail("a frame outside 1..16384 pixels a side");
	if (uint64_t{a.width} * a.height * 4 > ctx.limits.max_frame_bytes())
		return fail("a " + std::to_string(a.width) + "x" + std::to_string(a.height) +
		            " dma-buf is past max-mib=" + std::to_string(ctx.limits.max_mib));
	// Only what QEMU cannot shrink under a mapping of ours (a shrunk memfd is SIGBUS in whoever
	// reads it): a real dma-buf, or a memfd sealed against shrinking. The plane's stride, format
	// and size against the buffer are the core's to check (validate_plane, validate_backing).
	const bool real_dmabuf = fd_is_dmabuf(a.fd);
	if (!real_dmabuf && !fd_sealed_against_shrink(a.fd))
		return fail("the fd is neither a dma-buf nor a memfd sealed against shrinking");
	UniqueFd dup(::fcntl(a.fd, F_DUPFD_CLOEXEC, 0));
	if (!dup) return fail("cannot keep the dma-buf");
	// QEMU's y0_top follows GL's row order, not memory's: a VFIO display's dma-buf comes with it
	// false and is top-down in memory, as vscanout reads every buffer. A GL-rendered scanout
	// (virgl) may mean it otherwise; that is untried here (no GPU), so say so once.
	if (a.y0_top && !d.flipped_logged) {
		VLOG_INFO("qemu: head %u: a dma-buf with y0_top set; shown with its first row at the top", ctx.head);
		d.flipped_logged = true;
	}
	d.dmabuf = std::move(dup);
	d.dmabuf_width = a.width;
	d.dmabuf_height = a.height;
	d.dmabuf_stride = a.stride;
	d.dmabuf_format = a.fourcc;
	d.dmabuf_modifier = a.modifier;
	d.dmabuf_id = ctx.next_buffer_id++;
	d.dmabuf_is_memfd = !real_dmabuf;
	d.picture = Picture{};
	d.primary_on = true;
	d.damage_rows.reset(d.damage);
	return Told::now;
}

Result<Told> on_update_dmabuf(Display &d, const UpdateDmabufArgs &a, CallContext &) {
	if (!d.dmabuf) return fail("no dma-buf to update");
	if (a.width < 0 || a.height < 0) return fail("a rectangle of negative size");
	// The rows it names, within the buffer (a rectangle reaching out of it is damage all the
	// same, cut to what is there). Which way QEMU counts them is GL's business (y0_top): both
	// readings are taken, so a row copy never misses one.
	const int64_t fh = d.dmabuf_height, top = std::clamp<int64_t>(a.y, 0, fh),
	              bottom = std::clamp<int64_t>(int64_t{a.y} + a.height, 0, fh);
	RowSpan rows;
	if (top < bottom) rows = span_union({uint32_t(top), uint32_t(bottom)}, {uint32_t(fh - bottom), uint32_t(fh - top)});
	d.damage++;
	d.damage_rows.add(d.damage, rows);
	return Told::next_frame;
}

Result<Told> on_disable(Display &d, const NoArgs &, CallContext &) {
	d.primary_on = false;
	d.picture = Picture{};
	d.dmabuf.reset();
	d.damage_rows.reset(d.damage);
	return Told::now;
}

Result<Told> on_mouse_set(Display &d, const MouseSetArgs &a, CallContext &) {
	d.mouse_x = std::clamp(a.x, -kMaxCursorPos, kMaxCursorPos);
	d.mouse_y = std::clamp(a.y, -kMaxCursorPos, kMaxCursorPos);
	d.mouse_on = a.on != 0;
	return Told::now;
}

Result<Told> on_cursor_define(Display &d, const CursorDefineArgs &a, CallContext &ctx) {
	if (a.width <= 0 || a.height <= 0 || a.width > kMaxCursorSide || a.height > kMaxCursorSide)
		return fail("a cursor outside 1..512 pixels");
	const size_t pixels = size_t(a.width) * size_t(a.height);
	if (a.size < pixels * 4) return fail("fewer bytes than the cursor");
	auto p = Picture::make("vscanout-qemu-cursor", uint32_t(a.width), uint32_t(a.height), ctx.next_buffer_id++);
	if (!p) return p.take_error();
	// QEMU's cursor is straight ARGB; planes and our renderer take it premultiplied.
	for (size_t i = 0; i < pixels; i++) {
		const uint8_t *s = a.data + i * 4;
		uint8_t *o = p->map.data() + i * 4;
		const uint32_t alpha = s[3];
		for (int k = 0; k < 3; k++) o[k] = static_cast<uint8_t>((s[k] * alpha + 127) / 255);
		o[3] = static_cast<uint8_t>(alpha);
	}
	d.cursor = std::move(*p);
	d.hot_x = std::clamp(a.hot_x, 0, a.width - 1); // inside the image: never a negative (huge unsigned) hotspot
	d.hot_y = std::clamp(a.hot_y, 0, a.height - 1);
	return Told::now;
}

} // namespace vscanout::vgpu::qemu
