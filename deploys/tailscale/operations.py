"""Operations that install Tailscale, log the node in and publish services with `serve`.

Each operation reads one coarse fact (``TailscaleInstall`` or ``TailscaleNode``), decides
with the pure helpers below (unit-tested without a host) and yields commands or says why
nothing is needed. The auth key never appears in an argument, a label, a command line or
the output: it is read on the controller only when a login is needed, uploaded into a file
created ``0600`` first, passed as ``--auth-key=file:<path>`` and removed whatever happens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason, refuse
from ..common.snapshot import fact_read, operation, read_fact
from ..packages.operations import apt_get, apt_update_for_source
from .facts import (
    DAEMON_DOWN,
    DEFAULTS_PATH,
    KEYRING_PATH,
    SOURCES_LIST_PATH,
    TailscaleInstall,
    TailscaleNode,
    backend_state,
    dns_name,
    self_hostname,
)

SUPPORTED = {("ubuntu", "noble"), ("debian", "bookworm"), ("debian", "trixie")}
USERSPACE_FLAGS = "--tun=userspace-networking"
DEFAULT_PORT = 41641
"""tailscaled's UDP port, as the package's /etc/default/tailscaled sets it."""
KEY_DIR = "/run/egograph-deploy"
KEY_FILE = f"{KEY_DIR}/tailscale-authkey"
"""Where the auth key lives for the duration of one `tailscale up` (tmpfs, 0600)."""
UP_TIMEOUT = 120

DEFAULT_CONTROL_URL = "https://controlplane.tailscale.com"
"""Tailscale's own control server (ipn/prefs.go DefaultControlURL); with
``https://login.tailscale.com`` the two names ``IsLoginServerSynonym`` accepts."""
CONTROL_URL_SYNONYMS = (DEFAULT_CONTROL_URL, "https://login.tailscale.com")
RENAME_WAIT = 15
"""Seconds a rename waits for the node's new MagicDNS name (the next netmap: about a second)."""

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


# -- operations --------------------------------------------------------------------------
@operation(reads=lambda **_: [fact_read(TailscaleInstall)])
def tailscale_package(
    *,
    repo_url: str,
    keyring_url_template: str,
    keyring_sha256: str,
    version: str,
    userspace: bool,
    lock_timeout: int = 300,
    cache_time: int = 86400,
) -> Any:
    """
    Install Tailscale from its signed apt repository and keep ``tailscaled`` enabled and
    running (runbook §2), refusing first when the target cannot run it.

    + repo_url: the repository base (``…/stable``); ``/<distro>`` is appended
    + keyring_url_template: '' or a URL with ``{distro}``/``{codename}``
    + keyring_sha256: the pinned SHA-256 of the keyring; a download that differs is
      refused and nothing is written
    + version: '' = any (installed once, never upgraded here), else exactly this version
    + userspace: ``FLAGS="--tun=userspace-networking"`` in ``/etc/default/tailscaled``
      (written before the package is installed, so its first start already uses it)
    + lock_timeout: seconds apt waits for the dpkg lock
    + cache_time: when the system's apt lists are younger, only Tailscale's list is
      fetched after the source is added (``apt_cache_time``)

    **Example:**

    .. code:: python

        tailscale_package(name="Install Tailscale", repo_url="https://pkgs.tailscale.com/stable",
                          keyring_url_template="", keyring_sha256="…", version="",
                          userspace=False)
    """
    info = read_fact(TailscaleInstall)
    problem = install_problem(info, userspace)
    found = distro_of(info)
    if problem or found is None:
        yield from refuse(problem or "unsupported distribution")
        return
    distro, codename = found
    url = keyring_url(repo_url, keyring_url_template, distro, codename)
    pin = keyring_sha256.lower()
    if not pin:
        yield from refuse(
            "tailscale_keyring_sha256 is empty: the deploy installs Tailscale only from a "
            f"keyring it can verify. Fetch {url}, check it (`gpg --show-keys FILE` shows the "
            "signing key's fingerprint; compare it with Tailscale's), then pin "
            "`sha256sum FILE` as tailscale_keyring_sha256."
        )
        return

    commands: list[StringCommand] = []
    if info["keyring_sha256"] != pin:
        change_reason(
            f"{KEYRING_PATH} {'differs from the pin' if info['keyring_sha256'] else 'is missing'}"
        )
        commands.append(_download_keyring(url, pin))

    line = source_line(repo_url, distro, codename)
    source_changed = info["sources_list"] != line + "\n"
    if source_changed:
        change_reason(f"{SOURCES_LIST_PATH} {'differs' if info['sources_list'] else 'is missing'}")
        commands.append(_write_file(SOURCES_LIST_PATH, line))

    want_flags = USERSPACE_FLAGS if userspace else ""
    flags_changed = (info["defaults_flags"] or "") != want_flags
    if flags_changed:
        change_reason(f"tailscaled FLAGS are {info['defaults_flags']!r}, want {want_flags!r}")
        commands.append(_set_defaults_flags(want_flags))

    installed = info["package_version"]
    if installed is None or (version and installed != version):
        change_reason(
            f"tailscale {installed or 'not installed'}" + (f", want {version}" if version else "")
        )
        spec = f"tailscale={version}" if version else "tailscale"
        commands.append(apt_update_for_source(lock_timeout, SOURCES_LIST_PATH, cache_time))
        # The keyring is the deploy's (pinned), so tailscale-archive-keyring (a
        # Recommends that would rewrite it) stays out.
        extra = ["--allow-downgrades"] if version else []
        commands.append(
            apt_get(lock_timeout, "install", "--no-install-recommends", *extra, QuoteString(spec))
        )
    elif source_changed:
        commands.append(apt_update_for_source(lock_timeout, SOURCES_LIST_PATH, cache_time))

    if info["service_enabled"] != "enabled":
        change_reason(f"tailscaled is {info['service_enabled'] or 'not installed'}")
        commands.append(StringCommand("systemctl", "enable", "--quiet", "tailscaled.service"))
    if info["service_active"] != "active":
        change_reason(f"tailscaled is {info['service_active'] or 'not running'}")
        commands.append(_start_daemon("start"))
    elif flags_changed and installed is not None:
        commands.append(_start_daemon("restart"))

    if not commands:
        host.noop(f"tailscale {installed} from {repo_url}/{distro} is installed and running")
        return
    yield chain(commands)


