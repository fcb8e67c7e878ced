// The QEMU source's pure parts: the source spec, QEMU's pixel formats, and the evdev -> QEMU key
// and button numbers. (The D-Bus side runs against a real QEMU in tests/integration/test_qemu.py.)
#include <drm_fourcc.h>
#include <linux/input-event-codes.h>

#include <set>

#include <gtest/gtest.h>

#include "vgpu/qemu_source.hpp"

namespace vscanout::vgpu {
namespace {

TEST(QemuSpec, SessionBusAnAddressOrQmp) {
	auto plain = parse_qemu_spec("qemu");
	ASSERT_TRUE(plain.ok()) << plain.error();
	EXPECT_EQ(plain->address, "");
	auto addr = parse_qemu_spec("qemu:unix:path=/run/vm-bus,guid=1234");
	ASSERT_TRUE(addr.ok()) << addr.error();
	EXPECT_EQ(addr->address, "unix:path=/run/vm-bus,guid=1234"); // colons after the first are the address's
	auto qmp = parse_qemu_spec("qemu:qmp:/run/vm/qmp.sock");
	ASSERT_TRUE(qmp.ok()) << qmp.error();
	EXPECT_EQ(qmp->qmp, "/run/vm/qmp.sock");
	EXPECT_EQ(qmp->address, "");
	EXPECT_FALSE(parse_qemu_spec("qemu:qmp:").ok());
	EXPECT_FALSE(parse_qemu_spec("qemu:").ok());
	EXPECT_FALSE(parse_qemu_spec("qemux").ok());
}

TEST(QemuFormats, OnlyX8r8g8b8Surfaces) {
	EXPECT_EQ(drm_format_of_pixman(0x20020888), uint32_t{DRM_FORMAT_XRGB8888}); // PIXMAN_x8r8g8b8
	EXPECT_EQ(drm_format_of_pixman(0x20028888), uint32_t{DRM_FORMAT_XRGB8888}); // a8r8g8b8: alpha ignored
	EXPECT_EQ(drm_format_of_pixman(0x10020565), 0u);                            // r5g6b5
	EXPECT_EQ(drm_format_of_pixman(0), 0u);
}

TEST(QemuKeys, XtScancodesWithE0Keys) {
	// evdev 1..83 are the XT set 1 codes themselves.
	EXPECT_EQ(qemu_key_number(KEY_ESC), 0x01u);
	EXPECT_EQ(qemu_key_number(KEY_A), 0x1eu);
	EXPECT_EQ(qemu_key_number(KEY_LEFTSHIFT), 0x2au);
	EXPECT_EQ(qemu_key_number(KEY_KPDOT), 0x53u);
	// E0-prefixed keys get 0x80.
	EXPECT_EQ(qemu_key_number(KEY_UP), 0xc8u);
	EXPECT_EQ(qemu_key_number(KEY_KPENTER), 0x9cu);
	EXPECT_EQ(qemu_key_number(KEY_RIGHTCTRL), 0x9du);
	EXPECT_EQ(qemu_key_number(KEY_LEFTMETA), 0xdbu);
	EXPECT_EQ(qemu_key_number(KEY_F11), 0x57u);
	EXPECT_EQ(qemu_key_number(KEY_F12), 0x58u);
	// Nothing for keys QEMU has no number for, and never one number for two keys.
	EXPECT_EQ(qemu_key_number(KEY_RESERVED), 0u);
	EXPECT_EQ(qemu_key_number(KEY_MACRO1), 0u);
	std::set<uint32_t> seen;
	for (uint32_t code = 0; code < KEY_MAX; code++) {
		const uint32_t q = qemu_key_number(code);
		if (!q) continue;
		EXPECT_TRUE(seen.insert(q).second) << "evdev " << code << " shares QEMU number " << q;
		EXPECT_LT(q, 0x100u);
	}
}

TEST(QemuButtons, InputButtonNumbers) {
	EXPECT_EQ(qemu_button(BTN_LEFT), 0);
	EXPECT_EQ(qemu_button(BTN_MIDDLE), 1);
	EXPECT_EQ(qemu_button(BTN_RIGHT), 2);
	EXPECT_EQ(qemu_button(BTN_SIDE), 5);
	EXPECT_EQ(qemu_button(BTN_EXTRA), 6);
	EXPECT_EQ(qemu_button(BTN_TOUCH), -1);
}

TEST(QemuSource, NoBusIsAClearError) {
	QemuOptions o;
	o.address = "unix:path=/nonexistent/vscanout-test-bus";
	auto s = QemuSource::create(o);
	ASSERT_FALSE(s.ok());
	EXPECT_NE(s.error().find("cannot connect to the D-Bus bus unix:path=/nonexistent/vscanout-test-bus"),
	          std::string::npos)
	    << s.error();
}

} // namespace
} // namespace vscanout::vgpu
