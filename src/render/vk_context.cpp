#include "render/vk_context.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "base/log.hpp"

namespace vscanout::render {
namespace {

bool has_extension(const std::vector<VkExtensionProperties> &exts, const char *name) {
	return std::any_of(exts.begin(), exts.end(),
	                   [&](const auto &e) { return std::strcmp(e.extensionName, name) == 0; });
}

std::string lower(std::string s) {
	for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	return s;
}

bool is_cpu(const PhysicalDeviceInfo &d) { return d.type == VK_PHYSICAL_DEVICE_TYPE_CPU; }

std::string device_list(const std::vector<PhysicalDeviceInfo> &devices) {
	std::string s;
	for (size_t i = 0; i < devices.size(); i++)
		s += (i ? ", " : "") + std::to_string(i) + ": " + devices[i].name + (is_cpu(devices[i]) ? " (CPU)" : "");
	return s;
}

bool exists(const std::string &path) {
	struct stat st {};
	return ::stat(path.c_str(), &st) == 0;
}

std::string real_path(const std::string &path) {
	char buf[PATH_MAX];
	return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

// "226:0\n" -> makedev(226, 0).
Result<dev_t> read_dev_file(const std::string &path) {
	std::ifstream f(path);
	unsigned maj = 0, min = 0;
	char colon = 0;
	if (!(f >> maj >> colon >> min) || colon != ':') return fail("cannot read a major:minor from " + path);
	return makedev(maj, min);
}

// The primary node (drm/card<N>/dev) of a device directory, the lowest N where there are several.
Result<dev_t> primary_node_of(const std::string &dir) {
	DIR *d = ::opendir((dir + "/drm").c_str());
	if (!d) return fail(dir + " has no DRM device (no drm/ directory: is a DRM driver bound to it?)");
	std::string best;
	long best_n = -1;
	while (dirent *e = ::readdir(d)) {
		const std::string name = e->d_name;
		if (name.rfind("card", 0) != 0 || name.size() == 4 || !std::all_of(name.begin() + 4, name.end(), [](char c) {
			    return std::isdigit(static_cast<unsigned char>(c));
		    }))
			continue;
		long n = std::strtol(name.c_str() + 4, nullptr, 10);
		if (best_n < 0 || n < best_n) {
			best_n = n;
			best = name;
		}
	}
	::closedir(d);
	if (best.empty()) return fail(dir + "/drm has no card<N> node");
	return read_dev_file(dir + "/drm/" + best + "/dev");
}

} // namespace

Result<DeviceChoice> choose_device(const std::vector<PhysicalDeviceInfo> &devices, const std::string &user,
                                   std::optional<dev_t> drm_device, const std::string &drm_reason) {
	if (devices.empty())
		return fail("no Vulkan device found: install a GPU's Vulkan driver, or Mesa's lavapipe "
		            "(Debian: mesa-vulkan-drivers) to render on the CPU");
	if (!user.empty()) {
		const bool is_index = std::all_of(user.begin(), user.end(), [](char c) { return c >= '0' && c <= '9'; });
		if (is_index) {
			const unsigned long i = user.size() > 9 ? ULONG_MAX : std::strtoul(user.c_str(), nullptr, 10);
			if (i >= devices.size())
				return fail(
				    "Vulkan device " + user + " is out of range: there " +
				    (devices.size() == 1 ? "is 1 device" : "are " + std::to_string(devices.size()) + " devices") +
				    " (" + device_list(devices) + ")");
			return DeviceChoice{i, "user choice"};
		}
		for (size_t i = 0; i < devices.size(); i++)
			if (lower(devices[i].name).find(lower(user)) != std::string::npos) return DeviceChoice{i, "user choice"};
		return fail("no Vulkan device matches '" + user + "' (" + device_list(devices) + ")");
	}

	std::string miss; // why the DRM device did not decide, appended to the fallback's reason
	if (drm_device) {
		const std::string what = (drm_reason.empty() ? "the DRM device" : drm_reason) + " " + dev_text(*drm_device);
		bool any_tells = false;
		for (size_t i = 0; i < devices.size(); i++) {
			const PhysicalDeviceInfo &d = devices[i];
			any_tells |= d.drm_primary.has_value() || d.drm_render.has_value();
			if (d.drm_primary == drm_device || d.drm_render == drm_device) return DeviceChoice{i, "matches " + what};
		}
		miss = any_tells ? "; no device matches " + what
		                 : "; no device tells its DRM node (VK_EXT_physical_device_drm) to match " + what;
	}
	for (size_t i = 0; i < devices.size(); i++)
		if (!is_cpu(devices[i])) return DeviceChoice{i, "first GPU" + miss};
	return DeviceChoice{0, "CPU fallback" + miss};
}

std::string dev_text(dev_t dev) { return std::to_string(major(dev)) + ":" + std::to_string(minor(dev)); }

Result<dev_t> drm_device_of_fd(int fd) {
	struct stat st {};
	if (::fstat(fd, &st) < 0) return fail(std::string("fstat of the DRM fd failed: ") + std::strerror(errno));
	if (!S_ISCHR(st.st_mode)) return fail("fd " + std::to_string(fd) + " is not a device node");
	return st.st_rdev;
}

Result<dev_t> drm_device_of_vfio(const std::string &sysfs_path) {
	const std::string dev = real_path(sysfs_path);
	if (dev.empty()) return fail("no such device: " + sysfs_path);
	std::string parent;
	if (exists(dev + "/mdev_type")) {
		parent = dev.substr(0, dev.find_last_of('/')); // an mdev lives in its parent's directory
	} else if (exists(dev + "/physfn")) {
		parent = real_path(dev + "/physfn");
	} else {
		parent = dev;
	}
	if (parent.empty()) return fail("cannot find the parent device of " + sysfs_path);
	auto node = primary_node_of(parent);
	if (!node) return fail("the vGPU " + sysfs_path + ": " + node.error());
	return node;
}

VkResult VulkanContext::check(VkResult r, const char *what) const {
	if (r == VK_ERROR_DEVICE_LOST && !lost_) {
		lost_ = true;
		VLOG_ERROR("vulkan: the device (%s) was lost: VK_ERROR_DEVICE_LOST from %s; every head keeps its last frame "
		           "until a new device is made",
		           caps_.device_name.c_str(), what);
	}
	return r;
}

namespace {
bool g_lose_next_submit = false;
} // namespace

void arm_device_loss() { g_lose_next_submit = true; }

bool inject_device_lost() {
	if (!g_lose_next_submit) return false;
	g_lose_next_submit = false;
	VLOG_INFO("vulkan: this submit reports VK_ERROR_DEVICE_LOST (fault injection)");
	return true;
}

const char *vk_result_name(VkResult r) {
	switch (r) {
	case VK_SUCCESS: return "VK_SUCCESS";
	case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
	case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
	case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
	case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
	case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
	case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
	case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
	case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
	case VK_ERROR_INVALID_EXTERNAL_HANDLE: return "VK_ERROR_INVALID_EXTERNAL_HANDLE";
	default: return "VkResult error";
	}
}

Result<std::unique_ptr<VulkanContext>> VulkanContext::create(const ContextOptions &options) {
	std::unique_ptr<VulkanContext> ctx(new VulkanContext());
	VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
	app.pApplicationName = "vscanout";
	app.apiVersion = VK_API_VERSION_1_2;
	VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
	ici.pApplicationInfo = &app;
	if (VkResult r = vkCreateInstance(&ici, nullptr, &ctx->instance_); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateInstance", r) +
		            ": is a Vulkan loader and driver installed? (Debian: libvulkan1 mesa-vulkan-drivers)");

	uint32_t n = 0;
	vkEnumeratePhysicalDevices(ctx->instance_, &n, nullptr);
	std::vector<VkPhysicalDevice> devs(n);
	vkEnumeratePhysicalDevices(ctx->instance_, &n, devs.data());
	devs.resize(n);

	std::vector<PhysicalDeviceInfo> infos;
	for (uint32_t i = 0; i < devs.size(); i++) {
		PhysicalDeviceInfo info;
		info.index = i;
		uint32_t ne = 0;
		vkEnumerateDeviceExtensionProperties(devs[i], nullptr, &ne, nullptr);
		std::vector<VkExtensionProperties> exts(ne);
		vkEnumerateDeviceExtensionProperties(devs[i], nullptr, &ne, exts.data());
		VkPhysicalDeviceDrmPropertiesEXT drm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRM_PROPERTIES_EXT};
		VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
		const bool tells_drm = has_extension(exts, VK_EXT_PHYSICAL_DEVICE_DRM_EXTENSION_NAME);
		if (tells_drm) p2.pNext = &drm;
		vkGetPhysicalDeviceProperties2(devs[i], &p2);
		info.name = p2.properties.deviceName;
		info.type = p2.properties.deviceType;
		if (tells_drm && drm.hasPrimary)
			info.drm_primary =
			    makedev(static_cast<unsigned>(drm.primaryMajor), static_cast<unsigned>(drm.primaryMinor));
		if (tells_drm && drm.hasRender)
			info.drm_render = makedev(static_cast<unsigned>(drm.renderMajor), static_cast<unsigned>(drm.renderMinor));
		infos.push_back(std::move(info));
	}
	auto choice = choose_device(infos, options.device, options.drm_device, options.drm_reason);
	if (!choice) return choice.take_error();
	VkPhysicalDevice chosen = devs[choice->position];
	ctx->physical_ = chosen;
	ctx->device_reason_ = choice->why;