@operation(reads=lambda **_: [fact_read(TailscaleNode)])
def tailscale_login(
    *,
    hostname: str,
    flags: list[str],
    authkey_source: dict[str, str],
    login_server: str = "",
) -> Any:
    """
    Bring the node into the tailnet with the wanted name and settings (runbook §2
    `tailscale up --hostname=…`), by its ``BackendState``:

    - ``NeedsLogin``/``NoState``: ``tailscale up --reset --auth-key=file:… --hostname=…
      [--login-server=…] [flags] --timeout=120s`` — the key is read now (from
      ``authkey_source``), uploaded into a ``0600`` file on tmpfs and removed after ``up``,
      whatever its exit code
    - ``Stopped``: a plain ``tailscale up`` (no key; a bare ``up`` keeps every setting,
      the control server included: cmd/tailscale/cli/up.go checkForAccidentalSettingReverts)
    - ``Running``: ``tailscale set`` for a changed hostname or setting (no new login); a
      rename waits for the node's new MagicDNS name, which serve is keyed by
    - ``NeedsMachineAuth``, or logged in to another control server: fails with what to do

    + hostname: the node's tailnet name
    + flags: validated ``tailscale up`` flags (tags, accept-routes, ...)
    + authkey_source: ``{"environ": NAME}`` or ``{"file": path}`` on the controller
    + login_server: the control server's URL; '' = Tailscale's own

    **Example:**

    .. code:: python

        tailscale_login(name="Log in to the tailnet", hostname="egograph-prod", flags=[],
                        authkey_source={"environ": "TS_AUTHKEY"})
    """
    node = read_fact(TailscaleNode)
    status, prefs = node["status"], node["prefs"]
    state = backend_state(status)
    executing = host.state.is_executing

    if state in ("", "NoState", "NeedsLogin"):
        if not state and executing:
            yield from refuse("the tailscale CLI is not installed on the target")
            return
        change_reason(f"the node needs a login ({state or 'Tailscale not installed yet'})")
        yield from _login(hostname, flags, authkey_source, login_server)
        return
    if state == DAEMON_DOWN:
        if executing:
            yield from refuse(
                "tailscaled is not running (the CLI cannot reach it); see "
                "`systemctl status tailscaled` and `journalctl -u tailscaled` on the node"
            )
            return
        host.noop("tailscaled is not running yet; its login state is read once it runs")
        return
    if state == "NeedsMachineAuth":
        yield from refuse(MACHINE_AUTH)
        return
    if state not in ("Stopped", "Starting", "Running"):
        yield from refuse(f"unexpected Tailscale BackendState {state!r}; nothing was changed")
        return

    problem = tags_problem(prefs, flags) or control_problem(prefs, login_server)
    if problem:
        yield from refuse(problem)
        return
    commands = []
    if state == "Stopped":
        change_reason("Tailscale is stopped (`tailscale down`)")
        # No flags: any flag would make `up` demand the complete set of settings.
        commands.append(StringCommand("timeout", str(UP_TIMEOUT), "tailscale", "up"))
    changes = set_changes(prefs, status, hostname, flags)
    if changes:
        change_reason(f"node settings differ: {' '.join(changes)}")
        risk = ["--accept-risk=lose-ssh"] if any(c.startswith("--ssh") for c in changes) else []
        commands.append(
            StringCommand("tailscale", "set", *[QuoteString(c) for c in [*changes, *risk]])
        )
        if any(c.startswith("--hostname=") for c in changes) and dns_name(status):
            commands.append(_wait_for_new_name(dns_name(status)))
    if not commands:
        host.noop(f"logged in as {self_hostname(status)} ({dns_name(status) or 'no DNS name'})")
        return
    yield chain(commands)


