// The QEMU listener's methods on synthetic calls, without a QEMU: each handler's bounds (sizes,
// strides, formats, bytes against what was announced, rectangles, fd kinds, cursor images and
// hotspots), what a good call makes of the display (pixels, buffer ids, damaged rows), and the
// parsing layer on messages built on a peer-to-peer sd-bus connection.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <functional>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd_util.hpp"
#include "vgpu/qemu_listener.hpp"
#include "vgpu/sd_bus_ref.hpp"

namespace vscanout::vgpu::qemu {
namespace {

constexpr uint32_t kX8R8G8B8 = 0x20020888, kR5G6B5 = 0x10020565;

class QemuListenerTest : public ::testing::Test {
protected:
	QemuLimits limits;
	uint64_t next_id = 1;
	std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
	Display d;
	CallContext ctx() { return CallContext{limits, next_id, now, 0}; }

	Result<Told> scanout(uint32_t w, uint32_t h, uint32_t stride, const std::vector<uint8_t> &px,
	                     uint32_t format = kX8R8G8B8) {
		auto c = ctx();
		return on_scanout(d, ScanoutArgs{w, h, stride, format, px.data(), px.size()}, c);
	}
	Result<Told> update(int32_t x, int32_t y, int32_t w, int32_t h, uint32_t stride, const std::vector<uint8_t> &px,
	                    uint32_t format = kX8R8G8B8) {
		auto c = ctx();
		return on_update(d, UpdateArgs{x, y, w, h, stride, format, px.data(), px.size()}, c);
	}
	Result<Told> cursor(int32_t w, int32_t h, int32_t hx, int32_t hy, const std::vector<uint8_t> &px) {
		auto c = ctx();
		return on_cursor_define(d, CursorDefineArgs{w, h, hx, hy, px.data(), px.size()}, c);
	}
	Result<Told> dmabuf(int fd, uint32_t w, uint32_t h, uint32_t stride = 0) {
		auto c = ctx();
		return on_scanout_dmabuf(d, ScanoutDmabufArgs{fd, w, h, stride ? stride : w * 4, 0x34325258, 0, false}, c);
	}
	Result<Told> update_dmabuf(int32_t x, int32_t y, int32_t w, int32_t h) {
		auto c = ctx();
		return on_update_dmabuf(d, UpdateDmabufArgs{x, y, w, h}, c);
	}
	uint32_t pixel(uint32_t x, uint32_t y) const {
		uint32_t v;
		std::memcpy(&v, d.picture.row(y) + size_t(x) * 4, 4);
		return v;
	}
	// A memfd of `size` bytes, sealed against shrinking when asked.
	static UniqueFd memfd(size_t size, bool seal) {
		UniqueFd fd(::memfd_create("qemu-listener-test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
		EXPECT_TRUE(fd);
		EXPECT_EQ(::ftruncate(fd.get(), off_t(size)), 0);
		if (seal) {
			EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
		}
		return fd;
	}
};

std::vector<uint8_t> fill(size_t bytes, uint32_t value) {
	std::vector<uint8_t> v(bytes);
	for (size_t i = 0; i + 4 <= bytes; i += 4) std::memcpy(&v[i], &value, 4);
	return v;
}

TEST_F(QemuListenerTest, ScanoutBounds) {
	// Sides, memory, stride, bytes, format: each refused alone, the display untouched.
	EXPECT_FALSE(scanout(0, 10, 0, {}).ok());
	EXPECT_FALSE(scanout(10, 0, 40, {}).ok());
	EXPECT_FALSE(scanout(16385, 1, 65540, fill(65540, 0)).ok());
	EXPECT_FALSE(scanout(4096, 4097, 16384, {}).ok()); // past max-mib=64
	EXPECT_FALSE(scanout(UINT32_MAX, UINT32_MAX, UINT32_MAX, {}).ok());
	EXPECT_FALSE(scanout(100, 100, 399, fill(400 * 100, 0)).ok());              // stride below the row
	EXPECT_FALSE(scanout(100, 100, 400, fill(400 * 100 - 1, 0)).ok());          // one byte short of announced
	EXPECT_FALSE(scanout(100, 100, 400, fill(400 * 100, 0), 0x18020888).ok());  // r8g8b8: not taken
	EXPECT_FALSE(scanout(100, 100, 200, fill(200 * 100 - 1, 0), kR5G6B5).ok()); // 16 bpp, one byte short
	EXPECT_FALSE(d.primary_on);
	EXPECT_FALSE(d.picture.fd);
	EXPECT_EQ(d.damage, 0u);
	EXPECT_EQ(next_id, 1u);
	limits.max_mib = 1;
	EXPECT_FALSE(scanout(1024, 768, 4096, fill(4096 * 768, 0)).ok());
}

TEST_F(QemuListenerTest, ScanoutMakesAFrameAndKeepsItsBufferWhileTheSizeStays) {
	// Stride with padding; the last row needs none.
	auto px = fill(512 * 47 + 256, 0x00ff0000);
	auto r = scanout(64, 48, 512, px);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_EQ(*r, Told::now);
	ASSERT_TRUE(d.picture.fd);
	EXPECT_EQ(d.picture.width, 64u);
	EXPECT_EQ(d.picture.height, 48u);
	EXPECT_EQ(d.picture.stride, 256u);
	EXPECT_EQ(pixel(63, 47), 0x00ff0000u);
	EXPECT_TRUE(d.primary_on);
	const uint64_t id = d.picture.id;
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), std::nullopt); // a new buffer: whole
	// The same size again: the same buffer, all of its rows damaged.
	ASSERT_TRUE(scanout(64, 48, 256, fill(256 * 48, 0x0000ff00)).ok());
	EXPECT_EQ(d.picture.id, id);
	EXPECT_EQ(pixel(0, 0), 0x0000ff00u);
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), (RowSpan{0, 48}));
	// Another size: another buffer.
	ASSERT_TRUE(scanout(32, 16, 128, fill(128 * 16, 0)).ok());
	EXPECT_NE(d.picture.id, id);
	// A 16-bit surface becomes XRGB8888.
	ASSERT_TRUE(scanout(2, 1, 4, {0x00, 0xf8, 0xe0, 0x07}, kR5G6B5).ok());
	EXPECT_EQ(pixel(0, 0), 0xffff0000u);
	EXPECT_EQ(pixel(1, 0), 0xff00ff00u);
}

