"""``@pvelxc/<name>``: the container as a pyinfra host, connected on first use.

pyinfra connects to every inventory host before any operation runs, but in a run from
nothing the container only exists once the node's operations have created and started it.
This connector therefore connects lazily:

- ``connect()`` does nothing.
- The first command (a fact or an operation's command) looks the container up through the
  API (``ct_vmid``, or ``ct_hostname`` cluster-wide), takes its address (the static
  ``ct_ip`` or eth0 from ``/interfaces``) and opens an ordinary SSH connection to it with
  the host's ``ssh_*`` data (user, key), strict about the host key: the key is the one
  pinned in ``ct_ssh_known_hosts``, read through the node the first time
  (:mod:`.hostkey`). A different key stops the run; preparing (and ``--dry``) reads the
  key through the node for its own connection but never writes the file.
- While pyinfra prepares (before anything executes, and in ``--dry``), a container that does
  not exist or is not running reads as a fresh machine: every command succeeds with no
  output, so each fact returns its default ("nothing there") and the plan says everything
  inside would change. Nothing is created.
- When execution starts, a connection opened during preparation is dropped and made again
  (the node's operations may have restarted the container meanwhile), after waiting until
  the container runs and answers SSH. A container that is still missing then is an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from io import IOBase
from typing import TYPE_CHECKING, Any, NoReturn

from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.ssh import ConnectorData, SSHConnector, connector_data_meta
from pyinfra.connectors.sshuserclient.client import get_host_keys
from pyinfra.connectors.util import CommandOutput

from ..common.connection import without_nagle
from ..common.setting import SettingsError
from ..hostsettings import settings_of

if TYPE_CHECKING:
    from .access import Pve
    from .client import ContainerRef
    from .hostkey import NodeSsh

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
        self._scratch: str | None = None
        self._refused: str | None = None
        """Set once the container presented a host key other than the pinned one."""
        """A known_hosts file for a connection made while preparing (never the managed one)."""
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
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._scratch)
            self._scratch = None

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
        if self._refused is not None:
            raise ConnectionError(self._refused)
        self.disconnect()
        from .access import ProxmoxError, address, client, find, wait_reachable
        from .errors import PveError
        from .hostkey import HostKeyError

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
        try:
            known_hosts = self._known_hosts(pve, ref, addr, executing)
        except HostKeyError as exc:
            # no key to trust: nothing may reach the container
            self._refuse(f"CT {pve.hostname} (vmid {ref.vmid}): {exc}", executing)
        ssh = SSHConnector(self.state, self.host)
        ssh.data["ssh_hostname"] = addr
        ssh.data["ssh_known_hosts_file"] = known_hosts
        ssh.data["ssh_strict_host_key_checking"] = "yes"
        # pyinfra keeps a known_hosts file's keys by its name: the file may have changed
        get_host_keys.cache.clear()
        try:
            with _without_pyinfra_host_key_advice():
                ssh.connect()
        except ConnectError as exc:
            if "SSH host key error" in str(exc):
                self._refuse(self._changed(pve, ref, addr), executing)
            raise ConnectionError(f"CT {pve.hostname} at {addr}: {exc}") from None
        without_nagle(ssh)
        self._ssh = ssh
        self._ssh_for_execute = executing
        self.target_pending = False
        return ssh

    def _refuse(self, message: str, executing: bool) -> NoReturn:
        """Stop at the container's host key with ``message``, shown once and alone.
        Preparing: a pyinfra error, which ends the run with it (no traceback). Executing
        (``-y`` defers the container's reads to here): pyinfra fails an operation on an
        OSError and tries the next one, so the message is logged once and every later
        command of this host fails with a pointer to it, never reaching the container."""
        if not executing:
            raise ConnectError(message)
        self._refused = f"{self.host.name}: stopped at the container's SSH host key (see above)"
        self.host.log_styled(message, fg="red", log_func=logger.error)
        raise ConnectionError(self._refused)

    def _known_hosts(self, pve: Pve, ref: ContainerRef, addr: str, executing: bool) -> str:
        """The known_hosts file to check the container's host key against: the managed one
        once it pins a key for ``addr``. Without one, the key is read through the node;
        executing pins it there, preparing keeps it in a scratch file of its own."""
        from .hostkey import host_name, pinned, read_file, read_on_node, with_pin, write_file

        name = host_name(addr, self.ssh_port)
        text = read_file(pve.known_hosts)
        if pinned(text, name):
            return pve.known_hosts
        key = read_on_node(self._node_ssh(), ref.vmid, timeout=pve.timeout)
        line = with_pin(text, name, key, pve.host_key_tag)
        if executing:
            write_file(pve.known_hosts, line)
            logger.info(
                f"{self.host.print_prefix}CT {pve.hostname} (vmid {ref.vmid}) at {name}: host "
                f"key {key.fingerprint()} read through the node, pinned in {pve.known_hosts}"
            )
            return pve.known_hosts
        fd, scratch = tempfile.mkstemp(prefix="egograph-known_hosts.")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(with_pin("", name, key, pve.host_key_tag))
        self._scratch = scratch
        return scratch

    def _node_ssh(self) -> NodeSsh:
        from .hostkey import NodeSsh

        return NodeSsh.from_settings(settings_of(self.host.data))

    def _changed(self, pve: Pve, ref: ContainerRef, addr: str) -> str:
        from .hostkey import HOST_KEY_PUB, host_name

        name = host_name(addr, self.ssh_port)
        return (
            f"CT {pve.hostname} (vmid {ref.vmid}) at {name} presents an SSH host key other "
            f"than the one pinned for it in {pve.known_hosts} (ct_ssh_known_hosts): the "
            "connection may be intercepted, or the container's key was replaced. Nothing was "
            "done in the container. If the change is expected, check the key on the node "
            f"(pct exec {ref.vmid} -- ssh-keygen -lf {HOST_KEY_PUB}), remove the old line "
            f"(ssh-keygen -f {pve.known_hosts} -R '{name}') and run again: the new key is "
            "then read through the node and pinned"
        )

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


_PYINFRA_HOST_KEY_ADVICE = (
    "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!",
    "Someone could be eavesdropping",
    "If this is expected, you can remove the bad key",
    "    ssh-keygen -R ",
)


class _DropHostKeyAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_PYINFRA_HOST_KEY_ADVICE)


@contextlib.contextmanager
def _without_pyinfra_host_key_advice() -> Iterator[None]:
    """pyinfra's SSH connector answers a changed host key with advice for
    ``~/.ssh/known_hosts`` (pyinfra/connectors/ssh.py ``_connect``); the container's key is
    in the managed file, and :meth:`PveContainerConnector._changed` says what to do there."""
    drop = _DropHostKeyAdvice()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
