"""uv's settings (runbook §2, §4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from ..common.checks import (
    VERSION,
    env_mapping,
    is_abs_path,
    matches,
    one_of,
    optional_url,
    template_url,
)
from ..common.setting import setting


@dataclass(frozen=True)
class UvSettings:
    """uv, pinned (runbook §2, §4)."""

    uv_version: str = setting(
        "0.13.9",
        form="a version 'X.Y.Z', e.g. '0.13.9'",
        doc="uv version, pinned",
        check=matches(VERSION),
    )
    uv_path: str = setting(
        "/root/.local/bin/uv",
        form="an absolute path",
        doc="Where the uv binary lives (uvx beside it)",
        check=is_abs_path,
    )
    uv_install_method: str = setting(
        "installer",
        form="'installer' or 'wheel'",
        doc="installer: the official version-pinned install script (runbook). wheel: the "
        "controller takes the uv wheel for the target's platform from the package index, "
        "checks its sha256 and pushes the binary (no installer host needed)",
        check=one_of("installer", "wheel"),
    )
    uv_installer_url: str = setting(
        "https://astral.sh/uv/{version}/install.sh",
        form="an http(s) URL; '{version}' is replaced by uv_version",
        doc="Installer script URL (installer method)",
        check=template_url,
    )
    uv_wheel_index: str = setting(
        "",
        form="'' or an http(s) URL of a simple package index",
        doc="Index the controller takes the uv wheel from (wheel method); '' = the index the "
        "controller's uv is configured with",
        check=optional_url,
    )
    uv_profile: str = setting(
        "/root/.profile",
        form="an absolute path",
        doc="Shell profile that gets uv's directory on PATH",
        check=is_abs_path,
    )
    uv_environment: dict[str, str] = setting(
        {},
        form="a mapping of environment variable names to strings",
        doc="Environment for every uv command and for the services, e.g. "
        "{'UV_SYSTEM_CERTS': '1'} behind a TLS-intercepting proxy",
        check=env_mapping,
    )

    @property
    def uv_dir(self) -> str:
        """uv's directory (uvx beside it), put on PATH."""
        return str(PurePosixPath(self.uv_path).parent)
