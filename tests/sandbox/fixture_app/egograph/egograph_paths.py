"""Where the app keeps its data, as upstream's module of the same name: next to the
checkout. With the checkout at <app-root>/repo (runbook: /opt/egograph/repo) the data is
<app-root>/data (/opt/egograph/data). No environment variable moves it."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO_ROOT.parent / "data"
BACKEND_DATA_DIR = DATA_ROOT / "backend"
PIPELINES_DATA_DIR = DATA_ROOT / "pipelines"
