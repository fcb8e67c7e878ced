// How the guest cursor reaches the screen for one head: one interface, one implementation per
// path. The Head holds the path in use as one value (cursor_path in the stats is its name):
//   software  drawn into the frame by our renderer (headless, or when no other path takes it)
//   hardware  the KMS cursor plane (kiosk), scaled and placed with the frame
//   parent    nested, with a guest pointer that takes absolute positions: the parent's pointer is
//             the guest's pointer and shows the guest's cursor image
// The interface and the choice between paths know no wlroots; the two device paths are in
// device_cursor.hpp.
#pragma once

#include <memory>

#include "render/frame_map.hpp"
#include "render/import.hpp"

namespace vscanout::compositor {

class CursorPath {
public:
	enum class Shown {
		yes,     // this path shows the cursor now
		refused, // this path cannot show this image (it shows none): the frame must draw it
		none,    // no cursor to show; this path hid its own: the path in use stays as it is
	};

	virtual ~CursorPath() = default;
	// "software", "hardware" or "parent".
	virtual const char *name() const = 0;
	// The frame draws the cursor: a cursor change is a redraw, and direct scan-out waits.
	virtual bool in_frame() const { return false; }
	// A new cursor image, or the frame's size changed (the image scales with it). `map` places the
	// guest frame on the output as the next commit will have it.
	virtual Shown set_image(const render::ShownPlane &cursor, const render::ShownPlane &primary,
	                        const render::FrameMap &map) = 0;
	// The cursor (or the frame) moved; called only while this path shows the cursor.
	virtual void move(const render::ShownPlane &cursor, const render::FrameMap &map) {}
	// Why this path refused (for the log).
	virtual const char *refusal() const { return ""; }
};

// Drawn into the frame by the head renderer; takes every image.
class SoftwareCursorPath final : public CursorPath {
public:
	const char *name() const override { return "software"; }
	bool in_frame() const override { return true; }
	Shown set_image(const render::ShownPlane &, const render::ShownPlane &, const render::FrameMap &) override {
		return Shown::yes;
	}
};

// Which path shows the guest cursor: the output's own path (the device: the KMS cursor plane,
// or the parent's pointer) while it takes the images, else the frame (software). A refused image
// is drawn in software until the device takes an image again.
class CursorPaths {
public:
	CursorPaths() = default;
	CursorPaths(const CursorPaths &) = delete; // current_ may point into this object
	CursorPaths &operator=(const CursorPaths &) = delete;

	// The path showing the cursor now.
	CursorPath &current() const { return *current_; }
	CursorPath *device() const { return device_.get(); }
	// Sets or (nullptr) removes the output's own path. It shows the cursor at once when `use`,
	// else from the first image it takes. True: the frame must be drawn again.
	bool set_device(std::unique_ptr<CursorPath> device, bool use);
	// A new image (or frame size) for the device path. True: the frame must be drawn again (it
	// starts or stops drawing the cursor). `output` names the output in the log.
	bool offer_image(const render::ShownPlane &cursor, const render::ShownPlane &primary, const render::FrameMap &map,
	                 const char *output);

private:
	bool use(CursorPath *path);

	SoftwareCursorPath software_;
	std::unique_ptr<CursorPath> device_;
	CursorPath *current_ = &software_;
	bool refused_ = false; // the device refused the last image it was offered
};

} // namespace vscanout::compositor
