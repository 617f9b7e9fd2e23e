"""Every setting of the deploy: its expected form, its meaning, and validation.

The values themselves (the runbook's defaults) live in ``group_data/all.py``; this module
is the schema. ``validate`` reports every bad setting at once, naming the setting and the
form it expects, so a typo is caught before pyinfra connects to anything.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

Check = Callable[[Any], bool]

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_GIT_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
_REPO_URL = re.compile(
    r"^(https?|ssh|git|file)://[^\s'\"]+$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s'\"]+$"
)
_HTTP_URL = re.compile(r"^https?://[^\s'\"]+$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
_APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
_EXTENSION = re.compile(r"^[a-z0-9_]{1,64}$")


class SettingsError(Exception):
    """Raised with every bad setting; ``str()`` lists one per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Setting:
    """One top-level setting: its name, the form it takes, and what it means."""

    name: str
    form: str
    doc: str
    check: Check
    concern: str
    secret: bool = False


# --- small checks -------------------------------------------------------------------------


def _int_range(lo: int, hi: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_abs_path(v: Any) -> bool:
    if not isinstance(v, str) or not _SAFE_PATH.match(v) or v == "/":
        return False
    return ".." not in PurePosixPath(v).parts


def _matches(pattern: re.Pattern[str]) -> Check:
    return lambda v: isinstance(v, str) and bool(pattern.match(v))


def _one_of(*choices: str) -> Check:
    return lambda v: isinstance(v, str) and v in choices


def _list_of(check: Check, *, empty_ok: bool = True) -> Check:
    return lambda v: (
        isinstance(v, list) and (empty_ok or bool(v)) and all(check(item) for item in v)
    )


def _env_mapping(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str)
        and _ENV_KEY.match(k)
        and isinstance(val, str)
        and "\n" not in val
        and "\0" not in val
        for k, val in v.items()
    )


def _template_url(v: Any) -> bool:
    return isinstance(v, str) and bool(_HTTP_URL.match(v))


def _optional_url(v: Any) -> bool:
    return v == "" or (isinstance(v, str) and bool(_HTTP_URL.match(v)))


def _optional_abs_path(v: Any) -> bool:
    return v == "" or _is_abs_path(v)


# --- the schema ---------------------------------------------------------------------------

