// QEMU's peer-to-peer D-Bus display (`-display dbus,p2p=yes`): there is no bus; a client asks
// for a connection over QMP, handing QEMU one end of a socketpair (`getfd` with SCM_RIGHTS, then
// `add_client` with protocol `@dbus-display`). QEMU then serves its display objects on it.
#pragma once

#include <string>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace vscanout::vgpu {

// Connects to QEMU's QMP socket at `path` and asks for a D-Bus display connection; returns our
// end of it. QMP answers at once (QEMU's main loop serves it), but the exchange is bounded by
// `timeout_ms` in all.
Result<UniqueFd> qmp_dbus_display_client(const std::string &path, int timeout_ms = 2000);

} // namespace vscanout::vgpu
