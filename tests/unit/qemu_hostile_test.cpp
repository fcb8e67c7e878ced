// What a hostile QEMU can send, on synthetic input: the bounds of Scanout and Update, the source
// spec's limits, QMP lines (matched by id, never by substring), which fds may be mapped, and
// what peer text looks like in the log. (The whole source against a fake QEMU peer:
// tests/integration/test_qemu_hostile.py.)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "vgpu/qemu_qmp.hpp"
#include "vgpu/qemu_source.hpp"

namespace vscanout::vgpu {
namespace {

TEST(QemuSpecLimits, TrailingMaxHeadsAndMaxMib) {
	auto d = parse_qemu_spec("qemu:qmp:/run/vm/qmp.sock");
	ASSERT_TRUE(d.ok());
	EXPECT_EQ(d->limits.max_heads, QemuLimits::kDefaultMaxHeads);
	EXPECT_EQ(d->limits.max_mib, QemuLimits::kDefaultMaxMib);
	auto q = parse_qemu_spec("qemu:qmp:/run/vm/qmp.sock,max-heads=2,max-mib=16");
	ASSERT_TRUE(q.ok()) << q.error();
	EXPECT_EQ(q->qmp, "/run/vm/qmp.sock");
	EXPECT_EQ(q->limits.max_heads, 2u);
	EXPECT_EQ(q->limits.max_mib, 16u);
	EXPECT_EQ(q->limits.max_frame_bytes(), 16u << 20);
	// A D-Bus address keeps its own commas.
	auto a = parse_qemu_spec("qemu:unix:path=/run/bus,guid=12,max-mib=8");
	ASSERT_TRUE(a.ok()) << a.error();
	EXPECT_EQ(a->address, "unix:path=/run/bus,guid=12");
	EXPECT_EQ(a->limits.max_mib, 8u);
	// Only limits: the session bus.
	auto s = parse_qemu_spec("qemu:max-heads=1");
	ASSERT_TRUE(s.ok()) << s.error();
	EXPECT_EQ(s->address, "");
	EXPECT_EQ(s->limits.max_heads, 1u);
	for (const char *bad : {"qemu:qmp:/x,max-heads=0", "qemu:qmp:/x,max-heads=65", "qemu:qmp:/x,max-mib=",
	                        "qemu:qmp:/x,max-mib=-1", "qemu:qmp:/x,max-mib=99999", "qemu:qmp:,max-mib=4"})
		EXPECT_FALSE(parse_qemu_spec(bad).ok()) << bad;
}

TEST(QemuBounds, ScanoutWithinSidesMemoryAndBytes) {
	QemuLimits l; // 64 MiB
	EXPECT_TRUE(check_scanout(1024, 768, 4096, 4096 * 768, l).ok());
	EXPECT_TRUE(check_scanout(4096, 4096, 16384, 16384u * 4096, l).ok()); // exactly 64 MiB
	EXPECT_FALSE(check_scanout(4096, 4097, 16384, 16384u * 4097, l).ok());
	EXPECT_FALSE(check_scanout(16384, 16384, 65536, 4, l).ok()); // a gigabyte: never
	EXPECT_FALSE(check_scanout(0, 10, 0, 0, l).ok());
	EXPECT_FALSE(check_scanout(16385, 1, 65540, 65540, l).ok());
	EXPECT_FALSE(check_scanout(100, 100, 399, 400 * 100, l).ok());     // stride below the row
	EXPECT_FALSE(check_scanout(100, 100, 400, 400 * 100 - 1, l).ok()); // one byte short
	EXPECT_TRUE(check_scanout(100, 100, 512, 512 * 99 + 400, l).ok()); // the last row needs no padding
	l.max_mib = 1;
	EXPECT_FALSE(check_scanout(1024, 768, 4096, 4096 * 768, l).ok());
}

TEST(QemuFormats, SixteenBitSurfacesBecomeXrgb8888) {
	constexpr uint32_t r5g6b5 = 0x10020565, x1r5g5b5 = 0x10020555, x8r8g8b8 = 0x20020888;
	EXPECT_EQ(qemu_pixel_bytes(x8r8g8b8), 4u);
	EXPECT_EQ(qemu_pixel_bytes(r5g6b5), 2u);
	EXPECT_EQ(qemu_pixel_bytes(x1r5g5b5), 2u);
	EXPECT_EQ(qemu_pixel_bytes(0x18020888), 0u);                                          // r8g8b8 (24 bpp): not taken
	const uint8_t in565[] = {0x00, 0xf8, 0xe0, 0x07, 0x1f, 0x00, 0xff, 0xff, 0x10, 0x84}; // R, G, B, white, grey
	uint8_t out[20] = {};
	qemu_row_to_xrgb8888(r5g6b5, in565, out, 5);
	const uint8_t want565[] = {0, 0, 255, 255, 0, 255, 0, 255, 255, 0, 0, 255, 255, 255, 255, 255, 131, 129, 131, 255};
	EXPECT_EQ(0, std::memcmp(out, want565, sizeof want565));
	const uint8_t in555[] = {0x00, 0x7c, 0xe0, 0x03, 0x1f, 0x00, 0xff, 0x7f};
	qemu_row_to_xrgb8888(x1r5g5b5, in555, out, 4);
	const uint8_t want555[] = {0, 0, 255, 255, 0, 255, 0, 255, 255, 0, 0, 255, 255, 255, 255, 255};
	EXPECT_EQ(0, std::memcmp(out, want555, sizeof want555));
	// Two bytes a pixel in the data: the byte check follows the format.
	QemuLimits l;
	EXPECT_TRUE(check_scanout(100, 100, 200, 200 * 100, l, 2).ok());
	EXPECT_FALSE(check_scanout(100, 100, 199, 200 * 100, l, 2).ok());
	EXPECT_FALSE(check_scanout(100, 100, 200, 200 * 100, l, 4).ok());
	EXPECT_TRUE(frame_after_update(100, 100, 0, 0, 10, 10, 20, 20 * 9 + 20, l, 2).ok());
	EXPECT_FALSE(frame_after_update(100, 100, 0, 0, 10, 10, 20, 20 * 9 + 19, l, 2).ok());
}

TEST(QemuBounds, UpdateGrowthIsBounded) {
	QemuLimits l;
	// The 4-byte Update of the review: a 16384x16384 frame (1 GiB) from one pixel.
	EXPECT_FALSE(frame_after_update(640, 480, 16383, 16383, 1, 1, 4, 4, l).ok());
	// Inside the frame: a damage notice, nothing grows.
	auto in = frame_after_update(640, 480, 10, 10, 20, 20, 80, 80 * 20, l);
	ASSERT_TRUE(in.ok());
	EXPECT_FALSE(in->resized);
	EXPECT_TRUE(in->keep);
	// VGA text mode from the origin: a new surface of the update's extent.
	auto text = frame_after_update(640, 480, 0, 0, 720, 400, 2880, 2880 * 400, l);
	ASSERT_TRUE(text.ok());
	EXPECT_TRUE(text->resized);
	EXPECT_FALSE(text->keep);
	EXPECT_EQ(text->width, 720u);
	EXPECT_EQ(text->height, 400u);
	// Growing from elsewhere keeps the pixels.
	auto grow = frame_after_update(720, 400, 700, 390, 40, 20, 160, 160 * 20, l);
	ASSERT_TRUE(grow.ok());
	EXPECT_TRUE(grow->keep);
	EXPECT_EQ(grow->width, 740u);
	EXPECT_EQ(grow->height, 410u);
	// Past max-mib, refused; bad rectangles and short data too.
	l.max_mib = 4; // 1024x1024
	EXPECT_FALSE(frame_after_update(640, 480, 1000, 1000, 100, 100, 400, 40000, l).ok());
	EXPECT_TRUE(frame_after_update(640, 480, 0, 0, 1024, 1024, 4096, 4096 * 1024, l).ok());
	EXPECT_FALSE(frame_after_update(640, 480, -1, 0, 1, 1, 4, 4, l).ok());
	EXPECT_FALSE(frame_after_update(640, 480, 0, 0, 0, 1, 4, 4, l).ok());
	EXPECT_FALSE(frame_after_update(640, 480, 0, 0, -5, 1, 4, 4, l).ok());
	EXPECT_FALSE(frame_after_update(640, 480, INT32_MAX, 0, 1, 1, 4, 4, l).ok());
	EXPECT_FALSE(frame_after_update(640, 480, 0, 0, 10, 10, 40, 40 * 9, l).ok());
	// A refused update does not need to fit; one within the frame never grows past the limit.
	EXPECT_TRUE(frame_after_update(2048, 2048, 0, 0, 1, 1, 4, 4, l).ok());
}

TEST(QmpLines, MatchedByIdNotBySubstring) {
	using K = QmpLine::Kind;
	EXPECT_EQ(classify_qmp_line(R"({"QMP": {"version": {}, "capabilities": []}})", 0).kind, K::greeting);
	EXPECT_EQ(classify_qmp_line(R"({"event": "RESUME", "data": {"return": 1}})", 3).kind, K::event);
	EXPECT_EQ(classify_qmp_line(R"({"return": {}, "id": 3})", 3).kind, K::reply_ok);
	// Another command's success is not ours; nor is one without an id, or with a string id.
	EXPECT_EQ(classify_qmp_line(R"({"return": {}, "id": 4})", 3).kind, K::other_reply);
	EXPECT_EQ(classify_qmp_line(R"({"return": {}})", 3).kind, K::other_reply);
	EXPECT_EQ(classify_qmp_line(R"({"return": {}, "id": "3"})", 3).kind, K::other_reply);
	// "return" in an error's text is an error.
	auto e = classify_qmp_line(R"({"error": {"class": "GenericError", "desc": "no \"return\" here"}, "id": 3})", 3);
	EXPECT_EQ(e.kind, K::reply_error);
	EXPECT_EQ(e.text, "no \"return\" here");
	EXPECT_EQ(classify_qmp_line(R"({"id": 3, "retur": "return"})", 3).kind, K::malformed);
	EXPECT_EQ(classify_qmp_line(R"("return")", 3).kind, K::malformed);
	EXPECT_EQ(classify_qmp_line(R"({"return": )", 3).kind, K::malformed);
	EXPECT_EQ(classify_qmp_line("", 3).kind, K::malformed);
	EXPECT_EQ(classify_qmp_line(std::string(100000, '['), 3).kind, K::malformed);
}

