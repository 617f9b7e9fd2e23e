"""The container's ``/dev/net/tun`` (runbook §2): what giving it the device would change.

- ``raw``: ``lxc.cgroup2.devices.allow``/``lxc.mount.entry`` (and optionally the AppArmor
  line) in the **top section** of the conf file on the node, rewritten in place over SSH
  only if nobody changed the file since it was read (pmxcfs has no rename)
- ``dev``: ``devN: /dev/net/tun`` through the API (root@pam password login only)
- ``none``: no device (Tailscale in userspace networking)
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand

from .conf import ensure_top_lines, tun_lines
from .spec import free_dev_key, tun_dev_key

if TYPE_CHECKING:
    from .view import ContainerView


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


def rewrite_commands(patch: RawPatch, vmid: int) -> list[Any]:
    """Upload the new text beside, then copy it over the conf file only if its digest is
    still the one read (pmxcfs: rewritten in place, no rename)."""
    tmp = f"/tmp/egograph-{vmid}.conf.{secrets.token_hex(6)}"
    path = QuoteString(patch.path)
    rewrite = StringCommand(
        "if [ \"$(sha256sum <", path, "| cut -c1-64)\" =", QuoteString(patch.sha256),
        "]; then cat", QuoteString(tmp), ">", path, "; rc=$?; else echo",
        QuoteString(f"{patch.path} changed meanwhile"), ">&2; rc=1; fi; rm -f",
        QuoteString(tmp), "; exit $rc",
    )  # fmt: skip
    return [FileUploadCommand(io.StringIO(patch.text), tmp), rewrite]
