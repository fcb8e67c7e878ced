// The simulated vGPU against its documented contract: syntax, planes, pixels, timing, faults.
#include <drm_fourcc.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "base/fd_util.hpp"
#include "base/log.hpp"
#include "base/mapping.hpp"
#include "vgpu/sim.hpp"

namespace vscanout::vgpu {
namespace {

// Builds a source from an option string plus an inline script; fails the test on errors.
std::unique_ptr<SimSource> make_sim(const std::string &spec, const std::string &script = "") {
	auto opts = parse_sim_options(spec);
	EXPECT_TRUE(opts.ok()) << opts.error();
	if (!opts) return nullptr;
	auto events = parse_script(script);
	EXPECT_TRUE(events.ok()) << events.error();
	if (!events) return nullptr;
	opts->script = std::move(*events);
	opts->dmabuf = DmabufPolicy::off; // the pixel checks mmap the fd, which needs no dma-buf sync then
	auto sim = SimSource::create(std::move(*opts));
	EXPECT_TRUE(sim.ok()) << sim.error();
	return sim ? std::move(*sim) : nullptr;
}

PlaneInfo query_ok(SimSource &sim, uint32_t head, PlaneType type) {
	auto p = sim.query(head, type);
	EXPECT_TRUE(p.ok()) << p.error();
	return p ? *p : PlaneInfo{};
}

// Runs the source's timers as an event loop would until done() holds; false on timeout.
bool pump(SimSource &sim, const std::function<bool()> &done, int timeout_ms = 500) {
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
	while (!done()) {
		auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
		if (left.count() <= 0) return false;
		std::vector<pollfd> pfds;
		for (int fd : sim.watch_fds()) pfds.push_back({fd, POLLIN, 0});
		if (::poll(pfds.data(), pfds.size(), static_cast<int>(left.count())) <= 0) continue;
		for (const pollfd &p : pfds)
			if (p.revents & POLLIN) sim.dispatch(p.fd);
	}
	return true;
}

// Checks every pixel of an opened primary buffer against the formulas in sim.hpp.
void expect_frame(SimSource &sim, uint32_t head, uint64_t frame) {
	PlaneInfo p = query_ok(sim, head, PlaneType::primary);
	auto buf = sim.open_buffer(p);
	ASSERT_TRUE(buf.ok()) << buf.error();
	auto map = Mapping::map(buf->fd.get(), buf->byte_size, PROT_READ);
	ASSERT_TRUE(map.ok()) << map.error();
	for (uint32_t y = 0; y < p.height; y++)
		for (uint32_t x = 0; x < p.width; x++) {
			const uint8_t *px = map->data() + size_t(y) * p.stride + size_t(x) * 4;
			const uint8_t r = (x + frame) % 256, g = (y + 64 * head) % 256, b = (16 * frame + 85 * head) % 256;
			if (px[0] != b || px[1] != g || px[2] != r || px[3] != 0xFF) {
				ADD_FAILURE() << "head " << head << " frame " << frame << " pixel (" << x << "," << y << ") is B"
				              << int(px[0]) << " G" << int(px[1]) << " R" << int(px[2]) << " X" << int(px[3])
				              << ", expected B" << int(b) << " G" << int(g) << " R" << int(r) << " X255";
				return;
			}
		}
}

class SimTest : public ::testing::Test {
protected:
	void SetUp() override { log::set_level(log::Level::error); }
};

TEST_F(SimTest, ParseModeAcceptsAndRejects) {
	auto m = parse_mode("1280x800");
	ASSERT_TRUE(m.ok()) << m.error();
	EXPECT_EQ(*m, (Mode{1280, 800}));
	EXPECT_TRUE(parse_mode("16384x1").ok());
	for (const char *bad : {"", "1280", "0x800", "1280x0", "16385x100", "100x16385", "abcxdef", "12x", "x12", "-1x5",
	                        "+5x5", "1280x800x2", " 1280x800", "99999999999x1"}) {
		auto r = parse_mode(bad);
		EXPECT_FALSE(r.ok()) << "accepted '" << bad << "'";
		if (!r.ok()) {
			EXPECT_NE(r.error().find("invalid mode"), std::string::npos) << r.error();
		}
	}
}

TEST_F(SimTest, ParseSimOptionsDefaultsAndValues) {
	auto d = parse_sim_options("");
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(d->heads, 2u);
	EXPECT_EQ(d->modes.size(), 2u);
	EXPECT_EQ(d->buffers, 2u);

	auto o = parse_sim_options("heads=3,modes=640x480/800x600,fps=59.94,buffers=3,cursor=off,flips=7,dmabuf=off");
	ASSERT_TRUE(o.ok()) << o.error();
	EXPECT_EQ(o->heads, 3u);
	ASSERT_EQ(o->modes.size(), 2u);
	EXPECT_EQ(o->modes[1], (Mode{800, 600}));
	EXPECT_DOUBLE_EQ(o->fps, 59.94);
	EXPECT_EQ(o->buffers, 3u);
	EXPECT_FALSE(o->cursor);
	EXPECT_EQ(o->flips, 7u);
	EXPECT_EQ(o->dmabuf, DmabufPolicy::off);
}

TEST_F(SimTest, ParseSimOptionsRejects) {
	for (const char *bad :
	     {"heads=0", "heads=17", "heads=x", "fps=-1", "fps=2001", "fps=abc", "fps=nan", "buffers=0", "buffers=9",
	      "cursor=maybe", "dmabuf=yes", "modes=1280x", "flips=-3", "heads", "script=/nonexistent/vscanout.script"}) {
		auto r = parse_sim_options(bad);
		EXPECT_FALSE(r.ok()) << "accepted '" << bad << "'";
	}
	auto r = parse_sim_options("heads=2,colour=blue");
	ASSERT_FALSE(r.ok());
	EXPECT_NE(r.error().find("'colour'"), std::string::npos) << r.error();
	EXPECT_NE(r.error().find("heads, modes, fps"), std::string::npos) << r.error();
}

TEST_F(SimTest, ParseSimOptionsReadsScriptFile) {
	char path[] = "/tmp/vscanout-sim-test-XXXXXX";
	UniqueFd fd(::mkstemp(path));
	ASSERT_TRUE(fd);
	const std::string good = "# boot\n0 disable *\n500 enable 1\n";
	ASSERT_EQ(::write(fd.get(), good.data(), good.size()), static_cast<ssize_t>(good.size()));
	auto o = parse_sim_options(std::string("fps=0,script=") + path);
	EXPECT_TRUE(o.ok()) << o.error();
	if (o) {
		EXPECT_EQ(o->script.size(), 2u);
	}

	const std::string bad = "\n10 flp 0\n";
	ASSERT_EQ(::pwrite(fd.get(), bad.data(), bad.size(), 0), static_cast<ssize_t>(bad.size()));
	ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bad.size())), 0);
	auto e = parse_sim_options(std::string("script=") + path);
	::unlink(path);
	ASSERT_FALSE(e.ok());
	EXPECT_NE(e.error().find(path), std::string::npos) << e.error();
	EXPECT_NE(e.error().find("script line 2: unknown command 'flp'"), std::string::npos) << e.error();
}