@operation(reads=lambda **_: [fact_read(TailscaleNode)])
def tailscale_serve(
    *,
    services: list[Published],
    hostname: str,
    funnel: bool = False,
    reset_foreign: bool = False,
) -> Any:
    """
    Publish each service in the tailnet with ``tailscale serve --bg --https=<port>
    <target>`` (runbook §2, §9), or ``--http=<port>`` for plain HTTP, wherever ``serve
    status --json`` does not serve that target under the node's current name, and print
    the service URLs.

    HTTPS needs certificates from the tailnet: on a node without the ``https`` capability
    the control server's answer to the HTTPS feature query (``TailscaleNode``) decides,
    and a tailnet that cannot issue them (headscale answers 501) is refused, naming the
    setting. A renamed node is served again under its new name (stale keys go with a
    ``serve reset``). Funnel only with ``funnel``.

    + services: what to publish (``Published``: name, scheme, port, target, setting)
    + hostname: the node's wanted name (a pending rename re-keys serve)
    + funnel: publish with ``tailscale funnel`` (internet) instead
    + reset_foreign: ``tailscale serve reset`` when handlers the deploy did not make exist

    **Example:**

    .. code:: python

        tailscale_serve(name="Publish the services", hostname="egograph-prod",
                        services=[Published("backend", "https", 443,
                                            "http://127.0.0.1:8000", "services[0].publish")])
    """
    node = read_fact(TailscaleNode)
    status, config = node["status"], node["serve"]
    state = backend_state(status)
    executing = host.state.is_executing

    # While preparing (a dry run), a node that is about to log in or come up is planned
    # against what it has now; while executing, the login operation has run already.
    # Starting: the node has its netmap (its name, its capabilities) and serve works; it
    # is Running once a DERP relay or a peer answers (ipn/ipnlocal/local.go nextStateLocked).
    connected = state in ("Running", "Starting")
    if not connected and (executing or state not in ("", "NoState", "NeedsLogin", "Stopped")):
        if state == DAEMON_DOWN and not executing:
            host.noop("tailscaled is not running yet; the serve config is read once it runs")
            return
        yield from refuse(
            f"cannot serve: the node is not connected (BackendState {state or 'unknown'})"
        )
        return
    problem = https_problem(node.get("https_feature"), services)
    if connected and problem:
        yield from refuse(problem)
        return

    dns = dns_name(status)
    renaming = connected and self_hostname(status) not in ("", hostname)
    plan = serve_plan(config, services, dns, funnel=funnel, reset_foreign=reset_foreign)
    if renaming and config.get("Web"):
        # Planned before the rename runs: serve is keyed by the name the node has then.
        plan = ServePlan(True, tuple(services), plan.foreign, plan.stale, plan.funnel_off)
    for svc in services if dns and not renaming else []:
        host.log(f"{svc.name} is served at {service_url(svc, dns)}")
    if plan.foreign and not plan.reset:
        host.log(
            "keeping serve handlers the deploy did not make: "
            + ", ".join(f"{t} on {p}" for p, t in plan.foreign)
            + " (tailscale_serve_reset_foreign = True clears them)"
        )
    if not plan.reset and not plan.missing:
        host.noop("the serve config serves every service under the node's name")
        return
    if renaming and config.get("Web"):
        change_reason(f"the node is renamed to {hostname}: serve is keyed by the new name")
    elif plan.stale:
        change_reason(
            f"serve is keyed by another name than the node's ({dns}): " + ", ".join(plan.stale)
        )
    elif plan.funnel_off:
        change_reason("funnel is on but tailscale_funnel is off")
    elif plan.reset:
        change_reason(
            "serve handlers the deploy did not make: "
            + ", ".join(f"{t} on {p}" for p, t in plan.foreign)
        )
    else:
        change_reason(
            "not served: "
            + ", ".join(f"{w.target} on {w.scheme.upper()} {w.port}" for w in plan.missing)
        )
    if plan.reset and plan.foreign and not reset_foreign:
        host.log("the reset also drops: " + ", ".join(f"{t} on {p}" for p, t in plan.foreign))
    reset_command = [StringCommand("tailscale", "serve", "reset")] if plan.reset else []
    yield chain([*reset_command, *_serve_commands(plan.missing, funnel)])


