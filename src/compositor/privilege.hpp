// Which Wayland clients may use the protocols that read the guest's screen or type into it
// (docs/design.md, "Privileged protocols"). Any local client of vscanout's socket could otherwise
// capture the VM's display (wlr-screencopy) and send the guest keys and pointer events (the
// virtual keyboard and pointer). The rule is a pure function of the way vscanout runs, the
// administrator's options and whether the client came through a security context
// (wp_security_context_v1: a sandbox such as Flatpak); the Server applies it as a global filter.
// No wlroots here, so it is unit-tested alone.
#pragma once

#include <optional>

namespace vscanout::compositor {

// How vscanout runs (the wlroots backend): who can reach its socket differs.
enum class RunMode {
	headless, // a VM host without a display, or a test: the socket is the only way in
	nested,   // a window of a desktop session: its user already sees and types into the guest
	kiosk,    // DRM/KMS: the whole console of a VM host
};

// The globals the filter knows about.
enum class GlobalClass {
	ordinary,          // compositor basics: wl_output, xdg-output, wl_seat, presentation-time ...
	capture,           // reads the screen: zwlr_screencopy_manager_v1
	virtual_input,     // writes into the guest: zwp_virtual_keyboard_manager_v1, zwlr_virtual_pointer_manager_v1
	output_management, // zwlr_output_manager_v1: read-only in vscanout (configuration requests are refused)
	security_context,  // wp_security_context_manager_v1: how a sandbox makes its clients' socket
};

// The administrator's choice for one class: unset keeps the mode's default.
struct PrivilegeOptions {
	std::optional<bool> capture; // --allow-capture[=yes|no]
	std::optional<bool> input;   // --allow-input[=yes|no]
};

// The class's default for a mode: headless and nested allow capture and virtual input, a kiosk
// refuses both.
bool privileged_default(RunMode mode, GlobalClass cls);

// Whether a client sees (and may bind) a global of that class. A sandboxed client (one that
// connected through a security context) never gets capture, virtual input, output management or
// the security-context manager itself, whatever the options say.
bool client_may_bind(RunMode mode, const PrivilegeOptions &options, GlobalClass cls, bool sandboxed);

const char *to_string(RunMode mode);

} // namespace vscanout::compositor