TEST_F(SimTest, ParseScriptGood) {
	auto s = parse_script("# a scenario\n\n0 disable *   # guest still booting\n"
	                      "100 enable *\n100 mode 1 800x600\n200 plug 7 640x480\n300 cursor 0 off\n"
	                      "300 cursor * on\n400 draw 0\n400 flip *\n500 fps 12.5\n600 fault 0 stride\n700 unplug 7\n");
	ASSERT_TRUE(s.ok()) << s.error();
	ASSERT_EQ(s->size(), 11u);
	const auto &e = *s;
	EXPECT_EQ(e[0].kind, ScriptEvent::Kind::disable);
	EXPECT_FALSE(e[0].head.has_value());
	EXPECT_EQ(e[2].kind, ScriptEvent::Kind::mode);
	EXPECT_EQ(e[2].head, 1u);
	EXPECT_EQ(e[2].mode, (Mode{800, 600}));
	EXPECT_EQ(e[3].kind, ScriptEvent::Kind::plug);
	EXPECT_EQ(e[3].at_ms, 200u);
	EXPECT_EQ(e[4].kind, ScriptEvent::Kind::cursor_off);
	EXPECT_EQ(e[5].kind, ScriptEvent::Kind::cursor_on);
	EXPECT_EQ(e[6].kind, ScriptEvent::Kind::draw);
	EXPECT_EQ(e[7].kind, ScriptEvent::Kind::flip);
	EXPECT_DOUBLE_EQ(e[8].fps, 12.5);
	EXPECT_EQ(e[9].fault, Fault::stride);
	EXPECT_EQ(e[10].kind, ScriptEvent::Kind::unplug);
	EXPECT_TRUE(parse_script("").ok());
}

