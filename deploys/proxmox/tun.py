"""The container's ``/dev/net/tun`` (runbook §2): what giving it the device would change,
and the restart that change owes a running container.

- ``raw``: ``lxc.cgroup2.devices.allow``/``lxc.mount.entry`` (and optionally the AppArmor
  line) in the **top section** of the conf file on the node, rewritten in place over SSH
  only if nobody changed the file since it was read (pmxcfs has no rename)
- ``dev``: ``devN: /dev/net/tun`` through the API (root@pam password login only)
- ``none``: no device (Tailscale in userspace networking)

The container sees the device only after its next start, so the change records the
restart it owes **on the node**, in the same step as the change, and a start or restart
clears it: a run that dies between the two leaves the record, and the next run restarts
the container. ``raw``: a file ``<vmid>.egograph-restart`` beside the conf file (its lines
say why), written by the same shell command that rewrites the conf file, before it.
pmxcfs keeps any file name there; only ``<vmid>.conf`` counts as a guest config
(pve-cluster memdb.c ``name_is_vm_config``). ``dev``: the node host is the controller
(``@local``, API only), so the record is the container's tag ``egograph-restart``, set in
the same ``PUT`` as the device: visible in the GUI until the restart removes it.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand

from . import commands
from .conf import ensure_top_lines, tun_lines
from .spec import TUN_DEVICE, free_dev_key, tags_of, tun_dev_key

if TYPE_CHECKING:
    from .client import ContainerRef
    from .view import ContainerView

MARKER_SUFFIX = ".egograph-restart"
RESTART_TAG = "egograph-restart"
RAW_REASON = "TUN lines added"


def marker_path(conf_path: str) -> str:
    """The restart record beside a conf file: ``…/100.conf`` → ``…/100.egograph-restart``."""
    return conf_path.removesuffix(".conf") + MARKER_SUFFIX


@dataclass(frozen=True)
class RawPatch:
    """The conf file at ``path`` (read with digest ``sha256``) rewritten as ``text``."""

    path: str
    sha256: str
    text: str


def raw_patch(ct: ContainerView, apparmor: bool) -> RawPatch | None:
    """The rewrite that adds the TUN lines to the container's conf file; None when its top
    section has them. The container must exist."""
    conf = ct.conf_file()
    if not conf["exists"]:
        raise OperationError(f"{conf['path']} not found on the node; check pve_conf_dir")
    text, changed = ensure_top_lines(conf["text"], tun_lines(apparmor))
    return RawPatch(str(conf["path"]), str(conf["sha256"]), text) if changed else None


def dev_key_to_add(ct: ContainerView) -> str | None:
    """The ``devN`` key to pass ``/dev/net/tun`` through with; None when one does."""
    config = ct.config()
    return None if tun_dev_key(config) is not None else free_dev_key(config)


def would_change(ct: ContainerView, method: str, apparmor: bool) -> bool:
    """Whether giving the (existing) container the device would change its config."""
    if method == "raw":
        return raw_patch(ct, apparmor) is not None
    if method == "dev":
        return dev_key_to_add(ct) is not None
    return False


# --- the change and the restart it owes ---------------------------------------------------


def rewrite_commands(patch: RawPatch, vmid: int) -> list[Any]:
    """Upload the new text beside, then — only if the conf file's digest is still the one
    read — record the restart it owes and copy the text over the conf file (pmxcfs:
    rewritten in place, no rename)."""
    tmp = f"/tmp/egograph-{vmid}.conf.{secrets.token_hex(6)}"
    path = QuoteString(patch.path)
    rewrite = StringCommand(
        "if [ \"$(sha256sum <", path, "| cut -c1-64)\" =", QuoteString(patch.sha256),
        "]; then echo", QuoteString(RAW_REASON), ">>", QuoteString(marker_path(patch.path)),
        "&& cat", QuoteString(tmp), ">", path, "; rc=$?; else echo",
        QuoteString(f"{patch.path} changed meanwhile"), ">&2; rc=1; fi; rm -f",
        QuoteString(tmp), "; exit $rc",
    )  # fmt: skip
    return [FileUploadCommand(io.StringIO(patch.text), tmp), rewrite]


def add_dev(ct: ContainerView, ref: ContainerRef, key: str) -> Any:
    """Pass the device through as ``key``, tagging the container with the restart owed."""
    params = {key: TUN_DEVICE, "tags": ";".join([*_tags(ct.config()), RESTART_TAG])}
    return commands.api_step(
        f"set {key}: {TUN_DEVICE} on CT {ref.vmid}",
        lambda: ct.api.update_config(ref.node, ref.vmid, params),
    )


def restart_owed(ct: ContainerView, method: str) -> list[str]:
    """Why the container owes a restart a TUN change recorded (empty: it owes none)."""
    if method == "raw":
        return list(ct.conf_file()["restart"] or [])
    if method == "dev" and RESTART_TAG in _tags(ct.config()):
        return [f"{TUN_DEVICE} passed through (tag {RESTART_TAG})"]
    return []


def clear_restart(ct: ContainerView, ref: ContainerRef, method: str) -> list[Any]:
    """The steps that remove the record once the container (re)started; none without one."""
    if method == "raw" and ct.conf_file()["restart"] is not None:
        marker = marker_path(str(ct.conf_file()["path"]))
        return [StringCommand("rm", "-f", QuoteString(marker))]
    tags = _tags(ct.config())
    if method == "dev" and RESTART_TAG in tags:
        rest = [t for t in tags if t != RESTART_TAG]
        params = {"tags": ";".join(rest)} if rest else {"delete": "tags"}
        return [
            commands.api_step(
                f"remove tag {RESTART_TAG} from CT {ref.vmid}",
                lambda: ct.api.update_config(ref.node, ref.vmid, params),
            )
        ]
    return []


def _tags(config: dict[str, Any]) -> list[str]:
    return tags_of(config)  # the deploy's own marker tag among them stays
