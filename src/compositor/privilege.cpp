#include "compositor/privilege.hpp"

namespace vscanout::compositor {

bool privileged_default(RunMode mode, GlobalClass cls) {
	switch (cls) {
	case GlobalClass::capture:
	case GlobalClass::virtual_input:
		// A kiosk is the console of a VM host: a local user (or a compromised service) with a
		// socket must not watch or drive the guest unless the administrator said so.
		return mode != RunMode::kiosk;
	case GlobalClass::ordinary:
	case GlobalClass::output_management:
	case GlobalClass::security_context: return true;
	}
	return false;
}

bool client_may_bind(RunMode mode, const PrivilegeOptions &options, GlobalClass cls, bool sandboxed) {
	if (cls == GlobalClass::ordinary) return true;
	// Sandboxed clients get the basics only (docs/design.md, "Privileged protocols").
	if (sandboxed) return false;
	switch (cls) {
	case GlobalClass::capture: return options.capture.value_or(privileged_default(mode, cls));
	case GlobalClass::virtual_input: return options.input.value_or(privileged_default(mode, cls));
	default: return privileged_default(mode, cls);
	}
}

const char *to_string(RunMode mode) {
	switch (mode) {
	case RunMode::headless: return "headless";
	case RunMode::nested: return "nested";
	case RunMode::kiosk: return "kiosk";
	}
	return "?";
}

} // namespace vscanout::compositor