SETTINGS: tuple[Setting, ...] = (
    # Container spec (runbook §1). Used by the Proxmox deploy; kept here so every value the
    # runbook fixes has one home.
    Setting(
        "ct_hostname",
        "a DNS label: lowercase letters, digits and '-', 1-63 chars",
        "Container hostname (also the Tailscale name)",
        _matches(_HOSTNAME),
        "container",
    ),
    Setting(
        "ct_ostemplate",
        "a template file name such as 'ubuntu-24.04-standard_24.04-2_amd64.tar.zst'",
        "OS template for the container",
        _matches(re.compile(r"^[A-Za-z0-9._+-]+\.tar(\.(gz|xz|zst|bz2))?$")),
        "container",
    ),
    Setting("ct_cores", "an integer from 1 to 8192", "vCPUs", _int_range(1, 8192), "container"),
    Setting(
        "ct_memory_mb",
        "an integer (MiB) from 16 to 4194304",
        "Memory in MiB",
        _int_range(16, 4194304),
        "container",
    ),
    Setting(
        "ct_swap_mb",
        "an integer (MiB) from 0 to 4194304",
        "Swap in MiB",
        _int_range(0, 4194304),
        "container",
    ),
    Setting(
        "ct_disk_gb",
        "an integer (GiB) from 1 to 131072",
        "Root disk size in GiB",
        _int_range(1, 131072),
        "container",
    ),
    # apt (runbook §2)
    Setting(
        "apt_packages",
        "a list of Debian package names, e.g. ['git', 'curl']",
        "Packages installed with apt",
        _list_of(_matches(_APT_PACKAGE)),
        "packages",
    ),
    Setting(
        "apt_cache_time",
        "an integer number of seconds from 0 to 31536000",
        "apt lists younger than this are not refreshed (no `apt update` on every run)",
        _int_range(0, 31536000),
        "packages",
    ),
    Setting(
        "apt_lock_timeout",
        "an integer number of seconds from 0 to 3600",
        "How long apt waits for the dpkg lock held by another process",
        _int_range(0, 3600),
        "packages",
    ),
    # uv (runbook §2, §4)
    Setting(
        "uv_version",
        "a version 'X.Y.Z', e.g. '0.13.9'",
        "uv version, pinned",
        _matches(_VERSION),
        "uv",
    ),
    Setting(
        "uv_path",
        "an absolute path",
        "Where the uv binary lives (uvx beside it)",
        _is_abs_path,
        "uv",
    ),
    Setting(
        "uv_install_method",
        "'installer' or 'wheel'",
        "installer: the official version-pinned install script (runbook). wheel: the "
        "controller takes the uv wheel for the target's platform from the package index, "
        "checks its sha256 and pushes the binary (no installer host needed)",
        _one_of("installer", "wheel"),
        "uv",
    ),
    Setting(
        "uv_installer_url",
        "an http(s) URL; '{version}' is replaced by uv_version",
        "Installer script URL (installer method)",
        _template_url,
        "uv",
    ),
    Setting(
        "uv_wheel_index",
        "'' or an http(s) URL of a simple package index",
        "Index the controller takes the uv wheel from (wheel method); '' = the index the "
        "controller's uv is configured with",
        _optional_url,
        "uv",
    ),
    Setting(
        "uv_profile",
        "an absolute path",
        "Shell profile that gets uv's directory on PATH",
        _is_abs_path,
        "uv",
    ),
    Setting(
        "uv_environment",
        "a mapping of environment variable names to strings",
        "Environment for every uv command and for the services, e.g. "
        "{'UV_SYSTEM_CERTS': '1'} behind a TLS-intercepting proxy",
        _env_mapping,
        "uv",
    ),
    # app repository (runbook §3, §7)
    Setting(
        "repo_url",
        "a git URL (https://, ssh://, git://, file:// or user@host:path)",
        "Where the app is cloned from",
        _matches(_REPO_URL),
        "repo",
    ),
    Setting(
        "repo_branch",
        "a branch name, or a 40-hex commit to pin",
        "The ref the checkout follows",
        _matches(_GIT_REF),
        "repo",
    ),
    Setting(
        "repo_path",
        "an absolute path",
        "Checkout location (uv workspace root)",
        _is_abs_path,
        "repo",
    ),
    Setting(
        "repo_discard_local_changes",
        "True or False",
        "Allow the deploy to throw away uncommitted changes to tracked files on the server "
        "(the runbook's `git reset --hard`). Off: the run stops and lists them",
        _is_bool,
        "repo",
    ),
    # DuckDB (runbook §4)
    Setting(
        "duckdb_extensions",
        "a list of extension names, e.g. ['httpfs']",
        "DuckDB extensions installed with the app's own environment",
        _list_of(_matches(_EXTENSION)),
        "duckdb",
    ),
    Setting(
        "duckdb_extension_directory",
        "'' or an absolute path",
        "'' = DuckDB's default (~/.duckdb/extensions of root). Otherwise extensions go "
        "there and the services get DUCKDB_EXTENSION_DIRECTORY",
        _optional_abs_path,
        "duckdb",
    ),
    Setting(
        "duckdb_extension_repository",
        "'' or an http(s) URL",
        "'' = DuckDB's core repository; else a mirror laid out as "
        "<url>/v<version>/<platform>/<name>.duckdb_extension.gz",
        _optional_url,
        "duckdb",
    ),
    # services (runbook §5)
    Setting(
        "services",
        "a non-empty list of service mappings (see the services table)",
        "The long-running app services, one systemd unit each",
        lambda v: isinstance(v, list) and bool(v),
        "services",
    ),
    Setting(
        "service_health_timeout",
        "an integer number of seconds from 1 to 600",
        "How long a (re)started service has to answer its health path with 200",
        _int_range(1, 600),
        "services",
    ),
    Setting(
        "service_restart_sec",
        "an integer number of seconds from 0 to 3600",
        "RestartSec= of the units",
        _int_range(0, 3600),
        "services",
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


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
        _matches(_HOSTNAME),
    ),
    ServiceField(
        "unit", "a systemd unit name without '.service'", "Unit name", _matches(_UNIT_NAME)
    ),
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
        _matches(_MODULE),
    ),
    ServiceField(
        "host",
        "an IPv4 address or 'localhost'",
        "Address uvicorn listens on",
        _matches(re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3})$")),
        "127.0.0.1",
    ),
    ServiceField(
        "port", "an integer from 1 to 65535", "Port uvicorn listens on", _int_range(1, 65535)
    ),
    ServiceField(
        "working_dir",
        "'' (the repo) or an absolute path",
        "WorkingDirectory=",
        _optional_abs_path,
        "",
    ),
    ServiceField(
        "env_file",
        "a path relative to repo_path, or an absolute path",
        "EnvironmentFile= on the server (mode 0600, root-owned)",
        lambda v: (
            isinstance(v, str) and bool(v) and _is_abs_path(v if v.startswith("/") else "/x/" + v)
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
        _matches(re.compile(r"^/[A-Za-z0-9._~/?=&-]*$")),
        "/health",
    ),
    ServiceField(
        "user", "a user name", "User=", _matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")), "root"
    ),
    ServiceField(
        "group", "a group name", "Group=", _matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")), "root"
    ),
)


# --- typed view ---------------------------------------------------------------------------


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

    @property
    def unit_file(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"

    @property
    def health_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.health_path}"


