"""What the Tailscale operations decide, as pure functions of the facts' values and the
settings: no pyinfra, no target, unit-tested on real-shaped samples."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .facts import KEYRING_PATH

SUPPORTED = {("ubuntu", "noble"), ("debian", "bookworm"), ("debian", "trixie")}
USERSPACE_FLAGS = "--tun=userspace-networking"
DEFAULT_CONTROL_URL = "https://controlplane.tailscale.com"
"""Tailscale's own control server (ipn/prefs.go DefaultControlURL); with
``https://login.tailscale.com`` the two names ``IsLoginServerSynonym`` accepts."""
CONTROL_URL_SYNONYMS = (DEFAULT_CONTROL_URL, "https://login.tailscale.com")
NO_TUN = (
    "/dev/net/tun is missing or cannot be opened in the container, so tailscaled cannot "
    "start. Give the container the TUN device on the Proxmox host (ct_tun_method = 'raw' or "
    "'dev', then restart the container), or run Tailscale in userspace-networking mode with "
    "tailscale_userspace = True. Nothing was installed."
)
MACHINE_AUTH = (
    "the node is logged in but waits for approval in the tailnet (BackendState "
    "NeedsMachineAuth). Approve it in the admin console (Machines page: the node, then "
    "'Approve'), or log it out (`tailscale logout` on the node) and use a pre-approved auth "
    "key (or an OAuth client secret with ?preauthorized=true), then run the deploy again."
)
# `tailscale set` flags and the ipn.Prefs fields they change, with Linux's defaults — the
# value a setting takes when tailscale_extra_up_flags does not mention it.
SET_FLAGS: dict[str, tuple[str, Any]] = {
    "hostname": ("Hostname", ""),
    "accept-routes": ("RouteAll", False),
    "accept-dns": ("CorpDNS", True),
    "ssh": ("RunSSH", False),
    "shields-up": ("ShieldsUp", False),
    "advertise-routes": ("AdvertiseRoutes", []),
    "operator": ("OperatorUser", ""),
}


