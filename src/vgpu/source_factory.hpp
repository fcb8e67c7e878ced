// The one place that turns --source arguments into a Source (docs/design.md, "Sources"): every
// spec is parsed once, into a plan (pure, unit-tested), and the plan is opened.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "vgpu/qemu_source.hpp"
#include "vgpu/sim.hpp"
#include "vgpu/source.hpp"
#include "vgpu/vfio_source.hpp"

namespace vscanout::vgpu {

struct SourcePlan {
	enum class Kind { sim, vfio, qemu };
	Kind kind = Kind::sim;
	std::string spec = "sim";   // the first spec as given, for messages
	SimOptions sim;             // kind sim
	std::vector<VfioSpec> vfio; // kind vfio: one head each
	QemuOptions qemu;           // kind qemu
};

// No specs: the simulated vGPU with its defaults. Several specs: VFIO devices only. Errors name
// the spec at fault.
Result<SourcePlan> plan_sources(const std::vector<std::string> &specs);

// What the command line adds to a plan.
struct SourceSettings {
	int poll_hz = 60;       // VFIO polling rate
	bool once = false;      // qemu: QEMU exiting ends vscanout
	VfioSourceOptions vfio; // --no-edid and the EDID timings
};
Result<std::unique_ptr<Source>> open_source(SourcePlan plan, const SourceSettings &settings);

} // namespace vscanout::vgpu
