"""The checks ``egodeploy preflight`` makes on the controller, each a :class:`Check`: pure
decisions over a target's settings and the files they name (modes through ``os.stat``).

Each check calls the same function the settings validation calls for that setting
(:func:`deploys.common.secrets.secret_file_problem`, :func:`.private_key_problem`,
:func:`deploys.proxmox.settings.ca_bundle_problem`, …), so what preflight fails is what
stops a deploy before anything is touched; here each one is said apart, with its fix.
Values come unvalidated (a refused setting is the ``settings`` check's): every check takes
what it cannot read as not its own to judge (``skip``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.checks import ENV_KEY
from ..common.secrets import open_to_others, private_key_problem, secret_file_problem

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``fail`` stops a deploy (preflight exits 1); ``warn`` is a risk
    or a need the controller cannot decide alone; ``skip``: nothing to check here."""

    name: str
    status: str
    detail: str
    fix: str = ""
    setting: str = ""
    """The setting the check is about ('' when none): its refusal is this check's."""

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def as_dict(self, target: str) -> dict[str, Any]:
        return {
            "target": target,
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "setting": self.setting,
            "detail": self.detail,
            "fix": self.fix,
        }


def _mode(path: str) -> str:
    return f"{Path(path).expanduser().stat().st_mode & 0o777:04o}"


def _file_fix(setting: str, path: str, kind: str) -> str:
    if Path(path).expanduser().is_file() and open_to_others(path):
        return f"chmod 600 {path}"
    return f"put {kind} in {path} (mode 0600), or point {setting} at the file that holds it"


def secret_source(
    setting: str, source: Any, what: str, *, required: bool = True, why: str = ""
) -> Check:
    """A secret named by ``{'file': path}`` or ``{'environ': VARIABLE}``: present (and a
    file only its owner can read). ``required=False``: a missing one is a warning, ``why``
    says when it is needed. The secret itself is never read into the result."""
    name = f"secret:{setting}"
    if not isinstance(source, dict) or len(source) != 1:
        return Check(name, SKIP, "its form is refused (see the settings check)", setting=setting)
    if isinstance(source.get("file"), str) and source["file"]:
        path = source["file"]
        problem = secret_file_problem(path)
        if problem is None:
            return Check(name, PASS, f"{what} in {path} (mode {_mode(path)})", setting=setting)
        exposed = Path(path).expanduser().is_file()
        status = FAIL if required or exposed else WARN
        return Check(
            name, status, problem + (f" ({why})" if why and not exposed else ""),
            _file_fix(setting, path, what), setting,
        )  # fmt: skip
    variable = source.get("environ")
    if isinstance(variable, str) and ENV_KEY.match(variable):
        if os.environ.get(variable):
            return Check(name, PASS, f"{what} in ${variable} (set)", setting=setting)
        return Check(
            name,
            FAIL if required else WARN,
            f"controller environment variable {variable} is unset or empty"
            + (f" ({why})" if why else ""),
            f"export {variable}=… in the shell that runs the deploy, or set {setting} to "
            "{'file': 'path'} (a 0600 file)",
            setting,
        )
    return Check(name, SKIP, "its form is refused (see the settings check)", setting=setting)


def env_sources(values: Mapping[str, Any]) -> list[Check]:
    """Every service's env file source (the deploy writes the env files from them), while
    ``env_files_managed``: a 0600 file or set controller variables."""
    services = values.get("services")
    if values.get("env_files_managed") is False or not isinstance(services, list):
        return []
    found: list[Check] = []
    for index, service in enumerate(services):
        source = service.get("env_source") if isinstance(service, dict) else None
        setting = f"services[{index}].env_source"
        names = source.get("environ") if isinstance(source, dict) else None
        if isinstance(names, list | dict) and names:
            variables = list(names.values()) if isinstance(names, dict) else list(names)
            unset = [v for v in variables if not (isinstance(v, str) and os.environ.get(v))]
            found.append(
                Check(
                    f"secret:{setting}",
                    FAIL if unset else PASS,
                    f"controller environment variable(s) {', '.join(map(str, unset))} unset "
                    "or empty"
                    if unset
                    else f"env file from ${', $'.join(variables)} (set)",
                    f"export {' '.join(f'{v}=…' for v in unset)} before running" if unset else "",
                    setting,
                )
            )
        else:
            found.append(secret_source(setting, source, "the env file"))
    return found


def private_key(setting: str, path: Any, *, default: str) -> Check:
    """An SSH private key file on the controller: present, a private key, owner-only.
    ``default``: what is used when the setting is empty."""
    name = f"ssh_key:{setting}"
    if not isinstance(path, str):
        return Check(name, SKIP, "its form is refused (see the settings check)", setting=setting)
    if not path:
        return Check(name, SKIP, f"'' (none named): {default}", setting=setting)
    problem = private_key_problem(path)
    if problem:
        return Check(name, FAIL, problem, _file_fix(setting, path, "the private key"), setting)
    return Check(name, PASS, f"private key {path} (mode {_mode(path)})", setting=setting)


def public_keys(values: Mapping[str, Any]) -> Check:
    """``ct_ssh_public_keys``: the keys a new container lets root in with."""
    from ..proxmox.settings import public_key_problem

    setting = "ct_ssh_public_keys"
    keys = values.get(setting)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return Check(f"ssh_key:{setting}", SKIP, "its form is refused (see the settings check)",
                     setting=setting)  # fmt: skip
    problems = [p for p in (public_key_problem(k) for k in keys) if p] if keys else ["empty"]
    if problems:
        return Check(
            f"ssh_key:{setting}", FAIL, "; ".join(problems),
            "list the .pub file of the key the deploy logs in to the container with "
            "(ssh-keygen -t ed25519 makes one)", setting,
        )  # fmt: skip
    return Check(f"ssh_key:{setting}", PASS, f"{len(keys)} public key file(s)", setting=setting)


