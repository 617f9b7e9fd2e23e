"""Tailscale's settings (runbook §2, §9), and the rules across them and the services they
publish."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..common.checks import (
    ENV_KEY,
    HOSTNAME,
    HTTP_URL,
    VERSION,
    is_bool,
    optional,
    optional_url,
    template_url,
)
from ..common.secrets import open_to_others
from ..common.setting import setting
from ..services.settings import Service

# Flags `tailscale up` may get from tailscale_extra_up_flags; everything else (the key, the
# hostname, the control server, --reset, --timeout ...) is the deploy's. Bool flags take an
# optional =true/false.
BOOL_FLAGS = ("accept-routes", "accept-dns", "ssh", "shields-up")
_FLAG = re.compile(
    r"^--(?:(?:" + "|".join(BOOL_FLAGS) + r")(?:=(?:true|false))?"
    r"|advertise-tags=(?:tag:)?[A-Za-z0-9-]+(?:,(?:tag:)?[A-Za-z0-9-]+)*"
    r"|advertise-routes=[0-9a-fA-F.:/]+(?:,[0-9a-fA-F.:/]+)*"
    r"|operator=[a-z_][a-z0-9_-]{0,31})$"
)
_KEY_FLAG = re.compile(r"^--?auth-?key(=|$)")
_LOGIN_SERVER_FLAG = re.compile(r"^--?login-server(=|$)")
FUNNEL_PORTS = (443, 8443, 10000)


def _tailscale_flags(v: Any) -> bool:
    # --auth-key and --login-server pass here so that tailscale_errors() can refuse them
    # with what to do instead (the key's value never echoed).
    return isinstance(v, list) and all(
        isinstance(f, str) and (_FLAG.match(f) or _KEY_FLAG.match(f) or _LOGIN_SERVER_FLAG.match(f))
        for f in v
    )


def _authkey_source(v: Any) -> bool:
    if not isinstance(v, dict) or len(v) != 1:
        return False
    if "environ" in v:
        return isinstance(v["environ"], str) and bool(ENV_KEY.match(v["environ"]))
    return isinstance(v.get("file"), str) and bool(v["file"]) and "\0" not in v["file"]


REMOVED: dict[str, str] = {
    "tailscale_serve_https_port": (
        "no longer a setting; expected each service's publish ('https', 'http' or 'off') "
        "and publish_port in services"
    ),
}
"""Settings of this concern that existed once, with what replaced them."""


@dataclass(frozen=True)
class TailscaleSettings:
    """Tailscale (runbook §2, §9)."""

    tailscale_enabled: bool = setting(
        True,
        form="True or False",
        doc="Install Tailscale, log the container in and publish the services with "
        "`tailscale serve`. False: the deploy leaves Tailscale alone",
        check=is_bool,
    )
    tailscale_repo_url: str = setting(
        "https://pkgs.tailscale.com/stable",
        form="an http(s) URL, e.g. 'https://pkgs.tailscale.com/stable'",
        doc="Tailscale's apt repository (or a mirror); '/<distro>' is appended, as in "
        "`<url>/ubuntu noble main`",
        check=template_url,
    )
    tailscale_keyring_url: str = setting(
        "",
        form="'' or an http(s) URL; '{distro}' and '{codename}' are replaced",
        doc="Where the repository's signing keyring is downloaded from; '' = "
        "<tailscale_repo_url>/<distro>/<codename>.noarmor.gpg",
        check=optional(HTTP_URL),
    )
    tailscale_keyring_sha256: str = setting(
        "",
        form="'' or 64 hex digits",
        doc="Pinned SHA-256 of that keyring; a download that differs is refused. Required while "
        "tailscale_enabled: '' stops the deploy with how to obtain it (see Tailscale below)",
        check=optional(re.compile(r"^[0-9a-fA-F]{64}$")),
    )
    tailscale_version: str = setting(
        "",
        form="'' or a version 'X.Y.Z'",
        doc="'' = whatever the repository has when Tailscale is first installed (never upgraded "
        "by the deploy); 'X.Y.Z' = exactly that version (up- or downgraded)",
        check=optional(VERSION),
    )
    tailscale_hostname: str = setting(
        "",
        form="'' or a DNS label",
        doc="The node's name in the tailnet (`--hostname`); '' = ct_hostname. A change on a "
        "logged-in node is applied with `tailscale set`, without logging in again",
        check=optional(HOSTNAME),
    )
    tailscale_extra_up_flags: list[str] = setting(
        [],
        form="a list of flags from: --advertise-tags=tag:a,tag:b, --accept-routes[=false], "
        "--accept-dns[=false], --ssh[=false], --shields-up[=false], --advertise-routes=CIDRs, "
        "--operator=USER",
        doc="Further `tailscale up` settings. The key never goes here "
        "(tailscale_authkey_source), nor the hostname (tailscale_hostname), nor the control "
        "server (tailscale_login_server). Tailscale SSH stays off unless '--ssh' is listed",
        check=_tailscale_flags,
    )
    tailscale_authkey_source: dict[str, str] = setting(
        {"environ": "TS_AUTHKEY"},
        form="{'environ': 'VARIABLE'} or {'file': 'path on the controller'}",
        doc="Where the auth key (or OAuth client secret, `tskey-client-…`: needs --advertise-tags) "
        "is read from — only when the node has to log in",
        check=_authkey_source,
        secret=True,
    )
    tailscale_login_server: str = setting(
        "",
        form="'' or the control server's http(s) URL, e.g. 'https://headscale.example.com'",
        doc="The tailnet's control server (`tailscale up --login-server`): '' = Tailscale's own. "
        "A self-hosted one such as headscale issues no HTTPS certificates: publish the "
        "services with publish = 'http' there",
        check=optional_url,
    )
    tailscale_userspace: bool = setting(
        False,
        form="True or False",
        doc="Run tailscaled with `--tun=userspace-networking` (FLAGS= in /etc/default/tailscaled): "
        "for containers without /dev/net/tun (Proxmox TUN method 'none')",
        check=is_bool,
    )
    tailscale_serve: bool = setting(
        True,
        form="True or False",
        doc="Publish the services in the tailnet with `tailscale serve --bg` (how each one is "
        "published: its publish and publish_port)",
        check=is_bool,
    )
    tailscale_funnel: bool = setting(
        False,
        form="True or False",
        doc="Expose the published services to the internet (`tailscale funnel`: HTTPS on 443, "
        "8443 or 10000 only). Off: funnel found on the node is switched off",
        check=is_bool,
    )
    tailscale_serve_reset_foreign: bool = setting(
        False,
        form="True or False",
        doc="Clear serve handlers the deploy did not make (`tailscale serve reset`, then serve "
        "again). Off: they are kept and reported",
        check=is_bool,
    )


def keyring_pin_fix(url: str) -> str:
    """How to pin the keyring at ``url``: the one text of the fix, for the refusal while the
    deploy is loaded, the operation's (which knows the distribution's URL) and preflight's."""
    return (
        f"fetch the keyring ({url}), check it (`gpg --show-keys FILE` shows the signing key's "
        "fingerprint; compare it with Tailscale's), then pin `sha256sum FILE` as "
        "tailscale_keyring_sha256"
    )


