// The EDID generator: structure checked by hand, then every EDID parsed by edid-decode, which must
// name the size asked for as the preferred mode and report no failure and no warning.
#include <gtest/gtest.h>

#include <string>

#include "edid_check.hpp"
#include "vgpu/edid.hpp"

using namespace vscanout;
using namespace vscanout::vgpu;

namespace {

std::vector<uint8_t> make(uint32_t w, uint32_t h, uint32_t serial = 1) {
	EdidParams p;
	p.width = w;
	p.height = h;
	p.serial = serial;
	return generate_edid(p);
}

uint32_t dtd_hactive(const std::vector<uint8_t> &e) { return e[56] | ((e[58] >> 4) << 8); }
uint32_t dtd_vactive(const std::vector<uint8_t> &e) { return e[59] | ((e[61] >> 4) << 8); }
uint32_t dtd_clock_khz(const std::vector<uint8_t> &e) { return (e[54] | (e[55] << 8)) * 10u; }

std::string descriptor_text(const std::vector<uint8_t> &e, uint8_t tag) {
	for (int d = 54; d < 126; d += 18) {
		if (e[d] || e[d + 1] || e[d + 3] != tag) continue;
		std::string s(e.begin() + d + 5, e.begin() + d + 18);
		return s.substr(0, s.find('\n'));
	}
	return "";
}

} // namespace

TEST(Edid, BaseBlockStructure) {
	auto e = make(1920, 1080, 42);
	ASSERT_EQ(e.size(), 128u);
	const uint8_t header[8] = {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0};
	for (int i = 0; i < 8; i++) EXPECT_EQ(e[i], header[i]);
	uint8_t sum = 0;
	for (uint8_t b : e) sum = static_cast<uint8_t>(sum + b);
	EXPECT_EQ(sum, 0) << "checksum";
	EXPECT_EQ(e[18], 1);
	EXPECT_EQ(e[19], 4) << "EDID 1.4";
	EXPECT_EQ(e[126], 0) << "no extension block";
	EXPECT_EQ(e[12] | (e[13] << 8) | (e[14] << 16) | (e[15] << 24), 42);
	EXPECT_EQ(descriptor_text(e, 0xfc), "vscanout");
	EXPECT_EQ(descriptor_text(e, 0xff), "42");
	EXPECT_TRUE(e[24] & 0x02) << "the first DTD is the preferred mode";
	EXPECT_EQ(dtd_hactive(e), 1920u);
	EXPECT_EQ(dtd_vactive(e), 1080u);
}

TEST(Edid, CvtReducedBlankingMatchesTheStandard) {
	// VESA CVT-RB 1920x1080@60 (DMT 0x52): 138.5 MHz, 2080x1111 total.
	auto t = cvt_rb_timing(1920, 1080, 60);
	EXPECT_EQ(t.clock_khz, 138500u);
	EXPECT_EQ(t.htotal(), 2080u);
	EXPECT_EQ(t.vtotal(), 1111u);
	EXPECT_EQ(t.hfront, 48u);
	EXPECT_EQ(t.hsync, 32u);
	EXPECT_EQ(t.vsync, 5u);
	EXPECT_TRUE(t.hsync_positive);
	EXPECT_FALSE(t.vsync_positive);
}

TEST(Edid, SizesAreClampedToWhatADetailedTimingCarries) {
	auto big = preferred_timing(5000, 3000);
	EXPECT_EQ(big.hactive, kEdidMaxSide);
	EXPECT_EQ(big.vactive, 3000u);
	EXPECT_LE(big.clock_khz, kEdidMaxClockKhz);
	auto small = preferred_timing(100, 50);
	EXPECT_EQ(small.hactive, kEdidMinWidth);
	EXPECT_EQ(small.vactive, kEdidMinHeight);
	// 4095x4095 cannot run at 60 Hz on a 655.35 MHz clock: same size, a lower rate.
	auto huge = preferred_timing(4095, 4095);
	EXPECT_EQ(huge.hactive, 4095u);
	EXPECT_EQ(huge.vactive, 4095u);
	EXPECT_LE(huge.clock_khz, kEdidMaxClockKhz);
	EXPECT_LT(huge.refresh_hz(), 60.0);
	EXPECT_GT(huge.refresh_hz(), 30.0);
	auto e = make(4095, 4095);
	EXPECT_EQ(dtd_clock_khz(e), huge.clock_khz);
	// 4K UHD still fits at 60 Hz.
	EXPECT_NEAR(preferred_timing(3840, 2160).refresh_hz(), 60.0, 0.1);
}

