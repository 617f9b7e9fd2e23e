"""A result's files: ``<date>.json``, ``<date>.md``, the charts and ``README-performance.md``;
bench/README.md's "Performance" section too when it is written to ``bench/results``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sandbox.api import PROJECT

from . import performance
from .report import document, replace_section

RESULTS = Path(__file__).parent / "results"
"""Where `make bench` writes its results (committed)."""
README = PROJECT / "bench" / "README.md"


def write(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = result["date"][:10]
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path = out / f"{stem}.md"
    md_path.write_text(document(result, stem))
    written = [json_path, md_path]
    written += charts(json_path, out / f"{stem}-fleet.png", out / f"{stem}-noop-steps.png")
    readme = out / "README-performance.md"
    section = performance.section(result, stem)
    readme.write_text(section)
    written.append(readme)
    if out.resolve() == RESULTS.resolve() and replace_section(README, section):
        written.append(README)
    return written


def charts(json_path: Path, fleet_png: Path, steps_png: Path) -> list[Path]:
    """Draw with matplotlib in ``uv run --with matplotlib`` (not a project dependency)."""
    uv = os.environ.get("UV") or "uv"
    cmd = [uv, "run", "--no-project", "--quiet", "--with", "matplotlib", "python", "-m"]
    cmd += ["bench.charts", str(json_path), str(fleet_png), str(steps_png)]
    proc = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"bench: charts failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return []
    return [p for p in (fleet_png, steps_png) if p.exists()]
