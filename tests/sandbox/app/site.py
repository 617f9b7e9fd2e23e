"""The app's outside world in the sandbox.

- the app repository: the fixture app (``tests/sandbox/fixture_app``, shaped like upstream's:
  egograph/backend and egograph/pipelines in one uv workspace), committed into a bare repo
  served by git daemon
- DuckDB's extension repository: httpfs from the `duckdb-ext-httpfs` wheel, over HTTP
- the env file's source: a 0600 file on the controller holding a recognisable canary
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deploys.uv.wheel import install_wheel, verify_record

from .. import paths

FIXTURE_APP = Path(__file__).parents[1] / "fixture_app"
APP_REPO = os.environ.get("EGOGRAPH_SANDBOX_APP", "egograph") + ".git"
"""The app repository's name under git daemon. Each test session sets its own (see
tests/conftest.py), so sessions running side by side never deploy each other's releases."""
DUCKDB_VERSION = "1.4.3"
"""The fixture's (and upstream's uv.lock's) DuckDB: httpfs must exist for exactly it."""
CANARY = "canary-sandbox-secret-5f3a9c"
"""A fake secret in the env file; tests look for it where it must never appear."""


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, text=True, capture_output=True
    ).stdout.strip()


def work_tree() -> Path:
    return paths.STATE / "work" / APP_REPO.removesuffix(".git")


def publish_app(message: str = "fixture app", changes: dict[str, str] | None = None) -> str:
    """Commit the fixture app as shipped (plus ``changes``: path → content, on top) and push
    it; return the sha. Each call starts again from the pristine fixture, so a broken release
    published by one test does not leak into the next."""
    bare = paths.GIT_ROOT / APP_REPO
    tree = work_tree()
    if not bare.exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=bare.parent)
    if not (tree / ".git").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.parent.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--initial-branch=main", str(tree), cwd=tree.parent)
        _git("config", "user.email", "sandbox@egograph.invalid", cwd=tree)
        _git("config", "user.name", "egograph sandbox", cwd=tree)
        _git("remote", "add", "origin", str(bare), cwd=tree)
    for entry in tree.iterdir():  # the tree becomes exactly the fixture, plus changes
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(
        FIXTURE_APP,
        tree,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", ".venv"),
    )
    (tree / ".gitignore").write_text(".venv/\n__pycache__/\n*.env\n.env\n")
    for rel, content in (changes or {}).items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(content)
    _git("add", "-A", cwd=tree)
    if _git("status", "--porcelain", cwd=tree):
        _git("commit", "--quiet", "-m", message, cwd=tree)
    _git("push", "--quiet", "origin", "main", cwd=tree)
    return _git("rev-parse", "HEAD", cwd=tree)


def crash_at_import(app: str = "backend") -> dict[str, str]:
    """A release of ``app`` (backend or pipelines) that exits 1 as soon as uvicorn imports
    it, as a release with a broken import does: for ``publish_app``."""
    return {f"egograph/{app}/__init__.py": 'raise RuntimeError("this release cannot start")\n'}


def with_dependency(app: str, requirement: str) -> dict[str, str]:
    """``app``'s pyproject with one more dependency and the workspace's ``uv.lock`` made
    anew for it (by the controller's uv, from the package index): a consistent release
    whose environment differs from the fixture's, for ``publish_app``."""
    rel = f"egograph/{app}/pyproject.toml"
    pyproject = (FIXTURE_APP / rel).read_text()
    pin = '"duckdb==1.4.3",'
    assert pin in pyproject, rel
    pyproject = pyproject.replace(pin, f'{pin}\n    "{requirement}",')
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "app"
        shutil.copytree(FIXTURE_APP, tree, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        (tree / rel).write_text(pyproject)
        uv = Path(sys.executable).with_name("uv")
        subprocess.run(
            [str(uv), "lock", "--quiet"], cwd=tree, check=True, capture_output=True, text=True
        )
        lock = (tree / "uv.lock").read_text()
    return {rel: pyproject, "uv.lock": lock}


def app_head() -> str:
    return _git("rev-parse", "HEAD", cwd=work_tree())


def publish_duckdb_extensions() -> str:
    """Lay out a DuckDB extension repository with httpfs; return its URL."""
    dest = paths.WWW_ROOT / "duckdb" / f"v{DUCKDB_VERSION}" / "linux_amd64"
    target = dest / "httpfs.duckdb_extension.gz"
    if not target.exists():
        member = f"duckdb_ext/extensions/v{DUCKDB_VERSION}/linux_amd64/httpfs.duckdb_extension"
        with tempfile.TemporaryDirectory() as tmp:
            wheel_dir = Path(tmp)
            # The wheel ships the signed extension binary (third-party, matches duckdb).
            install_wheel(
                wheel_dir, f"duckdb-ext-httpfs=={DUCKDB_VERSION}.*", "x86_64-manylinux_2_28"
            )
            dist_info = next(wheel_dir.glob("duckdb_ext_httpfs-*.dist-info")).name
            verify_record(wheel_dir, dist_info, [member])
            binary = (wheel_dir / member).read_bytes()
        dest.mkdir(parents=True, exist_ok=True)
        tmp_file = target.with_suffix(".tmp")
        tmp_file.write_bytes(gzip.compress(binary))
        tmp_file.replace(target)
    return f"http://{paths.HOST_IP}:{paths.HTTP_PORT}/duckdb"


ENV_VALUES = {
    # Upstream's own key names (egograph/*/.env.example) with fake values, as its CI runs
    # the backend (R2 at example.invalid); the canary stands for the real secrets.
    "backend": {
        "CORS_ORIGINS": "http://localhost:5173",
        "R2_ENDPOINT_URL": "https://example.invalid",
        "R2_ACCESS_KEY_ID": "test",
        "R2_SECRET_ACCESS_KEY": CANARY,
        "R2_BUCKET_NAME": "test-bucket",
    },
    "pipelines": {
        "PIPELINES_API_KEY": CANARY,
        "R2_ENDPOINT_URL": "https://example.invalid",
        "R2_ACCESS_KEY_ID": "test",
        "R2_SECRET_ACCESS_KEY": CANARY,
    },
}


def write_secret_env(
    name: str = "backend", extra: dict[str, str] | None = None, *, app: str = "backend"
) -> Path:
    """The controller-side env file ``<name>.env`` (0600) for the ``app`` service (backend
    or pipelines), with the canary secret in it."""
    secrets = paths.STATE / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    values = {**ENV_VALUES[app], **(extra or {})}
    path = secrets / f"{name}.env"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path