KEYRING_PIN_FIX = keyring_pin_fix(
    "<tailscale_repo_url>/<distro>/<codename>.noarmor.gpg, e.g. "
    "https://pkgs.tailscale.com/stable/ubuntu/noble.noarmor.gpg"
)


def keyring_pin_problem(enabled: bool, pin: str) -> str | None:
    """Why Tailscale cannot be installed from a keyring the deploy can verify (no pin), or
    None: checked before a deploy's first change and by ``egodeploy preflight``."""
    if not enabled or pin:
        return None
    return (
        "tailscale_keyring_sha256 is empty: the deploy installs Tailscale only from a keyring "
        "it can verify"
    )


def tailscale_errors(data: Mapping[str, Any], services: tuple[Service, ...]) -> list[str]:
    """Checks across Tailscale settings and the services it publishes (each one's own form
    is checked already)."""
    errors: list[str] = []
    flags = data.get("tailscale_extra_up_flags")
    if isinstance(flags, list) and any(isinstance(f, str) and _KEY_FLAG.match(f) for f in flags):
        errors.append(
            "tailscale_extra_up_flags: an auth key flag is not allowed here (value not shown); "
            "expected the key in the place tailscale_authkey_source names"
        )
    source = data.get("tailscale_authkey_source")
    if data["tailscale_enabled"] and isinstance(source, dict) and _authkey_source(source):
        exposed = open_to_others(source["file"]) if "file" in source else None
        if exposed:
            errors.append(f"tailscale_authkey_source: {exposed}")
    if isinstance(flags, list) and any(
        isinstance(f, str) and _LOGIN_SERVER_FLAG.match(f) for f in flags
    ):
        errors.append(
            "tailscale_extra_up_flags: --login-server is not allowed here; expected the "
            "control server's URL in tailscale_login_server"
        )
    if not data["tailscale_enabled"] or not data["tailscale_serve"]:
        return errors
    published = [(i, s) for i, s in enumerate(services) if s.publish != "off"]
    ports = [s.tailnet_port for _, s in published]
    for port in sorted({p for p in ports if ports.count(p) > 1}):
        errors.append(
            f"services[*].publish_port: tailnet port {port} is used by two services; "
            "expected one port each"
        )
    if data.get("tailscale_funnel"):
        for i, svc in published:
            if svc.publish != "https" or svc.tailnet_port not in FUNNEL_PORTS:
                errors.append(
                    f"services[{i}].publish: {svc.publish} on port {svc.tailnet_port} cannot "
                    "be funneled; expected 'https' on 443, 8443 or 10000 with tailscale_funnel"
                )
    return errors
