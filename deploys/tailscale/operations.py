"""Operations that install Tailscale, log the node in and publish services with `serve`.

Each operation reads one coarse fact (``TailscaleInstall`` or ``TailscaleNode``), decides
with the pure functions of ``plan.py`` and yields the commands of ``commands.py``, or says
why nothing is needed. The auth key never appears in an argument, a label, a command line or
the output: it is read on the controller only when a login is needed, uploaded into a file
created ``0600`` first, passed as ``--auth-key=file:<path>`` and removed whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason, refuse
from ..common.shell import write_line
from ..common.snapshot import fact_read, operation
from ..packages.operations import apt_get, apt_update_for_source
from . import commands as build
from .commands import KEY_DIR, KEY_FILE, UP_TIMEOUT
from .facts import (
    DAEMON_DOWN,
    KEYRING_PATH,
    SOURCES_LIST_PATH,
    TailscaleInstall,
    TailscaleInstallInfo,
    TailscaleNode,
)
from .plan import (
    MACHINE_AUTH,
    USERSPACE_FLAGS,
    Published,
    ServePlan,
    backend_state,
    control_problem,
    distro_of,
    dns_name,
    https_problem,
    install_problem,
    keyring_url,
    prepare_key,
    read_authkey,
    self_hostname,
    serve_plan,
    service_url,
    set_changes,
    source_line,
    tags_problem,
)
from .settings import keyring_pin_fix, keyring_pin_problem


@operation(read=lambda **_: fact_read(TailscaleInstall))
def tailscale_package(
    info: TailscaleInstallInfo,
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
    problem = install_problem(info, userspace)
    found = distro_of(info)
    if problem or found is None:
        yield from refuse(problem or "unsupported distribution")
        return
    distro, codename = found
    url = keyring_url(repo_url, keyring_url_template, distro, codename)
    pin = keyring_sha256.lower()
    problem = keyring_pin_problem(True, pin)
    if problem:
        yield from refuse(f"{problem}. To pin it: {keyring_pin_fix(url)}.")
        return

    commands: list[StringCommand] = []
    if info["keyring_sha256"] != pin:
        change_reason(
            f"{KEYRING_PATH} {'differs from the pin' if info['keyring_sha256'] else 'is missing'}"
        )
        commands.append(build.download_keyring(url, pin))

    line = source_line(repo_url, distro, codename)
    source_changed = info["sources_list"] != line + "\n"
    if source_changed:
        change_reason(f"{SOURCES_LIST_PATH} {'differs' if info['sources_list'] else 'is missing'}")
        commands.append(write_line(SOURCES_LIST_PATH, line))

    want_flags = USERSPACE_FLAGS if userspace else ""
    flags_changed = (info["defaults_flags"] or "") != want_flags
    if flags_changed:
        change_reason(f"tailscaled FLAGS are {info['defaults_flags']!r}, want {want_flags!r}")
        commands.append(build.set_defaults_flags(want_flags))

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
        commands.append(build.start_daemon("start"))
    elif flags_changed and installed is not None:
        commands.append(build.start_daemon("restart"))

    if not commands:
        host.noop(f"tailscale {installed} from {repo_url}/{distro} is installed and running")
        return
    yield chain(commands)


@operation(read=lambda **_: fact_read(TailscaleNode))
def tailscale_login(
    node: dict[str, Any],
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
            commands.append(build.wait_for_new_name(dns_name(status)))
    if not commands:
        host.noop(f"logged in as {self_hostname(status)} ({dns_name(status) or 'no DNS name'})")
        return
    yield chain(commands)


@operation(read=lambda **_: fact_read(TailscaleNode))
def tailscale_serve(
    node: dict[str, Any],
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
    yield chain([*reset_command, *build.serve_commands(plan.missing, funnel)])


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