	VkPhysicalDeviceExternalMemoryHostPropertiesEXT host_props{
	    VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_MEMORY_HOST_PROPERTIES_EXT};
	VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
	props2.pNext = &host_props;
	vkGetPhysicalDeviceProperties2(chosen, &props2);
	auto &caps = ctx->caps_;
	caps.device_name = props2.properties.deviceName;
	caps.is_cpu = props2.properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
	caps.max_storage_range = props2.properties.limits.maxStorageBufferRange;
	vkGetPhysicalDeviceMemoryProperties(chosen, &ctx->memory_props_);

	uint32_t ne = 0;
	vkEnumerateDeviceExtensionProperties(chosen, nullptr, &ne, nullptr);
	std::vector<VkExtensionProperties> exts(ne);
	vkEnumerateDeviceExtensionProperties(chosen, nullptr, &ne, exts.data());
	std::vector<const char *> enable;
	if (!options.disable_host_memory && has_extension(exts, VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME)) {
		enable.push_back(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
		caps.host_memory = true;
		caps.host_alignment = host_props.minImportedHostPointerAlignment;
	}
	if (!options.disable_dmabuf && has_extension(exts, VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME) &&
	    has_extension(exts, VK_EXT_EXTERNAL_MEMORY_DMA_BUF_EXTENSION_NAME)) {
		enable.push_back(VK_KHR_EXTERNAL_MEMORY_FD_EXTENSION_NAME);
		enable.push_back(VK_EXT_EXTERNAL_MEMORY_DMA_BUF_EXTENSION_NAME);
		caps.dmabuf = true;
		if (has_extension(exts, VK_EXT_IMAGE_DRM_FORMAT_MODIFIER_EXTENSION_NAME)) {
			enable.push_back(VK_EXT_IMAGE_DRM_FORMAT_MODIFIER_EXTENSION_NAME);
			caps.drm_modifier = true;
		}
		if (has_extension(exts, VK_EXT_QUEUE_FAMILY_FOREIGN_EXTENSION_NAME)) {
			enable.push_back(VK_EXT_QUEUE_FAMILY_FOREIGN_EXTENSION_NAME);
			ctx->has_foreign_family_ = true;
		}
	}

	uint32_t nq = 0;
	vkGetPhysicalDeviceQueueFamilyProperties(chosen, &nq, nullptr);
	std::vector<VkQueueFamilyProperties> qf(nq);
	vkGetPhysicalDeviceQueueFamilyProperties(chosen, &nq, qf.data());
	bool found = false;
	for (uint32_t i = 0; i < nq; i++) {
		if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
			ctx->queue_family_ = i;
			found = true;
			break;
		}
	}
	if (!found) return fail("Vulkan device " + caps.device_name + " has no compute queue");

