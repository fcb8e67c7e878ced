// An EDID for a virtual monitor whose preferred mode is the size of what shows the guest (a
// window, a connector, a size from the command line). Pure: bytes in, bytes out.
//
// What it makes: one EDID 1.4 base block (128 bytes) and no extension, so it fits every EDID
// region (i915 GVT-g offers exactly 128 bytes): manufacturer "VSC", the name "vscanout", a serial,
// sRGB, a preferred detailed timing for the size asked (CVT reduced blanking), established and
// standard timings for the common modes no larger than it, and range limits covering them all.
//
// Limits of a detailed timing descriptor: 4095 pixels a side and a 655.35 MHz pixel clock. A size
// above 4095 is capped at 4095; a size whose 60 Hz clock is above 655.35 MHz (above about 4K
// UHD) keeps its size and gets the highest whole refresh rate that fits instead: a virtual display
// cares about its size, not its rate. A size below 640x480 is raised to it (a smaller mode would
// need a pixel clock under 10 MHz at 60 Hz, which decoders take for invalid data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vscanout::vgpu {

constexpr uint32_t kEdidMaxSide = 4095;
constexpr uint32_t kEdidMinWidth = 640, kEdidMinHeight = 480;
constexpr uint32_t kEdidMaxClockKhz = 655350; // a DTD's 16-bit clock in 10 kHz units

struct EdidTiming {
	uint32_t hactive = 0, hfront = 0, hsync = 0, hback = 0;
	uint32_t vactive = 0, vfront = 0, vsync = 0, vback = 0;
	uint32_t clock_khz = 0; // a multiple of 10
	bool hsync_positive = true, vsync_positive = false;

	uint32_t htotal() const { return hactive + hfront + hsync + hback; }
	uint32_t vtotal() const { return vactive + vfront + vsync + vback; }
	double refresh_hz() const { return clock_khz * 1000.0 / (double(htotal()) * vtotal()); }
	double hfreq_khz() const { return double(clock_khz) / htotal(); }
};

// CVT reduced blanking (v1) for any size, not only multiples of 8; the clock is rounded down to
// 10 kHz, so the rate is a hair under the one asked.
EdidTiming cvt_rb_timing(uint32_t width, uint32_t height, uint32_t refresh_hz);

// The timing an EDID offers as preferred for a size asked: clamped to [640x480, 4095x4095], 60 Hz
// where the clock allows, else the highest whole rate that fits.
EdidTiming preferred_timing(uint32_t width, uint32_t height);

struct EdidParams {
	uint32_t width = 1024, height = 768; // the preferred mode asked for
	uint16_t product = 1;
	uint32_t serial = 0;
	std::string name = "vscanout"; // up to 13 characters, printable ASCII
	uint32_t dpi = 96;             // for the physical size the guest is told
};

// A 128-byte EDID 1.4 base block, checksummed.
std::vector<uint8_t> generate_edid(const EdidParams &params);

} // namespace vscanout::vgpu
