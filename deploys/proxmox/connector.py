"""``@pvelxc/<name>``: the container as a pyinfra host, connected on first use.

pyinfra connects to every inventory host before any operation runs, but in a run from
nothing the container only exists once the node's operations have created and started it.
This connector therefore connects lazily:

- ``connect()`` does nothing.
- The first command (a fact or an operation's command) looks the container up through the
  API (``ct_vmid``, or ``ct_hostname`` cluster-wide), takes its address (the static
  ``ct_ip`` or eth0 from ``/interfaces``) and opens an ordinary SSH connection to it with
  the host's ``ssh_*`` data (user, key, known_hosts: the container's host key is checked
  like any SSH host's).
- While pyinfra prepares (before anything executes, and in ``--dry``), a container that does
  not exist or is not running reads as a fresh machine: every command succeeds with no
  output, so each fact returns its default ("nothing there") and the plan says everything
  inside would change. Nothing is created.
- When execution starts, a connection opened during preparation is dropped and made again
  (the node's operations may have restarted the container meanwhile), after waiting until
  the container runs and answers SSH. A container that is still missing then is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from io import IOBase
from typing import TYPE_CHECKING, Any

from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.ssh import ConnectorData, SSHConnector, connector_data_meta
from pyinfra.connectors.util import CommandOutput

from ..common.connection import without_nagle
from ..common.setting import SettingsError
from ..hostsettings import settings_of

if TYPE_CHECKING:
    from .access import Pve

logger = logging.getLogger("pyinfra")


class PveContainerConnector(BaseConnector):
    """A Proxmox LXC container reached over SSH once it exists (see the module doc); a
    :class:`.access.ContainerHost` to the node's operations."""

    handles_execution = True
    data_cls = ConnectorData
    data_meta = connector_data_meta

    def __init__(self, state: Any, host: Any) -> None:
        super().__init__(state, host)
        self._ssh: SSHConnector | None = None
        self._ssh_for_execute = False
        self._told_absent = False
        self.target_pending = False
        """True while preparing against a container that does not exist (or run) yet; see
        :func:`deploys.common.report.refuse`."""

    @staticmethod
    def make_names_data(name: str) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        if not name:
            raise ValueError("@pvelxc needs a name: @pvelxc/<container hostname>")
        yield f"@pvelxc/{name}", {}, ["@pvelxc"]

    # --- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        try:
            settings_of(self.host.data)
        except SettingsError as exc:
            raise ConnectError(f"bad settings: {exc}") from None

    def disconnect(self) -> None:
        if self._ssh is not None:
            self._ssh.disconnect()
            self._ssh = None

    def pve(self) -> Pve:
        """The container this host is, as the node's operations know it."""
        # Imported on first use: pyinfra loads every installed connector when it starts,
        # and the API client (requests, proxmoxer) costs 0.1 s that a run without this
        # connector should not pay.
        from .access import Pve

        return Pve.from_settings(settings_of(self.host.data))

    @property
    def ssh_port(self) -> int:
        """The container's SSH port: the host's ``ssh_port`` data (SSH's 22 without it)."""
        return int(self.data.get("ssh_port") or 22)

    def _target(self) -> SSHConnector | None:
        executing = bool(self.state.is_executing)
        if self._ssh is not None and (self._ssh_for_execute or not executing):
            return self._ssh
        self.disconnect()
        from .access import ProxmoxError, address, client, find, wait_reachable
        from .errors import PveError

        pve = self.pve()
        try:
            ref = find(pve)
            if ref is None:
                if executing:
                    raise ConnectionError(f"CT {pve.hostname} does not exist on {pve.host}")
                self._absent(pve, "does not exist yet")
                return None
            if executing:
                addr = wait_reachable(pve, ref, self.ssh_port)
            else:
                status = client(pve).container_status(ref.node, ref.vmid).get("status")
                found = address(pve, ref) if status == "running" else None
                if found is None:
                    self._absent(pve, f"is {status} (no address)")
                    return None
                addr = found
        except (PveError, ProxmoxError) as exc:
            raise ConnectionError(f"CT {pve.hostname}: {exc}") from None
        ssh = SSHConnector(self.state, self.host)
        ssh.data["ssh_hostname"] = addr
        try:
            ssh.connect()
        except ConnectError as exc:
            raise ConnectionError(f"CT {pve.hostname} at {addr}: {exc}") from None
        without_nagle(ssh)
        self._ssh = ssh
        self._ssh_for_execute = executing
        self.target_pending = False
        return ssh

    def _absent(self, pve: Pve, why: str) -> None:
        self.target_pending = True
        if not self._told_absent:
            self._told_absent = True
            logger.warning(
                f"{self.host.print_prefix}CT {pve.hostname} {why}: it reads as a fresh "
                "machine, so everything in it would change"
            )

    # --- execution ---------------------------------------------------------------------------

    def run_shell_command(
        self, command: Any, print_output: bool = False, print_input: bool = False, **arguments: Any
    ) -> tuple[bool, CommandOutput]:
        target = self._target()
        if target is None:
            return True, CommandOutput([])
        return target.run_shell_command(command, print_output, print_input, **arguments)

    def _required(self) -> SSHConnector:
        target = self._target()
        if target is None:
            raise ConnectionError(f"{self.host.name}: the container does not exist yet")
        return target

    def put_file(
        self,
        filename_or_io: str | IOBase,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        return self._required().put_file(
            filename_or_io,
            remote_filename,
            remote_temp_filename,
            print_output,
            print_input,
            **arguments,
        )

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: str | IOBase,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        return self._required().get_file(
            remote_filename,
            filename_or_io,
            remote_temp_filename,
            print_output,
            print_input,
            **arguments,
        )