TEST_F(SimTest, ParseScriptErrorsNameTheLine) {
	struct Case {
		const char *text, *expect;
	} cases[] = {
	    {"0 flip 0\n# c\n10 flp 0\n", "script line 3: unknown command 'flp'"},
	    {"100 flip 0\n50 flip 0\n", "script line 2: time 50 ms is before"},
	    {"soon flip 0\n", "script line 1: expected a time"},
	    {"10\n", "script line 1: missing command"},
	    {"10 flip\n", "script line 1: wrong number of arguments"},
	    {"10 flip 0 1\n", "script line 1: wrong number of arguments"},
	    {"10 flip zero\n", "script line 1: invalid head 'zero'"},
	    {"10 mode * 800x600\n", "script line 1: 'mode' needs one head number"},
	    {"10 mode 0 800\n", "script line 1: invalid mode '800'"},
	    {"10 cursor 0 maybe\n", "script line 1: cursor must be 'on' or 'off'"},
	    {"10 fps -3\n", "script line 1: invalid frame rate"},
	    {"\n\n10 fault 0 bogus\n", "script line 3: unknown fault class 'bogus'"},
	};
	for (const Case &c : cases) {
		auto r = parse_script(c.text);
		ASSERT_FALSE(r.ok()) << "accepted: " << c.text;
		EXPECT_NE(r.error().find(c.expect), std::string::npos) << "got: " << r.error();
	}
}

TEST_F(SimTest, FaultNamesRoundTrip) {
	for (Fault f :
	     {Fault::none, Fault::fourcc_unknown, Fault::fourcc_unsupported, Fault::width_zero, Fault::height_zero,
	      Fault::too_large, Fault::stride, Fault::size, Fault::offset, Fault::cursor_too_large, Fault::hotspot}) {
		auto p = parse_fault(to_string(f));
		ASSERT_TRUE(p.ok()) << p.error();
		EXPECT_EQ(*p, f);
	}
	EXPECT_FALSE(parse_fault("cursor_too_large").ok());
	EXPECT_STREQ(to_string(Fault::cursor_too_large), "cursor-too-large");
}

TEST_F(SimTest, QueryAnswersBothHeads) {
	auto sim = make_sim("fps=0");
	ASSERT_TRUE(sim);
	EXPECT_EQ(sim->heads(), (std::vector<uint32_t>{0, 1}));
	EXPECT_TRUE(sim->watch_fds().empty());
	EXPECT_FALSE(sim->query(2, PlaneType::primary).ok());

	std::set<uint64_t> ids;
	const Mode modes[] = {{1280, 800}, {1024, 768}};
	for (uint32_t h = 0; h < 2; h++) {
		PlaneInfo p = query_ok(*sim, h, PlaneType::primary);
		EXPECT_EQ(p.state, PlaneState::enabled);
		EXPECT_EQ(p.head_id, h);
		EXPECT_EQ(p.drm_format, DRM_FORMAT_XRGB8888);
		EXPECT_EQ(p.drm_format_mod, DRM_FORMAT_MOD_LINEAR);
		EXPECT_EQ(p.width, modes[h].width);
		EXPECT_EQ(p.height, modes[h].height);
		EXPECT_EQ(p.stride, modes[h].width * 4); // both widths give 256-byte-aligned rows already
		EXPECT_EQ(p.size, align_up(uint64_t(p.stride) * p.height, 4096));
		EXPECT_EQ(p.offset, 0u);
		EXPECT_EQ(p.x_hot, kNoHotspot);
		EXPECT_NE(p.buffer_id, 0u);
		ids.insert(p.buffer_id);

		PlaneInfo c = query_ok(*sim, h, PlaneType::cursor);
		EXPECT_EQ(c.state, PlaneState::enabled);
		EXPECT_EQ(c.drm_format, DRM_FORMAT_ARGB8888);
		EXPECT_EQ(c.drm_format_mod, DRM_FORMAT_MOD_LINEAR);
		EXPECT_EQ(c.width, 64u);
		EXPECT_EQ(c.height, 64u);
		EXPECT_EQ(c.stride, 256u);
		EXPECT_EQ(c.size, 16384u);
		EXPECT_EQ(c.x_hot, 4u);
		EXPECT_EQ(c.y_hot, 4u);
		EXPECT_EQ(c.x_pos, 100 - 4);
		EXPECT_EQ(c.y_pos, 100 - 4);
		ids.insert(c.buffer_id);
	}
	EXPECT_EQ(ids.size(), 4u) << "buffer ids must be distinct across heads and planes";
}