TEST_F(QemuListenerTest, UpdateBounds) {
	ASSERT_TRUE(scanout(64, 48, 256, fill(256 * 48, 0)).ok());
	const uint64_t id = d.picture.id, damage = d.damage;
	const auto one = fill(4, 0xffffffff);
	for (auto [x, y, w, h] : std::vector<std::array<int32_t, 4>>{{-1, 0, 1, 1},
	                                                             {0, -1, 1, 1},
	                                                             {0, 0, 0, 1},
	                                                             {0, 0, 1, 0},
	                                                             {0, 0, -5, 1},
	                                                             {0, 0, 1, INT32_MIN},
	                                                             {INT32_MAX, 0, 1, 1},
	                                                             {0, INT32_MAX, 1, 1},
	                                                             {16383, 0, 2, 1},
	                                                             {INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX}})
		EXPECT_FALSE(update(x, y, w, h, 4, one).ok()) << x << "," << y << " " << w << "x" << h;
	EXPECT_FALSE(update(0, 0, 2, 2, 8, fill(8 + 7, 0)).ok());  // one byte short of the rectangle
	EXPECT_FALSE(update(0, 0, 2, 2, 7, fill(64, 0)).ok());     // stride below the row
	EXPECT_FALSE(update(0, 0, 1, 1, 4, one, 0x18020888).ok()); // format
	// Growing past max-mib: refused.
	EXPECT_FALSE(update(4000, 4000, 200, 1, 800, fill(800, 0)).ok());
	EXPECT_EQ(d.picture.id, id);
	EXPECT_EQ(d.damage, damage);
	EXPECT_EQ(pixel(0, 0), 0u);
}