@dataclass(frozen=True)
class Settings:
    """The validated settings of one host."""

    values: Mapping[str, Any]
    services: tuple[Service, ...] = field(default_factory=tuple)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def uv_dir(self) -> str:
        return str(PurePosixPath(self.values["uv_path"]).parent)

    @property
    def venv_python(self) -> str:
        return f"{self.values['repo_path']}/.venv/bin/python"


def _describe(value: Any, secret: bool) -> str:
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _service_errors(index: int, raw: Any, repo_path: str) -> tuple[list[str], Service | None]:
    where = f"services[{index}]"
    if not isinstance(raw, dict):
        return [
            f"{where}: got {_describe(raw, False)}; expected a mapping with the keys "
            f"{', '.join(f.name for f in SERVICE_FIELDS)}"
        ], None
    errors: list[str] = []
    known = {f.name for f in SERVICE_FIELDS}
    for key in sorted(set(raw) - known):
        errors.append(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for f in SERVICE_FIELDS:
        if f.name not in raw:
            if f.default is None:
                errors.append(f"{where}.{f.name}: missing; expected {f.form}")
                continue
            values[f.name] = f.default
            continue
        value = raw[f.name]
        if not f.check(value):
            errors.append(f"{where}.{f.name}: got {_describe(value, False)}; expected {f.form}")
        values[f.name] = value
    if "env_source" in values and not errors:
        errors += [f"{where}.env_source: {e}" for e in env_source_errors(values["env_source"])]
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
    )


def env_source_errors(source: Mapping[str, Any]) -> list[str]:
    """Check that an env source exists on the controller and is non-empty."""
    if "file" in source:
        path = source["file"]
        if not isinstance(path, str) or not path:
            return ["'file' must be a path on the controller"]
        p = Path(path).expanduser()
        if not p.is_file():
            return [f"file {path!r} does not exist on the controller; expected a KEY=VALUE file"]
        try:
            parse_env_text(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return [f"file {path!r}: {exc}"]
        return []
    names = source.get("environ")
    if isinstance(names, list):
        mapping = {n: n for n in names} if all(isinstance(n, str) for n in names) else None
    elif isinstance(names, dict):
        mapping = names
    else:
        mapping = None
    if not mapping or not all(
        isinstance(k, str) and _ENV_KEY.match(k) and isinstance(v, str) and _ENV_KEY.match(v)
        for k, v in mapping.items()
    ):
        return [
            "'environ' must be a non-empty list of variable names or a mapping "
            "KEY -> CONTROLLER_VARIABLE"
        ]
    missing = [v for v in mapping.values() if not os.environ.get(v)]
    if missing:
        return [f"controller environment variable(s) {', '.join(missing)} unset or empty"]
    return []


def parse_env_text(text: str) -> list[tuple[str, str]]:
    """Parse a KEY=VALUE env file (comments and blank lines allowed); raise ValueError."""
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.removeprefix("export ").strip()
        if not sep or not _ENV_KEY.match(key):
            raise ValueError(f"line {number} is not KEY=VALUE (expected an env file)")
        pairs.append((key, value))
    if not pairs:
        raise ValueError("no KEY=VALUE lines (an empty env file is refused)")
    return pairs


def validate(data: Mapping[str, Any]) -> Settings:
    """Return typed settings, or raise ``SettingsError`` listing every bad setting."""
    errors: list[str] = []
    for s in SETTINGS:
        if s.name not in data:
            errors.append(f"{s.name}: missing; expected {s.form}")
            continue
        if not s.check(data[s.name]):
            errors.append(f"{s.name}: got {_describe(data[s.name], s.secret)}; expected {s.form}")
    services: list[Service] = []
    repo_path = data.get("repo_path", "")
    if isinstance(data.get("services"), list):
        for i, raw in enumerate(data["services"]):
            errs, svc = _service_errors(i, raw, repo_path if isinstance(repo_path, str) else "")
            errors += errs
            if svc:
                services.append(svc)
        errors += _duplicates("name", [s.name for s in services])
        errors += _duplicates("unit", [s.unit for s in services])
        errors += _duplicates("port", [s.port for s in services])
        errors += _duplicates("env_file", [s.env_file for s in services])
    if errors:
        raise SettingsError(errors)
    return Settings(values=dict(data), services=tuple(services))


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


def read_env_source(source: Mapping[str, Any]) -> str:
    """Render the env file text for a service from its controller-side source."""
    if "file" in source:
        text = Path(source["file"]).expanduser().read_text(encoding="utf-8")
        return text if text.endswith("\n") else text + "\n"
    names = source["environ"]
    mapping = {n: n for n in names} if isinstance(names, list) else dict(names)
    return "".join(f"{key}={_systemd_quote(os.environ[var])}\n" for key, var in mapping.items())


def _systemd_quote(value: str) -> str:
    # systemd's EnvironmentFile= strips unquoted surrounding whitespace and honours quotes.
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,=-]*", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
