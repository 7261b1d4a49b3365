"""The documentation: the settings page matches the settings, every page is in the site's
navigation, and the README stays a front door."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.settings import reference as settings_reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_page_is_generated_from_the_settings() -> None:
    """docs/settings.md is what `python -m stream.settings.reference` writes (run it after adding
    or changing a setting)."""
    assert (ROOT / "docs" / "settings.md").read_text() == settings_reference.markdown()


def test_every_setting_is_on_the_settings_page() -> None:
    """Each setting's variable appears once in the reference."""
    from dataclasses import fields

    from stream.settings import ENV_PREFIX, Settings

    page = settings_reference.markdown()
    for f in fields(Settings):
        assert page.count(f"`{ENV_PREFIX}{f.name.upper()}`") == 1, f.name


def test_every_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    """mkdocs.yml's nav lists exactly the pages of docs/."""

    def pages(entries: list) -> set[str]:
        found = set()
        for entry in entries:
            for value in entry.values():
                found |= pages(value) if isinstance(value, list) else {value}
        return found

    nav = pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert nav == {p.name for p in (ROOT / "docs").glob("*.md")}


def test_the_readme_is_short_and_names_the_two_commands() -> None:
    """At most 300 lines, with the demo and the test command."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert "pip install -e '.[embedded]' && truthstream demo" in readme
    assert "pip install -e '.[test]' && python -m pytest" in readme


def test_the_version_is_one_and_has_a_changelog_entry() -> None:
    """pyproject, `stream.__version__` and the newest CHANGELOG entry name the same version."""
    import tomllib

    import stream

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert stream.__version__ == version
    entries = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## [")]
    assert entries[0].startswith(f"## [{version}]")