TEST_F(SimTest, PixelsFollowTheFormulas) {
	auto sim = make_sim("fps=0,modes=300x7/257x5");
	ASSERT_TRUE(sim);
	expect_frame(*sim, 0, 0);
	expect_frame(*sim, 1, 0);

	PlaneInfo c = query_ok(*sim, 0, PlaneType::cursor);
	auto buf = sim->open_buffer(c);
	ASSERT_TRUE(buf.ok()) << buf.error();
	auto map = Mapping::map(buf->fd.get(), buf->byte_size, PROT_READ);
	ASSERT_TRUE(map.ok());
	for (uint32_t y = 0; y < 64; y++)
		for (uint32_t x = 0; x < 64; x++) {
			uint32_t v;
			std::memcpy(&v, map->data() + y * c.stride + x * 4, 4);
			ASSERT_EQ(v, (x < 16 && y < 16) ? 0xFFFFFFFFu : 0u) << "cursor pixel " << x << "," << y;
		}
}

TEST_F(SimTest, FlipsAlternateBetweenTwoBuffers) {
	auto sim = make_sim("fps=0,buffers=2,modes=64x32", "20 flip *\n60 flip *\n100 flip 0\n");
	ASSERT_TRUE(sim);
	ASSERT_EQ(sim->watch_fds().size(), 1u);
	std::vector<uint64_t> ids{query_ok(*sim, 0, PlaneType::primary).buffer_id};
	for (uint64_t n = 1; n <= 3; n++) {
		ASSERT_TRUE(pump(*sim, [&] { return sim->flips_done(0) >= n; })) << "flip " << n << " never came";
		ASSERT_EQ(sim->flips_done(0), n) << "two script events came at once: the machine is too loaded";
		ids.push_back(query_ok(*sim, 0, PlaneType::primary).buffer_id);
		expect_frame(*sim, 0, n);
	}
	EXPECT_NE(ids[0], ids[1]);
	EXPECT_EQ(ids[2], ids[0]);
	EXPECT_EQ(ids[3], ids[1]);
	EXPECT_EQ(sim->flips_done(1), 2u);
	EXPECT_EQ(sim->damage_seq(0), 0u);
}

TEST_F(SimTest, TimerFlipsStopExactlyAtTheLimit) {
	auto sim = make_sim("fps=1000,flips=5,heads=2,modes=64x32");
	ASSERT_TRUE(sim);
	std::vector<uint32_t> changed;
	sim->set_events({.head_added = {}, .head_removed = {}, .head_changed = [&](uint32_t h) { changed.push_back(h); }});
	ASSERT_TRUE(pump(*sim, [&] { return sim->flips_done(0) == 5 && sim->flips_done(1) == 5; }));
	EXPECT_FALSE(changed.empty());
	// The timer is disarmed now: nothing more arrives and the counter stays put.
	EXPECT_FALSE(pump(
	    *sim, [] { return false; }, 30));
	EXPECT_EQ(sim->flips_done(0), 5u);
	expect_frame(*sim, 1, 5);
}

TEST_F(SimTest, ScriptedRateSkipsDisabledHeads) {
	// No flips until the script sets a rate; a disabled head keeps its frame counter.
	auto sim = make_sim("fps=0,flips=3,modes=64x32", "0 disable 1\n20 fps 1000\n");
	ASSERT_TRUE(sim);
	ASSERT_EQ(sim->watch_fds().size(), 2u);
	ASSERT_TRUE(pump(*sim, [&] { return sim->flips_done(0) == 3; }));
	EXPECT_FALSE(pump(
	    *sim, [] { return false; }, 30));
	EXPECT_EQ(sim->flips_done(0), 3u);
	EXPECT_EQ(sim->flips_done(1), 0u);
	expect_frame(*sim, 0, 3);
}