# -- command builders --------------------------------------------------------------------
def _write_file(path: str, line: str) -> StringCommand:
    tmp = f"{path}.egograph-deploy.tmp"
    return StringCommand(
        "printf",
        "'%s\\n'",
        QuoteString(line),
        ">",
        QuoteString(tmp),
        "&&",
        "chmod",
        "644",
        QuoteString(tmp),
        "&&",
        "mv",
        "-f",
        QuoteString(tmp),
        QuoteString(path),
    )


def _download_keyring(url: str, pin: str) -> StringCommand:
    """Download next to the keyring, and move it in only when its SHA-256 is the pin."""
    tmp = QuoteString(f"{KEYRING_PATH}.egograph-deploy.tmp")
    mismatch = (
        f"the keyring at {url} does not match tailscale_keyring_sha256 = {pin}; refusing "
        "it (nothing was changed). If Tailscale rotated its key, verify the new one and "
        "update the pin. Downloaded SHA-256:"
    )
    return StringCommand(
        "mkdir -p -m 755 /usr/share/keyrings && rm -f",
        tmp,
        "&& if ! curl -fsSL --retry 3 -o",
        tmp,
        QuoteString(url),
        "; then rm -f",
        tmp,
        "; echo",
        QuoteString(f"cannot download the Tailscale keyring from {url}"),
        ">&2; exit 1; fi; got=$(sha256sum <",
        tmp,
        '| cut -c1-64); if [ "$got" != ',
        QuoteString(pin),
        " ]; then rm -f",
        tmp,
        "; echo",
        QuoteString(mismatch),
        '"$got" >&2; exit 1; fi; chmod 644',
        tmp,
        "&& mv -f",
        tmp,
        QuoteString(KEYRING_PATH),
    )


def _set_defaults_flags(flags: str) -> StringCommand:
    """Set FLAGS= in tailscaled's environment file, keeping the rest of it. The package ships
    it as a conffile that dpkg keeps when it exists before the first install; written then,
    it also gets the package's PORT (the unit passes ``--port=${PORT}``)."""
    path = QuoteString(DEFAULTS_PATH)
    line = f'FLAGS="{flags}"'
    return StringCommand(
        "if [ ! -e",
        path,
        "]; then printf '%s\\n'",
        QuoteString(f'PORT="{DEFAULT_PORT}"'),
        QuoteString(line),
        ">",
        path,
        "; elif grep -q '^[[:space:]]*FLAGS=' ",
        path,
        "; then sed -i",
        QuoteString(f"s|^[[:space:]]*FLAGS=.*|{line}|"),
        path,
        "; else printf '%s\\n'",
        QuoteString(line),
        ">>",
        path,
        "; fi",
    )


DAEMON_SETTLE = 30
"""Seconds a (re)started tailscaled has to leave NoState (it reads its state, then asks the
control server: NeedsLogin, Stopped or Starting follow within a second or two)."""