TEST(QmpLines, ReaderSplitsAndBoundsLines) {
	QmpLineReader r(16);
	std::string line;
	r.feed("ab", 2);
	EXPECT_FALSE(*r.next(line));
	r.feed("c\r\nde\nf", 7);
	ASSERT_TRUE(*r.next(line));
	EXPECT_EQ(line, "abc");
	ASSERT_TRUE(*r.next(line));
	EXPECT_EQ(line, "de");
	EXPECT_FALSE(*r.next(line));
	r.feed("0123456789abcdef", 16); // "f0123456789abcdef": 17 bytes and no newline
	EXPECT_FALSE(r.next(line).ok());
}

TEST(QmpRequest, NothingListeningFailsAtOnce) {
	auto r = QmpDisplayRequest::start("/nonexistent/vscanout-qmp.sock");
	ASSERT_FALSE(r.ok());
	EXPECT_NE(r.error().find("cannot connect"), std::string::npos) << r.error();
}

TEST(QmpRequest, StartingNeverWaitsForAPeerThatNeverAccepts) {
	// A QMP socket that listens and never accepts (QEMU, while another client holds QMP).
	const std::string path = "/tmp/vscanout-qmp-test-" + std::to_string(::getpid()) + ".sock";
	::unlink(path.c_str());
	UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	ASSERT_EQ(::listen(listener.get(), 0), 0);
	QemuOptions o;
	o.qmp = path;
	const auto t0 = std::chrono::steady_clock::now();
	std::vector<std::unique_ptr<QemuSource>> sources; // more than the backlog holds
	for (int i = 0; i < 4; i++) {
		auto s = QemuSource::create(o);
		ASSERT_TRUE(s.ok()) << s.error();
		sources.push_back(std::move(*s));
	}
	// And a wheel event of INT32_MIN steps is a few calls, not two billion.
	sources[0]->pointer_wheel(0, INT32_MIN);
	sources[0]->pointer_wheel(0, INT32_MAX);
	EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
	::unlink(path.c_str());
}