TEST_F(QemuListenerTest, UpdateInsideTheFrameIsDamageOnItsRows) {
	ASSERT_TRUE(scanout(64, 48, 256, fill(256 * 48, 0)).ok());
	const uint64_t id = d.picture.id, before = d.damage;
	auto r = update(3, 10, 2, 5, 8, fill(8 * 5, 0x00abcdef));
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_EQ(*r, Told::next_frame); // coalesced: told with the next frame
	EXPECT_EQ(d.picture.id, id);
	EXPECT_EQ(pixel(3, 10), 0x00abcdefu);
	EXPECT_EQ(pixel(4, 14), 0x00abcdefu);
	EXPECT_EQ(pixel(5, 14), 0u);
	EXPECT_EQ(pixel(3, 15), 0u);
	EXPECT_EQ(d.damage_rows.since(before), (RowSpan{10, 15}));
	// Two more: their union, asked from the count of the last answer.
	ASSERT_TRUE(update(0, 40, 1, 1, 4, fill(4, 1)).ok());
	ASSERT_TRUE(update(9, 20, 1, 1, 4, fill(4, 1)).ok());
	EXPECT_EQ(d.damage_rows.since(before + 1), (RowSpan{20, 41}));
	EXPECT_EQ(d.damage_rows.since(d.damage), (RowSpan{})); // nothing since
	EXPECT_EQ(d.damage_rows.since(before), std::nullopt);  // answered already: unknown now
}

TEST_F(QemuListenerTest, UpdateOutsideTheFrameMakesANewOneAtMostTwiceItsLimitASecond) {
	ASSERT_TRUE(scanout(64, 48, 256, fill(256 * 48, 0x00112233)).ok());
	const uint64_t id = d.picture.id;
	// From the origin past the frame: a new surface of its extent.
	auto r = update(0, 0, 100, 50, 400, fill(400 * 50, 0x00445566));
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_EQ(*r, Told::now);
	EXPECT_NE(d.picture.id, id);
	EXPECT_EQ(d.picture.width, 100u);
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), std::nullopt); // a new buffer: copied whole
	// Elsewhere past it: grown, the old pixels kept.
	ASSERT_TRUE(update(120, 0, 1, 1, 4, fill(4, 0x00778899)).ok());
	EXPECT_EQ(d.picture.width, 121u);
	EXPECT_EQ(pixel(0, 0), 0x00445566u);
	EXPECT_EQ(pixel(120, 0), 0x00778899u);
	// New frames worth more than two max-mib frames in one second: refused until the next.
	limits.max_mib = 1; // 1 MiB: 512x512; 2 MiB of new frames a second
	d = Display{};
	auto c = ctx();
	const auto frame = fill(2048 * 512, 0);
	ASSERT_TRUE(update(0, 0, 512, 512, 2048, frame).ok());
	ASSERT_TRUE(on_disable(d, NoArgs{}, c).ok()); // the next Update begins a frame again
	ASSERT_TRUE(update(0, 0, 512, 512, 2048, frame).ok());
	ASSERT_TRUE(on_disable(d, NoArgs{}, c).ok());
	EXPECT_FALSE(update(0, 0, 512, 512, 2048, frame).ok());
	EXPECT_FALSE(d.primary_on);
	now += std::chrono::milliseconds(1001);
	EXPECT_TRUE(update(0, 0, 512, 512, 2048, frame).ok());
}

TEST_F(QemuListenerTest, ScanoutDmabufTakesOnlyWhatCannotShrink) {
	const size_t bytes = 64 * 4 * 48;
	UniqueFd unsealed = memfd(bytes, false), sealed = memfd(bytes, true);
	int pipe_fds[2];
	ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
	UniqueFd rd(pipe_fds[0]), wr(pipe_fds[1]);
	EXPECT_FALSE(dmabuf(unsealed.get(), 64, 48).ok()); // QEMU could shrink it under our mapping
	EXPECT_FALSE(dmabuf(rd.get(), 64, 48).ok());
	EXPECT_FALSE(dmabuf(-1, 64, 48).ok());
	EXPECT_FALSE(dmabuf(sealed.get(), 0, 48).ok());
	EXPECT_FALSE(dmabuf(sealed.get(), 16385, 1).ok());
	EXPECT_FALSE(dmabuf(sealed.get(), 8192, 8192).ok()); // 256 MiB: past max-mib
	EXPECT_FALSE(d.dmabuf);
	EXPECT_FALSE(d.primary_on);
	// Before any dma-buf, UpdateDMABUF is refused.
	EXPECT_FALSE(update_dmabuf(0, 0, 1, 1).ok());
	auto r = dmabuf(sealed.get(), 64, 48);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_EQ(*r, Told::now);
	ASSERT_TRUE(d.dmabuf);
	EXPECT_NE(d.dmabuf.get(), sealed.get()); // a descriptor of its own
	EXPECT_TRUE(d.dmabuf_is_memfd);
	EXPECT_EQ(d.dmabuf_width, 64u);
	EXPECT_FALSE(d.picture.fd);
	// A stride or size that does not fit the buffer is the core's to refuse (validate_backing):
	// the source passes what QEMU said on.
	ASSERT_TRUE(dmabuf(sealed.get(), 64, 48, 4096).ok());
	EXPECT_EQ(d.dmabuf_stride, 4096u);
}

