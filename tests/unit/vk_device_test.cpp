// Which Vulkan device vscanout renders with (issue 9, item 5): the pure choice over device
// descriptions, the DRM device of a VFIO device from a fake sysfs tree and of a DRM fd, and the
// choice made by VulkanContext on whatever this machine has.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/unique_fd.hpp"
#include "render/vk_context.hpp"

namespace vscanout {
namespace {

using render::PhysicalDeviceInfo;

PhysicalDeviceInfo gpu(uint32_t index, const char *name, std::optional<dev_t> primary = std::nullopt,
                       std::optional<dev_t> render = std::nullopt) {
	PhysicalDeviceInfo d;
	d.index = index;
	d.name = name;
	d.type = VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU;
	d.drm_primary = primary;
	d.drm_render = render;
	return d;
}

PhysicalDeviceInfo cpu(uint32_t index) {
	PhysicalDeviceInfo d;
	d.index = index;
	d.name = "llvmpipe (LLVM 15.0.6, 256 bits)";
	d.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
	return d;
}

// A lavapipe first (the loader's order is not by type), then two GPUs with their DRM nodes.
std::vector<PhysicalDeviceInfo> three() {
	return {cpu(0), gpu(1, "AMD Radeon RX 6600 (RADV NAVI23)", makedev(226, 0), makedev(226, 128)),
	        gpu(2, "NVIDIA GeForce RTX 3060", makedev(226, 1), makedev(226, 129))};
}

TEST(VkDeviceChoice, NoDeviceIsAnError) {
	auto c = render::choose_device({}, "", std::nullopt, "");
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("no Vulkan device"), std::string::npos) << c.error();
}

TEST(VkDeviceChoice, FirstGpuBeatsAnEarlierCpu) {
	auto c = render::choose_device(three(), "", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 1u);
	EXPECT_EQ(c->why, "first GPU");
}

TEST(VkDeviceChoice, CpuOnlyWhenNoGpu) {
	auto c = render::choose_device({cpu(0)}, "", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 0u);
	EXPECT_EQ(c->why, "CPU fallback");
}

TEST(VkDeviceChoice, IntegratedAndOtherTypesCountAsGpus) {
	auto other = gpu(1, "virtio-gpu Venus");
	other.type = VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU;
	auto c = render::choose_device({cpu(0), other}, "", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 1u);
}

TEST(VkDeviceChoice, UserNameIsACaseInsensitiveSubstring) {
	auto c = render::choose_device(three(), "geforce", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 2u);
	EXPECT_EQ(c->why, "user choice");
	// The CPU is chosen only by name or index when a GPU is there.
	c = render::choose_device(three(), "llvmpipe", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 0u);
}

TEST(VkDeviceChoice, UserNameTakesTheFirstMatch) {
	auto c = render::choose_device({gpu(0, "GPU one"), gpu(1, "GPU two")}, "GPU", std::nullopt, "");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 0u);
}

TEST(VkDeviceChoice, UserNameThatMatchesNothingIsAnErrorListingTheDevices) {
	auto c = render::choose_device(three(), "Intel", std::nullopt, "");
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("'Intel'"), std::string::npos) << c.error();
	EXPECT_NE(c.error().find("2: NVIDIA GeForce RTX 3060"), std::string::npos) << c.error();
	EXPECT_NE(c.error().find("0: llvmpipe (LLVM 15.0.6, 256 bits) (CPU)"), std::string::npos) << c.error();
}

TEST(VkDeviceChoice, UserIndexIsTheLoadersOrder) {
	for (uint32_t i = 0; i < 3; i++) {
		auto c = render::choose_device(three(), std::to_string(i), std::nullopt, "");
		ASSERT_TRUE(c.ok()) << c.error();
		EXPECT_EQ(c->position, i);
		EXPECT_EQ(c->why, "user choice");
	}
}

TEST(VkDeviceChoice, UserIndexOutOfRangeIsAClearError) {
	auto c = render::choose_device(three(), "3", std::nullopt, "");
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("Vulkan device 3 is out of range: there are 3 devices"), std::string::npos) << c.error();
	c = render::choose_device({cpu(0)}, "1", std::nullopt, "");
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("there is 1 device (0: llvmpipe"), std::string::npos) << c.error();
	c = render::choose_device(three(), "99999999999999999999", std::nullopt, "");
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("out of range"), std::string::npos) << c.error();
}