	float prio = 1.0f;
	VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
	qci.queueFamilyIndex = ctx->queue_family_;
	qci.queueCount = 1;
	qci.pQueuePriorities = &prio;
	VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
	dci.queueCreateInfoCount = 1;
	dci.pQueueCreateInfos = &qci;
	dci.enabledExtensionCount = static_cast<uint32_t>(enable.size());
	dci.ppEnabledExtensionNames = enable.data();
	if (VkResult r = vkCreateDevice(chosen, &dci, nullptr, &ctx->device_); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateDevice", r));
	vkGetDeviceQueue(ctx->device_, ctx->queue_family_, 0, &ctx->queue_);
	if (caps.host_memory)
		ctx->get_host_pointer_properties = reinterpret_cast<PFN_vkGetMemoryHostPointerPropertiesEXT>(
		    vkGetDeviceProcAddr(ctx->device_, "vkGetMemoryHostPointerPropertiesEXT"));
	if (caps.dmabuf)
		ctx->get_memory_fd_properties = reinterpret_cast<PFN_vkGetMemoryFdPropertiesKHR>(
		    vkGetDeviceProcAddr(ctx->device_, "vkGetMemoryFdPropertiesKHR"));

	VLOG_INFO("vulkan: %s (%s); imports: dma-buf %s, host memory %s (alignment %llu)", caps.device_name.c_str(),
	          ctx->device_reason_.c_str(),
	          caps.dmabuf ? (caps.drm_modifier ? "with modifiers" : "without modifiers") : "no",
	          caps.host_memory ? "yes" : "no", static_cast<unsigned long long>(caps.host_alignment));
	return ctx;
}

VulkanContext::~VulkanContext() {
	if (device_) {
		vkDeviceWaitIdle(device_);
		vkDestroyDevice(device_, nullptr);
	}
	if (instance_) vkDestroyInstance(instance_, nullptr);
}

int VulkanContext::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags flags) const {
	for (uint32_t i = 0; i < memory_props_.memoryTypeCount; i++)
		if ((type_bits & (1u << i)) && (memory_props_.memoryTypes[i].propertyFlags & flags) == flags)
			return static_cast<int>(i);
	return -1;
}

Result<VulkanContext::HostBuffer> VulkanContext::import_host_buffer(void *ptr, VkDeviceSize size,
                                                                    VkBufferUsageFlags usage) const {
	if (!caps_.host_memory) return fail("the Vulkan device cannot import host memory");
	const VkDeviceSize a = caps_.host_alignment;
	if (reinterpret_cast<uintptr_t>(ptr) % a != 0 || size % a != 0)
		return fail("host memory at " + std::to_string(reinterpret_cast<uintptr_t>(ptr)) + " size " +
		            std::to_string(size) + " is not aligned to " + std::to_string(a));
	VkMemoryHostPointerPropertiesEXT hp{VK_STRUCTURE_TYPE_MEMORY_HOST_POINTER_PROPERTIES_EXT};
	if (VkResult r =
	        get_host_pointer_properties(device_, VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT, ptr, &hp);
	    r != VK_SUCCESS)
		return fail(vk_fail("vkGetMemoryHostPointerPropertiesEXT", r));

	VkExternalMemoryBufferCreateInfo ext{VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO};
	ext.handleTypes = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
	VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bci.pNext = &ext;
	bci.size = size;
	bci.usage = usage;
	VkBuffer buf;
	if (VkResult r = vkCreateBuffer(device_, &bci, nullptr, &buf); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateBuffer", r));
	HostBuffer out{Buffer(device_, buf), {}};
	VkMemoryRequirements req;
	vkGetBufferMemoryRequirements(device_, buf, &req);
	int type = find_memory_type(req.memoryTypeBits & hp.memoryTypeBits, 0);
	if (type < 0) return fail("no Vulkan memory type can hold imported host memory");
	VkImportMemoryHostPointerInfoEXT imp{VK_STRUCTURE_TYPE_IMPORT_MEMORY_HOST_POINTER_INFO_EXT};
	imp.handleType = VK_EXTERNAL_MEMORY_HANDLE_TYPE_HOST_ALLOCATION_BIT_EXT;
	imp.pHostPointer = ptr;
	auto mem = bind_memory(buf, size, static_cast<uint32_t>(type), &imp);
	if (!mem) return fail("importing host memory: " + mem.error());
	out.memory = std::move(*mem);
	return out;
}

Result<Memory> VulkanContext::bind_memory(VkBuffer buf, VkDeviceSize size, uint32_t type, const void *next) const {
	VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
	mai.pNext = next;
	mai.allocationSize = size;
	mai.memoryTypeIndex = type;
	VkDeviceMemory mem;
	if (VkResult r = check(vkAllocateMemory(device_, &mai, nullptr, &mem), "vkAllocateMemory"); r != VK_SUCCESS)
		return fail(vk_fail("vkAllocateMemory", r));
	Memory owner(device_, mem);
	if (VkResult r = vkBindBufferMemory(device_, buf, mem, 0); r != VK_SUCCESS)
		return fail(vk_fail("vkBindBufferMemory", r));
	return owner;
}

Result<VulkanContext::MappedBuffer> VulkanContext::create_mapped_buffer(VkDeviceSize size,
                                                                        VkBufferUsageFlags usage) const {
	VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
	bci.size = size;
	bci.usage = usage;
	VkBuffer buf;
	if (VkResult r = vkCreateBuffer(device_, &bci, nullptr, &buf); r != VK_SUCCESS)
		return fail(vk_fail("vkCreateBuffer", r));
	MappedBuffer out{Buffer(device_, buf), {}, nullptr};
	VkMemoryRequirements req;
	vkGetBufferMemoryRequirements(device_, buf, &req);
	int type = find_memory_type(req.memoryTypeBits,
	                            VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
	if (type < 0) return fail("no host-visible coherent Vulkan memory");
	auto mem = bind_memory(buf, req.size, static_cast<uint32_t>(type), nullptr);
	if (!mem) return mem.take_error();
	out.memory = std::move(*mem);
	if (VkResult r = check(vkMapMemory(device_, out.memory.get(), 0, VK_WHOLE_SIZE, 0, &out.data), "vkMapMemory");
	    r != VK_SUCCESS)
		return fail(vk_fail("vkMapMemory", r));
	return out;
}

std::string vk_fail(const char *what, VkResult r) { return std::string(what) + " failed: " + vk_result_name(r); }

} // namespace vscanout::render
