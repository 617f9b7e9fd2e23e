"""Generate the README's settings tables from the settings' declarations (deploys/*/settings.py).

python -m deploys.docs          # rewrite README.md between the settings markers
python -m deploys.docs --check  # exit 1 when README.md is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .services.settings import DEFAULT_SERVICES, SERVICE_FIELDS
from .settings import SETTINGS

PROJECT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _cell(value: Any) -> str:
    text = (
        repr(value)
        if not isinstance(value, str)
        else (f"`{value!r}`" if value == "" else f"`{value}`")
    )
    if not text.startswith("`"):
        text = f"`{text}`"
    return text.replace("|", "\\|")


def _py(value: Any) -> str:
    """A Python literal with double-quoted strings."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_py(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def tables() -> str:
    out: list[str] = []
    concern = None
    for s in SETTINGS:
        if s.concern != concern:
            concern = s.concern
            out += [
                "",
                f"**{concern}**",
                "",
                "| Setting | Default | Form | Meaning |",
                "|---|---|---|---|",
            ]
        default = "(list, see below)" if s.name == "services" else _cell(s.shown_default)
        out.append(f"| `{s.name}` | {default} | {s.info.form} | {s.info.doc} |")
    out += [
        "",
        "**services** — each entry of `services`:",
        "",
        "| Key | Default | Form | Meaning |",
        "|---|---|---|---|",
    ]
    for f in SERVICE_FIELDS:
        default = "(required)" if f.default is None else _cell(f.default)
        out.append(f"| `{f.name}` | {default} | {f.form} | {f.doc} |")
    backend = DEFAULT_SERVICES[0]
    out += [
        "",
        "The default `services` list has one entry, the runbook's backend:",
        "",
        "```python",
        "services = [",
        "    {",
    ]
    # Written the way ruff formats it (the README's code blocks are format-checked).
    out += [f"        {json.dumps(k)}: {_py(v)}," for k, v in backend.items()]
    out += ["    },", "]", "```"]
    return "\n".join(out).strip() + "\n"


def render(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{tables()}{END}{tail}"


def main() -> None:
    path = PROJECT / "README.md"
    current = path.read_text(encoding="utf-8")
    wanted = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if wanted == current else 1)
    path.write_text(wanted, encoding="utf-8")


if __name__ == "__main__":
    main()
