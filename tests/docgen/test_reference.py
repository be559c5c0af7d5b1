"""Reference docs are generated from the specs and committed; they must not drift."""

from __future__ import annotations

from pathlib import Path

from dovetail.docgen.reference import check, generate, write

DOCS = Path(__file__).parents[2] / "docs" / "reference"


def test_committed_reference_matches_the_specs() -> None:
    assert check(DOCS) == []


def test_check_notices_a_hand_edit(tmp_path: Path) -> None:
    write(tmp_path)
    assert check(tmp_path) == []
    page = tmp_path / "steps" / "filter.md"
    page.write_text(page.read_text() + "\nhand edit\n")
    (tmp_path / "steps" / "old.md").write_text("stale")
    assert check(tmp_path) == ["steps/filter.md", "steps/old.md (stale)"]


def test_every_component_page_documents_its_fields() -> None:
    pages = generate()
    filter_page = pages["steps/filter.md"]
    assert "| `condition` |" in filter_page and "JSONata boolean" in filter_page
