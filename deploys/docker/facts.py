"""Facts about the Docker engine, the app's images and its container (runbook §8)."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

COMMIT_LABEL = "org.egograph.commit"
BUILD_LABEL = "org.egograph.build"
"""Digest of what else shapes the image: the Dockerfile's path and content, the base image."""
RUN_LABEL = "org.egograph.run"
"""Digest of what the container was created from: image, env file, run options."""


class DockerState(FactBase[dict[str, Any]]):
    """
    The engine, the images named ``image`` and the container named ``container``, in one
    round trip. The image's labels are read for its ``tag`` only (the one a run wants).

    .. code:: python

        {
            "installed": True,                  # a docker CLI on PATH
            "active": True, "enabled": True,    # docker.service
            "images": {"egograph-backend:5d1c…": "sha256:ab…"},   # tag -> image id
            "image_labels": {"org.egograph.build": "9f…"},        # labels of `tag` ({} if absent)
            "container": {                      # None when there is none
                "state": "running", "image": "egograph-backend:5d1c…",
                "labels": {"org.egograph.run": "…", "org.egograph.commit": "5d1c…"},
            },
        }
    """

    def command(self, image: str, container: str, tag: str) -> StringCommand:
        ref = QuoteString(f"{image}:{tag}")
        return StringCommand(
            "if ! command -v docker >/dev/null 2>&1; then echo missing; exit 0; fi;",
            "echo active $(systemctl is-active docker 2>/dev/null);",
            "echo enabled $(systemctl is-enabled docker 2>/dev/null);",
            "docker image ls --no-trunc --format 'image {{.Repository}}:{{.Tag}} {{.ID}}'",
            QuoteString(image),
            "2>/dev/null;",
            "printf 'labels %s\\n' \"$(docker image inspect --format '{{json .Config.Labels}}'",
            ref,
            '2>/dev/null)";',
            "printf 'container %s\\n' \"$(docker container inspect --format "
            "'{{json .State.Status}} {{json .Config.Image}} {{json .Config.Labels}}'",
            QuoteString(container),
            '2>/dev/null)"',
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {
            "installed": False,
            "active": False,
            "enabled": False,
            "images": {},
            "image_labels": {},
            "container": None,
        }

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        if output == ["missing"]:
            return result
        result["installed"] = True
        for line in output:
            key, _, rest = line.partition(" ")
            rest = rest.strip()
            try:
                if key == "active":
                    result["active"] = rest == "active"
                elif key == "enabled":
                    result["enabled"] = rest == "enabled"
                elif key == "image":
                    name, _, image_id = rest.partition(" ")
                    result["images"][name] = image_id
                elif key == "labels" and rest:
                    result["image_labels"] = json.loads(rest) or {}
                elif key == "container" and rest:
                    state, image, labels = rest.split(" ", 2)
                    result["container"] = {
                        "state": json.loads(state),
                        "image": json.loads(image),
                        "labels": json.loads(labels) or {},
                    }
            except (ValueError, json.JSONDecodeError) as exc:
                raise FactProcessError(f"unexpected docker state line: {line!r}") from exc
        return result