# -- pure helpers ------------------------------------------------------------------------
def distro_of(info: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(distro, codename)`` of the target when the Tailscale repository has it."""
    found = (str(info.get("os_id") or ""), str(info.get("os_codename") or ""))
    return found if found in SUPPORTED else None


def source_line(repo_url: str, distro: str, codename: str) -> str:
    return f"deb [signed-by={KEYRING_PATH}] {repo_url.rstrip('/')}/{distro} {codename} main"


def keyring_url(repo_url: str, template: str, distro: str, codename: str) -> str:
    if not template:
        return f"{repo_url.rstrip('/')}/{distro}/{codename}.noarmor.gpg"
    return template.replace("{distro}", distro).replace("{codename}", codename)


def install_problem(info: Mapping[str, Any], userspace: bool) -> str | None:
    """Why the install must not start on this target, or None."""
    if distro_of(info) is None:
        return (
            "Tailscale's apt repository is set up for Ubuntu noble and Debian bookworm/trixie; "
            f"this target is {info.get('os_id') or 'unknown'} "
            f"{info.get('os_codename') or '(no codename in /etc/os-release)'}. Nothing was "
            "installed."
        )
    if not userspace and not info.get("tun_openable"):
        return NO_TUN
    return None


def parse_flags(flags: list[str]) -> dict[str, Any]:
    """``tailscale_extra_up_flags`` as ``{flag name: value}`` (bools as bools, lists split)."""
    parsed: dict[str, Any] = {}
    for flag in flags:
        name, eq, value = flag[2:].partition("=")
        if name in ("accept-routes", "accept-dns", "ssh", "shields-up"):
            parsed[name] = value != "false" if eq else True
        elif name == "advertise-tags":
            parsed[name] = sorted(
                t if t.startswith("tag:") else f"tag:{t}" for t in value.split(",")
            )
        elif name == "advertise-routes":
            parsed[name] = [r for r in value.split(",") if r]
        else:
            parsed[name] = value
    return parsed


def _norm(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return sorted(value) or None
    return value


def set_changes(
    prefs: Mapping[str, Any], status: Mapping[str, Any], hostname: str, flags: list[str]
) -> list[str]:
    """``tailscale set`` flags that bring a logged-in node to the wanted settings.

    With the node's prefs every settable flag is compared (an unmentioned flag means its
    default, as `tailscale up --reset` would set it); without them (``debug prefs`` is a
    debug command) only the hostname is, against ``Self.HostName``.
    """
    wanted = parse_flags(flags)
    wanted["hostname"] = hostname
    if not prefs:
        return [f"--hostname={hostname}"] if self_hostname(dict(status)) != hostname else []
    changes = []
    for flag, (field, default) in SET_FLAGS.items():
        want = wanted.get(flag, default)
        have = prefs.get(field)
        if _norm(have if have is not None else default) == _norm(want):
            continue
        if isinstance(want, bool):
            changes.append(f"--{flag}={'true' if want else 'false'}")
        elif isinstance(want, list):
            changes.append(f"--{flag}={','.join(want)}")
        else:
            changes.append(f"--{flag}={want}")
    return changes


def tags_problem(prefs: Mapping[str, Any], flags: list[str]) -> str | None:
    """Tags cannot be changed with `tailscale set`; a changed tag list needs a new login."""
    if not prefs:
        return None
    want = parse_flags(flags).get("advertise-tags") or []
    have = sorted(prefs.get("AdvertiseTags") or [])
    if want == have:
        return None
    return (
        f"the node advertises tags {have or 'none'} but tailscale_extra_up_flags asks for "
        f"{want or 'none'}. Tags change only with a new login: run `tailscale logout` on the "
        "node (the next deploy logs in again with the auth key), or adjust the setting."
    )


def control_problem(prefs: Mapping[str, Any], login_server: str) -> str | None:
    """A logged-in node of another control server than ``login_server`` ('' = Tailscale's
    own) needs a new login there; ``tailscale up`` refuses to switch servers while logged in
    ("can't change --login-server without --force-reauth")."""
    have = str(prefs.get("ControlURL") or "") if prefs else ""
    if not have:
        return None
    want = login_server.rstrip("/") or DEFAULT_CONTROL_URL
    if have.rstrip("/") == want or (have in CONTROL_URL_SYNONYMS and want in CONTROL_URL_SYNONYMS):
        return None
    return (
        f"the node is logged in to the control server {have}, but tailscale_login_server asks "
        f"for {login_server or 'Tailscale (' + DEFAULT_CONTROL_URL + ')'}. Moving a node to "
        "another tailnet needs a new login: run `tailscale logout` on the node (the next "
        "deploy logs in there with the auth key), or set tailscale_login_server back."
    )


def prepare_key(raw: str, flags: list[str]) -> tuple[str | None, str | None]:
    """``(key to upload, None)`` or ``(None, why not)``. An OAuth client secret
    (``tskey-client-…``) needs tags and gets ``ephemeral=false`` (its default is an
    ephemeral node, which would vanish from the tailnet when offline)."""
    key = raw.strip()
    if not key:
        return None, "the auth key is empty"
    if any(c.isspace() for c in key):
        return None, "the auth key contains whitespace; expected one token such as tskey-auth-…"
    if key.startswith("tskey-client-"):
        if "advertise-tags" not in parse_flags(flags):
            return None, (
                "an OAuth client secret (tskey-client-…) needs tags: add "
                "'--advertise-tags=tag:…' to tailscale_extra_up_flags"
            )
        if "ephemeral=" not in key:
            key += ("&" if "?" in key else "?") + "ephemeral=false"
    return key, None


def read_authkey(source: Mapping[str, str]) -> tuple[str | None, str]:
    """The raw key from the controller (None if absent) and a description of the source."""
    if "environ" in source:
        name = source["environ"]
        return os.environ.get(name) or None, f"the controller's environment variable {name}"
    path = Path(source["file"]).expanduser()
    try:
        return path.read_text(encoding="utf-8"), f"the file {source['file']} on the controller"
    except OSError as exc:
        return None, f"the file {source['file']} on the controller ({exc.strerror})"


@dataclass(frozen=True)
class Published:
    """One service as ``tailscale serve`` publishes it."""

    name: str
    scheme: str
    """``https`` (a certificate from the tailnet) or ``http`` (plain HTTP in the tailnet)."""
    port: int
    target: str
    """Where serve proxies to: ``http://127.0.0.1:<service port>``."""
    setting: str
    """The setting that asks for it, e.g. ``services[0].publish``."""


@dataclass(frozen=True)
class ServePlan:
    reset: bool
    """``tailscale serve reset`` first (then every service is served again)."""
    missing: tuple[Published, ...]
    """What to serve (all of it after a reset)."""
    foreign: tuple[tuple[int, str], ...]
    """``(port, target)`` served under the node's current name that the deploy did not make."""
    stale: tuple[str, ...]
    """``Web`` keys under another name than the node's (left by a rename)."""
    funnel_off: bool
    """Funnel is on somewhere while ``tailscale_funnel`` is off."""