def _start_daemon(verb: str) -> StringCommand:
    """(Re)start tailscaled and check it stays up (Type=notify: active means ready); a
    failure shows the daemon's own last words. Then wait, bounded, until its backend has
    left ``NoState``: the login decision that follows must not take a node that is still
    reading its state for one that needs a key."""
    settling = (
        f"i=0; while [ $i -lt {DAEMON_SETTLE * 5} ]; do"
        " st=$(tailscale status --json --peers=false 2>/dev/null) &&"
        ' ! printf \'%s\' "$st" | grep -q \'"BackendState": "NoState"\' && break;'
        " sleep 0.2; i=$((i+1)); done"
    )
    return StringCommand(
        "systemctl reset-failed tailscaled.service 2>/dev/null;",
        "{ systemctl",
        verb,
        "tailscaled.service && systemctl is-active --quiet tailscaled.service; }",
        "|| { journalctl -u tailscaled.service -n 20 --no-pager >&2; exit 1; };",
        settling,
    )


def _login(
    hostname: str, flags: list[str], source: Mapping[str, str], login_server: str
) -> Iterator[Any]:
    raw, where = read_authkey(source)
    if raw is None:
        yield from refuse(
            f"Tailscale needs to log in but there is no auth key in {where}. Create one in "
            "the admin console (Settings → Keys: reusable or single-use, pre-approved, "
            "tagged as you like) and provide it there (see tailscale_authkey_source)."
        )
        return
    key, problem = prepare_key(raw, flags)
    if key is None:
        yield from refuse(f"cannot log in with the key from {where}: {problem}")
        return
    tmp = QuoteString(KEY_FILE)
    # The file exists, empty and private, before a byte of the key is written into it.
    yield StringCommand(
        "umask 077 && mkdir -p", QuoteString(KEY_DIR), "&& rm -f", tmp, "&& : >", tmp
    )
    yield FileUploadCommand(StringIO(key + "\n"), KEY_FILE)
    yield StringCommand(
        "tailscale",
        "up",
        "--reset",
        QuoteString(f"--auth-key=file:{KEY_FILE}"),
        QuoteString(f"--hostname={hostname}"),
        *([QuoteString(f"--login-server={login_server}")] if login_server else []),
        *[QuoteString(f) for f in flags],
        f"--timeout={UP_TIMEOUT}s",
        "; rc=$?; rm -f",
        tmp,
        "; exit $rc",
    )


def _wait_for_new_name(old_dns: str) -> StringCommand:
    """Until the node's MagicDNS name is no longer ``old_dns`` (the control server renames
    it with the next netmap), at most RENAME_WAIT seconds: serve is keyed by that name. A
    name the tailnet's admin fixed never changes; then the wait ends with the time."""
    probe = (
        "tailscale status --json --peers=false 2>/dev/null"
        ' | sed -n \'s/^ *"DNSName": "\\([^"]*\\)".*/\\1/p\' | head -n 1'
    )
    return StringCommand(
        f'i=0; while [ $i -lt {RENAME_WAIT * 5} ] && [ "$({probe})" = ',
        QuoteString(old_dns + "."),
        "]; do sleep 0.2; i=$((i+1)); done",
    )


def _serve_commands(missing: Sequence[Published], funnel: bool) -> list[StringCommand]:
    verb = "funnel" if funnel else "serve"
    commands = []
    for svc in missing:
        # Where the tailnet has not enabled HTTPS and the control server says the CLI need
        # not wait, serve prints how to enable it and exits 0 having saved nothing
        # (serve_legacy.go enableFeatureInteractive): the saved config must hold the
        # target afterwards.
        unsaved = (
            f"`tailscale {verb} --{svc.scheme}={svc.port} {svc.target}` saved nothing "
            f"(see its output above): {svc.setting} = {svc.scheme} cannot be served here"
        )
        commands.append(
            StringCommand(
                "tailscale",
                verb,
                "--bg",
                QuoteString(f"--{svc.scheme}={svc.port}"),
                QuoteString(svc.target),
                "&& { tailscale serve status --json | grep -qF",
                QuoteString(f'"{svc.target}"'),
                "|| { echo",
                QuoteString(unsaved),
                ">&2; exit 1; }; }",
            )
        )
    return commands
