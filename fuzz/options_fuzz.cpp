// The command line (compositor/options.cpp) on fuzzer-built argv, and the --source specs it
// collects through the source factory's parser (plan_sources, vgpu/source_factory.cpp: the sim
// option string, vfio/vfio-fd specs, qemu specs with their limits).
//
// The input is the arguments after argv[0], separated by NUL bytes. Each input is parsed twice,
// with other argument strings in between, as getopt keeps state between calls.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compositor/options.hpp"
#include "fuzz_common.hpp"
#include "vgpu/source_factory.hpp"

namespace vscanout::fuzz {
namespace {

std::vector<std::string> split_args(std::string_view text) {
	std::vector<std::string> args{"vscanout"};
	size_t start = 0;
	while (start <= text.size()) {
		size_t end = text.find('\0', start);
		if (end == std::string_view::npos) end = text.size();
		args.emplace_back(text.substr(start, end - start));
		start = end + 1;
	}
	return args;
}

Result<compositor::Options> parse(std::vector<std::string> args) { // a copy: getopt permutes argv
	std::vector<char *> argv;
	for (std::string &a : args) argv.push_back(a.data());
	argv.push_back(nullptr);
	return compositor::parse_options(static_cast<int>(args.size()), argv.data());
}

bool has_prefix(const std::string &s, std::string_view word) {
	return s == word || (s.size() > word.size() && s.compare(0, word.size(), word) == 0 && s[word.size()] == ':');
}

void check_plan(const std::vector<std::string> &sources) {
	// sim:script=FILE reads a file: the script parser has its own fuzzer (sim_script_fuzz).
	for (const std::string &s : sources)
		if (s.find("script=") != std::string::npos) return;
	auto plan = vgpu::plan_sources(sources);
	if (!plan) {
		FUZZ_CHECK(plan.error().rfind("--source ", 0) == 0); // errors name the spec
		return;
	}
	using Kind = vgpu::SourcePlan::Kind;
	if (sources.empty()) {
		FUZZ_CHECK(plan->kind == Kind::sim);
		return;
	}
	FUZZ_CHECK(plan->spec == sources.front());
	switch (plan->kind) {
	case Kind::sim:
		FUZZ_CHECK(sources.size() == 1 && has_prefix(sources[0], "sim"));
		FUZZ_CHECK(plan->sim.heads >= 1 && plan->sim.heads <= 16 && !plan->sim.modes.empty());
		break;
	case Kind::vfio:
		FUZZ_CHECK(plan->vfio.size() == sources.size());
		for (const auto &v : plan->vfio) {
			if (v.by_fd) FUZZ_CHECK(v.fd >= 0 && v.fd <= 65535);
			FUZZ_CHECK((v.options.width == 0) == (v.options.height == 0));
			FUZZ_CHECK(v.options.width <= 65535 && v.options.height <= 65535);
		}
		break;
	case Kind::qemu:
		FUZZ_CHECK(sources.size() == 1 && has_prefix(sources[0], "qemu"));
		FUZZ_CHECK(plan->qemu.limits.max_heads >= 1 && plan->qemu.limits.max_heads <= 64);
		FUZZ_CHECK(plan->qemu.limits.max_mib >= 1);
		FUZZ_CHECK(plan->qemu.address.empty() || plan->qemu.qmp.empty());
		break;
	}
}

} // namespace
} // namespace vscanout::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	using namespace vscanout::fuzz;
	quiet_logs();
	const std::vector<std::string> args = split_args(std::string_view(reinterpret_cast<const char *>(data), size));
	auto first = parse(args);
	// Another command line in between (one that stops inside a cluster of short options), then
	// the same again: it must give the same answer.
	(void)parse({"vscanout", "-dZs", "--cache", "3"});
	auto second = parse(args);
	FUZZ_CHECK(first.ok() == second.ok());
	if (!first) {
		FUZZ_CHECK(first.error() == second.error());
		return 0;
	}
	const vscanout::compositor::Options &o = *first;
	FUZZ_CHECK(o.sources == second->sources && o.cache == second->cache && o.debug == second->debug &&
	           o.allow_vt_switch == second->allow_vt_switch && o.output_map == second->output_map);
	FUZZ_CHECK(o.cache >= 2 && o.cache <= 1024);
	FUZZ_CHECK(o.poll_hz >= 1 && o.poll_hz <= 1000);
	FUZZ_CHECK(o.fence_timeout_ms >= 1 && o.fence_timeout_ms <= 600000);
	if (o.refresh == vscanout::compositor::RefreshPolicy::poll) FUZZ_CHECK(o.refresh_hz >= 1 && o.refresh_hz <= 1000);
	// No connector is given to two heads.
	std::vector<std::string> connectors;
	for (const auto &[head, name] : o.output_map) connectors.push_back(name);
	std::sort(connectors.begin(), connectors.end());
	FUZZ_CHECK(std::adjacent_find(connectors.begin(), connectors.end()) == connectors.end());
	check_plan(o.sources);
	return 0;
}
