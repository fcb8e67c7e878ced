// The source factory: every --source spec parsed once into a plan, and the plan opened.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vgpu/source_factory.hpp"

namespace vscanout::vgpu {
namespace {

using Kind = SourcePlan::Kind;

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

TEST(SourceFactory, NoSpecIsTheSimWithItsDefaults) {
	auto plan = plan_sources({});
	ASSERT_TRUE(plan.ok()) << plan.error();
	EXPECT_EQ(plan->kind, Kind::sim);
	EXPECT_EQ(plan->sim.heads, SimOptions{}.heads);
}

TEST(SourceFactory, SimOptionsAreParsedIntoThePlan) {
	auto plan = plan_sources({"sim:heads=3,fps=0"});
	ASSERT_TRUE(plan.ok()) << plan.error();
	EXPECT_EQ(plan->kind, Kind::sim);
	EXPECT_EQ(plan->sim.heads, 3u);
	EXPECT_EQ(plan->sim.fps, 0);
	auto bad = plan_sources({"sim:bogus=1"});
	ASSERT_FALSE(bad.ok());
	EXPECT_TRUE(contains(bad.error(), "--source sim:bogus=1: ")) << bad.error();
	EXPECT_TRUE(contains(bad.error(), "bogus")) << bad.error();
}

TEST(SourceFactory, VfioSpecsAreOneHeadEach) {
	auto plan = plan_sources({"vfio:83b8f4f2-509f-382f-3c1e-e6bfe0fa1001,size=1280x800", "vfio-fd:5:dev"});
	ASSERT_TRUE(plan.ok()) << plan.error();
	EXPECT_EQ(plan->kind, Kind::vfio);
	ASSERT_EQ(plan->vfio.size(), 2u);
	EXPECT_FALSE(plan->vfio[0].by_fd);
	EXPECT_EQ(plan->vfio[0].device, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
	EXPECT_TRUE(plan->vfio[1].by_fd);
	EXPECT_EQ(plan->vfio[1].fd, 5);
	EXPECT_EQ(plan->vfio[1].device, "dev");
	auto bad = plan_sources({"vfio-fd:abc"});
	ASSERT_FALSE(bad.ok());
	EXPECT_TRUE(contains(bad.error(), "--source ")) << bad.error();
}

TEST(SourceFactory, OnlyVfioSpecsCombine) {
	auto mixed = plan_sources({"vfio:a", "sim"});
	ASSERT_FALSE(mixed.ok());
	EXPECT_TRUE(contains(mixed.error(), "--source sim: only vfio sources can be combined")) << mixed.error();
	auto sim_first = plan_sources({"sim", "vfio:a"});
	ASSERT_FALSE(sim_first.ok());
	EXPECT_TRUE(contains(sim_first.error(), "--source vfio:a: only vfio sources can be combined")) << sim_first.error();
	auto two_qemus = plan_sources({"qemu", "qemu:qmp:/run/x.qmp"});
	ASSERT_FALSE(two_qemus.ok());
	EXPECT_TRUE(contains(two_qemus.error(), "alone")) << two_qemus.error();
}

TEST(SourceFactory, QemuSpecsAreParsedIntoThePlan) {
	auto plan = plan_sources({"qemu:qmp:/run/vm1.qmp"});
	ASSERT_TRUE(plan.ok()) << plan.error();
	EXPECT_EQ(plan->kind, Kind::qemu);
	EXPECT_EQ(plan->qemu.qmp, "/run/vm1.qmp");
	auto bus = plan_sources({"qemu"});
	ASSERT_TRUE(bus.ok()) << bus.error();
	EXPECT_TRUE(bus->qemu.qmp.empty());
}

TEST(SourceFactory, NamesThatOnlyLookLikeASourceAreUnknown) {
	for (const char *spec : {"simulator", "nope", "vfiox:1", "qemux"}) {
		auto plan = plan_sources({spec});
		ASSERT_FALSE(plan.ok()) << spec;
		EXPECT_TRUE(contains(plan.error(), "unknown source")) << plan.error();
	}
}

TEST(SourceFactory, APlanOpens) {
	auto plan = plan_sources({"sim:heads=3,fps=0,dmabuf=off"});
	ASSERT_TRUE(plan.ok()) << plan.error();
	auto source = open_source(std::move(*plan), SourceSettings{});
	ASSERT_TRUE(source.ok()) << source.error();
	EXPECT_EQ((*source)->name(), "sim");
	EXPECT_EQ((*source)->heads().size(), 3u);
	// A control FIFO in a folder that does not exist parses, but the open fails, naming the spec.
	auto bad = plan_sources({"sim:fps=0,control=/nonexistent-vscanout-dir/ctl"});
	ASSERT_TRUE(bad.ok()) << bad.error();
	auto failed = open_source(std::move(*bad), SourceSettings{});
	ASSERT_FALSE(failed.ok());
	EXPECT_TRUE(contains(failed.error(), "--source sim:fps=0,control=/nonexistent-vscanout-dir/ctl: "))
		<< failed.error();
}

} // namespace
} // namespace vscanout::vgpu
