"""The benchmark's current figures in docs/performance.md: a table per stack, between markers that
`bench/benchmark.py --docs` rewrites (the history of earlier figures is in CHANGELOG.md)."""

from __future__ import annotations

from pathlib import Path


def markers(key: str) -> tuple[str, str]:
    """The comments that enclose the table of stack `key` (e.g. "embedded", "kafka")."""
    return f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"


def table(title: str, rows: list[tuple[str, str]]) -> str:
    """A Markdown table of (figure, value) rows under a heading line."""
    cells = [(name, value.replace("|", "\\|")) for name, value in rows]
    return "\n".join([title, "", "| figure | value |", "| --- | --- |", *(f"| {n} | {v} |" for n, v in cells)])


def update(path: Path, key: str, title: str, rows: list[tuple[str, str]]) -> None:
    """Replace the table of stack `key` in the page (appended at the end if the page has none)."""
    begin, end = markers(key)
    block = f"{begin}\n{table(title, rows)}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
