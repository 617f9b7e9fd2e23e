"""Fixture pipelines service: no module-level app, as upstream; uvicorn runs the factory
`pipelines.app:create_app` (--factory). Health is GET /v1/health only."""

import os

import fixture_health
from egograph_paths import PIPELINES_DATA_DIR
from fastapi import APIRouter, FastAPI

from pipelines import RELEASE


def create_app() -> FastAPI:
    router = APIRouter(prefix="/v1")

    @router.get("/health")
    def health() -> dict[str, object]:
        report = fixture_health.report(RELEASE, PIPELINES_DATA_DIR / "state.sqlite3")
        # Whether its env file reached it (upstream requires this key); never the value.
        return {**report, "api_key_set": bool(os.environ.get("PIPELINES_API_KEY"))}

    app = FastAPI()
    app.include_router(router)
    return app
