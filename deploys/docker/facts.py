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
    The engine, the images named ``image`` (with their labels) and the container named
    ``container``, in one round trip.

    .. code:: python

        {
            "installed": True,                  # a docker CLI on PATH
            "active": True, "enabled": True,    # docker.service
            "images": {"egograph-backend:5d1c…": "sha256:ab…"},   # tag -> image id
            "image_labels": {"egograph-backend:5d1c…": {"org.egograph.build": "9f…"}},
            "container": {                      # None when there is none
                "state": "running", "image": "egograph-backend:5d1c…",
                "labels": {"org.egograph.run": "…", "org.egograph.commit": "5d1c…"},
            },
        }
    """

    def command(self, image: str, container: str) -> StringCommand:
        return StringCommand(
            "if ! command -v docker >/dev/null 2>&1; then echo missing; exit 0; fi;",
            "echo active $(systemctl is-active docker 2>/dev/null);",
            "echo enabled $(systemctl is-enabled docker 2>/dev/null);",
            "docker image ls --no-trunc --format 'image {{.Repository}}:{{.Tag}} {{.ID}}'",
            QuoteString(image),
            "2>/dev/null;",
            "docker image ls --format '{{.Repository}}:{{.Tag}}'",
            QuoteString(image),
            "2>/dev/null | while read -r ref; do printf 'labels %s %s\\n' \"$ref\"",
            '"$(docker image inspect --format \'{{json .Config.Labels}}\' "$ref" 2>/dev/null)";',
            "done;",
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
                elif key == "labels":
                    ref, _, labels = rest.partition(" ")
                    result["image_labels"][ref] = json.loads(labels or "null") or {}
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


class DockerRepository(FactBase[dict[str, Any]]):
    """
    What Docker's apt repository needs from the target, in one round trip: the
    distribution's codename (``/etc/os-release``) and the SHA-256 of the keyring and of the
    source list (None when missing).

    + keyring: the keyring's path
    + source: the source list's path

    .. code:: python

        {"codename": "trixie", "keyring": "1500c1f5…", "source": None}
    """

    def command(self, keyring: str, source: str) -> StringCommand:
        return StringCommand(
            '( . /etc/os-release 2>/dev/null && echo "codename $VERSION_CODENAME" );',
            "for f in",
            QuoteString(keyring),
            QuoteString(source),
            '; do echo "file $f $(sha256sum "$f" 2>/dev/null | cut -c1-64)"; done',
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"codename": None, "keyring": None, "source": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        files: dict[str, str | None] = {}
        for line in output:
            key, _, rest = line.partition(" ")
            if key == "codename":
                result["codename"] = rest.strip() or None
            elif key == "file":
                path, _, digest = rest.partition(" ")
                files[path] = digest.strip() or None
        paths = list(files)
        if len(paths) == 2:
            result["keyring"], result["source"] = files[paths[0]], files[paths[1]]
        return result
