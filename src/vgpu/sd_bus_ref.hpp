// Owning references to sd-bus objects: a connection, a slot (an object vtable, a match, a
// pending call) and a message, each released exactly once, by the function sd-bus has for it.
// Everything in the QEMU source that holds one of them holds it through these.
#pragma once

#include <systemd/sd-bus.h>

#include <utility>

namespace vscanout::vgpu::dbus {

template <class T, T *(*Release)(T *)> class Ref {
public:
	Ref() = default;
	explicit Ref(T *p) : p_(p) {} // takes the reference
	Ref(const Ref &) = delete;
	Ref &operator=(const Ref &) = delete;
	Ref(Ref &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
	Ref &operator=(Ref &&o) noexcept {
		if (this != &o) reset(std::exchange(o.p_, nullptr));
		return *this;
	}
	~Ref() { reset(); }

	T *get() const { return p_; }
	explicit operator bool() const { return p_ != nullptr; }
	// For sd-bus's out parameters (sd_bus_new(&x), sd_bus_message_new_method_call(bus, &x, ...)):
	// whatever was held is released first.
	T **out() {
		reset();
		return &p_;
	}
	T *release() { return std::exchange(p_, nullptr); }
	void reset(T *p = nullptr) {
		if (p_) Release(p_);
		p_ = p;
	}

private:
	T *p_ = nullptr;
};

// A connection: closed (its fd too) and released. A connection with messages still to send is
// flushed first by whoever means to wait for that (sd_bus_flush); this never blocks.
using Bus = Ref<sd_bus, sd_bus_close_unref>;
// A match, an object's vtable or a pending call: releasing it removes it from its connection.
using Slot = Ref<sd_bus_slot, sd_bus_slot_unref>;
using Message = Ref<sd_bus_message, sd_bus_message_unref>;

} // namespace vscanout::vgpu::dbus