TEST_F(QemuListenerTest, UpdateDmabufRowsAreCutToTheBufferBothWaysUp) {
	UniqueFd sealed = memfd(64 * 4 * 48, true);
	ASSERT_TRUE(dmabuf(sealed.get(), 64, 48).ok());
	const uint64_t before = d.damage;
	EXPECT_FALSE(update_dmabuf(0, 0, -1, 1).ok());
	EXPECT_FALSE(update_dmabuf(0, 0, 1, INT32_MIN).ok());
	EXPECT_EQ(d.damage, before);
	auto r = update_dmabuf(0, 2, 64, 3);
	ASSERT_TRUE(r.ok()) << r.error();
	EXPECT_EQ(*r, Told::next_frame);
	// Rows 2..5, and the same counted from the bottom (GL's order): 43..46.
	EXPECT_EQ(d.damage_rows.since(before), (RowSpan{2, 46}));
	// Reaching out of the buffer: cut to it; wholly outside: damage with no rows.
	ASSERT_TRUE(update_dmabuf(INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX).ok());
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), (RowSpan{}));
	ASSERT_TRUE(update_dmabuf(INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX).ok()); // ends at row -1
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), (RowSpan{}));
	ASSERT_TRUE(update_dmabuf(0, -10, 1, 20).ok()); // rows 0..10, and bottom-up 38..48
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), (RowSpan{0, 48}));
	ASSERT_TRUE(update_dmabuf(0, 47, 1, 100).ok());
	EXPECT_EQ(d.damage_rows.since(d.damage - 1), (RowSpan{0, 48})); // row 47 and, bottom-up, row 0
}

TEST_F(QemuListenerTest, CursorDefineBounds) {
	EXPECT_FALSE(cursor(0, 16, 0, 0, fill(16 * 16 * 4, 0)).ok());
	EXPECT_FALSE(cursor(16, -1, 0, 0, fill(16 * 16 * 4, 0)).ok());
	EXPECT_FALSE(cursor(513, 1, 0, 0, fill(513 * 4, 0)).ok());
	EXPECT_FALSE(cursor(INT32_MIN, INT32_MIN, 0, 0, {}).ok());
	EXPECT_FALSE(cursor(16, 16, 0, 0, fill(16 * 16 * 4 - 1, 0)).ok()); // one byte short
	EXPECT_FALSE(d.cursor.fd);
	EXPECT_EQ(next_id, 1u);
	// A hotspot outside the image is pulled inside it, never negative.
	ASSERT_TRUE(cursor(16, 8, INT32_MIN, INT32_MAX, fill(16 * 8 * 4, 0x80ff0000)).ok());
	EXPECT_EQ(d.hot_x, 0);
	EXPECT_EQ(d.hot_y, 7);
	ASSERT_TRUE(cursor(16, 8, 100, -3, fill(16 * 8 * 4, 0x80ff0000)).ok());
	EXPECT_EQ(d.hot_x, 15);
	EXPECT_EQ(d.hot_y, 0);
	// Straight alpha in, premultiplied out: red at alpha 0x80.
	uint32_t px;
	std::memcpy(&px, d.cursor.map.data(), 4);
	EXPECT_EQ(px, 0x80800000u);
	ASSERT_TRUE(cursor(512, 512, 0, 0, fill(512 * 512 * 4, 0)).ok());
}

