#include "compositor/keyboard.hpp"

#include <xkbcommon/xkbcommon.h>

namespace vscanout::compositor {

Keyboard::Keyboard(wlr_input_device *device, wlr_session *session, bool allow_vt_switch)
	: device_(device), session_(session), allow_vt_switch_(allow_vt_switch) {
	xkb_context *ctx = xkb_context_new(XKB_CONTEXT_NO_FLAGS);
	xkb_keymap *keymap = ctx ? xkb_keymap_new_from_names(ctx, nullptr, XKB_KEYMAP_COMPILE_NO_FLAGS) : nullptr;
	if (keymap) wlr_keyboard_set_keymap(device->keyboard, keymap);
	else wlr_log(WLR_ERROR, "keyboard %s: no XKB keymap (check XKB_DEFAULT_LAYOUT)", device->name);
	xkb_keymap_unref(keymap);
	xkb_context_unref(ctx);
	key_.connect(&device->keyboard->events.key,
	             [this](void *data) { on_key(*static_cast<wlr_event_keyboard_key *>(data)); });
	destroy_.connect(&device->events.destroy, [this](void *) {
		key_.disconnect();
		destroy_.disconnect();
		device_ = nullptr;
	});
}

Keyboard::~Keyboard() {
	key_.disconnect();
	destroy_.disconnect();
}

void Keyboard::on_key(const wlr_event_keyboard_key &event) {
	xkb_state *state = device_->keyboard->xkb_state;
	if (!state || event.state != WL_KEYBOARD_KEY_STATE_PRESSED) return;
	const xkb_keysym_t *syms = nullptr;
	const int n = xkb_state_key_get_syms(state, event.keycode + 8, &syms); // evdev code -> XKB keycode
	for (int i = 0; i < n; i++) {
		if (syms[i] < XKB_KEY_XF86Switch_VT_1 || syms[i] > XKB_KEY_XF86Switch_VT_12) continue;
		const unsigned vt = syms[i] - XKB_KEY_XF86Switch_VT_1 + 1;
		if (!allow_vt_switch_) {
			wlr_log(WLR_INFO, "Ctrl+Alt+F%u ignored: VT switching is off (start vscanout with -s to allow it)", vt);
		} else if (session_) {
			wlr_log(WLR_INFO, "switching to VT %u", vt);
			wlr_session_change_vt(session_, vt);
		}
	}
}

} // namespace vscanout::compositor
