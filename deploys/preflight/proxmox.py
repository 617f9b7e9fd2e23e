"""The Proxmox checks of ``egodeploy preflight``: the API reachable with TLS verified, the
token's privileges for this run, the node's SSH, the template storage.

They ask what the deploy asks, with the deploy's own code: the client of
:mod:`deploys.proxmox.access` (the CA or pin of the settings on every request), the
:class:`deploys.proxmox.view.ContainerView` the stage decides from, and its privilege
check (:func:`deploys.proxmox.preflight.privilege_report`, one ``GET
/access/permissions``). The node gets one command over the SSH the deploy reads host keys
through (:class:`deploys.proxmox.hostkey.NodeSsh`): ``pct`` is there, the conf directory
is writable (raw TUN), and the container's conf file, which the privilege check reads
through :class:`NodeProbe` instead of a pyinfra host.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from ..proxmox.access import ProxmoxError, Pve
from ..proxmox.errors import PveAuthError, PveError, PvePermissionError, PveTLSError
from ..proxmox.facts import PveConfFile
from ..proxmox.hostkey import HostKeyError, NodeSsh
from ..proxmox.tun import marker_path
from .checks import FAIL, PASS, SKIP, WARN, Check

if TYPE_CHECKING:
    from ..proxmox.client import ContainerRef
    from ..proxmox.view import ContainerView
    from ..settings import Settings

NODE_SSH_FIX = (
    "check pve_ssh_host, pve_ssh_port, pve_ssh_user and pve_ssh_key, and that the node's host "
    "key is in pve_ssh_known_hosts (ssh-keyscan -t ed25519 <node>, its fingerprint checked "
    "against `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node)"
)


class _Preparing:
    """What :class:`ContainerView` asks of a run's state: preflight only reads."""

    is_executing = False

    @staticmethod
    def should_check_for_changes() -> bool:
        return False


class NodeProbe:
    """The node for preflight: its one SSH command (:meth:`probe`), and, to the
    :class:`ContainerView` that holds it as its node host, the container's conf file out
    of that command's output."""

    state = _Preparing()

    def __init__(self, ssh: NodeSsh, timeout: float, conf_dir: str | None) -> None:
        self.ssh = ssh
        self.timeout = timeout
        self.conf_dir = conf_dir
        self._conf: tuple[dict[str, str], list[str]] | None = None

    def probe(self, ref: ContainerRef | None) -> Check:
        """One command: ``pct`` on the node, the conf directory (raw TUN), and the
        container's conf file when it exists."""
        name, setting = "node_ssh", "pve_ssh_host"
        where = f"{self.ssh.user}@{self.ssh.host}:{self.ssh.port}"
        # each part an `if`: the command's status is the last part's, never a test's
        parts = ["if command -v pct >/dev/null 2>&1; then echo probe-pct; fi"]
        fact: dict[str, str] | None = None
        if self.conf_dir is not None:
            d = shlex.quote(self.conf_dir)
            parts.append(f"if [ -d {d} ] && [ -w {d} ]; then echo probe-conf-dir; fi")
            if ref is not None:
                path = f"{self.conf_dir}/{ref.vmid}.conf"
                fact = {"path": path, "marker": marker_path(path)}
                parts.append("echo probe-conf; " + PveConfFile().command(**fact).get_raw_value())
        try:
            out = self.ssh.run(["sh", "-c", "; ".join(parts)], self.timeout).splitlines()
        except HostKeyError as exc:
            return Check(name, FAIL, str(exc), NODE_SSH_FIX, setting)
        if fact is not None and "probe-conf" in out:
            self._conf = (fact, out[out.index("probe-conf") + 1 :])
        if "probe-pct" not in out:
            return Check(
                name, FAIL, f"{where} answers, but has no pct on its PATH (not a Proxmox node?)",
                "point pve_ssh_host at the Proxmox node the container lives on", setting,
            )  # fmt: skip
        if self.conf_dir is not None and "probe-conf-dir" not in out:
            return Check(
                name, FAIL,
                f"{where}: {self.conf_dir} is not a directory {self.ssh.user} can write "
                "(ct_tun_method 'raw' edits the container's conf file there)",
                "set pve_conf_dir to the node's /etc/pve/lxc and pve_ssh_user to root",
                "pve_conf_dir",
            )  # fmt: skip
        what = "pct" + (f", {self.conf_dir} writable" if self.conf_dir else "")
        return Check(name, PASS, f"{where} (host key checked): {what}", setting=setting)

    def get_fact(self, fact: type[Any], **kwargs: Any) -> Any:
        """The conf file the probe read (its default when the probe read none)."""
        if fact is not PveConfFile:
            raise TypeError(f"preflight reads no {fact.__name__} on the node")
        if self._conf is not None and self._conf[0] == kwargs:
            return PveConfFile().process(self._conf[1])
        return PveConfFile.default()


def tls_mode(settings: Settings) -> str:
    if settings.pve_insecure:
        return "TLS NOT verified (pve_insecure)"
    if settings.pve_ca_bundle:
        pin = " and the pinned fingerprint" if settings.pve_fingerprint else ""
        return f"TLS verified against {settings.pve_ca_bundle}{pin}"
    if settings.pve_fingerprint:
        return "TLS pinned by pve_fingerprint"
    return "TLS verified against the system trust store"