TEST_F(SimTest, DrawKeepsTheIdAndAdvancesDamage) {
	auto sim = make_sim("fps=0,modes=64x32", "20 draw 0\n40 draw 0\n");
	ASSERT_TRUE(sim);
	const uint64_t id = query_ok(*sim, 0, PlaneType::primary).buffer_id;
	ASSERT_TRUE(pump(*sim, [&] { return sim->damage_seq(0) == 2; }));
	EXPECT_EQ(sim->damage_seq(1), 0u);
	EXPECT_EQ(sim->flips_done(0), 0u);
	EXPECT_EQ(query_ok(*sim, 0, PlaneType::primary).buffer_id, id);
	expect_frame(*sim, 0, 2);
	// The cursor follows the frame counter, draws included.
	EXPECT_EQ(query_ok(*sim, 0, PlaneType::cursor).x_pos, (37 * 2 + 100) % 64 - 4);
}

TEST_F(SimTest, ModeEventGivesNewIds) {
	auto sim = make_sim("fps=0,buffers=2", "30 mode 0 640x480\n");
	ASSERT_TRUE(sim);
	int changed = 0;
	sim->set_events({.head_added = {}, .head_removed = {}, .head_changed = [&](uint32_t h) { changed += h == 0; }});
	PlaneInfo before = query_ok(*sim, 0, PlaneType::primary);
	ASSERT_TRUE(pump(*sim, [&] { return changed > 0; }));
	PlaneInfo after = query_ok(*sim, 0, PlaneType::primary);
	EXPECT_EQ(after.width, 640u);
	EXPECT_EQ(after.height, 480u);
	EXPECT_EQ(after.stride, 2560u);
	EXPECT_GT(after.buffer_id, before.buffer_id);
	expect_frame(*sim, 0, 0);
	auto old = sim->open_buffer(before);
	ASSERT_FALSE(old.ok());
	EXPECT_NE(old.error().find("unknown buffer id " + std::to_string(before.buffer_id) + " for head 0"),
	          std::string::npos)
	    << old.error();
}

TEST_F(SimTest, ControlFifoAppliesCommandsAtOnce) {
	char dir[] = "/tmp/vsc-sim-XXXXXX";
	ASSERT_NE(::mkdtemp(dir), nullptr);
	const std::string fifo = std::string(dir) + "/ctl";
	const int fds_before = count_open_fds();
	{
		auto sim = make_sim("fps=0,heads=2,control=" + fifo);
		ASSERT_TRUE(sim);
		std::vector<uint32_t> changed;
		sim->set_events(
		    {.head_added = {}, .head_removed = {}, .head_changed = [&](uint32_t h) { changed.push_back(h); }});
		const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		ASSERT_GE(w, 0);
		// A command split over two writes, a comment, a blank line, a bad command, then two more.
		const std::string part1 = "mode 0 64", part2 = "0x480\n# a comment\n\nbogus 1\nflip 1\ncursor 0 off\n";
		ASSERT_EQ(::write(w, part1.data(), part1.size()), ssize_t(part1.size()));
		ASSERT_TRUE(pump(
		                *sim, [&] { return false; }, 50) == false); // nothing complete yet
		EXPECT_TRUE(changed.empty());
		ASSERT_EQ(::write(w, part2.data(), part2.size()), ssize_t(part2.size()));
		::close(w); // a writer closing must not make the FIFO readable forever
		ASSERT_TRUE(pump(*sim, [&] { return changed.size() >= 3; }));
		EXPECT_EQ(changed, (std::vector<uint32_t>{0, 1, 0}));
		EXPECT_EQ(query_ok(*sim, 0, PlaneType::primary).width, 640u);
		expect_frame(*sim, 1, 1);
		EXPECT_EQ(query_ok(*sim, 0, PlaneType::cursor).state, PlaneState::disabled);
		pollfd p{sim->watch_fds().back(), POLLIN, 0};
		EXPECT_EQ(::poll(&p, 1, 0), 0) << "the control FIFO stays readable after its writer closed";
	}
	EXPECT_EQ(count_open_fds(), fds_before);
	::unlink(fifo.c_str());
	::rmdir(dir);
}

TEST_F(SimTest, ControlMustBeAFifo) {
	auto opts = parse_sim_options("control=/proc/self/status");
	ASSERT_TRUE(opts.ok()) << opts.error();
	auto sim = SimSource::create(std::move(*opts));
	ASSERT_FALSE(sim.ok());
	EXPECT_NE(sim.error().find("is not a FIFO"), std::string::npos) << sim.error();
}