// Found by fuzz/edid_fuzz.cpp: the physical size divided by dpi * 10 in 32 bits, which wraps to 0
// for a dpi of 2^31 (a division by zero) and to a few units for others (a monitor metres wide).
TEST(Edid, AnyDpiGivesASensiblePhysicalSize) {
	EdidParams p;
	p.width = 1920;
	p.height = 1080;
	for (uint32_t dpi : {0x80000000u, 429496730u, 0xffffffffu}) {
		p.dpi = dpi;
		const auto e = generate_edid(p);
		EXPECT_EQ(e[21], 1) << "dpi " << dpi; // under a centimetre, shown as the smallest size
		EXPECT_EQ(e[22], 1) << "dpi " << dpi;
	}
	p.dpi = 96; // 1920 pixels at 96 dpi: 508 mm
	const auto e = generate_edid(p);
	EXPECT_EQ(e[21], 51);
	EXPECT_EQ(e[66] | ((e[68] >> 4) << 8), 508);
}

TEST(Edid, OnlyModesNoLargerThanThePreferredOneAreListed) {
	auto e = make(1024, 768);
	EXPECT_EQ(e[35], 0x21) << "640x480 and 800x600 at 60 Hz";
	EXPECT_EQ(e[36], 0x08) << "1024x768 at 60 Hz";
	for (int i = 38; i < 54; i++) EXPECT_EQ(e[i], 0x01) << "no standard timing above 1024x768";
	auto f = make(1920, 1200);
	int used = 0;
	for (int i = 38; i < 54; i += 2)
		if (f[i] != 1 || f[i + 1] != 1) {
			used++;
			EXPECT_LE((f[i] + 31) * 8, 1920);
		}
	EXPECT_EQ(used, 7) << "every common mode but 1920x1200 itself";
	auto g = make(640, 480);
	EXPECT_EQ(g[35], 0x20);
	EXPECT_EQ(g[36], 0x00);
}

TEST(Edid, EdidDecodeAcceptsItAndNamesThePreferredMode) {
	if (!test::have_edid_decode()) GTEST_SKIP() << "edid-decode is not installed (scripts/setup.sh installs it)";
	const std::pair<uint32_t, uint32_t> sizes[] = {
	    {640, 480},   {800, 600},   {1024, 768}, {1280, 720},  {1366, 768}, {1001, 777},  {1920, 1080}, {1920, 1200},
	    {2560, 1440}, {3840, 2160}, {4095, 480}, {4095, 4095}, {700, 3000}, {5000, 5000}, {10, 10},
	};
	for (auto [w, h] : sizes) {
		const std::string report = test::edid_decode(make(w, h));
		const auto t = preferred_timing(w, h);
		const std::string want = std::to_string(t.hactive) + "x" + std::to_string(t.vactive);
		EXPECT_NE(report.find("EDID conformity: PASS"), std::string::npos) << w << "x" << h << ":\n" << report;
		EXPECT_EQ(report.find("Warnings:"), std::string::npos) << w << "x" << h << ":\n" << report;
		EXPECT_EQ(report.find("Failures:"), std::string::npos) << w << "x" << h << ":\n" << report;
		EXPECT_EQ(test::edid_decode_preferred(report), want) << report;
		EXPECT_NE(report.find("Display Product Name: 'vscanout'"), std::string::npos) << report;
	}
}
