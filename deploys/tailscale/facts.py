"""Facts about Tailscale on the target: install state, daemon status and serve config (runbook §2, §9).

The pure helpers that read what these facts return (``backend_state``, ``dns_name`` ...) are
in ``plan.py``.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from .feature import feature_answer

KEYRING_PATH = "/usr/share/keyrings/tailscale-archive-keyring.gpg"
SOURCES_LIST_PATH = "/etc/apt/sources.list.d/tailscale.list"
DEFAULTS_PATH = "/etc/default/tailscaled"
TUN_PATH = "/dev/net/tun"

# Printed instead of the CLI's output when it exits non-zero, so that the fact command itself
# never fails the host (pyinfra marks a host failed on a non-zero fact command).
FAILED_MARKER = "##TAILSCALE_CLI_FAILED##"

# BackendState reported by TailscaleStatus when the CLI cannot reach tailscaled.
DAEMON_DOWN = "DaemonDown"


def _parse_json(fact: str, output: list[str]) -> Any:
    try:
        return json.loads("\n".join(output))
    except json.JSONDecodeError as e:
        raise FactProcessError(f"{fact}: output is not JSON: {e}") from e


def _failed_exit_code(output: list[str]) -> int | None:
    if output and output[-1].startswith(FAILED_MARKER):
        code = output[-1][len(FAILED_MARKER) :].strip()
        return int(code) if code.isdigit() else -1
    return None


class TailscaleStatus(FactBase[dict[str, Any]]):
    """
    Returns ``tailscale status --json --peers=false`` (the CLI's ``ipnstate.Status``).

    ``{}`` when the CLI is not installed. When tailscaled is not reachable the CLI exits 1;
    this fact then returns ``{"BackendState": "DaemonDown", "ExitCode": 1}`` instead of
    failing the host. ``BackendState`` is otherwise one of ``NoState``, ``NeedsLogin``,
    ``NeedsMachineAuth``, ``Stopped``, ``Starting``, ``Running``.

    .. code:: python

        {
            "Version": "1.96.4-t5a1d2c3e4-g6b7a8f9e0",
            "TUN": False,
            "BackendState": "Running",
            "HaveNodeKey": True,
            "TailscaleIPs": ["100.101.102.103", "fd7a:115c:a1e0::abcd"],
            "Self": {
                "HostName": "egograph-prod",
                "DNSName": "egograph-prod.tail1234.ts.net.",
                "CapMap": {"https": None},
                ...
            },
            "CurrentTailnet": {"Name": "example.com", "MagicDNSSuffix": "tail1234.ts.net", ...},
            "CertDomains": ["egograph-prod.tail1234.ts.net"],
            ...
        }
    """

    def requires_command(self) -> str:
        return "tailscale"

    def command(self) -> str:
        # stderr is dropped: the real CLI prints version-mismatch warnings there.
        return f'tailscale status --json --peers=false 2>/dev/null || echo "{FAILED_MARKER} $?"'

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        code = _failed_exit_code(output)
        if code is not None:
            return {"BackendState": DAEMON_DOWN, "ExitCode": code}
        data = _parse_json("tailscale status --json", output)
        if not isinstance(data, dict):
            raise FactProcessError(f"tailscale status --json: expected an object, got {data!r}")
        return data


class TailscaleServeConfig(FactBase[dict[str, Any]]):
    """
    Returns ``tailscale serve status --json`` (the raw ``ipn.ServeConfig``).

    ``{}`` when nothing is served, when the CLI is not installed and when tailscaled is
    down (serve does nothing then; check ``TailscaleStatus`` to tell these apart). The
    ``Web`` key holds the node's MagicDNS name at the time serve was configured, and
    tailscaled serves a request only from the key of the name it was sent to.

    .. code:: python

        {
            "TCP": {"443": {"HTTPS": True}},
            "Web": {
                "egograph-prod.tail1234.ts.net:443": {
                    "Handlers": {"/": {"Proxy": "http://127.0.0.1:8000"}},
                },
            },
        }
    """

    def requires_command(self) -> str:
        return "tailscale"

    def command(self) -> str:
        return f'tailscale serve status --json 2>/dev/null || echo "{FAILED_MARKER} $?"'

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        if _failed_exit_code(output) is not None or not "".join(output).strip():
            return {}
        data = _parse_json("tailscale serve status --json", output)
        if not isinstance(data, dict):
            raise FactProcessError(
                f"tailscale serve status --json: expected an object, got {data!r}"
            )
        return data


SECTION_MARKER = "##TAILSCALE_SECTION##"
LOCALAPI_SOCKET = "/run/tailscale/tailscaled.sock"
"""tailscaled's LocalAPI socket, as the package's unit starts it (``--socket=``)."""

# The question `tailscale serve` asks before it serves HTTPS on a node without the "https"
# capability (cmd/tailscale/cli/serve_legacy.go enableFeatureInteractive → client/local
# QueryFeature → LocalAPI query-feature, ipn/localapi/localapi.go serveQueryFeature, which
# relays the control server's answer to /machine/feature/query, status and body). Asked
# here with curl, without the CLI's wait for someone to enable the feature in a browser.
# Only where it matters: a connected node (Running, or Starting: it has its netmap) whose
# Self.CapMap lacks "https" (the status JSON is
# indented by the CLI: `"https": ` is that key, never a `"https://…"` capability).
_FEATURE_QUERY = (
    'if [ "$rc" = 0 ] && printf \'%s\' "$st" | grep -Eq \'"BackendState": "(Running|Starting)"\''
    " && ! printf '%s' \"$st\" | grep -q '\"https\": '; then"
    " curl -sS -m 20 -X POST -w '\\n%{http_code}\\n' --unix-socket \"$1\""
    " 'http://local-tailscaled.sock/localapi/v0/query-feature?feature=serve' 2>&1"
    f' || echo "{FAILED_MARKER} $?"; fi'
)


SETTLE_SECONDS = 15
"""How long the fact waits for a daemon that is still starting (a container that has just
booted, e.g. after the Proxmox stage's TUN restart): in ``NoState`` it has not read its
profile, so no name and no serve config would be reported and the run would change them."""

_SETTLED_STATUS = (
    f"i=0; while :; do st=$(tailscale status --json --peers=false 2>/dev/null); rc=$?;"
    ' if [ "$rc" = 0 ]; then printf \'%s\' "$st" | grep -q \'"BackendState": "NoState"\' || break;'
    ' else [ "$(systemctl is-active tailscaled.service 2>/dev/null)" = activating ] || break; fi;'
    f" [ $i -lt {SETTLE_SECONDS * 5} ] || break; i=$((i+1)); sleep 0.2; done"
)


class TailscaleNode(FactBase[dict[str, Any]]):
    """
    Returns, in one round trip, what logging in and serving compare against: ``status``
    (as ``TailscaleStatus``), ``prefs`` (``tailscale debug prefs``, the node's ``ipn.Prefs``;
    ``{}`` when unavailable — it is a debug command), ``serve`` (as
    ``TailscaleServeConfig``) and ``https_feature``: ``None`` when the node runs with the
    ``https`` capability (or does not run), else the control server's answer to the HTTPS
    feature query ``tailscale serve`` would make (``http_status``; ``complete``, ``text``,
    ``url`` of a ``tailcfg.QueryFeatureResponse``; ``error`` for anything else, e.g.
    headscale's 501 "Not implemented yet"). ``{}`` for the first three when the CLI is not
    installed.

    + socket: tailscaled's LocalAPI socket

    .. code:: python

        {
            "status": {"BackendState": "Running", "Self": {...}, "CertDomains": [...], ...},
            "prefs": {"Hostname": "egograph-prod", "RouteAll": False, "RunSSH": False,
                      "ControlURL": "https://controlplane.tailscale.com", ...},
            "serve": {"TCP": {"443": {"HTTPS": True}}, "Web": {...}},
            "https_feature": None,   # or {"http_status": 501, "complete": False,
                                     #      "text": "", "url": "",
                                     #      "error": "Not implemented yet"}
        }
    """

    def requires_command(self, socket: str = LOCALAPI_SOCKET) -> str:
        return "tailscale"

    def command(self, socket: str = LOCALAPI_SOCKET) -> StringCommand:
        return StringCommand(
            "set",
            "--",
            QuoteString(socket),
            ";",
            "; ".join(
                (
                    _SETTLED_STATUS,
                    f'if [ "$rc" = 0 ]; then printf \'%s\\n\' "$st"; '
                    f'else echo "{FAILED_MARKER} $rc"; fi',
                    f"echo '{SECTION_MARKER}'",
                    f'tailscale debug prefs 2>/dev/null || echo "{FAILED_MARKER} $?"',
                    f"echo '{SECTION_MARKER}'",
                    f'tailscale serve status --json 2>/dev/null || echo "{FAILED_MARKER} $?"',
                    f"echo '{SECTION_MARKER}'",
                    _FEATURE_QUERY,
                )
            ),
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"status": {}, "prefs": {}, "serve": {}, "https_feature": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        sections: list[list[str]] = [[]]
        for line in output:
            if line.strip() == SECTION_MARKER:
                sections.append([])
            else:
                sections[-1].append(line)
        if len(sections) != 4:
            raise FactProcessError(f"tailscale node probe: expected 4 sections, got {output!r}")
        status_out, prefs_out, serve_out, feature_out = sections
        prefs: dict[str, Any] = {}
        if _failed_exit_code(prefs_out) is None:
            try:
                parsed = json.loads("\n".join(prefs_out))
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                prefs = parsed
        return {
            "status": TailscaleStatus().process(status_out),
            "prefs": prefs,
            "serve": TailscaleServeConfig().process(serve_out),
            "https_feature": feature_answer(feature_out, _failed_exit_code(feature_out)),
        }


class TailscaleInstallInfo(TypedDict):
    package_version: str | None
    tun_device: bool
    tun_openable: bool
    defaults_flags: str | None
    service_enabled: str | None
    service_active: str | None
    keyring_sha256: str | None
    sources_list: str | None
    os_id: str | None
    os_codename: str | None


# One POSIX sh script (no python3 needed on the target) printing one "key value" line per
# thing found; free-form text (the sources list, the FLAGS value) is base64, so any byte
# survives. It starts as few programs as it can (it is part of every no-op run's one read):
# one dpkg-query, stat, sed, sha256sum, systemctl and two base64.
# Positional parameters: $1 keyring, $2 sources list, $3 defaults file, $4 TUN device.
# /etc/os-release is sourced in a subshell (it is a shell fragment by specification).
# The FLAGS value is the last FLAGS= line, one pair of quotes removed, behind an "x" so that
# an empty value is told from a missing one.
_INSTALL_SCRIPT = (
    "ver=$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' tailscale 2>/dev/null);"
    ' case "$ver" in ?i*) echo "package_version ${ver#???}" ;; esac;'
    " tun=false; tun_open=false;"
    ' if [ -c "$4" ] && [ "$(stat -L -c %t:%T "$4" 2>/dev/null)" = a:c8 ]; then tun=true;'
    ' if ( exec 3<>"$4" ) 2>/dev/null; then tun_open=true; fi; fi;'
    ' echo "tun_device $tun"; echo "tun_openable $tun_open";'
    ' if [ -r "$3" ]; then'
    " f=$(sed -n -e '/^[[:space:]]*FLAGS=/h' -e '${x;/^[[:space:]]*FLAGS=/!d;"
    " s/^[[:space:]]*FLAGS=//;s/^\"\\(.*\\)\"$/\\1/;s/^'\\''\\(.*\\)'\\''$/\\1/;s/^/x/;p;}'"
    ' "$3" | base64 -w 0);'
    ' [ -n "$f" ] && echo "defaults_flags $f"; fi;'
    ' if [ -r "$2" ]; then echo "sources_list $(base64 -w 0 < "$2")"; fi;'
    ' [ -r "$1" ] && sha=$(sha256sum < "$1") && echo "keyring_sha256 ${sha%% *}";'
    ' [ -r /etc/os-release ] && ( . /etc/os-release && echo "os_id $ID"'
    ' && echo "os_codename ${UBUNTU_CODENAME:-$VERSION_CODENAME}" );'
    " systemctl show -p UnitFileState -p ActiveState tailscaled.service 2>/dev/null;"
    " true"
)
_SYSTEMCTL_PROPERTIES = {"UnitFileState": "service_enabled", "ActiveState": "service_active"}
_BASE64_KEYS = ("defaults_flags", "sources_list")


class TailscaleInstall(FactBase[TailscaleInstallInfo]):
    """
    Returns, in one round trip, what the install steps compare against (``None`` = missing).

    + keyring_path: apt keyring the repository is signed with
    + sources_list_path: apt source list of the Tailscale repository
    + defaults_path: tailscaled's environment file (``FLAGS`` is read, not executed)
    + tun_path: the TUN device tailscaled opens unless in userspace-networking mode

    ``tun_device`` is true for a character device 10:200, ``tun_openable`` when it also opens
    read-write (an LXC container without the cgroup rule has the node but gets EPERM).
    ``service_enabled``/``service_active`` are ``systemctl is-enabled/is-active`` output.

    .. code:: python

        {
            "package_version": "1.96.4",
            "tun_device": False,
            "tun_openable": False,
            "defaults_flags": "--tun=userspace-networking",
            "service_enabled": "enabled",
            "service_active": "active",
            "keyring_sha256": "3f1c...e9",
            "sources_list": "deb [signed-by=/usr/share/keyrings/...] https://... noble main\\n",
            "os_id": "ubuntu",              # /etc/os-release ID
            "os_codename": "noble",         # UBUNTU_CODENAME, else VERSION_CODENAME
        }
    """

    def command(
        self,
        keyring_path: str = KEYRING_PATH,
        sources_list_path: str = SOURCES_LIST_PATH,
        defaults_path: str = DEFAULTS_PATH,
        tun_path: str = TUN_PATH,
    ) -> StringCommand:
        return StringCommand(
            "set",
            "--",
            QuoteString(keyring_path),
            QuoteString(sources_list_path),
            QuoteString(defaults_path),
            QuoteString(tun_path),
            ";",
            _INSTALL_SCRIPT,
        )

    @staticmethod
    def default() -> TailscaleInstallInfo:
        return {
            "package_version": None,
            "tun_device": False,
            "tun_openable": False,
            "defaults_flags": None,
            "service_enabled": None,
            "service_active": None,
            "keyring_sha256": None,
            "sources_list": None,
            "os_id": None,
            "os_codename": None,
        }

    def process(self, output: list[str]) -> TailscaleInstallInfo:
        info = TailscaleInstall.default()
        seen: dict[str, str] = {}
        for line in output:
            if "=" in line.split(" ", 1)[0]:  # systemctl show: Property=value
                prop, _, value = line.partition("=")
                key = _SYSTEMCTL_PROPERTIES.get(prop, "")
            else:
                key, _, value = line.partition(" ")
            if key not in info:
                raise FactProcessError(f"tailscale install probe: unexpected line {line!r}")
            seen[key] = value.strip()
        if "tun_device" not in seen:  # always printed: anything else is not this probe
            raise FactProcessError(f"tailscale install probe: unexpected output {output!r}")
        for key, value in seen.items():
            if key in ("tun_device", "tun_openable"):
                info[key] = value == "true"  # type: ignore[literal-required]
            elif key in _BASE64_KEYS:
                info[key] = _unbase64(key, value)  # type: ignore[literal-required]
            else:
                info[key] = value or None  # type: ignore[literal-required]
        if info["defaults_flags"] is not None:
            info["defaults_flags"] = info["defaults_flags"].removeprefix("x").removesuffix("\n")
        return info


def _unbase64(key: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except ValueError:
        raise FactProcessError(f"tailscale install probe: {key} is not base64") from None