TEST_F(SimTest, ParseCommandIsAScriptLineWithoutTime) {
	auto ev = parse_command("mode 2 800x600 # comment");
	ASSERT_TRUE(ev.ok()) << ev.error();
	ASSERT_TRUE(ev->has_value());
	EXPECT_EQ((*ev)->kind, ScriptEvent::Kind::mode);
	EXPECT_EQ((*ev)->head, 2u);
	EXPECT_EQ((*ev)->mode, (Mode{800, 600}));
	auto blank = parse_command("   # only a comment");
	ASSERT_TRUE(blank.ok());
	EXPECT_FALSE(blank->has_value());
	EXPECT_FALSE(parse_command("mode 0").ok());
}

TEST_F(SimTest, PlugAndUnplug) {
	auto sim = make_sim("fps=0,heads=1", "20 plug 5 320x200\n40 unplug 0\n");
	ASSERT_TRUE(sim);
	std::vector<uint32_t> added, removed;
	sim->set_events({.head_added = [&](uint32_t h) { added.push_back(h); },
	                 .head_removed = [&](uint32_t h) { removed.push_back(h); },
	                 .head_changed = {}});
	ASSERT_TRUE(pump(*sim, [&] { return !removed.empty(); }));
	EXPECT_EQ(added, std::vector<uint32_t>{5});
	EXPECT_EQ(removed, std::vector<uint32_t>{0});
	EXPECT_EQ(sim->heads(), std::vector<uint32_t>{5});
	EXPECT_EQ(query_ok(*sim, 5, PlaneType::primary).width, 320u);
	EXPECT_FALSE(sim->query(0, PlaneType::primary).ok());
}

TEST_F(SimTest, DisabledHeadAndCursorOffAreZero) {
	auto sim = make_sim("fps=0", "0 disable 1\n0 cursor 0 off\n");
	ASSERT_TRUE(sim);
	auto zero = [](const PlaneInfo &p) {
		return p.state == PlaneState::disabled && p.drm_format == 0 && p.drm_format_mod == 0 && p.width == 0 &&
		       p.height == 0 && p.stride == 0 && p.size == 0 && p.x_pos == 0 && p.y_pos == 0 && p.x_hot == 0 &&
		       p.y_hot == 0 && p.buffer_id == 0 && p.offset == 0;
	};
	EXPECT_TRUE(zero(query_ok(*sim, 1, PlaneType::primary)));
	EXPECT_TRUE(zero(query_ok(*sim, 1, PlaneType::cursor)));
	EXPECT_TRUE(zero(query_ok(*sim, 0, PlaneType::cursor)));
	EXPECT_TRUE(query_ok(*sim, 0, PlaneType::primary).enabled());
}

