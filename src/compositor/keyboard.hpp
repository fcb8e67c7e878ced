// A keyboard of the seat (kiosk: libinput). vscanout has no clients to type into yet; the one
// thing a keyboard does is Ctrl+Alt+F<n>, which switches virtual terminals only when the user
// allowed it (-s, as cage does): a kiosk is not left through the keyboard by default.
#pragma once

#include "compositor/listener.hpp"
#include "compositor/wlr.hpp"

struct xkb_keymap;

namespace vscanout::compositor {

class Keyboard {
public:
	// The keymap comes from XKB_DEFAULT_* (the usual xkbcommon environment).
	Keyboard(wlr_input_device *device, wlr_session *session, bool allow_vt_switch);
	~Keyboard();
	Keyboard(const Keyboard &) = delete;
	Keyboard &operator=(const Keyboard &) = delete;

	// False once the device went away; the owner may then delete this object.
	bool alive() const { return device_ != nullptr; }

private:
	void on_key(const wlr_event_keyboard_key &event);

	wlr_input_device *device_;
	wlr_session *session_;
	bool allow_vt_switch_;
	Listener key_, destroy_;
};

} // namespace vscanout::compositor
