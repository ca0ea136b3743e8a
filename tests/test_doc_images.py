"""docs/app.md shows every screen as the snapshot tests render it: the pictures are copies of the
baselines (``python tests/doc_images.py`` refreshes them), and the page links each one."""

from __future__ import annotations

from doc_images import DOC_IMAGES, IMAGES, REPO, stale


def test_every_doc_picture_is_a_current_snapshot_and_shown_on_the_page():
    assert not stale(), "run `python tests/doc_images.py` after updating snapshots"
    page = (REPO / "docs" / "app.md").read_text(encoding="utf-8")
    for name in DOC_IMAGES:
        assert (IMAGES / name).is_file()
        assert f"images/{name}" in page, f"docs/app.md does not show {name}"