TEST_F(SimTest, EachFaultBreaksItsField) {
	auto good = make_sim("fps=0");
	ASSERT_TRUE(good);
	const PlaneInfo gp = query_ok(*good, 0, PlaneType::primary), gc = query_ok(*good, 0, PlaneType::cursor);
	struct Case {
		const char *name;
		bool cursor;
		std::function<bool(const PlaneInfo &)> broken;
	} cases[] = {
	    {"fourcc-unknown", false, [](const PlaneInfo &p) { return p.drm_format == fourcc_code('Z', 'Z', 'Z', '9'); }},
	    {"fourcc-unsupported", false, [](const PlaneInfo &p) { return p.drm_format == DRM_FORMAT_NV12; }},
	    {"width-zero", false, [](const PlaneInfo &p) { return p.width == 0 && p.height == 800; }},
	    {"height-zero", false, [](const PlaneInfo &p) { return p.height == 0 && p.width == 1280; }},
	    {"too-large", false, [](const PlaneInfo &p) { return p.width == 16385; }},
	    {"stride", false, [](const PlaneInfo &p) { return p.stride < p.width * 4; }},
	    {"size", false, [](const PlaneInfo &p) { return uint64_t(p.stride) * p.height > p.size; }},
	    {"offset", false, [&](const PlaneInfo &p) { return p.offset + p.size > gp.size; }},
	    {"cursor-too-large", true,
	     [](const PlaneInfo &p) {
		     return p.width == 1024 && p.height == 1024 && p.stride == 4096 && p.size == 4u << 20;
	     }},
	    {"hotspot", true, [](const PlaneInfo &p) { return p.x_hot == 1000 && p.y_hot == 1000; }},
	};
	for (const Case &c : cases) {
		SCOPED_TRACE(c.name);
		auto sim = make_sim("fps=0", std::string("0 fault 0 ") + c.name + "\n");
		ASSERT_TRUE(sim);
		PlaneInfo bad = query_ok(*sim, 0, c.cursor ? PlaneType::cursor : PlaneType::primary);
		PlaneInfo other = query_ok(*sim, 0, c.cursor ? PlaneType::primary : PlaneType::cursor);
		const PlaneInfo &normal = c.cursor ? gc : gp;
		EXPECT_TRUE(c.broken(bad));
		EXPECT_EQ(bad.state, PlaneState::enabled);
		// A fresh "bad generation" id that still opens the real buffer.
		EXPECT_NE(bad.buffer_id, query_ok(*good, 0, c.cursor ? PlaneType::cursor : PlaneType::primary).buffer_id);
		auto buf = sim->open_buffer(bad);
		ASSERT_TRUE(buf.ok()) << buf.error();
		EXPECT_EQ(buf->byte_size, normal.size);
		// The other plane stays good, and so does head 1.
		EXPECT_EQ(other.drm_format, c.cursor ? gp.drm_format : gc.drm_format);
		EXPECT_EQ(other.width, c.cursor ? gp.width : gc.width);
		EXPECT_EQ(query_ok(*sim, 1, PlaneType::primary).drm_format, DRM_FORMAT_XRGB8888);
	}
	auto cleared = make_sim("fps=0", "0 fault 0 stride\n0 fault 0 none\n");
	ASSERT_TRUE(cleared);
	EXPECT_EQ(query_ok(*cleared, 0, PlaneType::primary).stride, 5120u);
}

TEST_F(SimTest, CursorHotspotAndNegativePosition) {
	EXPECT_EQ(cursor_hotspot_at(0, {1280, 800}).x, 100);
	EXPECT_EQ(cursor_hotspot_at(3, {1280, 800}).x, 211);
	EXPECT_EQ(cursor_hotspot_at(3, {1280, 800}).y, 169);
	EXPECT_EQ(cursor_hotspot_at(40, {1280, 800}).x, (37 * 40 + 100) % 1280);
	EXPECT_EQ(cursor_hotspot_at(40, {1280, 800}).y, (23 * 40 + 100) % 800);

	// 50x50, frame 0: the hotspot sits at (0, 0), so the image hangs off the top-left corner.
	auto sim = make_sim("fps=0,modes=50x50");
	ASSERT_TRUE(sim);
	PlaneInfo c = query_ok(*sim, 0, PlaneType::cursor);
	EXPECT_EQ(c.x_pos, -4);
	EXPECT_EQ(c.y_pos, -4);
	EXPECT_EQ(c.x_pos + int32_t(c.x_hot), 0);

	auto moved = make_sim("fps=0,modes=1280x800", "0 flip 0\n0 flip 0\n0 flip 0\n");
	ASSERT_TRUE(moved);
	PlaneInfo m = query_ok(*moved, 0, PlaneType::cursor);
	EXPECT_EQ(m.x_pos, 211 - 4);
	EXPECT_EQ(m.y_pos, 169 - 4);
}

TEST_F(SimTest, OpenBufferGivesNewFdsAndLeaksNone) {
	auto sim = make_sim("fps=0");
	ASSERT_TRUE(sim);
	PlaneInfo p = query_ok(*sim, 0, PlaneType::primary);
	const int before = count_open_fds();
	{
		std::vector<GuestBuffer> bufs;
		std::set<int> fds;
		for (int i = 0; i < 10; i++) {
			auto b = sim->open_buffer(p);
			ASSERT_TRUE(b.ok()) << b.error();
			EXPECT_EQ(b->kind, BufferKind::memfd);
			EXPECT_EQ(b->byte_size, p.size);
			fds.insert(b->fd.get());
			bufs.push_back(std::move(*b));
		}
		EXPECT_EQ(fds.size(), 10u);
		EXPECT_EQ(count_open_fds(), before + 10);
	}
	EXPECT_EQ(count_open_fds(), before);
	EXPECT_EQ(sim->buffers_opened(), 10u);

	PlaneInfo bogus = p;
	bogus.buffer_id = 999999;
	auto r = sim->open_buffer(bogus);
	ASSERT_FALSE(r.ok());
	EXPECT_EQ(r.error(), "unknown buffer id 999999 for head 0");
}