def serve_plan(
    config: Mapping[str, Any],
    wanted: Sequence[Published],
    dns: str,
    *,
    funnel: bool,
    reset_foreign: bool,
) -> ServePlan:
    """What brings ``serve status --json`` to ``wanted`` for a node called ``dns``.

    tailscaled picks the Web handler by ``<SNI or Host>:<port>`` (ipn/ipnlocal/serve.go
    ``getServeHandler`` → ``webServerConfig``), and the CLI keys what it serves under the
    node's MagicDNS name at the time (ipn/serve.go ``SetWebHandler``). So a service is
    served only when ``Web["<dns>:<port>"]`` proxies ``/`` to its target and
    ``TCP[<port>]`` has its scheme. A key under another name (a rename: nothing rewrites
    the config, tailscale/tailscale#7086) serves nobody; ``serve --https=<port> off``
    removes only the current name's key (``RemoveWebHandler``), so stale keys go with a
    reset. Foreign: anything else served under the current name, except the ``/`` handler
    of a port the deploy serves (serving there replaces it). A funnel found while
    ``funnel`` is off is removed with a reset: being on the internet is never left to
    chance.
    """
    tcp = config.get("TCP") or {}
    allow = config.get("AllowFunnel") or {}
    ports = {w.port for w in wanted}
    served: dict[int, tuple[str, str]] = {}  # port -> (scheme, "/" target) under dns
    funneled: set[int] = set()
    foreign: set[tuple[int, str]] = set()
    stale: list[str] = []
    for port_text, handler in tcp.items():
        if (handler or {}).get("TCPForward") and port_text.isdigit():
            foreign.add((int(port_text), f"tcp://{handler['TCPForward']}"))
    for hostport, web in sorted((config.get("Web") or {}).items()):
        name, _, port_text = hostport.rpartition(":")
        if not port_text.isdigit():
            continue
        if dns and name != dns:
            stale.append(hostport)
            continue
        port = int(port_text)
        port_handler = tcp.get(port_text) or {}
        scheme = (
            "https" if port_handler.get("HTTPS") else "http" if port_handler.get("HTTP") else ""
        )
        for mount, handler in ((web or {}).get("Handlers") or {}).items():
            target = str((handler or {}).get("Proxy") or (handler or {}).get("Path") or "?")
            if mount == "/" and (handler or {}).get("Proxy") and scheme:
                served[port] = (scheme, target)
            mine = any(w.port == port and w.target == target for w in wanted)
            if not mine and not (port in ports and mount == "/"):
                foreign.add((port, target))
        if allow.get(hostport):
            funneled.add(port)
    funnel_off = bool(funneled) and not funnel
    reset = bool(stale) or (bool(foreign) and reset_foreign) or funnel_off
    missing = tuple(
        w
        for w in wanted
        if reset
        or served.get(w.port) != (w.scheme, w.target)
        or (funnel and w.port not in funneled)
    )
    return ServePlan(reset, missing, tuple(sorted(foreign)), tuple(stale), funnel_off)


def service_url(published: Published, dns: str) -> str:
    default = 443 if published.scheme == "https" else 80
    port = "" if published.port == default else f":{published.port}"
    return f"{published.scheme}://{dns}{port}/"


def https_problem(feature: Mapping[str, Any] | None, wanted: Sequence[Published]) -> str | None:
    """Why HTTPS cannot be served on this tailnet (from the control server's answer to the
    HTTPS feature query, see ``TailscaleNode``), or None. ``feature`` is None when the node
    has the ``https`` capability: ``serve`` asks nothing then."""
    https = [w for w in wanted if w.scheme == "https"]
    if not https or feature is None or feature.get("complete"):
        return None
    asked = ", ".join(f"{w.setting} = 'https' ({w.name})" for w in https)
    fix = (
        "Nothing was served. Either enable HTTPS certificates on the tailnet, or publish "
        "over plain HTTP inside the tailnet (WireGuard still encrypts the traffic): set "
        f"publish = 'http' for {'that service' if len(https) == 1 else 'those services'}."
    )
    status = int(feature.get("http_status") or 0)
    if status == 200:
        text = " ".join(str(feature.get("text") or "").split())
        url = str(feature.get("url") or "")
        return (
            f"{asked}: the tailnet does not issue HTTPS certificates yet (the HTTPS feature "
            "query `tailscale serve` makes answered: "
            f"{text or 'not enabled'}{' ' + url if url else ''}). {fix}"
        )
    error = " ".join(str(feature.get("error") or "").split())
    if status:
        return (
            f"{asked}: this tailnet cannot issue HTTPS certificates: the control server "
            f"answered the HTTPS feature query (/machine/feature/query, as `tailscale "
            f"serve` asks it) with HTTP {status}: {error or 'no text'}. A self-hosted "
            f"control server such as headscale issues no certificates. {fix}"
        )
    return f"{asked}: cannot tell whether the tailnet issues HTTPS certificates: {error}. {fix}"


# -- reading the facts' values ---------------------------------------------------------
def backend_state(status: dict[str, Any]) -> str:
    """``BackendState`` of a ``TailscaleStatus`` value; ``""`` when not installed."""
    return str(status.get("BackendState") or "")


def _self(status: dict[str, Any]) -> dict[str, Any]:
    me = status.get("Self")
    return me if isinstance(me, dict) else {}


def self_hostname(status: dict[str, Any]) -> str:
    """``Self.HostName`` (the ``--hostname`` pref, else the OS hostname); ``""`` if unknown."""
    return str(_self(status).get("HostName") or "")


def dns_name(status: dict[str, Any]) -> str:
    """MagicDNS name without the trailing dot, ``""`` when logged out."""
    return str(_self(status).get("DNSName") or "").rstrip(".")


def funnel_enabled(config: dict[str, Any]) -> bool:
    """Whether any served port is exposed to the internet (``tailscale funnel``)."""
    return any((config.get("AllowFunnel") or {}).values())
