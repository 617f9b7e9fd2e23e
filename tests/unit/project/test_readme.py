"""The README's settings tables are generated from the schema and group_data (make docs)."""

from __future__ import annotations

from deploys import docs


def test_readme_settings_tables_are_current() -> None:
    current = (docs.PROJECT / "README.md").read_text(encoding="utf-8")
    assert docs.render(current) == current, "README.md is stale: run `make docs`"
