// Reading memory that another party can take away (docs/design.md, "VFIO"): a mapping of a
// VFIO region is revoked when its device resets or goes away, and touching it then raises
// SIGBUS (or SIGSEGV), which would end the process. A guarded read turns that into an error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.hpp"

namespace vscanout {

// Copies `len` bytes from `src` to `dst` where they differ (page by page: memcmp, then memcpy
// only of the pages that changed), so a static source costs one read and no writes. Returns
// whether anything changed. A fault (SIGBUS, SIGSEGV) inside [src, src + len) during the copy
// ends the copy with an error instead of the process; `dst` may then hold part of the new
// content. Faults anywhere else go to the handler that was there before. Not reentrant from
// signal handlers; any thread may use it.
Result<bool> guarded_copy_changed(uint8_t *dst, const uint8_t *src, size_t len);

} // namespace vscanout
