"""The services' settings (runbook §3, §5): the services list, with one mapping per
service (its fields below), and how they run. A service's env file text is read from its
controller-side source once, while validating, and kept as a ``Secret``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..common.checks import (
    HOSTNAME,
    MODULE,
    UNIT_NAME,
    Check,
    int_range,
    is_abs_path,
    is_bool,
    matches,
    one_of,
    optional_abs_path,
)
from ..common.secrets import Secret
from ..common.setting import describe, setting
from .envsource import read_env_source

REMOVED: dict[str, str] = {
    "service_data_dir": (
        "removed: the app reads no variable for its data; it writes next to the checkout "
        "(<repo_path>/../data), which service_hardening now makes writable, and a hardened "
        "user's HOME is /var/lib/<user>. Delete this setting"
    ),
}
"""Settings of this concern that existed once, with what replaced them."""


@dataclass(frozen=True)
class ServiceField:
    name: str
    form: str
    doc: str
    check: Check
    default: Any = None  # None: required


SERVICE_FIELDS: tuple[ServiceField, ...] = (
    ServiceField(
        "name",
        "a short name: lowercase letters, digits, '-'",
        "Service name (used in labels and stamps)",
        matches(HOSTNAME),
    ),
    ServiceField("unit", "a systemd unit name without '.service'", "Unit name", matches(UNIT_NAME)),
    ServiceField(
        "description",
        "a one-line string",
        "Description= of the unit",
        lambda v: isinstance(v, str) and bool(v) and "\n" not in v,
        "",
    ),
    ServiceField(
        "module",
        "'package.module:attribute', e.g. 'backend.main:app'",
        "ASGI app for uvicorn",
        matches(MODULE),
    ),
    ServiceField(
        "factory",
        "True or False",
        "True: module names a function that returns the app (uvicorn --factory), such as "
        "upstream pipelines' create_app",
        is_bool,
        False,
    ),
    ServiceField(
        "host",
        "an IPv4 address or 'localhost'",
        "Address uvicorn listens on",
        matches(re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3})$")),
        "127.0.0.1",
    ),
    ServiceField(
        "port", "an integer from 1 to 65535", "Port uvicorn listens on", int_range(1, 65535)
    ),
    ServiceField(
        "working_dir",
        "'' (the repo) or an absolute path",
        "WorkingDirectory=",
        optional_abs_path,
        "",
    ),
    ServiceField(
        "env_file",
        "a path relative to repo_path, or an absolute path",
        "EnvironmentFile= on the server (mode 0600, root-owned)",
        lambda v: (
            isinstance(v, str) and bool(v) and is_abs_path(v if v.startswith("/") else "/x/" + v)
        ),
    ),
    ServiceField(
        "env_source",
        "{'file': 'path on the controller'} or "
        "{'environ': ['VAR', ...]} or {'environ': {'KEY': 'CONTROLLER_VAR'}}",
        "Where the env file's contents come from (never the repo)",
        lambda v: isinstance(v, dict) and len(v) == 1 and set(v) <= {"file", "environ"},
    ),
    ServiceField(
        "health_path",
        "an absolute URL path, e.g. '/health'",
        "Answers 200 when the service is healthy",
        matches(re.compile(r"^/[A-Za-z0-9._~/?=&-]*$")),
        "/health",
    ),
    ServiceField(
        "publish",
        "'https', 'http' or 'off'",
        "How `tailscale serve` publishes it in the tailnet: https = "
        "https://<node>.<tailnet>.ts.net with a certificate from the tailnet (the runbook; "
        "the tailnet must issue certificates), http = plain HTTP inside the tailnet "
        "(WireGuard still encrypts it; for control servers without certificates such as "
        "headscale), off = not published. Default: 'https' for the first service, 'off' for "
        "the others",
        one_of("https", "http", "off"),
        "https",
    ),
    ServiceField(
        "publish_port",
        "0 (443 for https, 80 for http) or a port 1-65535",
        "The tailnet port it is published on",
        int_range(0, 65535),
        0,
    ),
    ServiceField(
        "user", "a user name", "User=", matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")), "root"
    ),
    ServiceField(
        "group", "a group name", "Group=", matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")), "root"
    ),
)


@dataclass(frozen=True)
class Service:
    name: str
    unit: str
    description: str
    module: str
    host: str
    port: int
    working_dir: str
    env_file: str
    env_source: dict[str, Any]
    health_path: str
    user: str
    group: str
    factory: bool = False
    publish: str = "off"
    publish_port: int = 0
    env: Secret | None = None
    """The env file's text, read once from ``env_source`` while validating (None when the
    env files are kept on the server: ``env_files_managed`` False)."""

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.health_path}"

    @property
    def tailnet_port(self) -> int:
        """The port ``tailscale serve`` publishes it on (0 = the scheme's own)."""
        if self.publish_port:
            return self.publish_port
        return 443 if self.publish == "https" else 80


def hardened_home(user: str) -> str:
    """A hardened service user's HOME: its StateDirectory=, where DuckDB keeps extensions
    (~/.duckdb) and XDG config/data/state go."""
    return f"/var/lib/{user}"


def parse_service(
    index: int, raw: Any, repo_path: str, check_sources: bool = True
) -> tuple[list[str], Service | None]:
    where = f"services[{index}]"
    if not isinstance(raw, dict):
        return [
            f"{where}: got {describe(raw, False)}; expected a mapping with the keys "
            f"{', '.join(f.name for f in SERVICE_FIELDS)}"
        ], None
    errors: list[str] = []
    known = {f.name for f in SERVICE_FIELDS}
    for key in sorted(set(raw) - known):
        errors.append(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for f in SERVICE_FIELDS:
        if f.name == "publish" and f.name not in raw and index > 0:
            values[f.name] = "off"  # the runbook publishes its one service only
            continue
        if f.name not in raw:
            if f.default is None:
                errors.append(f"{where}.{f.name}: missing; expected {f.form}")
                continue
            values[f.name] = f.default
            continue
        value = raw[f.name]
        if not f.check(value):
            errors.append(f"{where}.{f.name}: got {describe(value, False)}; expected {f.form}")
        values[f.name] = value
    env: Secret | None = None
    if "env_source" in values and not errors and check_sources:
        problems, env = read_env_source(values["env_source"])
        errors += [f"{where}.env_source: {e}" for e in problems]
    if errors:
        return errors, None
    env_file = values["env_file"]
    if not env_file.startswith("/"):
        env_file = f"{repo_path}/{env_file}"
    desc = values["description"] or f"EgoGraph {values['name'].capitalize()}"
    return [], Service(
        name=values["name"],
        unit=values["unit"],
        description=desc,
        module=values["module"],
        host=values["host"],
        port=values["port"],
        working_dir=values["working_dir"] or repo_path,
        env_file=env_file,
        env_source=values["env_source"],
        health_path=values["health_path"],
        user=values["user"],
        group=values["group"],
        factory=values["factory"],
        publish=values["publish"],
        publish_port=values["publish_port"],
        env=env,
    )


DEFAULT_SERVICES: list[dict[str, Any]] = [
    {
        "name": "backend",
        "unit": "egograph-backend",
        "description": "EgoGraph Backend",
        "module": "backend.main:app",
        "factory": False,
        "host": "127.0.0.1",
        "port": 8000,
        "working_dir": "",
        "env_file": "egograph/backend/.env",
        "env_source": {"file": "secrets/backend.env"},
        "health_path": "/health",
        "user": "root",
        "group": "root",
        "publish": "https",
        "publish_port": 0,
    },
]
"""The runbook's one service, in the app's layout: the uv workspace member egograph/backend
is the package ``backend``, with its env file beside it. A second service (pipelines) is in
the README."""
DEFAULT_REPO_PATH = "/opt/egograph/repo"


def _default_services() -> tuple[Service, ...]:
    parsed = [
        parse_service(i, s, DEFAULT_REPO_PATH, False)[1] for i, s in enumerate(DEFAULT_SERVICES)
    ]
    return tuple(s for s in parsed if s is not None)


@dataclass(frozen=True)
class ServiceSettings:
    """How the app's services run under systemd (runbook §5)."""

    services: tuple[Service, ...] = setting(
        _default_services(),
        form="a non-empty list of service mappings (see the services table)",
        doc="The long-running app services, one systemd unit each",
        check=lambda v: isinstance(v, list) and bool(v),
        raw_default=DEFAULT_SERVICES,
    )
    env_files_managed: bool = setting(
        True,
        form="True or False",
        doc="True: the deploy writes each service's env file from its controller-side source. "
        "False: the env files are kept on the server only (runbook §3: secrets never in CI); "
        "the deploy checks they exist and are 0600, and restarts follow their changes",
        check=is_bool,
    )
    service_health_timeout: int = setting(
        60,
        form="an integer number of seconds from 1 to 600",
        doc="How long a (re)started service has to answer its health path with 200",
        check=int_range(1, 600),
    )
    service_retry_rolled_back: bool = setting(
        False,
        form="True or False",
        doc="A commit whose release was rolled back is not deployed again (the run and the "
        "drift check stop naming it) until a new commit arrives; True deploys it once more. "
        "Meant for one run: --data service_retry_rolled_back=True",
        check=is_bool,
    )
    release_keep: int = setting(
        5,
        form="an integer from 1 to 100",
        doc="How many releases (commits that came up healthy) the target keeps for "
        "`egodeploy rollback`: the history in /var/lib/egograph-deploy/releases.json and a "
        "git ref per commit in the clone (see *Rollback* for the cost on disk)",
        check=int_range(1, 100),
    )
    service_restart_sec: int = setting(
        10,
        form="an integer number of seconds from 0 to 3600",
        doc="RestartSec= of the units",
        check=int_range(0, 3600),
    )
    service_hardening: bool = setting(
        False,
        form="True or False",
        doc="Run the services as their own system user (the services' user/group, created by "
        "the deploy, HOME /var/lib/<user>: DuckDB's extensions, XDG dirs) with systemd "
        "sandboxing: NoNewPrivileges, ProtectSystem=strict, ProtectHome, PrivateTmp; "
        "writable are only that HOME, /var/cache/<user> and the app's data dir next to the "
        "checkout (<repo_path>/../data, where upstream's egograph_paths.py puts it)",
        check=is_bool,
    )

    @property
    def service_accounts(self) -> list[tuple[str, str]]:
        """The services' (user, group) pairs, each once, in the order services name them."""
        return list(dict.fromkeys((s.user, s.group) for s in self.services))


def service_errors(data: Mapping[str, Any]) -> tuple[list[str], tuple[Service, ...]]:
    """The raw ``services`` list checked and parsed (each env source read once), with the
    rules across services."""
    services: list[Service] = []
    errors: list[str] = []
    repo_path = data.get("repo_path", DEFAULT_REPO_PATH)
    if not isinstance(data.get("services"), list):
        return errors, ()
    for i, raw in enumerate(data["services"]):
        errs, svc = parse_service(
            i,
            raw,
            repo_path if isinstance(repo_path, str) else "",
            check_sources=data.get("env_files_managed") is not False,
        )
        errors += errs
        if svc:
            services.append(svc)
    errors += _duplicates("name", [s.name for s in services])
    errors += _duplicates("unit", [s.unit for s in services])
    errors += _duplicates("port", [s.port for s in services])
    errors += _duplicates("env_file", [s.env_file for s in services])
    return errors, tuple(services)


def _duplicates(key: str, values: Iterable[Any]) -> list[str]:
    counts = Counter(values)
    dup = sorted(str(v) for v, n in counts.items() if n > 1)
    return (
        [
            f"services[*].{key}: {', '.join(dup)} used twice; expected each service's "
            f"{key} to be unique"
        ]
        if dup
        else []
    )
