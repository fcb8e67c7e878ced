// The privileged-protocol rule (compositor/privilege.hpp; docs/design.md, "Privileged
// protocols"): each mode's defaults, the administrator's options, sandboxed clients.
#include <gtest/gtest.h>

#include "compositor/privilege.hpp"

namespace {

using vscanout::compositor::client_may_bind;
using vscanout::compositor::GlobalClass;
using vscanout::compositor::PrivilegeOptions;
using vscanout::compositor::RunMode;

constexpr RunMode kModes[] = {RunMode::headless, RunMode::nested, RunMode::kiosk};
constexpr GlobalClass kPrivileged[] = {GlobalClass::capture, GlobalClass::virtual_input, GlobalClass::output_management,
                                       GlobalClass::security_context};

TEST(Privilege, DefaultsAllowCaptureAndInputHeadlessAndNestedNotInAKiosk) {
	const PrivilegeOptions none;
	for (RunMode m : {RunMode::headless, RunMode::nested}) {
		EXPECT_TRUE(client_may_bind(m, none, GlobalClass::capture, false)) << to_string(m);
		EXPECT_TRUE(client_may_bind(m, none, GlobalClass::virtual_input, false)) << to_string(m);
	}
	EXPECT_FALSE(client_may_bind(RunMode::kiosk, none, GlobalClass::capture, false));
	EXPECT_FALSE(client_may_bind(RunMode::kiosk, none, GlobalClass::virtual_input, false));
}

TEST(Privilege, OutputManagementAndSecurityContextAreOfferedToLocalClientsInEveryMode) {
	// Output management is read-only in vscanout (configuration requests are refused); the
	// security-context manager is how a sandbox makes its socket.
	for (RunMode m : kModes) {
		EXPECT_TRUE(client_may_bind(m, {}, GlobalClass::output_management, false)) << to_string(m);
		EXPECT_TRUE(client_may_bind(m, {}, GlobalClass::security_context, false)) << to_string(m);
	}
}

TEST(Privilege, OptionsOverrideEachClassAlone) {
	PrivilegeOptions capture_only;
	capture_only.capture = true;
	EXPECT_TRUE(client_may_bind(RunMode::kiosk, capture_only, GlobalClass::capture, false));
	EXPECT_FALSE(client_may_bind(RunMode::kiosk, capture_only, GlobalClass::virtual_input, false));

	PrivilegeOptions input_only;
	input_only.input = true;
	EXPECT_FALSE(client_may_bind(RunMode::kiosk, input_only, GlobalClass::capture, false));
	EXPECT_TRUE(client_may_bind(RunMode::kiosk, input_only, GlobalClass::virtual_input, false));

	PrivilegeOptions refuse_both;
	refuse_both.capture = false;
	refuse_both.input = false;
	for (RunMode m : kModes) {
		EXPECT_FALSE(client_may_bind(m, refuse_both, GlobalClass::capture, false)) << to_string(m);
		EXPECT_FALSE(client_may_bind(m, refuse_both, GlobalClass::virtual_input, false)) << to_string(m);
		EXPECT_TRUE(client_may_bind(m, refuse_both, GlobalClass::ordinary, false)) << to_string(m);
	}
}

TEST(Privilege, SandboxedClientsGetNoPrivilegedGlobalWhateverTheOptions) {
	PrivilegeOptions allow_all;
	allow_all.capture = true;
	allow_all.input = true;
	for (RunMode m : kModes)
		for (GlobalClass c : kPrivileged) {
			EXPECT_FALSE(client_may_bind(m, allow_all, c, true)) << to_string(m) << " class " << static_cast<int>(c);
			EXPECT_FALSE(client_may_bind(m, {}, c, true)) << to_string(m) << " class " << static_cast<int>(c);
		}
}

TEST(Privilege, OrdinaryGlobalsReachEveryone) {
	PrivilegeOptions refuse_both;
	refuse_both.capture = false;
	refuse_both.input = false;
	for (RunMode m : kModes) {
		EXPECT_TRUE(client_may_bind(m, refuse_both, GlobalClass::ordinary, true)) << to_string(m);
		EXPECT_TRUE(client_may_bind(m, {}, GlobalClass::ordinary, false)) << to_string(m);
	}
}

} // namespace
