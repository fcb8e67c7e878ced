// One QEMU console shown as a head: the QEMU source's own (qemu_source.cpp, qemu_console.cpp).
#pragma once

#include <map>
#include <string>

#include "base/log.hpp"
#include "vgpu/qemu_listener.hpp"
#include "vgpu/qemu_source.hpp"
#include "vgpu/sd_bus_ref.hpp"

namespace vscanout::vgpu {

inline std::string qemu_console_path(uint32_t console_id) {
	return "/org/qemu/Display1/Console_" + std::to_string(console_id);
}

struct QemuSource::Console {
	QemuSource *source = nullptr;
	uint32_t console_id = 0;
	uint32_t head = 0;
	std::string label;
	// Released in reverse: the slots before the connection they are on.
	dbus::Bus p2p;          // QEMU's connection to our listener object
	dbus::Slot object;      // the listener object on it
	dbus::Slot mouse_match; // Mouse.IsAbsolute changes (the guest enables its tablet), on the bus
	bool absolute = false;  // Mouse.IsAbsolute
	qemu::Display display;  // what the listener's calls made of it
	// Refused calls are logged at most once every 10 s for each method (with how many were left
	// out); the keys are the listener vtable's few member names.
	std::map<std::string, log::RateLimit> refused_log;
	bool damaged = false; // an Update since damage was last told to the compositor

	bool live() const { return bool(p2p); }
};

} // namespace vscanout::vgpu