def api_check(pve: Pve, settings: Settings) -> Check:
    """``GET /version``: the API answers this identity, over TLS as configured."""
    from ..proxmox.access import client

    where = f"https://{pve.host}:{pve.port}"
    try:
        version = client(pve).version().get("version", "?")
    except PveTLSError as exc:
        return Check(
            "pve_api", FAIL, f"{where}: {exc.reason}",
            "set pve_ca_bundle to a copy of the node's /etc/pve/pve-root-ca.pem (or pin "
            "pve_fingerprint: `pvenode cert info` on the node shows it)", "pve_ca_bundle",
        )  # fmt: skip
    except PveAuthError as exc:
        who = "pve_token_id and its secret" if pve.token_id else "pve_user and its password"
        return Check("pve_api", FAIL, f"{where}: {exc.reason}",
                     f"check {who} (pve_secret_source)", "pve_secret_source")  # fmt: skip
    except (PveError, ProxmoxError, ValueError) as exc:
        return Check("pve_api", FAIL, f"{where}: {exc}",
                     "check pve_host and pve_port, and that the controller reaches the node",
                     "pve_host")  # fmt: skip
    status = WARN if settings.pve_insecure else PASS
    fix = "set pve_ca_bundle or pve_fingerprint, and pve_insecure = False" if status == WARN else ""
    return Check("pve_api", status, f"{where} answers (PVE {version}), {tls_mode(settings)}",
                 fix, "pve_host")  # fmt: skip


def privileges_check(ct: ContainerView, settings: Settings) -> Check:
    """What this run needs of the token (the stage's own plan), against its permissions."""
    from ..proxmox.preflight import privilege_report
    from ..proxmox.spec import ContainerSpec

    try:
        report = privilege_report(
            ct,
            ContainerSpec.from_settings(settings),
            tun_method=settings.ct_tun_method,
            apparmor=settings.ct_apparmor_unconfined,
            allow_restart=settings.ct_allow_restart,
            snapshots=settings.pve_snapshot_before_release,
        )
    except (PveError, ProxmoxError) as exc:
        return Check("pve_privileges", FAIL, str(exc),
                     "check ct_vmid/ct_hostname and pve_node", "pve_token_id")  # fmt: skip
    if report.ok:
        detail = report.skipped or f"{report.auth_id} holds every privilege this run needs"
        return Check("pve_privileges", PASS, detail, setting="pve_token_id")
    return Check(
        "pve_privileges", FAIL, report.message(),
        "grant the README's roles (Proxmox > API access), each on its ACL path, to both the "
        "token and its user", "pve_token_id",
    )  # fmt: skip


def template_check(ct: ContainerView, settings: Settings) -> Check:
    """The template on ``ct_template_storage``, or the storage a download would go to."""
    from ..proxmox.spec import ContainerSpec

    spec = ContainerSpec.from_settings(settings)
    storage, template = spec.template_storage, settings.ct_ostemplate
    setting = "ct_template_storage"
    try:
        present = spec.ostemplate in ct.templates(storage)  # as the stage decides it
    except PvePermissionError as exc:
        return Check("template_storage", FAIL, str(exc),
                     f"grant Datastore.Audit on /storage/{storage}", setting)  # fmt: skip
    except (PveError, ProxmoxError) as exc:
        return Check(
            "template_storage", FAIL, f"storage {storage!r} on the node: {exc}",
            "set ct_template_storage to a storage with content type vztmpl (pvesm status "
            "--content vztmpl lists them)", setting,
        )  # fmt: skip
    if present:
        return Check("template_storage", PASS, f"{template} is on {storage}", setting=setting)
    return Check(
        "template_storage", PASS,
        f"{template} is not on {storage} yet: the deploy downloads it there through the "
        "node's appliance index", setting=setting,
    )  # fmt: skip


def proxmox_checks(settings: Settings) -> tuple[list[Check], bool | None]:
    """The Proxmox checks in order, and whether the container exists (None: not known)."""
    from ..proxmox.view import ContainerView

    pve = Pve.from_settings(settings)
    api = api_check(pve, settings)
    conf_dir = settings.pve_conf_dir if settings.ct_tun_method == "raw" else None
    node = NodeProbe(NodeSsh.from_settings(settings), float(settings.pve_timeout), conf_dir)
    if not api.ok:
        # the node's SSH does not need the API: it is still worth knowing about
        untried = "not tried: the API did not answer"
        return [api, node.probe(None), Check("pve_privileges", SKIP, untried),
                Check("template_storage", SKIP, untried)], None  # fmt: skip
    ct = ContainerView(pve, node, conf_dir)  # type: ignore[arg-type]
    try:
        ref = ct.ref()
    except (PveError, ProxmoxError) as exc:
        found = Check("pve_privileges", FAIL, str(exc), "check ct_vmid and ct_hostname", "ct_vmid")
        return [api, node.probe(None), found, template_check(ct, settings)], None
    return [
        api, node.probe(ref), privileges_check(ct, settings), template_check(ct, settings),
    ], ref is not None  # fmt: skip
