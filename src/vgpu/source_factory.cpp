#include "vgpu/source_factory.hpp"

#include <string_view>

namespace vscanout::vgpu {
namespace {

bool has_prefix(const std::string &s, std::string_view word) {
	return s == word || (s.size() > word.size() && s.compare(0, word.size(), word) == 0 && s[word.size()] == ':');
}

} // namespace

Result<SourcePlan> plan_sources(const std::vector<std::string> &specs) {
	SourcePlan plan;
	if (specs.empty()) return plan; // sim, defaults
	const std::string &first = specs.front();
	plan.spec = first;
	if (has_prefix(first, "vfio") || has_prefix(first, "vfio-fd")) {
		plan.kind = SourcePlan::Kind::vfio;
		for (const std::string &spec : specs) {
			if (!has_prefix(spec, "vfio") && !has_prefix(spec, "vfio-fd"))
				return fail("--source " + spec + ": only vfio sources can be combined");
			auto parsed = parse_vfio_spec(spec);
			if (!parsed) return fail("--source " + parsed.error());
			plan.vfio.push_back(std::move(*parsed));
		}
		return plan;
	}
	if (specs.size() > 1) {
		if (has_prefix(first, "qemu"))
			return fail("--source " + specs[1] + ": a qemu source shows every console of its VM alone");
		return fail("--source " + specs[1] + ": only vfio sources can be combined");
	}
	if (has_prefix(first, "sim")) {
		auto opts = parse_sim_options(first.size() > 4 ? std::string_view(first).substr(4) : std::string_view());
		if (!opts) return fail("--source " + first + ": " + opts.error());
		plan.sim = std::move(*opts);
		return plan;
	}
	if (has_prefix(first, "qemu")) {
		auto opts = parse_qemu_spec(first);
		if (!opts) return fail("--source " + first + ": " + opts.error());
		plan.kind = SourcePlan::Kind::qemu;
		plan.qemu = std::move(*opts);
		return plan;
	}
	return fail("--source " + first +
	            ": unknown source; use sim[:key=value,...], vfio:<device>, vfio-fd:<n> or qemu[:<D-Bus address>]");
}

Result<std::unique_ptr<Source>> open_source(SourcePlan plan, const SourceSettings &settings) {
	switch (plan.kind) {
	case SourcePlan::Kind::sim: {
		auto sim = SimSource::create(std::move(plan.sim));
		if (!sim) return fail("--source " + plan.spec + ": " + sim.error());
		return std::unique_ptr<Source>(std::move(*sim));
	}
	case SourcePlan::Kind::vfio: {
		auto vfio = open_vfio_source(plan.vfio, settings.poll_hz, settings.vfio);
		if (!vfio) return fail("--source " + vfio.error());
		return std::unique_ptr<Source>(std::move(*vfio));
	}
	case SourcePlan::Kind::qemu: {
		plan.qemu.once = settings.once;
		auto qemu = QemuSource::create(std::move(plan.qemu));
		if (!qemu) return fail("--source " + plan.spec + ": " + qemu.error());
		return std::unique_ptr<Source>(std::move(*qemu));
	}
	}
	return fail("--source: unknown source kind");
}

} // namespace vscanout::vgpu
