"""Fixture backend, `backend.main:app`: GET /health and /v1/health, as upstream's."""

import os

import fixture_health
from egograph_paths import BACKEND_DATA_DIR
from fastapi import FastAPI

from backend import RELEASE

app = FastAPI()


@app.get("/health")
@app.get("/v1/health")
def health() -> dict[str, object]:
    # CORS_ORIGINS: a key of the backend's own env file (.env.example), not a secret.
    report = fixture_health.report(RELEASE, BACKEND_DATA_DIR / "chat.sqlite")
    return {**report, "cors_origins": os.environ.get("CORS_ORIGINS")}