TEST_F(SimTest, DmabufPolicy) {
	auto o = parse_sim_options("fps=0,heads=1,dmabuf=on");
	ASSERT_TRUE(o.ok());
	auto sim = SimSource::create(std::move(*o));
	if (::access("/dev/udmabuf", R_OK | W_OK) != 0) {
		ASSERT_FALSE(sim.ok());
		EXPECT_NE(sim.error().find("/dev/udmabuf"), std::string::npos) << sim.error();
	} else {
		ASSERT_TRUE(sim.ok()) << sim.error();
		EXPECT_TRUE((*sim)->dmabufs());
		auto b = (*sim)->open_buffer(query_ok(**sim, 0, PlaneType::primary));
		ASSERT_TRUE(b.ok()) << b.error();
		EXPECT_EQ(b->kind, BufferKind::dmabuf);
	}
	auto a = parse_sim_options("fps=0,heads=1,dmabuf=auto");
	ASSERT_TRUE(a.ok());
	auto fallback = SimSource::create(std::move(*a));
	EXPECT_TRUE(fallback.ok()) << fallback.error();
}

TEST_F(SimTest, DrawPrimaryKeepsToTheImage) {
	// Rows are padded to 256 bytes: the pattern must stop at the width (and draw_primary must
	// handle widths that are no multiple of its 256-pixel inner loop).
	const uint32_t w = 300, h = 3, stride = 1280;
	std::vector<uint8_t> buf(size_t(stride) * h + 64, 0xAB);
	draw_primary(buf.data(), stride, w, h, 2, 9);
	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			const uint8_t *px = buf.data() + y * stride + x * 4;
			ASSERT_EQ(px[0], (16 * 9 + 85 * 2) % 256);
			ASSERT_EQ(px[1], (y + 64 * 2) % 256);
			ASSERT_EQ(px[2], (x + 9) % 256);
			ASSERT_EQ(px[3], 0xFF);
		}
		for (uint32_t i = w * 4; i < stride; i++) ASSERT_EQ(buf[y * stride + i], 0xAB) << "row " << y << " byte " << i;
	}
}

} // namespace
} // namespace vscanout::vgpu

namespace vscanout::vgpu {
namespace {

TEST(SimFences, FenceAndSignalAreCommands) {
	auto f = parse_command("fence 1");
	ASSERT_TRUE(f.ok()) << f.error();
	ASSERT_TRUE(f->has_value());
	EXPECT_EQ((*f)->kind, ScriptEvent::Kind::fence);
	EXPECT_EQ((*f)->head, std::optional<uint32_t>(1));
	auto s = parse_command("signal *");
	ASSERT_TRUE(s.ok()) << s.error();
	EXPECT_EQ((*s)->kind, ScriptEvent::Kind::signal);
	EXPECT_FALSE((*s)->head.has_value());
	EXPECT_FALSE(parse_command("fence").ok());
}

TEST(SimFences, DmabufKindsParse) {
	for (const char *v : {"udmabuf", "vgem", "on", "off", "auto"}) {
		auto o = parse_sim_options(std::string("dmabuf=") + v);
		EXPECT_TRUE(o.ok()) << v << ": " << o.error();
	}
	auto bad = parse_sim_options("dmabuf=dumb");
	ASSERT_FALSE(bad.ok());
	EXPECT_NE(bad.error().find("udmabuf or vgem"), std::string::npos) << bad.error();
}

TEST(SimFences, VgemAskedForWhereThereIsNoneIsAClearError) {
	if (::access("/dev/dri", F_OK) == 0) GTEST_SKIP() << "this machine has DRM nodes; the VM test covers vgem";
	auto o = parse_sim_options("fps=0,heads=1,dmabuf=vgem");
	ASSERT_TRUE(o.ok());
	auto sim = SimSource::create(std::move(*o));
	ASSERT_FALSE(sim.ok());
	EXPECT_NE(sim.error().find("vgem"), std::string::npos) << sim.error();
}

} // namespace
} // namespace vscanout::vgpu