TEST_F(QemuListenerTest, MouseSetIsClampedAndDisableClearsThePrimary) {
	auto c = ctx();
	ASSERT_TRUE(on_mouse_set(d, MouseSetArgs{INT32_MAX, INT32_MIN, 1}, c).ok());
	EXPECT_EQ(d.mouse_x, 32768);
	EXPECT_EQ(d.mouse_y, -32768);
	EXPECT_TRUE(d.mouse_on);
	ASSERT_TRUE(scanout(4, 4, 16, fill(64, 0)).ok());
	ASSERT_TRUE(on_disable(d, NoArgs{}, c).ok());
	EXPECT_FALSE(d.primary_on);
	EXPECT_FALSE(d.picture.fd);
	// An Update after Disable begins a new frame.
	ASSERT_TRUE(update(0, 0, 2, 2, 8, fill(16, 0)).ok());
	EXPECT_TRUE(d.primary_on);
	EXPECT_EQ(d.picture.width, 2u);
}

TEST(QemuDamageLog, BoundedAndNeverLessThanTheTruth) {
	DamageLog log;
	log.reset(10);
	EXPECT_EQ(log.since(9), std::nullopt); // before the buffer: unknown
	EXPECT_EQ(log.since(10), (RowSpan{}));
	// Many more notices than spans between two questions: merged, the answer is their union.
	for (uint32_t i = 0; i < 300; i++) log.add(11 + i, {i, i + 1});
	EXPECT_EQ(log.held(), (RowSpan{0, 300}));
	EXPECT_EQ(log.since(10), (RowSpan{0, 300}));
	EXPECT_EQ(log.held(), (RowSpan{}));
	// What was answered is forgotten: the next answer is only what came after, however far
	// apart; asking from before it again is "unknown" (a whole copy), never a short answer.
	log.add(311, {4000, 4001});
	log.add(312, {7, 8});
	EXPECT_EQ(log.since(310), (RowSpan{7, 4001}));
	EXPECT_EQ(log.since(312), (RowSpan{}));
	EXPECT_EQ(log.since(311), std::nullopt);
	// Merged spans answer a superset for a count between them, never less.
	for (uint32_t i = 0; i < 40; i++) log.add(313 + i, {1000 + 10 * i, 1001 + 10 * i});
	const auto mid = log.since(340);
	ASSERT_TRUE(mid.has_value());
	EXPECT_LE(mid->first, 1000u + 10 * 28);
	EXPECT_EQ(mid->end, 1001u + 10 * 39);
	log.reset(400);
	EXPECT_EQ(log.since(353), std::nullopt);
	EXPECT_EQ(log.since(400), (RowSpan{}));
}

// ---- the parsing layer, on messages as QEMU sends them

class QemuListenerParseTest : public ::testing::Test {
protected:
	void SetUp() override {
		int sv[2];
		ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
		peer_ = UniqueFd(sv[1]);
		ASSERT_GE(sd_bus_new(bus_.out()), 0);
		ASSERT_GE(sd_bus_set_fd(bus_.get(), sv[0], sv[0]), 0);
		ASSERT_GE(sd_bus_negotiate_fds(bus_.get(), 1), 0);
		ASSERT_GE(sd_bus_start(bus_.get()), 0);
	}
	// A method call to the listener, sealed as if received.
	dbus::Message call(const char *member, const std::function<int(sd_bus_message *)> &append) {
		dbus::Message m;
		EXPECT_GE(sd_bus_message_new_method_call(bus_.get(), m.out(), nullptr, "/org/qemu/Display1/Listener",
		                                         "org.qemu.Display1.Listener", member),
		          0);
		EXPECT_GE(append(m.get()), 0);
		EXPECT_GE(sd_bus_message_seal(m.get(), ++cookie_, 0), 0);
		return m;
	}

	UniqueFd peer_;
	dbus::Bus bus_;
	uint64_t cookie_ = 0;
};

