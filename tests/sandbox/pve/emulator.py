"""PVE API emulator (test support): a single node speaking the LXC subset of the PVE API.

Start from Python::

    emu = PveEmulator(state_dir, version="9.1",
                      users={"root@pam": {"password": "secret"}},
                      tokens={"deploy@pve!pyinfra": {"secret": "uuid", "privs": {"/": ["*"]}}},
                      auth_delay=0).start(port=0)
    emu.url, emu.ca_path, emu.fingerprint  ... emu.stop()

or from the shell: ``python -m tests.sandbox.pve serve --version 9 --port 8006 --state-dir D``.

Faithfulness points (see the shared NOTES): parameter validation against the version's
schema with PVE's messages, reason phrase = first line of the error message, JSON error
body ``{"data":null,"message":...,"errors":...}``, 401s without body and delayed, 501 for
unknown paths, API token / ticket + CSRF auth, privilege checks as PVE makes them (the ACL
model, token privilege separation and pools in :mod:`.permissions`; the schema's declarative
``permissions`` blocks; the code-level checks of create/PUT -- per option, the bridge's
``SDN.Use``, the root@pam-only rules -- in :mod:`.lxc_permissions`; see the shared
PERMISSIONS.md), UPIDs and background tasks with PVE's log/exitstatus format,
configs persisted as PVE conf files under ``<state>/etc/pve/lxc/<vmid>.conf`` and re-read on
every request (external edits are seen; digest = sha1 of the file), pending changes.

The class is built in layers, a module per PVE resource, each on the ones before it:
:mod:`.state` (what every layer reads), :mod:`.auth`, :mod:`.tasks`, :mod:`.conf`,
:mod:`.storage`, :mod:`.lxc`, :mod:`.snapshot`, :mod:`.cluster` and :mod:`.server` (HTTPS,
the request entry, faults); :class:`PveEmulator` here sets the state up.

Container lifecycle goes through :class:`ContainerBackend` (default :class:`FakeBackend`,
both in :mod:`.backend`).
Faults: :meth:`PveEmulator.inject_task_fault`, :meth:`inject_http_error`,
:meth:`inject_create_race`, or ``POST /_emulator/faults`` with JSON
``{"task_type": "vzcreate", "fail": "text" | "warnings": n | "slow": s}``,
``{"http_status": 596, "count": 2}``, ``{"create_race": 100}``; ``DELETE`` clears them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .backend import ContainerBackend, FakeBackend
from .conf import parse_pct_config, write_pct_config
from .errors import PveError
from .permissions import Rpc, UserCfg
from .schema import load_schema
from .server import ServerApi, cert_fingerprint, ensure_certificates
from .storage import DEFAULT_TEMPLATES
from .tasks import Task

__all__ = [
    "ContainerBackend",
    "FakeBackend",
    "PveEmulator",
    "PveError",
    "Task",
    "cert_fingerprint",
    "ensure_certificates",
    "parse_pct_config",
    "write_pct_config",
]


class PveEmulator(ServerApi):
    """A single-node PVE API (subset) over HTTPS on loopback.

    Who may do what is ``user.cfg`` (:class:`.permissions.UserCfg`), checked as PVE checks
    it (:mod:`.permissions`, :mod:`.lxc_permissions`). Give it ready-made (``user_cfg``), or:

    - ``users``: ``{"root@pam": {"password": "...", "groups": [...], "privs": ...}}``
      (ticket login; ``groups`` are made as needed)
    - ``tokens``: ``{"deploy@pve!pyinfra": {"secret": "...", "privsep": 1, "privs": ...}}``
      (``privsep`` defaults to 1, as in PVE)
    - ``roles``: ``{"CTDeploy": ["VM.Allocate", ...]}`` (custom roles; the built-in ones exist)
    - ``acl``: ``[{"path": "/vms", "roles": ["CTDeploy"], "users": [...], "groups": [...],
      "tokens": [...], "propagate": 1}]`` (``pveum acl modify``)
    - ``pools``: ``{"deploy": {"vms": [100], "storage": ["local-lvm"]}}``

    ``privs`` is a shorthand: a list of privilege names (granted on ``/``) or ``{acl_path:
    [privs]}``, ``"*"`` for all of them, as a propagating ACL entry with a role of exactly
    those; on a token it is granted to the token *and* its owner, so that privilege
    separation leaves exactly them. root@pam (password login) passes every check, like PVE.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        version: str = "9.1",
        users: dict[str, dict[str, Any]] | None = None,
        tokens: dict[str, dict[str, Any]] | None = None,
        backend: ContainerBackend | None = None,
        *,
        node: str = "pve",
        auth_delay: float = 3.0,
        templates: Iterable[str] = DEFAULT_TEMPLATES,
        template_source: str | os.PathLike[str] | None = None,
        task_min_duration: float = 0.0,
        roles: Mapping[str, Iterable[str]] | None = None,
        acl: Iterable[Mapping[str, Any]] = (),
        pools: Mapping[str, Mapping[str, Any]] | None = None,
        user_cfg: UserCfg | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.version = version
        self.schema = load_schema(version)
        self.major = self.schema.major
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self.user_cfg = user_cfg or self._make_user_cfg(roles or {}, acl, pools or {})
        self.rpc = Rpc(self.user_cfg)
        self.backend: ContainerBackend = backend or FakeBackend()
        self.node = node
        self.auth_delay = auth_delay
        self.template_source = Path(template_source) if template_source else None
        self.task_min_duration = task_min_duration
        self.lock = threading.RLock()
        self.tasks: dict[str, Task] = {}
        self.tickets: dict[str, tuple[str, float]] = {}
        self.csrf: dict[str, str] = {}
        self._pid = 0x1A2B0
        self._pstart = 0x0105C7E2
        self.task_faults: dict[str, list[dict[str, Any]]] = {}
        self.http_faults: list[int] = []
        self.race_vmids: set[int] = set()
        self.request_log: list[tuple[str, str, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.template_dir.mkdir(parents=True, exist_ok=True)
        for name in templates:
            path = self.template_dir / name
            if not path.exists():
                self._install_template(name, path)
        self.ca_path, self.cert_path, self.key_path = ensure_certificates(
            self.state_dir / "pki", node
        )
        self.fingerprint = cert_fingerprint(self.cert_path)
        self.storages: dict[str, dict[str, Any]] = {
            "local": {
                "type": "dir",
                "content": ["backup", "iso", "vztmpl"],
                "path": str(self.state_dir / "var/lib/vz"),
            },
            "local-lvm": {"type": "lvmthin", "content": ["images", "rootdir"]},
            # a dir storage for container disks (raw volumes): it cannot snapshot them
            "local-dir": {
                "type": "dir",
                "content": ["images", "rootdir"],
                "path": str(self.state_dir / "var/lib/vz-dir"),
            },
        }
