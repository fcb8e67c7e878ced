// The QEMU source: a running QEMU VM's display through `-display dbus` (QEMU 7.0+).
//
// On the bus (the session bus, or an address given), /org/qemu/Display1/VM lists the consoles;
// each console of type Graphic is one head, its id the console's Head property. For each,
// vscanout hands QEMU one end of a socketpair (Console.RegisterListener); on it QEMU is the
// D-Bus authentication server and calls our /org/qemu/Display1/Listener object: Scanout and
// Update carry pixels inline (copied into a memfd per head: the same buffer id while the size
// stays, a damage notice for each update), ScanoutDMABUF hands a dma-buf (a new buffer id),
// Disable turns the plane off, CursorDefine and MouseSet make the cursor plane.
//
// Nothing here blocks: every call into QEMU is asynchronous, and every connection is served from
// the compositor's event loop through one epoll fd (QEMU's main loop waits on its listeners).
// When QEMU exits its heads lose their planes (connected() is false: the no-signal frame) and
// come back when a QEMU owns org.qemu again.
//
// The code, one concern a file: qemu_source.cpp (the bus or QMP connection, dispatch, damage
// once a frame, input), qemu_console.cpp (consoles as heads: enumeration, the listener
// connection and its vtable, planes), qemu_listener.cpp (each listener method's parsing and
// handling, testable on its own), qemu_bounds.cpp (the spec, the pixel calls' bounds, formats).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/mapping.hpp"
#include "base/result.hpp"
#include "base/unique_fd.hpp"
#include "vgpu/dbus_loop.hpp"
#include "vgpu/qemu_qmp.hpp"
#include "vgpu/sd_bus_ref.hpp"
#include "vgpu/source.hpp"

namespace vscanout::vgpu {

namespace qemu {
enum class Told;
struct CallContext;
} // namespace qemu

// What one QEMU may make vscanout hold: QEMU (and through it the guest) is not trusted.
struct QemuLimits {
	static constexpr uint32_t kDefaultMaxHeads = 8;
	static constexpr uint32_t kDefaultMaxMib = 64; // a 4096x4096 frame
	uint32_t max_heads = kDefaultMaxHeads;         // graphic consoles shown; the rest are left out (logged)
	uint32_t max_mib = kDefaultMaxMib;             // the largest frame of one head, in MiB (4 bytes a pixel)
	// How often an Update may make a new frame (QEMU sends no Scanout for a VGA mode change: a text
	// screen grows row by row, some 15 MB in all): new frames worth at most this many max-mib
	// frames a second; further growth is refused until the next second.
	static constexpr uint64_t kUpdateGrowthFramesPerSecond = 2;
	uint64_t max_frame_bytes() const { return uint64_t{max_mib} << 20; }
};

struct QemuOptions {
	std::string address; // D-Bus address; empty: the session bus (DBUS_SESSION_BUS_ADDRESS)
	std::string qmp;     // QEMU's QMP socket: peer to peer (-display dbus,p2p=yes) instead of a bus
	bool once = false;   // QEMU exiting ends the source (SourceEvents::ended) instead of waiting
	QemuLimits limits;
};

// "qemu", "qemu:<D-Bus address>" or "qemu:qmp:<QMP socket path>" -> options, each optionally
// followed by ",max-heads=N" and/or ",max-mib=M" (or "qemu:max-heads=N,..." for the session bus).
Result<QemuOptions> parse_qemu_spec(const std::string &spec);

// The bounds of the listener's pixel calls, as pure functions of their arguments (unit-tested on
// synthetic input). A frame's size and its bytes: what a Scanout(w, h, stride, bytes) may be.
// bpp: bytes a pixel of the data (qemu_pixel_bytes); the frame is 4 bytes a pixel whatever it is.
Status check_scanout(uint32_t w, uint32_t h, uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp = 4);

// What an Update(x, y, w, h, stride, bytes) does to a frame of fw x fh: the frame's size after
// it, and whether the old pixels stay (false: a new surface begins). An Update reaching past
// the frame grows it (QEMU 7.2 sends no Scanout when a VGA mode changes); one past the limits
// is refused.
struct FrameAfterUpdate {
	uint32_t width = 0, height = 0;
	bool keep = true;
	bool resized = false;
};
Result<FrameAfterUpdate> frame_after_update(uint32_t fw, uint32_t fh, int32_t x, int32_t y, int32_t w, int32_t h,
                                            uint32_t stride, size_t bytes, const QemuLimits &limits, uint32_t bpp = 4);

// QEMU's pixman formats of the listener API, as DRM fourccs (0 where vscanout has none).
uint32_t drm_format_of_pixman(uint32_t pixman_format);
// Bytes a pixel of the Scanout/Update formats vscanout takes (x8r8g8b8, a8r8g8b8: 4; r5g6b5,
// x1r5g5b5, what QEMU sends for a guest's 16- and 15-bit modes: 2); 0 for others.
uint32_t qemu_pixel_bytes(uint32_t pixman_format);
// One row of `pixels` pixels of such a format as XRGB8888 (the QEMU source's frame format).
void qemu_row_to_xrgb8888(uint32_t pixman_format, const uint8_t *src, uint8_t *dst, uint32_t pixels);

// The key number QEMU's Keyboard interface takes (its "qnum": PC XT scancode set 1, 0x80 added
// for E0-prefixed keys) for a Linux evdev KEY_* code; 0 for keys QEMU has no number for.
uint32_t qemu_key_number(uint32_t evdev_code);
// QEMU's Mouse button for an evdev BTN_* code (0 left, 1 middle, 2 right, 5 side, 6 extra);
// -1 for others.
int qemu_button(uint32_t evdev_button);

class QemuSource final : public Source {
public:
	static Result<std::unique_ptr<QemuSource>> create(QemuOptions options);
	~QemuSource() override;