TEST(VkDeviceChoice, UserChoiceBeatsTheDrmDevice) {
	auto c = render::choose_device(three(), "1", makedev(226, 1), "the KMS device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 1u);
	EXPECT_EQ(c->why, "user choice");
}

TEST(VkDeviceChoice, DrmPrimaryMatchBeatsFirstGpu) {
	auto c = render::choose_device(three(), "", makedev(226, 1), "the KMS device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 2u);
	EXPECT_EQ(c->why, "matches the KMS device 226:1");
}

TEST(VkDeviceChoice, DrmRenderNodeMatchesToo) {
	auto c = render::choose_device(three(), "", makedev(226, 129), "the vGPU's parent device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 2u);
	EXPECT_EQ(c->why, "matches the vGPU's parent device 226:129");
}

TEST(VkDeviceChoice, NoDrmMatchFallsBackAndSaysSo) {
	auto c = render::choose_device(three(), "", makedev(226, 2), "the KMS device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 1u);
	EXPECT_EQ(c->why, "first GPU; no device matches the KMS device 226:2");
}

TEST(VkDeviceChoice, DevicesThatDoNotTellTheirNodeFallBackAndSaySo) {
	auto c = render::choose_device({cpu(0), gpu(1, "GPU")}, "", makedev(226, 0), "the KMS device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->position, 1u);
	EXPECT_EQ(c->why, "first GPU; no device tells its DRM node (VK_EXT_physical_device_drm) to match the KMS "
	                  "device 226:0");
	c = render::choose_device({cpu(0)}, "", makedev(226, 0), "the KMS device");
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ(c->why.rfind("CPU fallback; ", 0), 0u) << c->why;
}

TEST(VkDeviceChoice, DevTextIsMajorColonMinor) {
	EXPECT_EQ(render::dev_text(makedev(226, 128)), "226:128");
	EXPECT_EQ(render::dev_text(makedev(0, 0)), "0:0");
}

// A fake /sys in a temporary directory: an Intel GPU at 0000:00:02.0 with card0 and renderD128,
// an mdev on it, an SR-IOV virtual function of it, a second GPU with two card nodes, and
// devices without DRM.
class VkDeviceSysfs : public ::testing::Test {
protected:
	void SetUp() override {
		char tmpl[] = "/tmp/vscanout-sysfs-XXXXXX";
		ASSERT_NE(::mkdtemp(tmpl), nullptr);
		root_ = tmpl;
		const std::string pf = "devices/pci0000:00/0000:00:02.0";
		write(pf + "/drm/card0/dev", "226:0\n");
		write(pf + "/drm/renderD128/dev", "226:128\n");
		write(pf + "/drm/card0/card0-HDMI-A-1/status", "connected\n");
		write(pf + "/" + kUuid + "/mdev_type/name", "GVTg_V5_4\n");
		link("../../../devices/pci0000:00/0000:00:02.0/" + std::string(kUuid),
		     "bus/mdev/devices/" + std::string(kUuid));
		write("devices/pci0000:00/0000:00:02.1/vendor", "0x8086\n");
		link("../0000:00:02.0", "devices/pci0000:00/0000:00:02.1/physfn");
		link("../../../devices/pci0000:00/0000:00:02.1", "bus/pci/devices/0000:00:02.1");
		write("devices/pci0000:00/0000:01:00.0/drm/card3/dev", "226:3\n");
		write("devices/pci0000:00/0000:01:00.0/drm/card12/dev", "226:12\n");
		write("devices/pci0000:00/0000:03:00.0/vendor", "0x1af4\n");
		write("devices/virtual/mbochs/mbochs/" + std::string(kUuid2) + "/mdev_type/name", "mbochs-medium\n");
		write("devices/pci0000:00/0000:04:00.0/drm/card5/dev", "garbage\n");
	}
	void TearDown() override { std::filesystem::remove_all(root_); }
	void write(const std::string &rel, const std::string &text) {
		const std::filesystem::path p = root_ + "/" + rel;
		std::filesystem::create_directories(p.parent_path());
		std::ofstream(p) << text;
	}
	void link(const std::string &target, const std::string &rel) {
		const std::filesystem::path p = root_ + "/" + rel;
		std::filesystem::create_directories(p.parent_path());
		std::filesystem::create_directory_symlink(target, p);
	}
	static constexpr const char *kUuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
	static constexpr const char *kUuid2 = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002";
	std::string root_;
};

TEST_F(VkDeviceSysfs, MdevTakesItsParentsPrimaryNode) {
	auto d = render::drm_device_of_vfio(root_ + "/bus/mdev/devices/" + kUuid);
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(render::dev_text(*d), "226:0");
}

TEST_F(VkDeviceSysfs, VirtualFunctionTakesItsPhysicalFunctionsNode) {
	auto d = render::drm_device_of_vfio(root_ + "/bus/pci/devices/0000:00:02.1");
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(render::dev_text(*d), "226:0");
}

TEST_F(VkDeviceSysfs, DeviceWithItsOwnDrmNodeTakesTheLowestCard) {
	auto d = render::drm_device_of_vfio(root_ + "/devices/pci0000:00/0000:01:00.0");
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(render::dev_text(*d), "226:3");
}

TEST_F(VkDeviceSysfs, DeviceWithoutDrmIsAnError) {
	auto d = render::drm_device_of_vfio(root_ + "/devices/pci0000:00/0000:03:00.0");
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("has no DRM device"), std::string::npos) << d.error();
	// A sample mdev (mbochs) hangs off a virtual parent with no DRM node.
	d = render::drm_device_of_vfio(root_ + "/devices/virtual/mbochs/mbochs/" + kUuid2);
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("mbochs/mbochs has no DRM device"), std::string::npos) << d.error();
}

TEST_F(VkDeviceSysfs, MissingPathAndBadDevFileAreErrors) {
	auto d = render::drm_device_of_vfio(root_ + "/bus/mdev/devices/nope");
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("no such device"), std::string::npos) << d.error();
	d = render::drm_device_of_vfio(root_ + "/devices/pci0000:00/0000:04:00.0");
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("major:minor"), std::string::npos) << d.error();
}

TEST(VkDeviceFd, DeviceNodeGivesItsRdev) {
	UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
	ASSERT_TRUE(fd);
	auto d = render::drm_device_of_fd(fd.get());
	ASSERT_TRUE(d.ok()) << d.error();
	EXPECT_EQ(render::dev_text(*d), "1:3");
}

TEST(VkDeviceFd, RegularFileIsAnError) {
	UniqueFd fd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
	ASSERT_TRUE(fd);
	auto d = render::drm_device_of_fd(fd.get());
	ASSERT_FALSE(d.ok());
	EXPECT_NE(d.error().find("not a device node"), std::string::npos) << d.error();
}

// The real thing on this machine's devices (lavapipe at least).
TEST(VkDeviceContext, IndexZeroIsAUserChoice) {
	auto c = render::VulkanContext::create(render::ContextOptions{.device = "0"});
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_EQ((*c)->device_reason(), "user choice");
}

TEST(VkDeviceContext, IndexOutOfRangeFails) {
	auto c = render::VulkanContext::create(render::ContextOptions{.device = "4096"});
	ASSERT_FALSE(c.ok());
	EXPECT_NE(c.error().find("out of range"), std::string::npos) << c.error();
}

TEST(VkDeviceContext, UnmatchedDrmDeviceFallsBackWithAReason) {
	// 1:3 is /dev/null: no Vulkan device has it as a DRM node.
	auto c = render::VulkanContext::create(
	    render::ContextOptions{.drm_device = makedev(1, 3), .drm_reason = "the KMS device"});
	ASSERT_TRUE(c.ok()) << c.error();
	EXPECT_NE((*c)->device_reason().find("the KMS device 1:3"), std::string::npos) << (*c)->device_reason();
}

} // namespace
} // namespace vscanout
