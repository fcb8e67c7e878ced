// The guest cursor paths of an output's own (cursor_path.hpp): the KMS cursor plane and the
// parent desktop's pointer.
#pragma once

#include <memory>

#include "compositor/cursor_path.hpp"
#include "compositor/kms_cursor.hpp"
#include "compositor/wlr.hpp"
#include "core/stats.hpp"

namespace vscanout::compositor {

// The KMS cursor plane: only the image's visible part, scaled with the frame; the hotspot placed
// where the guest's is on the scaled frame. Counts cursor_images and cursor_moves.
class KmsCursorPath final : public CursorPath {
public:
	// nullptr where the output has no cursor plane we can use.
	static std::unique_ptr<KmsCursorPath> create(wlr_output *output, wlr_allocator *allocator, core::HeadStats &stats);
	const char *name() const override { return "hardware"; }
	Shown set_image(const render::ShownPlane &cursor, const render::ShownPlane &primary,
	                const render::FrameMap &map) override;
	void move(const render::ShownPlane &cursor, const render::FrameMap &map) override;
	const char *refusal() const override { return "the cursor plane cannot take this cursor image"; }

private:
	KmsCursorPath(std::unique_ptr<KmsCursor> plane, core::HeadStats &stats) : plane_(std::move(plane)), stats_(stats) {}
	std::unique_ptr<KmsCursor> plane_;
	core::HeadStats &stats_;
};

// The parent desktop's pointer over a nested window (wlr_output_cursor: the parent places it).
// Counts cursor_images.
class ParentCursorPath final : public CursorPath {
public:
	ParentCursorPath(wlr_output *output, core::HeadStats &stats);
	~ParentCursorPath() override;
	ParentCursorPath(const ParentCursorPath &) = delete;
	ParentCursorPath &operator=(const ParentCursorPath &) = delete;
	const char *name() const override { return "parent"; }
	Shown set_image(const render::ShownPlane &cursor, const render::ShownPlane &primary,
	                const render::FrameMap &map) override;
	const char *refusal() const override { return "the parent does not take the guest cursor as its pointer image"; }

private:
	wlr_output *output_;
	wlr_output_cursor *cursor_;
	core::HeadStats &stats_;
};

} // namespace vscanout::compositor
