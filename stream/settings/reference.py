"""The settings reference of the docs (`docs/settings.md`), written from the settings' own metadata.

    python -m stream.settings.reference > docs/settings.md

`tests/test_docs.py` fails when the page and the settings disagree.
"""

from __future__ import annotations

from dataclasses import fields

from stream.settings.fields import ENV_PREFIX, GROUPS, shown
from stream.settings.settings import Settings

INTRO = """\
# Settings

Every setting is an environment variable `TRUTHSTREAM_<NAME>` and a flag `--<name>` of the
commands that use it; flags win over variables, variables over the defaults below. Any setting
can also be read from a file: `TRUTHSTREAM_<NAME>_FILE=/run/secrets/...` (for secrets, which are
never printed). A bad value stops a command at start-up with one line naming the variable.

On/off settings take `on`/`off`, `true`/`false`, `1`/`0` or `yes`/`no`. Settings that list values
per model share one syntax: `value|value` for every model, or `model=value|value;model=value`.

This page is generated from the settings themselves (`python -m stream.settings.reference`).
"""


def _default(value: object) -> str:
    if value == "" or value is None:
        return "(none)"
    return f"`{value}`" if isinstance(value, str) else f"`{shown(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown() -> str:
    """The reference page: one table per group of settings, in the order `--help` shows them."""
    defaults = Settings()
    out = [INTRO]
    for group, title in GROUPS.items():
        rows = [f for f in fields(Settings) if f.metadata["group"] == group]
        if not rows:
            continue
        out += [
            f"## {title[0].upper()}{title[1:]}",
            "",
            "| variable / flag | default | meaning |",
            "| --- | --- | --- |",
        ]
        for f in rows:
            names = f"`{ENV_PREFIX}{f.name.upper()}` / `--{f.name.replace('_', '-')}`"
            aliases = f.metadata.get("aliases", ())
            meaning = f.metadata["help"]
            if f.metadata.get("choices"):
                meaning += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
            if aliases:
                meaning += "; also " + ", ".join(f"`--{a.replace('_', '-')}`" for a in aliases)
            if f.metadata.get("secret"):
                meaning += "; a secret: never printed"
            out.append(f"| {names} | {_cell(_default(getattr(defaults, f.name)))} | {_cell(meaning)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
