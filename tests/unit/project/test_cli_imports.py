"""``egodeploy`` starts without loading pyinfra: the drift check runs pyinfra in a child
process, so pyinfra's ~150 ms of imports in the parent would only make every check (and the
scheduled timer's every run) slower. Checked in a fresh interpreter, where nothing else has
imported it yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_cli_module_loads_without_pyinfra() -> None:
    probe = (
        "import sys, deploys.cli; "
        "print(sorted(m for m in sys.modules if m == 'pyinfra' or m.startswith('pyinfra.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"deploys.cli imported pyinfra: {out.stdout.strip()}"