def tls_settings(values: Mapping[str, Any]) -> Check:
    """How the API's certificate is verified, from the settings alone (the CA file is
    checked before anything connects)."""
    from ..proxmox.settings import ca_bundle_problem

    name, setting = "tls:pve_ca_bundle", "pve_ca_bundle"
    ca, pin = values.get(setting), values.get("pve_fingerprint")
    if values.get("pve_insecure") is True:
        return Check(
            name, WARN,
            "pve_insecure = True: TLS verification is off, anyone on the path can read the token",
            "copy the node's /etc/pve/pve-root-ca.pem to the controller, set pve_ca_bundle to "
            "it (or pve_fingerprint) and pve_insecure = False", "pve_insecure",
        )  # fmt: skip
    if not isinstance(ca, str):
        return Check(name, SKIP, "its form is refused (see the settings check)", setting=setting)
    if ca:
        problem = ca_bundle_problem(ca)
        if problem:
            return Check(
                name, FAIL, problem,
                f"scp root@<node>:/etc/pve/pve-root-ca.pem {ca} (or set pve_ca_bundle to '' "
                "and pin the certificate with pve_fingerprint)", setting,
            )  # fmt: skip
        return Check(
            name, PASS,
            f"verified against {ca}" + (" and the pinned fingerprint" if pin else ""),
            setting=setting,
        )  # fmt: skip
    if pin:
        return Check(name, PASS, "pinned by pve_fingerprint", setting="pve_fingerprint")
    return Check(name, PASS, "verified against the system trust store", setting=setting)


def keyring_pin(values: Mapping[str, Any]) -> Check:
    """``tailscale_keyring_sha256``: set whenever Tailscale is installed by the deploy."""
    from ..tailscale.settings import KEYRING_PIN_FIX, keyring_pin_problem

    name, setting = "tailscale_keyring_pin", "tailscale_keyring_sha256"
    enabled, pin = values.get("tailscale_enabled"), values.get(setting)
    if enabled is False:
        return Check(name, SKIP, "tailscale_enabled = False", setting=setting)
    if not isinstance(pin, str) or not isinstance(enabled, bool):
        return Check(name, SKIP, "its form is refused (see the settings check)", setting=setting)
    problem = keyring_pin_problem(enabled, pin)
    if problem:
        return Check(name, FAIL, problem, KEYRING_PIN_FIX, setting)
    return Check(name, PASS, f"keyring pinned (sha256 {pin[:12]}…)", setting=setting)


def controller_checks(
    values: Mapping[str, Any], host_data: Mapping[str, Any], *, login_needed: bool | None = None
) -> list[Check]:
    """Every check of the controller's side of one target: its secrets, SSH keys, the
    API's TLS settings and the Tailscale keyring pin. ``login_needed``: whether the node
    will log in to the tailnet (None: not known here; then a missing key only warns)."""
    checks: list[Check] = []
    proxmox = bool(values.get("pve_host"))
    if proxmox:
        checks.append(secret_source("pve_secret_source", values.get("pve_secret_source"),
                                    "the API token secret"))  # fmt: skip
    if values.get("tailscale_enabled") is not False:
        checks.append(
            secret_source(
                "tailscale_authkey_source", values.get("tailscale_authkey_source"),
                "the Tailscale auth key", required=bool(login_needed),
                why="" if login_needed else "needed only when the node has to log in",
            )
        )  # fmt: skip
    checks += env_sources(values)
    checks.append(private_key("ssh_key", host_data.get("ssh_key", ""),
                              default="SSH's default keys and agent"))  # fmt: skip
    if proxmox:
        checks.append(private_key("pve_ssh_key", values.get("pve_ssh_key"),
                                  default="SSH's default keys and agent"))  # fmt: skip
        checks.append(public_keys(values))
        checks.append(tls_settings(values))
    checks.append(keyring_pin(values))
    return checks


def settings_check(errors: list[str], checks: list[Check]) -> Check:
    """The settings validation's verdict, leaving out what a failed check already says."""
    covered = {c.setting for c in checks if c.status == FAIL and c.setting}
    rest = [e for e in errors if e.split(":", 1)[0] not in covered]
    if not errors:
        return Check("settings", PASS, "every setting has its expected form")
    if not rest:
        return Check("settings", FAIL, "refused for the failed checks above")
    return Check(
        "settings", FAIL, "; ".join(rest),
        "fix each named setting in group_data/all.py, the hosts file or --data (the README's "
        "Settings tables give every form)",
    )  # fmt: skip


def exit_code(results: Mapping[str, list[Check]]) -> int:
    """1 when any check failed, else 0 (warnings pass)."""
    return 1 if any(not c.ok for checks in results.values() for c in checks) else 0


MARKS = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "SKIP"}


def render_text(results: Mapping[str, list[Check]]) -> str:
    """One line per check (``PASS``/``FAIL``/…, its name, what it found), its fix below it
    when it did not pass, and a last line per target."""
    lines: list[str] = []
    for target, checks in results.items():
        lines.append(f"{target}:")
        for c in checks:
            lines.append(f"  {MARKS[c.status]}  {c.name}: {c.detail}")
            if c.fix and c.status in (FAIL, WARN):
                lines.append(f"        fix: {c.fix}")
        failed = [c.name for c in checks if not c.ok]
        lines.append(
            f"  => {len(failed)} check(s) failed: {', '.join(failed)}; a deploy stops before "
            "changing anything"
            if failed
            else "  => ready to deploy"
        )
    return "\n".join(lines)
