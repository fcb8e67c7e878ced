// A keyboard of the seat: the kiosk's (libinput), a nested window's (the parent's keyboard
// focus), or a virtual keyboard a client made (zwp_virtual_keyboard_v1, e.g. `wtype`).
// Keys go on to the guest as Linux evdev codes, which is what a VM's keyboard takes (the guest
// applies its own layout). A virtual keyboard brings its own keymap, with keycodes of its own
// choosing: its keys are translated through that keymap to a keysym and back to the evdev key
// that gives the keysym in the default layout (with Shift where the keysym needs it).
// Ctrl+Alt+F<n> switches virtual terminals only when the user allowed it (-s, as cage does).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "compositor/listener.hpp"
#include "compositor/wlr.hpp"

namespace vscanout::compositor {

class Keyboard {
public:
	using KeySink = std::function<void(uint32_t evdev_code, bool pressed)>;
	// The keymap of a real keyboard comes from XKB_DEFAULT_* (the usual xkbcommon environment);
	// a virtual keyboard keeps the one its client gave.
	Keyboard(wlr_keyboard *keyboard, bool is_virtual, wlr_session *session, bool allow_vt_switch, KeySink sink);
	~Keyboard();
	Keyboard(const Keyboard &) = delete;
	Keyboard &operator=(const Keyboard &) = delete;

	// False once the device went away; the owner may then delete this object.
	bool alive() const { return keyboard_ != nullptr; }

private:
	void on_key(const wlr_keyboard_key_event &event);
	bool vt_switch(uint32_t keycode);
	void send(uint32_t evdev_code, bool pressed); // to the sink, counting what the guest holds

	wlr_keyboard *keyboard_;
	bool virtual_;
	wlr_session *session_;
	bool allow_vt_switch_;
	KeySink sink_;
	// Virtual keyboards: for each of the client's pressed keycodes, the guest key sent and
	// whether Shift was added for it; and the guest keys held down now.
	std::map<uint32_t, std::pair<uint32_t, bool>> held_;
	std::set<uint32_t> guest_down_;
	Listener key_, destroy_;
};

} // namespace vscanout::compositor