	std::string name() const override { return "qemu"; }
	std::vector<uint32_t> heads() const override;
	Result<PlaneInfo> query(uint32_t head, PlaneType type) override;
	Result<GuestBuffer> open_buffer(const PlaneInfo &plane) override;
	uint64_t damage_seq(uint32_t head) const override;
	std::optional<RowSpan> damage_rows(uint32_t head, uint64_t since) override;
	bool connected(uint32_t head) const override;
	std::vector<int> watch_fds() const override { return {loop_.fd()}; }
	void dispatch(int fd) override;

	// Input for a head's console; ignored while its QEMU is gone.
	bool takes_input() const override { return true; }
	void key(uint32_t head, uint32_t evdev_code, bool pressed) override;
	void pointer_button(uint32_t head, uint32_t evdev_button, bool pressed) override;
	void pointer_to(uint32_t head, uint32_t x, uint32_t y) override;
	void pointer_by(uint32_t head, int32_t dx, int32_t dy) override;
	void pointer_wheel(uint32_t head, int32_t steps) override;
	bool pointer_absolute(uint32_t head) const override;
	void window_resized(uint32_t head, uint32_t width, uint32_t height) override;

	// One console (qemu_console.hpp). Public for the listener vtable's C callbacks: a call is
	// handled with the source's context, and answered (refusals logged) by the source.
	struct Console;
	qemu::CallContext call_context(const Console &c);
	int answer(Console &c, sd_bus_message *m, const char *member, Result<qemu::Told> told);

private:
	explicit QemuSource(QemuOptions options) : options_(std::move(options)) {}
	Status connect_bus();
	void connect_p2p();
	const char *dest() const { return options_.qmp.empty() ? "org.qemu" : nullptr; } // p2p: no names
	void enumerate();
	void console_answered(uint64_t generation, uint32_t console_id, sd_bus_message *properties);
	void add_console(uint32_t console_id, uint32_t head, const std::string &label);
	bool listen(Console &c);
	void follow_pointer_mode(Console &c);
	void lose_console(Console &c, const char *why);
	void lose_all(const char *why);
	void call(dbus::Message msg, std::function<void(sd_bus_message *)> on_reply);
	dbus::Message new_call(const std::string &path, const char *iface, const char *member);
	void call_console(uint32_t head, const char *iface, const char *member, const char *types, uint32_t a,
	                  uint32_t b = 0);
	Console *console(uint32_t head) const;
	void start_qmp();
	void qmp_failed(std::string why);
	void flush_damage(bool force);

	QemuOptions options_;
	dbus::Loop loop_;                        // every connection's fd, and sd-bus's timeouts, behind one fd
	UniqueFd reconnect_;                     // p2p: when to ask QEMU's QMP socket again, or when a request is late
	std::unique_ptr<QmpDisplayRequest> qmp_; // p2p: the request in flight
	UniqueFd frame_timer_;                   // Update damage is told to the compositor at most once a frame
	std::chrono::steady_clock::time_point last_flush_{};
	uint32_t pending_consoles_ = 0;  // console property replies still to come (this enumeration)
	std::vector<uint32_t> left_out_; // consoles past max-heads (this enumeration)
	dbus::Bus bus_;                  // the session bus, or p2p: QEMU's connection from QMP
	dbus::Slot owner_match_;         // NameOwnerChanged for org.qemu (on a bus)
	struct ConsoleDeleter {
		void operator()(Console *c) const;
	};
	std::map<uint32_t, std::unique_ptr<Console, ConsoleDeleter>> consoles_; // by head id
	uint64_t next_buffer_id_ = 1;
	uint64_t generation_ = 0; // enumerations started: stale replies are dropped
	bool waiting_logged_ = false;
	bool ended_ = false;
};

} // namespace vscanout::vgpu
