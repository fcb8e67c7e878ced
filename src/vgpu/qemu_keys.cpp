// evdev key and button codes to QEMU's numbers (the Keyboard and Mouse interfaces of
// `-display dbus`). QEMU's key numbers are PC XT scancodes (set 1) with 0x80 added for keys
// that send an E0 prefix. For evdev codes 1..88 the two numberings agree (KEY_ESC is 1 in both,
// KEY_F12 88); the rest is listed.
#include <linux/input-event-codes.h>

#include "vgpu/qemu_source.hpp"

namespace vscanout::vgpu {

uint32_t qemu_key_number(uint32_t evdev_code) {
	if (evdev_code >= KEY_ESC && evdev_code <= KEY_KPDOT) return evdev_code; // 1..83
	switch (evdev_code) {
	case KEY_102ND: return 0x56;
	case KEY_F11: return 0x57;
	case KEY_F12: return 0x58;
	case KEY_KPENTER: return 0x9c;
	case KEY_RIGHTCTRL: return 0x9d;
	case KEY_KPSLASH: return 0xb5;
	case KEY_SYSRQ: return 0x54;
	case KEY_RIGHTALT: return 0xb8;
	case KEY_HOME: return 0xc7;
	case KEY_UP: return 0xc8;
	case KEY_PAGEUP: return 0xc9;
	case KEY_LEFT: return 0xcb;
	case KEY_RIGHT: return 0xcd;
	case KEY_END: return 0xcf;
	case KEY_DOWN: return 0xd0;
	case KEY_PAGEDOWN: return 0xd1;
	case KEY_INSERT: return 0xd2;
	case KEY_DELETE: return 0xd3;
	case KEY_MUTE: return 0xa0;
	case KEY_VOLUMEDOWN: return 0xae;
	case KEY_VOLUMEUP: return 0xb0;
	case KEY_POWER: return 0xde;
	case KEY_PAUSE: return 0xc6;
	case KEY_LEFTMETA: return 0xdb;
	case KEY_RIGHTMETA: return 0xdc;
	case KEY_COMPOSE: return 0xdd;
	case KEY_F13: return 0x5d;
	case KEY_F14: return 0x5e;
	case KEY_F15: return 0x5f;
	default: return 0;
	}
}

int qemu_button(uint32_t evdev_button) {
	switch (evdev_button) {
	case BTN_LEFT: return 0;
	case BTN_MIDDLE: return 1;
	case BTN_RIGHT: return 2;
	case BTN_SIDE: return 5;
	case BTN_EXTRA: return 6;
	default: return -1;
	}
}

} // namespace vscanout::vgpu