TEST(FdUtil, OnlyDmabufsAndShrinkSealedFilesAreSafeToMap) {
	UniqueFd plain(::memfd_create("plain", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	ASSERT_TRUE(plain);
	ASSERT_EQ(::ftruncate(plain.get(), 4096), 0);
	EXPECT_FALSE(fd_is_dmabuf(plain.get()));
	EXPECT_FALSE(fd_sealed_against_shrink(plain.get()));
	EXPECT_FALSE(fd_safe_to_map(plain.get()));
	ASSERT_EQ(::fcntl(plain.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
	EXPECT_TRUE(fd_safe_to_map(plain.get()));
	auto ours = make_memfd("ours", 4096); // what the QEMU source copies Scanout into
	ASSERT_TRUE(ours.ok());
	EXPECT_TRUE(fd_sealed_against_shrink(ours->get()));
	UniqueFd noseal(::memfd_create("noseal", MFD_CLOEXEC)); // F_SEAL_SEAL from the start
	ASSERT_TRUE(noseal);
	EXPECT_FALSE(fd_safe_to_map(noseal.get()));
	EXPECT_FALSE(fd_safe_to_map(-1));
}

TEST(LogEscape, ControlCharactersNeverReachTheTerminal) {
	EXPECT_EQ(log::escape("VGA"), "VGA");
	EXPECT_EQ(log::escape("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
	EXPECT_EQ(log::escape("a\nb\rc\td\x7f"), "a\\x0ab\\x0dc\\x09d\\x7f");
	EXPECT_EQ(log::escape("back\\slash"), "back\\x5cslash");
	EXPECT_EQ(log::escape("caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d"),
	          "caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d"); // UTF-8 stays
	EXPECT_EQ(log::escape("\xc2\x9b"
	                      "2J"),
	          "\\xc2\\x9b2J"); // C1 CSI in UTF-8
	EXPECT_EQ(log::escape("\x9b"
	                      "2J"),
	          "\\x9b2J");                             // a lone C1 byte
	EXPECT_EQ(log::escape("\xc3"), "\\xc3");          // cut UTF-8
	EXPECT_EQ(log::escape("\xc0\x80"), "\\xc0\\x80"); // overlong NUL
	EXPECT_EQ(log::escape(std::string_view("a\0b", 3)), "a\\x00b");
	EXPECT_EQ(log::escape(std::string(1000, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(LogRateLimit, OncePerIntervalWithTheCountLeftOut) {
	using namespace std::chrono;
	log::RateLimit r(seconds(10));
	const auto t0 = steady_clock::time_point{} + hours(1);
	EXPECT_TRUE(r.allow(t0));
	EXPECT_EQ(r.suppressed(), 0u);
	for (int i = 0; i < 50; i++) EXPECT_FALSE(r.allow(t0 + seconds(1)));
	EXPECT_TRUE(r.allow(t0 + seconds(11)));
	EXPECT_EQ(r.suppressed(), 50u);
	EXPECT_FALSE(r.allow(t0 + seconds(12)));
}

} // namespace
} // namespace vscanout::vgpu
