#include "vgpu/edid.hpp"

#include <algorithm>
#include <cmath>

namespace vscanout::vgpu {
namespace {

// CVT reduced blanking v1 constants (VESA CVT 1.2, section 3.4).
constexpr uint32_t kRbHBlank = 160, kRbHSync = 32, kRbHFront = 48;
constexpr double kRbMinVBlankUs = 460.0;
constexpr uint32_t kRbVFront = 3, kRbMinVBack = 6;

// CVT's vertical sync width tells the aspect ratio; other ratios take 10 lines.
uint32_t cvt_vsync(uint32_t w, uint32_t h) {
	const uint64_t W = w, H = h;
	if (W * 3 == H * 4) return 4;
	if (W * 9 == H * 16) return 5;
	if (W * 10 == H * 16) return 6;
	if (W * 4 == H * 5 || W * 9 == H * 15) return 7;
	return 10;
}

// A common mode the guest may pick below the preferred one (all VESA DMT modes at 60 Hz).
struct StdMode {
	uint32_t w, h;
	uint8_t aspect; // EDID 1.4 standard timing aspect bits: 0 16:10, 1 4:3, 2 5:4, 3 16:9
};
constexpr StdMode kStdModes[] = {
    {1280, 720, 3}, {1280, 800, 0},  {1280, 1024, 2}, {1440, 900, 0},
    {1600, 900, 3}, {1680, 1050, 0}, {1920, 1080, 3}, {1920, 1200, 0},
};
// The highest pixel clock of any established or standard timing above (1920x1200@60, 193.25 MHz)
// and their lowest line rate (640x480@60, 31.469 kHz): the range limits must cover them.
constexpr uint32_t kStdMaxClockKhz = 193250;
constexpr uint32_t kStdMinHfreqKhz = 31;

void put_dtd(uint8_t *d, const EdidTiming &t, uint32_t width_mm, uint32_t height_mm) {
	const uint32_t clock = t.clock_khz / 10;
	const uint32_t hblank = t.htotal() - t.hactive, vblank = t.vtotal() - t.vactive;
	d[0] = clock & 0xff;
	d[1] = static_cast<uint8_t>(clock >> 8);
	d[2] = t.hactive & 0xff;
	d[3] = hblank & 0xff;
	d[4] = static_cast<uint8_t>(((t.hactive >> 8) << 4) | (hblank >> 8));
	d[5] = t.vactive & 0xff;
	d[6] = vblank & 0xff;
	d[7] = static_cast<uint8_t>(((t.vactive >> 8) << 4) | (vblank >> 8));
	d[8] = t.hfront & 0xff;
	d[9] = t.hsync & 0xff;
	d[10] = static_cast<uint8_t>(((t.vfront & 0xf) << 4) | (t.vsync & 0xf));
	d[11] =
	    static_cast<uint8_t>(((t.hfront >> 8) << 6) | ((t.hsync >> 8) << 4) | ((t.vfront >> 4) << 2) | (t.vsync >> 4));
	d[12] = width_mm & 0xff;
	d[13] = height_mm & 0xff;
	d[14] = static_cast<uint8_t>(((width_mm >> 8) << 4) | (height_mm >> 8));
	d[15] = d[16] = 0; // no borders
	// Non-interlaced, digital separate sync, with the sync polarities.
	d[17] = static_cast<uint8_t>(0x18 | (t.vsync_positive ? 0x04 : 0) | (t.hsync_positive ? 0x02 : 0));
}

void put_text(uint8_t *d, uint8_t tag, const std::string &text) {
	d[0] = d[1] = d[2] = d[4] = 0;
	d[3] = tag;
	size_t i = 0;
	for (; i < 13 && i < text.size(); i++) {
		const char c = text[i];
		d[5 + i] = (c >= 0x20 && c < 0x7f) ? static_cast<uint8_t>(c) : '?';
	}
	if (i < 13) d[5 + i++] = 0x0a;
	for (; i < 13; i++) d[5 + i] = 0x20;
}

} // namespace

EdidTiming cvt_rb_timing(uint32_t width, uint32_t height, uint32_t refresh_hz) {
	EdidTiming t;
	t.hactive = width;
	t.hfront = kRbHFront;
	t.hsync = kRbHSync;
	t.hback = kRbHBlank - kRbHFront - kRbHSync;
	t.vactive = height;
	t.vfront = kRbVFront;
	t.vsync = cvt_vsync(width, height);
	const double h_period_est_us = (1e6 / refresh_hz - kRbMinVBlankUs) / height;
	uint32_t vbi = static_cast<uint32_t>(std::floor(kRbMinVBlankUs / h_period_est_us)) + 1;
	vbi = std::max(vbi, kRbVFront + t.vsync + kRbMinVBack);
	t.vback = vbi - kRbVFront - t.vsync;
	// CVT steps the clock by 0.25 MHz, rounding down.
	const double clock_mhz = double(refresh_hz) * t.vtotal() * t.htotal() / 1e6;
	t.clock_khz = static_cast<uint32_t>(std::floor(clock_mhz / 0.25)) * 250;
	t.hsync_positive = true; // reduced blanking: +hsync, -vsync
	t.vsync_positive = false;
	return t;
}

EdidTiming preferred_timing(uint32_t width, uint32_t height) {
	width = std::clamp(width, kEdidMinWidth, kEdidMaxSide);
	height = std::clamp(height, kEdidMinHeight, kEdidMaxSide);
	uint32_t hz = 60;
	EdidTiming t = cvt_rb_timing(width, height, hz);
	while (t.clock_khz > kEdidMaxClockKhz && hz > 1) t = cvt_rb_timing(width, height, --hz);
	return t;
}

std::vector<uint8_t> generate_edid(const EdidParams &p) {
	std::vector<uint8_t> e(128, 0);
	const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
	std::copy(header, header + 8, e.begin());
	// Manufacturer "VSC": three 5-bit letters, big-endian.
	const uint16_t mfg = static_cast<uint16_t>((('V' - '@') << 10) | (('S' - '@') << 5) | ('C' - '@'));
	e[8] = mfg >> 8;
	e[9] = mfg & 0xff;
	e[10] = static_cast<uint8_t>(p.product & 0xff);
	e[11] = static_cast<uint8_t>(p.product >> 8);
	for (int i = 0; i < 4; i++) e[12 + i] = static_cast<uint8_t>(p.serial >> (8 * i));
	e[16] = 0;           // week unknown
	e[17] = 2022 - 1990; // year of manufacture
	e[18] = 1;           // EDID 1.4
	e[19] = 4;
	e[20] = 0xa5; // digital, 8 bits per colour, DisplayPort

	const EdidTiming pref = preferred_timing(p.width, p.height);
	// In 64 bits: dpi * 10 in 32 would wrap (to 0 for a dpi of 2^31: a division by zero).
	const uint64_t dpi = p.dpi ? p.dpi : 96;
	const auto width_mm =
	    static_cast<uint32_t>(std::min<uint64_t>(4095, (pref.hactive * 254ull + dpi * 5) / (dpi * 10)));
	const auto height_mm =
	    static_cast<uint32_t>(std::min<uint64_t>(4095, (pref.vactive * 254ull + dpi * 5) / (dpi * 10)));
	e[21] = static_cast<uint8_t>(std::clamp<uint32_t>((width_mm + 5) / 10, 1, 255));
	e[22] = static_cast<uint8_t>(std::clamp<uint32_t>((height_mm + 5) / 10, 1, 255));
	e[23] = 120; // gamma 2.2
	// Features: sRGB default colour space, the first DTD is the preferred (native) mode,
	// continuous frequency (any mode within the range limits): a virtual monitor takes any size.
	e[24] = 0x07;
	// Chromaticity: sRGB primaries and D65 white, 10-bit fractions.
	auto frac = [](double v) { return static_cast<uint32_t>(std::lround(v * 1024)); };
	const uint32_t rx = frac(0.640), ry = frac(0.330), gx = frac(0.300), gy = frac(0.600);
	const uint32_t bx = frac(0.150), by = frac(0.060), wx = frac(0.3127), wy = frac(0.3290);
	e[25] = static_cast<uint8_t>(((rx & 3) << 6) | ((ry & 3) << 4) | ((gx & 3) << 2) | (gy & 3));
	e[26] = static_cast<uint8_t>(((bx & 3) << 6) | ((by & 3) << 4) | ((wx & 3) << 2) | (wy & 3));
	e[27] = rx >> 2;
	e[28] = ry >> 2;
	e[29] = gx >> 2;
	e[30] = gy >> 2;
	e[31] = bx >> 2;
	e[32] = by >> 2;
	e[33] = wx >> 2;
	e[34] = wy >> 2;

	// Established timings no larger than the preferred mode: 640x480, 800x600, 1024x768 at 60 Hz.
	auto fits = [&](uint32_t w, uint32_t h) { return w <= pref.hactive && h <= pref.vactive; };
	if (fits(640, 480)) e[35] |= 0x20;
	if (fits(800, 600)) e[35] |= 0x01;
	if (fits(1024, 768)) e[36] |= 0x08;
	// Standard timings: the common modes no larger than the preferred one, unused slots 0x0101.
	size_t slot = 0;
	for (const StdMode &m : kStdModes) {
		if (!fits(m.w, m.h) || (m.w == pref.hactive && m.h == pref.vactive)) continue;
		e[38 + 2 * slot] = static_cast<uint8_t>(m.w / 8 - 31);
		e[39 + 2 * slot] = static_cast<uint8_t>((m.aspect << 6) | (60 - 60));
		slot++;
	}
	for (; slot < 8; slot++) e[38 + 2 * slot] = e[39 + 2 * slot] = 0x01;

	// Descriptor 1: the preferred detailed timing.
	put_dtd(&e[54], pref, width_mm, height_mm);

	// Descriptor 2: range limits covering every timing listed (EDID 1.4 section 3.10.3.3).
	uint8_t *r = &e[72];
	r[3] = 0xfd;
	r[4] = 0; // no rate offsets
	const uint32_t pref_hz = static_cast<uint32_t>(std::floor(pref.refresh_hz()));
	r[5] = static_cast<uint8_t>(std::min<uint32_t>(pref_hz, 59)); // 640x480@60 is 59.94 Hz
	r[6] = 61;                                                    // 800x600@60 is 60.32 Hz
	r[7] =
	    static_cast<uint8_t>(std::min<uint32_t>(kStdMinHfreqKhz, static_cast<uint32_t>(std::floor(pref.hfreq_khz()))));
	r[8] = static_cast<uint8_t>(std::max<uint32_t>(80, static_cast<uint32_t>(std::ceil(pref.hfreq_khz()))));
	r[9] = static_cast<uint8_t>((std::max(pref.clock_khz, kStdMaxClockKhz) + 9999) / 10000);
	r[10] = 0x01; // range limits only: no GTF or CVT formula offered
	r[11] = 0x0a;
	for (int i = 12; i < 18; i++) r[i] = 0x20;

	// Descriptors 3 and 4: the monitor's name and its serial as text.
	put_text(&e[90], 0xfc, p.name);
	put_text(&e[108], 0xff, std::to_string(p.serial));

	e[126] = 0; // no extension
	uint8_t sum = 0;
	for (int i = 0; i < 127; i++) sum = static_cast<uint8_t>(sum + e[i]);
	e[127] = static_cast<uint8_t>(0x100 - sum);
	return e;
}

} // namespace vscanout::vgpu
