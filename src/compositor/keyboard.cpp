#include "compositor/keyboard.hpp"

#include <linux/input-event-codes.h>
#include <xkbcommon/xkbcommon.h>

#include <map>
#include <utility>

namespace vscanout::compositor {
namespace {

constexpr uint32_t kXkbOffset = 8; // XKB keycode = evdev code + 8

// keysym -> (evdev code, needs Shift) in the default layout (XKB_DEFAULT_*, else us).
const std::map<xkb_keysym_t, std::pair<uint32_t, bool>> &default_layout() {
	static const auto table = [] {
		std::map<xkb_keysym_t, std::pair<uint32_t, bool>> t;
		xkb_context *ctx = xkb_context_new(XKB_CONTEXT_NO_FLAGS);
		xkb_keymap *map = ctx ? xkb_keymap_new_from_names(ctx, nullptr, XKB_KEYMAP_COMPILE_NO_FLAGS) : nullptr;
		if (map) {
			for (xkb_keycode_t kc = xkb_keymap_min_keycode(map); kc <= xkb_keymap_max_keycode(map); kc++) {
				if (kc < kXkbOffset) continue;
				for (xkb_level_index_t level = 0; level < 2; level++) {
					const xkb_keysym_t *syms = nullptr;
					const int n = xkb_keymap_key_get_syms_by_level(map, kc, 0, level, &syms);
					// Plain keys first: a keysym on two keys keeps its unshifted one.
					for (int i = 0; i < n; i++) t.emplace(syms[i], std::make_pair(kc - kXkbOffset, level == 1));
				}
			}
		}
		xkb_keymap_unref(map);
		xkb_context_unref(ctx);
		return t;
	}();
	return table;
}

} // namespace

Keyboard::Keyboard(wlr_keyboard *keyboard, bool is_virtual, wlr_session *session, bool allow_vt_switch, KeySink sink)
    : keyboard_(keyboard), virtual_(is_virtual), session_(session), allow_vt_switch_(allow_vt_switch),
      sink_(std::move(sink)) {
	if (!virtual_) {
		xkb_context *ctx = xkb_context_new(XKB_CONTEXT_NO_FLAGS);
		xkb_keymap *keymap = ctx ? xkb_keymap_new_from_names(ctx, nullptr, XKB_KEYMAP_COMPILE_NO_FLAGS) : nullptr;
		if (keymap)
			wlr_keyboard_set_keymap(keyboard, keymap);
		else
			wlr_log(WLR_ERROR, "keyboard %s: no XKB keymap (check XKB_DEFAULT_LAYOUT)", keyboard->base.name);
		xkb_keymap_unref(keymap);
		xkb_context_unref(ctx);
	}
	key_.connect(&keyboard->events.key, [this](void *data) { on_key(*static_cast<wlr_keyboard_key_event *>(data)); });
	destroy_.connect(&keyboard->base.events.destroy, [this](void *) {
		key_.disconnect();
		destroy_.disconnect();
		keyboard_ = nullptr;
	});
}

Keyboard::~Keyboard() {
	key_.disconnect();
	destroy_.disconnect();
}

bool Keyboard::vt_switch(uint32_t keycode) {
	xkb_state *state = keyboard_->xkb_state;
	if (!state) return false;
	const xkb_keysym_t *syms = nullptr;
	const int n = xkb_state_key_get_syms(state, keycode + kXkbOffset, &syms);
	for (int i = 0; i < n; i++) {
		if (syms[i] < XKB_KEY_XF86Switch_VT_1 || syms[i] > XKB_KEY_XF86Switch_VT_12) continue;
		const unsigned vt = syms[i] - XKB_KEY_XF86Switch_VT_1 + 1;
		if (!allow_vt_switch_) {
			wlr_log(WLR_INFO, "Ctrl+Alt+F%u ignored: VT switching is off (start vscanout with -s to allow it)", vt);
			return false;
		}
		if (session_) {
			wlr_log(WLR_INFO, "switching to VT %u", vt);
			wlr_session_change_vt(session_, vt);
		}
		return true;
	}
	return false;
}

void Keyboard::on_key(const wlr_keyboard_key_event &event) {
	const bool pressed = event.state == WL_KEYBOARD_KEY_STATE_PRESSED;
	if (!virtual_) {
		if (pressed && vt_switch(event.keycode)) return;
		if (sink_) sink_(event.keycode, pressed);
		return;
	}
	// A virtual keyboard: its keycode means what its own keymap says.
	xkb_state *state = keyboard_->xkb_state;
	if (!state || !sink_) return;
	if (!pressed) {
		// A release undoes what its press sent, whatever the modifiers are now (Shift may have
		// gone up first).
		auto held = held_.find(event.keycode);
		if (held == held_.end()) return;
		const auto [code, added_shift] = held->second;
		held_.erase(held);
		send(code, false);
		if (added_shift) send(KEY_LEFTSHIFT, false);
		return;
	}
	if (held_.count(event.keycode)) return; // pressed already
	const xkb_keysym_t sym = xkb_state_key_get_one_sym(state, event.keycode + kXkbOffset);
	const auto &layout = default_layout();
	auto it = layout.find(sym);
	if (it == layout.end()) {
		char name[64];
		xkb_keysym_get_name(sym, name, sizeof name);
		wlr_log(WLR_INFO, "virtual keyboard: no key gives %s in the default layout; dropped", name);
		return;
	}
	const auto [code, shift] = it->second;
	// A client that presses Shift itself (wayvnc passes on a VNC viewer's Shift) already holds
	// it in the guest: Shift is added only where it is not down yet.
	const bool add_shift = shift && !guest_down_.count(KEY_LEFTSHIFT) && !guest_down_.count(KEY_RIGHTSHIFT);
	if (add_shift) send(KEY_LEFTSHIFT, true);
	send(code, true);
	held_[event.keycode] = {code, add_shift};
}

void Keyboard::send(uint32_t code, bool pressed) {
	if (pressed)
		guest_down_.insert(code);
	else
		guest_down_.erase(code);
	sink_(code, pressed);
}

} // namespace vscanout::compositor
