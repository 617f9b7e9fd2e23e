"""Operations that install Tailscale, log the node in and publish services with `serve`.

Each operation reads one coarse fact (``TailscaleInstall`` or ``TailscaleNode``), decides
with the pure helpers below (unit-tested without a host) and yields commands or says why
nothing is needed. The auth key never appears in an argument, a label, a command line or
the output: it is read on the controller only when a login is needed, uploaded into a file
created ``0600`` first, passed as ``--auth-key=file:<path>`` and removed whatever happens.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
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
    funnel_enabled,
    https_enabled,
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
FUNNEL_PORTS = (443, 8443, 10000)

HTTPS_DISABLED = (
    "HTTPS certificates are not enabled on the tailnet, so `tailscale serve` cannot publish "
    "anything (it saves no config). Enable them in the Tailscale admin console (DNS page: "
    "MagicDNS on, then 'Enable HTTPS'), then run the deploy again; or set "
    "tailscale_serve = False."
)
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


def serve_plan(
    config: Mapping[str, Any],
    wanted: list[tuple[int, str]],
    *,
    funnel: bool,
    reset_foreign: bool,
) -> tuple[bool, list[tuple[int, str]], list[tuple[int, str]]]:
    """``(reset first, (port, target) to serve, foreign (port, target) found)``.

    Targets are compared per HTTPS port by proxy URL, never by the ``Web`` key (it holds
    the node's DNS name when serve was run). Foreign: anything else served, except the ``/``
    handler of a port the deploy serves (serving there replaces it). A funnel found while
    ``funnel`` is off is removed with a reset: being on the internet is never left to chance.
    """
    tcp = config.get("TCP") or {}
    allow = config.get("AllowFunnel") or {}
    ports = {port for port, _ in wanted}
    current: dict[int, set[str]] = {}
    funneled: set[int] = set()
    foreign: set[tuple[int, str]] = set()
    for port_text, handler in tcp.items():
        if (handler or {}).get("TCPForward") and port_text.isdigit():
            foreign.add((int(port_text), f"tcp://{handler['TCPForward']}"))
    for hostport, web in (config.get("Web") or {}).items():
        _, _, port_text = hostport.rpartition(":")
        if not port_text.isdigit():
            continue
        port = int(port_text)
        https = bool((tcp.get(port_text) or {}).get("HTTPS"))
        for mount, handler in ((web or {}).get("Handlers") or {}).items():
            target = str((handler or {}).get("Proxy") or (handler or {}).get("Path") or "?")
            if https and (handler or {}).get("Proxy"):
                current.setdefault(port, set()).add(target)
            if (port, target) not in wanted and not (https and port in ports and mount == "/"):
                foreign.add((port, target))
        if allow.get(hostport):
            funneled.add(port)
    found = sorted(foreign)
    if (found and reset_foreign) or (funneled and not funnel):
        return True, list(wanted), found
    missing = [
        (port, target)
        for port, target in wanted
        if target not in current.get(port, set()) or (funnel and port not in funneled)
    ]
    return False, missing, found


def service_url(dns: str, port: int) -> str:
    return f"https://{dns}/" if port == 443 else f"https://{dns}:{port}/"


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
) -> Any:
    """
    Bring the node into the tailnet with the wanted name and settings (runbook §2
    `tailscale up --hostname=…`), by its ``BackendState``:

    - ``NeedsLogin``/``NoState``: ``tailscale up --reset --auth-key=file:… --hostname=…
      [flags] --timeout=120s`` — the key is read now (from ``authkey_source``), uploaded
      into a ``0600`` file on tmpfs and removed after ``up``, whatever its exit code
    - ``Stopped``: a plain ``tailscale up`` (no key)
    - ``Running``: ``tailscale set`` for a changed hostname or setting (no new login)
    - ``NeedsMachineAuth``: fails with what to do

    + hostname: the node's tailnet name
    + flags: validated ``tailscale up`` flags (tags, accept-routes, ...)
    + authkey_source: ``{"environ": NAME}`` or ``{"file": path}`` on the controller

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
        yield from _login(hostname, flags, authkey_source)
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

    problem = tags_problem(prefs, flags)
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
    if not commands:
        host.noop(f"logged in as {self_hostname(status)} ({dns_name(status) or 'no DNS name'})")
        return
    yield chain(commands)


@operation(reads=lambda **_: [fact_read(TailscaleNode)])
def tailscale_serve(
    *,
    services: list[dict[str, Any]],
    funnel: bool = False,
    reset_foreign: bool = False,
) -> Any:
    """
    Publish each service over HTTPS in the tailnet with ``tailscale serve --bg
    --https=<port> <target>`` (runbook §2, §9), only where ``serve status --json`` lacks
    that proxy target on that port, and print the service URLs.

    A tailnet without HTTPS certificates makes ``serve`` exit 0 and save nothing: that is
    checked before (``Self.CapMap``/``CertDomains``) and after (the target must be in the
    saved config), and fails with what to do. Funnel only with ``funnel``.

    + services: ``[{"name": …, "https_port": 443, "target": "http://127.0.0.1:8000"}]``
    + funnel: publish with ``tailscale funnel`` (internet) instead
    + reset_foreign: ``tailscale serve reset`` when handlers the deploy did not make exist

    **Example:**

    .. code:: python

        tailscale_serve(name="Publish the services",
                        services=[{"name": "backend", "https_port": 443,
                                   "target": "http://127.0.0.1:8000"}])
    """
    node = read_fact(TailscaleNode)
    status, config = node["status"], node["serve"]
    state = backend_state(status)
    executing = host.state.is_executing
    wanted = [(int(s["https_port"]), str(s["target"])) for s in services]

    # While preparing (a dry run), a node that is about to log in or come up is planned
    # against what it has now; while executing, the login operation has run already.
    if state != "Running" and (executing or state not in ("", "NoState", "NeedsLogin", "Stopped")):
        if state == DAEMON_DOWN and not executing:
            host.noop("tailscaled is not running yet; the serve config is read once it runs")
            return
        yield from refuse(
            f"cannot serve: the node is not connected (BackendState {state or 'unknown'})"
        )
        return
    if state == "Running" and not https_enabled(status):
        yield from refuse(HTTPS_DISABLED)
        return

    reset, missing, foreign = serve_plan(config, wanted, funnel=funnel, reset_foreign=reset_foreign)
    dns = dns_name(status)
    for svc in services if dns else []:
        host.log(f"{svc['name']} is served at {service_url(dns, int(svc['https_port']))}")
    if foreign and not reset:
        host.log(
            "keeping serve handlers the deploy did not make: "
            + ", ".join(f"{t} on {p}" for p, t in foreign)
            + " (tailscale_serve_reset_foreign = True clears them)"
        )
    if not reset and not missing:
        host.noop("the serve config has every service's proxy target")
        return
    if reset:
        funnel_on = funnel_enabled(config) and not funnel
        change_reason(
            "funnel is on but tailscale_funnel is off"
            if funnel_on
            else "serve handlers the deploy did not make: "
            + ", ".join(f"{t} on {p}" for p, t in foreign)
        )
        if funnel_on and foreign and not reset_foreign:
            host.log("the reset also drops: " + ", ".join(f"{t} on {p}" for p, t in foreign))
    else:
        change_reason("not served: " + ", ".join(f"{t} on {p}" for p, t in missing))
    reset_command = [StringCommand("tailscale", "serve", "reset")] if reset else []
    yield chain([*reset_command, *_serve_commands(missing, funnel)])


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


def _start_daemon(verb: str) -> StringCommand:
    """(Re)start tailscaled and check it stays up (Type=notify: active means ready); a
    failure shows the daemon's own last words."""
    return StringCommand(
        "systemctl reset-failed tailscaled.service 2>/dev/null;",
        "{ systemctl",
        verb,
        "tailscaled.service && systemctl is-active --quiet tailscaled.service; }",
        "|| { journalctl -u tailscaled.service -n 20 --no-pager >&2; exit 1; }",
    )


def _login(hostname: str, flags: list[str], source: Mapping[str, str]) -> Iterator[Any]:
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
        *[QuoteString(f) for f in flags],
        f"--timeout={UP_TIMEOUT}s",
        "; rc=$?; rm -f",
        tmp,
        "; exit $rc",
    )


def _serve_commands(missing: list[tuple[int, str]], funnel: bool) -> list[StringCommand]:
    verb = "funnel" if funnel else "serve"
    commands = []
    for port, target in missing:
        # serve exits 0 and saves nothing when the tailnet has no HTTPS certificates:
        # the saved config must hold the target afterwards.
        commands.append(
            StringCommand(
                "timeout",
                "60",
                "tailscale",
                verb,
                "--bg",
                QuoteString(f"--https={port}"),
                QuoteString(target),
                "&& { tailscale serve status --json | grep -qF",
                QuoteString(f'"{target}"'),
                "|| { echo",
                QuoteString(HTTPS_DISABLED),
                ">&2; exit 1; }; }",
            )
        )
    return commands
