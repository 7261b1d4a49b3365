"""bench/ writes the current figures into docs/performance.md, replacing only its own table."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import docs_table  # noqa: E402


def test_a_run_replaces_its_stacks_table_and_nothing_else(tmp_path: Path) -> None:
    """The table between a stack's markers is rewritten; text around it and another stack's table stay."""
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\nmethod text\n")
    docs_table.update(page, "kafka", "### Apache Kafka", [("truthstream", "1 msg/s")])
    docs_table.update(page, "embedded", "### embedded", [("truthstream", "2 msg/s")])
    docs_table.update(page, "kafka", "### Apache Kafka", [("truthstream", "3 msg/s | fast")])
    text = page.read_text()
    assert text.startswith("# Performance\n\nmethod text\n")
    assert "| truthstream | 3 msg/s \\| fast |" in text and "1 msg/s" not in text
    assert "| truthstream | 2 msg/s |" in text
    assert text.count("<!-- bench:kafka:begin -->") == 1


def test_the_performance_page_holds_a_table_for_each_stack() -> None:
    """docs/performance.md carries the markers the benchmark writes between."""
    text = (ROOT / "docs" / "performance.md").read_text()
    for key in ("embedded", "kafka", "data-quality"):
        begin, end = docs_table.markers(key)
        assert text.index(begin) < text.index(end)
