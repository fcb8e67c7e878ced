// The simulated vGPU: the built-in default source and test-pattern generator.
// Pixel formulas (README "Simulated vGPU" documents them for test writers):
//   primary, XRGB8888, frame n of head h, pixel (x, y):
//     R = (x + n) mod 256, G = (y + 64 h) mod 256, B = (16 n + 85 h) mod 256
//   cursor, ARGB8888 64x64, hotspot (4, 4): 0xFFFFFFFF where x < 16 and y < 16, else 0;
//     frame n puts the hotspot at ((37 n + 100) mod W, (23 n + 100) mod H).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/source.hpp"

namespace vscanout::vgpu {

struct Mode {
	uint32_t width = 0;
	uint32_t height = 0;
	bool operator==(const Mode &) const = default;
};

Result<Mode> parse_mode(std::string_view text); // "1280x800"

// Where the sim's buffers come from: memfds; udmabufs over them (/dev/udmabuf); vgem dumb
// buffers exported as dma-bufs (Linux's vgem, which also attaches and signals fences on request).
// automatic: udmabuf, else vgem, else memfd; on: udmabuf, else vgem, and an error if neither.
enum class DmabufPolicy { automatic, on, off, udmabuf, vgem };

// Fault injections: each makes one validation class reject the plane.
enum class Fault {
	none,
	fourcc_unknown,     // drm_format is no fourcc at all
	fourcc_unsupported, // a real fourcc vscanout does not show (NV12)
	width_zero,
	height_zero,
	too_large,        // width above 16384
	stride,           // stride below width * bytes per pixel
	size,             // stride * height above size
	offset,           // offset + size beyond the buffer
	cursor_too_large, // cursor plane above 512x512
	hotspot,          // hotspot outside the cursor image: not a rejection, means "no hotspot"
};

Result<Fault> parse_fault(std::string_view text); // the names above with '-' for '_'
const char *to_string(Fault f);

// One timed scenario step. Times are milliseconds since the source started.
struct ScriptEvent {
	// fence: attach a write fence (vgem buffers only) to the buffer the head's next flip shows;
	// signal: signal the head's fences.
	enum class Kind {
		disable,
		enable,
		mode,
		plug,
		unplug,
		cursor_on,
		cursor_off,
		draw,
		flip,
		fps,
		fault,
		fence,
		signal,
		quit,       // the sim ends: vscanout exits (status 0), logging that the command asked for it
		lose_device // fault injection beyond the source: the renderer's next submit reports a lost device
	};
	uint64_t at_ms = 0;
	Kind kind = Kind::flip;
	std::optional<uint32_t> head; // nullopt: every head ("*")
	Mode mode{};                  // mode, plug
	double fps = 0;               // fps
	Fault fault = Fault::none;    // fault
};

// Parses the script format (README "Simulated vGPU: scripts"); errors name the line.
Result<std::vector<ScriptEvent>> parse_script(std::string_view text);
// One command of the control channel: a script line without its time ("mode 0 800x600").
// An empty or comment-only line gives nullopt.
Result<std::optional<ScriptEvent>> parse_command(std::string_view line);

struct SimOptions {
	uint32_t heads = 2;
	std::vector<Mode> modes{{1280, 800}, {1024, 768}}; // head i gets modes[i % size]
	double fps = 30;                                   // flips per second; 0: static guest
	uint32_t buffers = 2;                              // page-flip ring per head
	bool cursor = true;
	uint64_t flips = 0; // stop flipping after this many (0: never)
	DmabufPolicy dmabuf = DmabufPolicy::automatic;
	std::vector<ScriptEvent> script;
	std::string control; // a FIFO (made if missing) whose lines are commands applied at once
};

// "heads=2,modes=1280x800/1024x768,fps=0,buffers=2,cursor=on,script=FILE,dmabuf=auto,flips=0"
// (dmabuf: auto, on, off, udmabuf, vgem)
Result<SimOptions> parse_sim_options(std::string_view spec);

// The formulas, shared by the sim and by tests that check it.
void draw_primary(uint8_t *base, uint32_t stride, uint32_t width, uint32_t height, uint32_t head, uint64_t frame);
void draw_cursor(uint8_t *base, uint32_t stride); // 64x64 ARGB8888
struct Point {
	int32_t x, y;
};
Point cursor_hotspot_at(uint64_t frame, Mode mode);
inline constexpr uint32_t kCursorSize = 64;
inline constexpr uint32_t kCursorHotX = 4, kCursorHotY = 4;

class SimAllocator;

class SimSource final : public Source {
public:
	static Result<std::unique_ptr<SimSource>> create(SimOptions options);
	~SimSource() override;

	std::string name() const override { return "sim"; }
	std::string end_reason() const override { return end_reason_; }
	std::vector<uint32_t> heads() const override;
	Result<PlaneInfo> query(uint32_t head, PlaneType type) override;
	Result<GuestBuffer> open_buffer(const PlaneInfo &plane) override;
	uint64_t damage_seq(uint32_t head) const override;
	std::vector<int> watch_fds() const override;
	void dispatch(int fd) override;

	// Counters for tests and stats.
	uint64_t flips_done(uint32_t head) const;
	uint64_t buffers_opened() const { return buffers_opened_; }
	bool dmabufs() const { return allocator_kind() != "memfd"; }
	std::string allocator_kind() const; // "memfd", "udmabuf" or "vgem"

	struct Head;

private:
	explicit SimSource(SimOptions options);
	void start();
	void apply(const ScriptEvent &ev);
	void arm_script_timer();
	void flip(Head &head, uint64_t count);
	void read_control();

	SimOptions options_;
	std::unique_ptr<SimAllocator> allocator_; // before heads_: their buffers' GEM handles need it
	std::map<uint32_t, std::unique_ptr<Head>> heads_;
	UniqueFd flip_timer_;
	UniqueFd script_timer_;
	UniqueFd control_;
	std::string control_pending_; // a command line not yet complete
	size_t next_script_ = 0;
	uint64_t start_ms_ = 0;
	uint64_t next_buffer_id_ = 1;
	uint64_t buffers_opened_ = 0;
	std::string end_reason_; // why the sim ended (the quit command), for the exit log
};

} // namespace vscanout::vgpu
