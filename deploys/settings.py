"""Every setting of the deploy: its expected form, its meaning, and validation.

The values themselves (the runbook's defaults) live in ``group_data/all.py``; this module
is the schema. ``validate`` reports every bad setting at once, naming the setting and the
form it expects, so a typo is caught before pyinfra connects to anything.
"""

from __future__ import annotations

import ipaddress
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
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_NET_HOST = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?)$")
_TOKEN_ID = re.compile(r"^[^\s!@:]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]+$")
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", re.IGNORECASE)
_IMAGE_NAME = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_FINGERPRINT = re.compile(r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$")


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


def _optional(pattern: re.Pattern[str]) -> Check:
    return lambda v: v == "" or (isinstance(v, str) and bool(pattern.match(v)))


# Flags `tailscale up` may get from tailscale_extra_up_flags; everything else (the key, the
# hostname, --reset, --timeout ...) is the deploy's. Bool flags take an optional =true/false.
_TS_BOOL_FLAGS = ("accept-routes", "accept-dns", "ssh", "shields-up")
_TS_FLAG = re.compile(
    r"^--(?:(?:" + "|".join(_TS_BOOL_FLAGS) + r")(?:=(?:true|false))?"
    r"|advertise-tags=(?:tag:)?[A-Za-z0-9-]+(?:,(?:tag:)?[A-Za-z0-9-]+)*"
    r"|advertise-routes=[0-9a-fA-F.:/]+(?:,[0-9a-fA-F.:/]+)*"
    r"|operator=[a-z_][a-z0-9_-]{0,31})$"
)
_TS_KEY_FLAG = re.compile(r"^--?auth-?key(=|$)")
_TS_LOGIN_SERVER_FLAG = re.compile(r"^--?login-server(=|$)")
_TS_FUNNEL_PORTS = (443, 8443, 10000)


def _tailscale_flags(v: Any) -> bool:
    # --auth-key passes here so that validate() can refuse it without echoing the value.
    return isinstance(v, list) and all(
        isinstance(f, str)
        and (_TS_FLAG.match(f) or _TS_KEY_FLAG.match(f) or _TS_LOGIN_SERVER_FLAG.match(f))
        for f in v
    )


def _authkey_source(v: Any) -> bool:
    if not isinstance(v, dict) or len(v) != 1:
        return False
    if "environ" in v:
        return isinstance(v["environ"], str) and bool(_ENV_KEY.match(v["environ"]))
    return isinstance(v.get("file"), str) and bool(v["file"]) and "\0" not in v["file"]


def _optional_text(v: Any) -> bool:
    return isinstance(v, str) and "\n" not in v and "\0" not in v


def _is_ipv4(v: Any) -> bool:
    try:
        ipaddress.IPv4Address(v)
    except (ipaddress.AddressValueError, TypeError, ValueError):
        return False
    return isinstance(v, str)


def _is_ipv4_cidr(v: Any) -> bool:
    if not isinstance(v, str) or "/" not in v:
        return False
    try:
        ipaddress.IPv4Interface(v)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        return False
    return True


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
    Setting(
        "ct_vmid",
        "0 (find the container by ct_hostname; a new one gets the next free id) or an "
        "integer from 100 to 999999999",
        "Container id on Proxmox",
        lambda v: v == 0 or _int_range(100, 999999999)(v),
        "container",
    ),
    Setting(
        "ct_storage",
        "a PVE storage id, e.g. 'local-lvm'",
        "Storage the root disk is allocated on (content type rootdir)",
        _matches(_STORAGE_ID),
        "container",
    ),
    Setting(
        "ct_template_storage",
        "a PVE storage id, e.g. 'local'",
        "Storage holding OS templates (content type vztmpl); a missing template is "
        "downloaded there through the node's appliance index (aplinfo)",
        _matches(_STORAGE_ID),
        "container",
    ),
    Setting(
        "ct_bridge",
        "a bridge name, e.g. 'vmbr0'",
        "Bridge of net0 (eth0)",
        _matches(re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")),
        "container",
    ),
    Setting(
        "ct_ip",
        "'dhcp' or an IPv4 address with prefix, e.g. '192.168.1.50/24'",
        "Address of eth0; with 'dhcp' the deploy reads it from the API once the container runs",
        lambda v: v == "dhcp" or _is_ipv4_cidr(v),
        "container",
    ),
    Setting(
        "ct_gw",
        "'' or an IPv4 address (only with a static ct_ip)",
        "Default gateway of eth0",
        lambda v: v == "" or _is_ipv4(v),
        "container",
    ),
    Setting(
        "ct_nesting",
        "True or False",
        "features: nesting=1 (systemd 255 in Ubuntu 24.04 needs it; the one feature an API "
        "token may set)",
        _is_bool,
        "container",
    ),
    Setting(
        "ct_onboot",
        "True or False",
        "Start the container when the node boots",
        _is_bool,
        "container",
    ),
    Setting(
        "ct_ssh_public_keys",
        "a list of OpenSSH public key files on the controller, e.g. ['~/.ssh/id_ed25519.pub']",
        "Keys root may log in with, installed when the container is created (the deploy "
        "reaches the container over SSH with them)",
        _list_of(lambda v: isinstance(v, str) and bool(v) and "\n" not in v),
        "container",
    ),
    Setting(
        "ct_tun_method",
        "'raw', 'dev' or 'none'",
        "How the container gets /dev/net/tun (runbook §2): raw = lxc.cgroup2/lxc.mount.entry "
        "lines in the node's conf file over SSH; dev = dev0: /dev/net/tun through the API "
        "(PVE >= 8.1, root@pam password login only); none = no device (Tailscale in userspace "
        "networking)",
        _one_of("raw", "dev", "none"),
        "container",
    ),
    Setting(
        "ct_apparmor_unconfined",
        "True or False",
        "raw method: also add lxc.apparmor.profile: unconfined",
        _is_bool,
        "container",
    ),
    Setting(
        "ct_allow_restart",
        "True or False",
        "Restart a running container to apply settings PVE keeps pending until the next start "
        "(e.g. features). A changed TUN config always restarts it",
        _is_bool,
        "container",
    ),
    # Proxmox (runbook §1-2). pve_host '' skips the Proxmox stage: the deploy then targets an
    # existing container over SSH.
    Setting(
        "pve_host",
        "'' (no Proxmox stage) or the API host name or IP address",
        "Proxmox VE API host; '' = deploy into an existing container only",
        lambda v: v == "" or (isinstance(v, str) and bool(_NET_HOST.match(v))),
        "proxmox",
    ),
    Setting("pve_port", "an integer from 1 to 65535", "API port", _int_range(1, 65535), "proxmox"),
    Setting(
        "pve_node",
        "'' (the cluster's only node) or a node name",
        "Node the container lives on",
        lambda v: v == "" or _matches(_HOSTNAME)(v),
        "proxmox",
    ),
    Setting(
        "pve_token_id",
        "'' (password login as pve_user) or an API token id 'user@realm!name'",
        "API token the deploy authenticates with (see the README for its role)",
        lambda v: v == "" or _matches(_TOKEN_ID)(v),
        "proxmox",
    ),
    Setting(
        "pve_user",
        "a user 'name@realm'",
        "User of a password login, used when pve_token_id is '' (ct_tun_method 'dev' needs "
        "root@pam)",
        _matches(re.compile(r"^[^\s!@:]+@[A-Za-z][A-Za-z0-9.\-_]*$")),
        "proxmox",
    ),
    Setting(
        "pve_secret_source",
        "{'environ': 'VARIABLE'} or {'file': 'path on the controller'}",
        "Where the token secret (or the password) comes from; it is never stored or printed",
        lambda v: (
            isinstance(v, dict)
            and len(v) == 1
            and (
                (isinstance(v.get("environ"), str) and bool(_ENV_KEY.match(v["environ"])))
                or (isinstance(v.get("file"), str) and bool(v["file"]))
            )
        ),
        "proxmox",
    ),
    Setting(
        "pve_ca_bundle",
        "'' (the system trust store) or a PEM file on the controller",
        "CA the API certificate is verified against: the node's /etc/pve/pve-root-ca.pem",
        _optional_text,
        "proxmox",
    ),
    Setting(
        "pve_fingerprint",
        "'' or a SHA-256 certificate fingerprint (64 hex digits, ':' allowed)",
        "Pins the API certificate (Datacenter > node > Certificates shows it)",
        lambda v: v == "" or (isinstance(v, str) and bool(_FINGERPRINT.match(v))),
        "proxmox",
    ),
    Setting(
        "pve_insecure",
        "True or False",
        "Switch TLS verification off (warns on every run; anyone on the path can read the token)",
        _is_bool,
        "proxmox",
    ),
    Setting(
        "pve_timeout",
        "an integer number of seconds from 30 to 600",
        "Timeout of one API request",
        _int_range(30, 600),
        "proxmox",
    ),
    Setting(
        "pve_task_timeout",
        "an integer number of seconds from 10 to 7200",
        "How long a task (create, start, template download) and the wait for the container's "
        "address and SSH may take",
        _int_range(10, 7200),
        "proxmox",
    ),
    Setting(
        "pve_ssh_host",
        "'' (= pve_host) or a host name or IP address",
        "The node over SSH (ct_tun_method 'raw' edits the container's conf file there)",
        lambda v: v == "" or (isinstance(v, str) and bool(_NET_HOST.match(v))),
        "proxmox",
    ),
    Setting(
        "pve_ssh_port",
        "an integer from 1 to 65535",
        "SSH port of the node",
        _int_range(1, 65535),
        "proxmox",
    ),
    Setting(
        "pve_ssh_user",
        "a user name",
        "SSH user on the node (root: /etc/pve is root's)",
        _matches(re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")),
        "proxmox",
    ),
    Setting(
        "pve_ssh_key",
        "'' (SSH's defaults) or a private key file on the controller",
        "Key for the node",
        _optional_text,
        "proxmox",
    ),
    Setting(
        "pve_ssh_known_hosts",
        "'' (~/.ssh/known_hosts) or a known_hosts file on the controller",
        "The node's host key is checked against this file (never accepted blindly)",
        _optional_text,
        "proxmox",
    ),
    Setting(
        "pve_conf_dir",
        "an absolute path",
        "Directory of the container conf files on the node",
        _is_abs_path,
        "proxmox",
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
        "DuckDB extensions installed with the app's own environment, into DuckDB's default "
        "directory of each service user (~/.duckdb/extensions: the app sets no other)",
        _list_of(_matches(_EXTENSION)),
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
        "env_files_managed",
        "True or False",
        "True: the deploy writes each service's env file from its controller-side source. "
        "False: the env files are kept on the server only (runbook §3: secrets never in CI); "
        "the deploy checks they exist and are 0600, and restarts follow their changes",
        _is_bool,
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
    Setting(
        "service_hardening",
        "True or False",
        "Run the services as their own system user (the services' user/group, created by "
        "the deploy, HOME /var/lib/<user>: DuckDB's extensions, XDG dirs) with systemd "
        "sandboxing: NoNewPrivileges, ProtectSystem=strict, ProtectHome, PrivateTmp; "
        "writable are only that HOME, /var/cache/<user> and the app's data dir next to the "
        "checkout (<repo_path>/../data, where upstream's egograph_paths.py puts it)",
        _is_bool,
        "services",
    ),
    # Tailscale (runbook §2, §9)
    Setting(
        "tailscale_enabled",
        "True or False",
        "Install Tailscale, log the container in and publish the services with "
        "`tailscale serve`. False: the deploy leaves Tailscale alone",
        _is_bool,
        "tailscale",
    ),
    Setting(
        "tailscale_repo_url",
        "an http(s) URL, e.g. 'https://pkgs.tailscale.com/stable'",
        "Tailscale's apt repository (or a mirror); '/<distro>' is appended, as in "
        "`<url>/ubuntu noble main`",
        _template_url,
        "tailscale",
    ),
    Setting(
        "tailscale_keyring_url",
        "'' or an http(s) URL; '{distro}' and '{codename}' are replaced",
        "Where the repository's signing keyring is downloaded from; '' = "
        "<tailscale_repo_url>/<distro>/<codename>.noarmor.gpg",
        _optional(_HTTP_URL),
        "tailscale",
    ),
    Setting(
        "tailscale_keyring_sha256",
        "'' or 64 hex digits",
        "Pinned SHA-256 of that keyring; a download that differs is refused. Required while "
        "tailscale_enabled: '' stops the deploy with how to obtain it (see Tailscale below)",
        _optional(re.compile(r"^[0-9a-fA-F]{64}$")),
        "tailscale",
    ),
    Setting(
        "tailscale_version",
        "'' or a version 'X.Y.Z'",
        "'' = whatever the repository has when Tailscale is first installed (never upgraded "
        "by the deploy); 'X.Y.Z' = exactly that version (up- or downgraded)",
        _optional(_VERSION),
        "tailscale",
    ),
    Setting(
        "tailscale_hostname",
        "'' or a DNS label",
        "The node's name in the tailnet (`--hostname`); '' = ct_hostname. A change on a "
        "logged-in node is applied with `tailscale set`, without logging in again",
        _optional(_HOSTNAME),
        "tailscale",
    ),
    Setting(
        "tailscale_extra_up_flags",
        "a list of flags from: --advertise-tags=tag:a,tag:b, --accept-routes[=false], "
        "--accept-dns[=false], --ssh[=false], --shields-up[=false], --advertise-routes=CIDRs, "
        "--operator=USER",
        "Further `tailscale up` settings. The key never goes here "
        "(tailscale_authkey_source), nor the hostname (tailscale_hostname), nor the control "
        "server (tailscale_login_server). Tailscale SSH stays off unless '--ssh' is listed",
        _tailscale_flags,
        "tailscale",
    ),
    Setting(
        "tailscale_authkey_source",
        "{'environ': 'VARIABLE'} or {'file': 'path on the controller'}",
        "Where the auth key (or OAuth client secret, `tskey-client-…`: needs --advertise-tags) "
        "is read from — only when the node has to log in",
        _authkey_source,
        "tailscale",
        secret=True,
    ),
    Setting(
        "tailscale_login_server",
        "'' or the control server's http(s) URL, e.g. 'https://headscale.example.com'",
        "The tailnet's control server (`tailscale up --login-server`): '' = Tailscale's own. "
        "A self-hosted one such as headscale issues no HTTPS certificates: publish the "
        "services with publish = 'http' there",
        _optional_url,
        "tailscale",
    ),
    Setting(
        "tailscale_userspace",
        "True or False",
        "Run tailscaled with `--tun=userspace-networking` (FLAGS= in /etc/default/tailscaled): "
        "for containers without /dev/net/tun (Proxmox TUN method 'none')",
        _is_bool,
        "tailscale",
    ),
    Setting(
        "tailscale_serve",
        "True or False",
        "Publish the services in the tailnet with `tailscale serve --bg` (how each one is "
        "published: its publish and publish_port)",
        _is_bool,
        "tailscale",
    ),
    Setting(
        "tailscale_funnel",
        "True or False",
        "Expose the published services to the internet (`tailscale funnel`: HTTPS on 443, "
        "8443 or 10000 only). Off: funnel found on the node is switched off",
        _is_bool,
        "tailscale",
    ),
    Setting(
        "tailscale_serve_reset_foreign",
        "True or False",
        "Clear serve handlers the deploy did not make (`tailscale serve reset`, then serve "
        "again). Off: they are kept and reported",
        _is_bool,
        "tailscale",
    ),
    # Docker (runbook §8)
    Setting(
        "docker_install_method",
        "'distro' or 'docker-repo'",
        "distro: the distribution's `docker.io` package. docker-repo: Docker's own apt "
        "repository (docker_repo_url, keyring pinned by docker_repo_keyring_sha256)",
        _one_of("distro", "docker-repo"),
        "docker",
    ),
    Setting(
        "docker_repo_url",
        "an http(s) URL",
        "Docker's apt repository for the target's distribution (docker-repo only); its "
        "keyring is `<url>/gpg`",
        _matches(_HTTP_URL),
        "docker",
    ),
    Setting(
        "docker_repo_keyring_sha256",
        "'' or 64 hex digits",
        "Pinned SHA-256 of `<docker_repo_url>/gpg`; required with docker-repo (a download "
        "that differs is refused)",
        _optional(re.compile(r"^[0-9a-fA-F]{64}$")),
        "docker",
    ),
    Setting(
        "docker_base_image",
        "an image reference, e.g. 'python:3.12-slim'",
        "Passed to the build as `--build-arg BASE_IMAGE=…`: point it at a mirror or a local "
        "image. It must provide python3, and uv or pip",
        _matches(_IMAGE_REF),
        "docker",
    ),
    Setting(
        "docker_image_name",
        "an image name (lowercase, no tag)",
        "Name of the built image (tagged with the commit) and of the container",
        _matches(_IMAGE_NAME),
        "docker",
    ),
    Setting(
        "docker_dockerfile",
        "a path relative to repo_path",
        "The Dockerfile; the build context is always the whole repository (uv workspace)",
        lambda v: (
            isinstance(v, str) and bool(v) and not v.startswith("/") and _is_abs_path("/" + v)
        ),
        "docker",
    ),
    Setting(
        "docker_host_port",
        "an integer from 1 to 65535",
        "Port published on the host, on 127.0.0.1 only (Tailscale serve is the way in)",
        _int_range(1, 65535),
        "docker",
    ),
    Setting(
        "docker_container_port",
        "an integer from 1 to 65535",
        "Port uvicorn listens on inside the container (the Dockerfile's, runbook §8: 8000)",
        _int_range(1, 65535),
        "docker",
    ),
    Setting(
        "docker_env_file",
        "an absolute path outside repo_path",
        "The container's `--env-file` on the host (0600, root), written from the first "
        "service's env_source; outside the checkout so it never enters the build context",
        _is_abs_path,
        "docker",
    ),
    Setting(
        "docker_restart_policy",
        "'no', 'always', 'unless-stopped' or 'on-failure'",
        "`docker run --restart`",
        _one_of("no", "always", "unless-stopped", "on-failure"),
        "docker",
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

REMOVED_SETTINGS: dict[str, str] = {
    "duckdb_extension_directory": (
        "removed: the app sets no extension_directory, so DuckDB only looks in its default, "
        "~/.duckdb/extensions of the user running it; the deploy now installs "
        "duckdb_extensions there, for each service user (root's /root, or a hardened "
        "user's HOME /var/lib/<user>). Delete this setting"
    ),
    "service_data_dir": (
        "removed: the app reads no variable for its data; it writes next to the checkout "
        "(<repo_path>/../data), which service_hardening now makes writable, and a hardened "
        "user's HOME is /var/lib/<user>. Delete this setting"
    ),
}
"""Settings that existed once, with why they went and what replaces them: a site that
still sets one is told so instead of having it ignored."""


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
        "factory",
        "True or False",
        "True: module names a function that returns the app (uvicorn --factory), such as "
        "upstream pipelines' create_app",
        _is_bool,
        False,
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
        "publish",
        "'https', 'http' or 'off'",
        "How `tailscale serve` publishes it in the tailnet: https = "
        "https://<node>.<tailnet>.ts.net with a certificate from the tailnet (the runbook; "
        "the tailnet must issue certificates), http = plain HTTP inside the tailnet "
        "(WireGuard still encrypts it; for control servers without certificates such as "
        "headscale), off = not published. Default: 'https' for the first service, 'off' for "
        "the others",
        _one_of("https", "http", "off"),
        "https",
    ),
    ServiceField(
        "publish_port",
        "0 (443 for https, 80 for http) or a port 1-65535",
        "The tailnet port it is published on",
        _int_range(0, 65535),
        0,
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
    factory: bool = False
    publish: str = "off"
    publish_port: int = 0

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

    @property
    def data_dir(self) -> str:
        """Where the app writes: next to the checkout, as upstream's egograph_paths.py
        resolves it (``<repo_path>/../data``: /opt/egograph/data with the runbook's path)."""
        return app_data_dir(self.values["repo_path"])

    @property
    def service_accounts(self) -> list[tuple[str, str]]:
        """The services' (user, group) pairs, each once, in the order services name them."""
        return list(dict.fromkeys((s.user, s.group) for s in self.services))


def app_data_dir(repo_path: str) -> str:
    return str(PurePosixPath(repo_path).parent / "data")


def hardened_home(user: str) -> str:
    """A hardened service user's HOME: its StateDirectory=, where DuckDB keeps extensions
    (~/.duckdb) and XDG config/data/state go."""
    return f"/var/lib/{user}"


def _describe(value: Any, secret: bool) -> str:
    if secret:
        return "<hidden>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _service_errors(
    index: int, raw: Any, repo_path: str, check_sources: bool = True
) -> tuple[list[str], Service | None]:
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
            errors.append(f"{where}.{f.name}: got {_describe(value, False)}; expected {f.form}")
        values[f.name] = value
    if "env_source" in values and not errors and check_sources:
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
        factory=values["factory"],
        publish=values["publish"],
        publish_port=values["publish_port"],
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
        exposed = open_to_others(path)
        if exposed:
            return [exposed]
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


def open_to_others(path: str) -> str | None:
    """A secret file on the controller must be its owner's alone (mode 0600 or stricter):
    the problem, or None (also when it does not exist: that is reported elsewhere)."""
    try:
        mode = Path(path).expanduser().stat().st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"file {path!r} is open to group or others (mode {mode:04o}); expected a secret file "
        f"only its owner can read: chmod 600 {path}"
    )


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


def proxmox_errors(data: Mapping[str, Any]) -> list[str]:
    """Checks across the Proxmox settings, and of the controller-side files they name; only
    when the Proxmox stage runs (pve_host set)."""
    if not data.get("pve_host"):
        return []
    errors: list[str] = []
    source = data["pve_secret_source"]
    if "environ" in source and not os.environ.get(source["environ"]):
        errors.append(
            f"pve_secret_source: controller environment variable {source['environ']} is unset "
            "or empty; expected the API token secret (or password) in it"
        )
    if "file" in source and not Path(source["file"]).expanduser().is_file():
        errors.append(
            f"pve_secret_source: file {source['file']!r} does not exist on the controller"
        )
    elif "file" in source and (exposed := open_to_others(source["file"])):
        errors.append(f"pve_secret_source: {exposed}")
    if data["pve_ca_bundle"] and not Path(data["pve_ca_bundle"]).expanduser().is_file():
        errors.append(f"pve_ca_bundle: file {data['pve_ca_bundle']!r} does not exist")
    if data["ct_tun_method"] == "dev" and data["pve_token_id"]:
        errors.append(
            "ct_tun_method: 'dev' needs a root@pam password login (PVE refuses dev0 to every "
            "API token: 'only allowed for root@pam'); set pve_token_id to '' and pve_user to "
            "'root@pam', or use 'raw'"
        )
    if (
        data["ct_tun_method"] == "none"
        and data.get("tailscale_enabled")
        and not data.get("tailscale_userspace")
    ):
        errors.append(
            "ct_tun_method: 'none' leaves the container without /dev/net/tun, where tailscaled "
            "cannot start; expected tailscale_userspace = True with it (or 'raw'/'dev')"
        )
    if data["ct_gw"] and data["ct_ip"] == "dhcp":
        errors.append("ct_gw: a gateway needs a static ct_ip; expected '' with 'dhcp'")
    keys = data["ct_ssh_public_keys"]
    if not keys:
        errors.append(
            "ct_ssh_public_keys: empty; expected at least one public key file (the deploy "
            "logs into the new container with it)"
        )
    for path in keys:
        p = Path(path).expanduser()
        if not p.is_file():
            errors.append(f"ct_ssh_public_keys: {path!r} does not exist on the controller")
        elif not p.read_text(encoding="utf-8", errors="replace").startswith(
            ("ssh-", "ecdsa-", "sk-")
        ):
            errors.append(f"ct_ssh_public_keys: {path!r} is not an OpenSSH public key")
    return errors


def validate(data: Mapping[str, Any]) -> Settings:
    """Return typed settings, or raise ``SettingsError`` listing every bad setting."""
    errors = [f"{name}: {why}" for name, why in REMOVED_SETTINGS.items() if name in data]
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
            errs, svc = _service_errors(
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
    errors += _tailscale_errors(data, services)
    errors += _hardening_errors(data, services)
    errors += _docker_errors(data)
    if not any(e.startswith(("pve_", "ct_")) for e in errors):
        errors += proxmox_errors(data)
    if errors:
        raise SettingsError(errors)
    return Settings(values=dict(data), services=tuple(services))


def _docker_errors(data: Mapping[str, Any]) -> list[str]:
    """Checks across Docker settings (each one's own form is checked already)."""
    errors: list[str] = []
    if data.get("docker_install_method") == "docker-repo" and not data.get(
        "docker_repo_keyring_sha256"
    ):
        errors.append(
            "docker_repo_keyring_sha256: got ''; expected the SHA-256 of "
            "<docker_repo_url>/gpg with docker_install_method = 'docker-repo' (download it, "
            "verify its fingerprint, then pin `sha256sum` of it)"
        )
    env_file, repo = data.get("docker_env_file"), data.get("repo_path")
    inside = (
        isinstance(env_file, str)
        and isinstance(repo, str)
        and bool(repo)
        and (env_file + "/").startswith(repo.rstrip("/") + "/")
    )
    if inside:
        errors.append(
            f"docker_env_file: got {env_file!r}; expected a path outside repo_path "
            "(the whole checkout is the build context)"
        )
    return errors


def _hardening_errors(data: Mapping[str, Any], services: list[Service]) -> list[str]:
    """Hardened services cannot reach /root (ProtectHome) and must not run as root; they
    share the app's one data directory, so they run as one user."""
    if data.get("service_hardening") is not True:
        return []
    errors = [
        f"services[{i}].user: got 'root'; expected a dedicated system user with "
        "service_hardening = True"
        for i, svc in enumerate(services)
        if svc.user == "root"
    ]
    accounts = list(dict.fromkeys((s.user, s.group) for s in services))
    repo_path = data.get("repo_path")
    if len(accounts) > 1 and isinstance(repo_path, str):
        errors.append(
            f"services[*].user/group: got {', '.join(f'{u}:{g}' for u, g in accounts)}; "
            "expected one user and group for every service with service_hardening = True "
            f"(they all write the app's data dir {app_data_dir(repo_path)})"
        )
    # The deploy's own stamps live in /var/lib/egograph-deploy (root only): a user of that
    # name would be handed them as its StateDirectory=.
    errors += [
        f"services[{i}].user: got {svc.user!r}; expected another name (its HOME "
        f"{hardened_home(svc.user)} is the deploy's own state directory)"
        for i, svc in enumerate(services)
        if hardened_home(svc.user) == "/var/lib/egograph-deploy"
    ]
    env = data.get("uv_environment") or {}
    no_downloads = str(env.get("UV_PYTHON_DOWNLOADS", "")).lower() in ("never", "0", "false")
    install_dir = str(env.get("UV_PYTHON_INSTALL_DIR", ""))
    if not no_downloads and (not install_dir or install_dir.startswith("/root")):
        errors.append(
            "uv_environment: with service_hardening = True, expected UV_PYTHON_DOWNLOADS="
            "'never' (the distro's Python) or UV_PYTHON_INSTALL_DIR outside /root: a "
            "uv-managed Python under /root is unreachable for the service user"
        )
    return errors


def _tailscale_errors(data: Mapping[str, Any], services: list[Service]) -> list[str]:
    """Checks across Tailscale settings (each one's own form is checked already)."""
    errors: list[str] = []
    flags = data.get("tailscale_extra_up_flags")
    if isinstance(flags, list) and any(isinstance(f, str) and _TS_KEY_FLAG.match(f) for f in flags):
        errors.append(
            "tailscale_extra_up_flags: an auth key flag is not allowed here (value not shown); "
            "expected the key in the place tailscale_authkey_source names"
        )
    source = data.get("tailscale_authkey_source")
    if data.get("tailscale_enabled") and isinstance(source, dict) and _authkey_source(source):
        exposed = open_to_others(source["file"]) if "file" in source else None
        if exposed:
            errors.append(f"tailscale_authkey_source: {exposed}")
    if isinstance(flags, list) and any(
        isinstance(f, str) and _TS_LOGIN_SERVER_FLAG.match(f) for f in flags
    ):
        errors.append(
            "tailscale_extra_up_flags: --login-server is not allowed here; expected the "
            "control server's URL in tailscale_login_server"
        )
    if "tailscale_serve_https_port" in data:
        errors.append(
            "tailscale_serve_https_port: no longer a setting; expected each service's "
            "publish ('https', 'http' or 'off') and publish_port in services"
        )
    if not data.get("tailscale_enabled") or not data.get("tailscale_serve"):
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
            if svc.publish != "https" or svc.tailnet_port not in _TS_FUNNEL_PORTS:
                errors.append(
                    f"services[{i}].publish: {svc.publish} on port {svc.tailnet_port} cannot "
                    "be funneled; expected 'https' on 443, 8443 or 10000 with tailscale_funnel"
                )
    return errors


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


def environ_mapping(source: Mapping[str, Any]) -> dict[str, str]:
    """An ``{'environ': ...}`` env source as env-file key -> controller variable (a list
    names variables that keep their names)."""
    names = source["environ"]
    return {n: n for n in names} if isinstance(names, list) else dict(names)


def read_env_source(source: Mapping[str, Any]) -> str:
    """Render the env file text for a service from its controller-side source."""
    if "file" in source:
        text = Path(source["file"]).expanduser().read_text(encoding="utf-8")
        return text if text.endswith("\n") else text + "\n"
    return "".join(
        f"{key}={_systemd_quote(os.environ[var])}\n" for key, var in environ_mapping(source).items()
    )


def _systemd_quote(value: str) -> str:
    # systemd's EnvironmentFile= strips unquoted surrounding whitespace and honours quotes.
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,=-]*", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