TEST_F(QemuListenerParseTest, PixelCallsAndTheirBytes) {
	const uint8_t px[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	auto m = call("Scanout", [&](sd_bus_message *msg) {
		return sd_bus_message_append(msg, "uuuu", 2u, 1u, 8u, kX8R8G8B8) < 0
		           ? -1
		           : sd_bus_message_append_array(msg, 'y', px, sizeof px);
	});
	auto s = parse_scanout(m.get());
	ASSERT_TRUE(s.ok()) << s.error();
	EXPECT_EQ(s->width, 2u);
	EXPECT_EQ(s->stride, 8u);
	EXPECT_EQ(s->format, kX8R8G8B8);
	ASSERT_EQ(s->size, sizeof px);
	EXPECT_EQ(0, std::memcmp(s->data, px, sizeof px));
	auto u = call("Update", [&](sd_bus_message *msg) {
		return sd_bus_message_append(msg, "iiiiuu", -1, INT32_MIN, 3, 4, 12u, kR5G6B5) < 0
		           ? -1
		           : sd_bus_message_append_array(msg, 'y', px, 3);
	});
	auto ua = parse_update(u.get());
	ASSERT_TRUE(ua.ok()) << ua.error();
	EXPECT_EQ(ua->x, -1);
	EXPECT_EQ(ua->y, INT32_MIN);
	EXPECT_EQ(ua->size, 3u);
	auto cd = call("CursorDefine", [&](sd_bus_message *msg) {
		return sd_bus_message_append(msg, "iiii", 1, 1, -7, 9) < 0 ? -1 : sd_bus_message_append_array(msg, 'y', px, 4);
	});
	auto ca = parse_cursor_define(cd.get());
	ASSERT_TRUE(ca.ok()) << ca.error();
	EXPECT_EQ(ca->hot_x, -7);
	EXPECT_EQ(ca->size, 4u);
	// Parsed and handled: the handler refuses what the bytes do not cover.
	Display d;
	QemuLimits limits;
	uint64_t id = 1;
	CallContext ctx{limits, id, std::chrono::steady_clock::now(), 0};
	EXPECT_TRUE(on_scanout(d, *s, ctx).ok());
	EXPECT_FALSE(on_update(d, *ua, ctx).ok());
}

TEST_F(QemuListenerParseTest, ScanoutDmabufCarriesItsFd) {
	int pipe_fds[2];
	ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
	UniqueFd rd(pipe_fds[0]), wr(pipe_fds[1]);
	auto m = call("ScanoutDMABUF", [&](sd_bus_message *msg) {
		return sd_bus_message_append(msg, "huuuutb", rd.get(), 64u, 48u, 256u, 0x34325258u, uint64_t{0}, 1);
	});
	auto a = parse_scanout_dmabuf(m.get());
	ASSERT_TRUE(a.ok()) << a.error();
	EXPECT_GE(a->fd, 0);
	EXPECT_NE(a->fd, rd.get()); // the message's own copy
	EXPECT_EQ(a->height, 48u);
	EXPECT_TRUE(a->y0_top);
	Display d;
	QemuLimits limits;
	uint64_t id = 1;
	CallContext ctx{limits, id, std::chrono::steady_clock::now(), 0};
	EXPECT_FALSE(on_scanout_dmabuf(d, *a, ctx).ok()); // a pipe is no dma-buf
}

TEST_F(QemuListenerParseTest, WrongArgumentsAreMalformed) {
	// Short of arguments, or of the wrong types: each parser says so instead of reading zeros.
	auto m = call("Scanout", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "uu", 1u, 1u); });
	EXPECT_FALSE(parse_scanout(m.get()).ok());
	auto u = call("Update", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "s", "hello"); });
	EXPECT_FALSE(parse_update(u.get()).ok());
	auto d =
	    call("ScanoutDMABUF", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "uuuu", 1u, 1u, 1u, 1u); });
	EXPECT_FALSE(parse_scanout_dmabuf(d.get()).ok());
	auto ud = call("UpdateDMABUF", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "ii", 1, 1); });
	EXPECT_FALSE(parse_update_dmabuf(ud.get()).ok());
	auto ms = call("MouseSet", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "uuu", 1u, 1u, 1u); });
	EXPECT_FALSE(parse_mouse_set(ms.get()).ok());
	auto cd = call("CursorDefine", [](sd_bus_message *msg) { return sd_bus_message_append(msg, "iiii", 1, 1, 0, 0); });
	EXPECT_FALSE(parse_cursor_define(cd.get()).ok());
}

} // namespace
} // namespace vscanout::vgpu::qemu
