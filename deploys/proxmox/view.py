"""The container as the Proxmox node shows it: one read per run that the stage decides from.

A fact evaluated on the controller. The stage builds one :class:`ContainerView` per node
host and run and hands it to the privilege check and to every ``ct_*`` operation (their
``ct`` argument); each part is read the first time something asks for it, then kept:

- where the container is: ``GET /cluster/resources`` (``ct_vmid``, or ``ct_hostname``
  cluster-wide), once
- its config (pending values merged), its status, its pending keys (while it runs)
- the template storage's listing
- with the raw TUN method, its conf file on the node and the restart a TUN change
  recorded beside it (one command over the node's SSH)

As :mod:`deploys.common.snapshot` does for target facts, the read is trusted only while
nothing has changed the container: a command an operation yields while executing drops
it (:func:`operation`, :meth:`ContainerView.changing`) and the next question reads again,
so a run that creates, patches or starts the container decides the later steps from what
that did. What was read while preparing is read again when execution starts if the run
stopped to ask (an interactive run; the container may have changed meanwhile); with
``-y`` the run goes straight on, and what the privilege check read is what the
operations decide from.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pyinfra.api import OperationError
from pyinfra.api import operation as pyinfra_operation
from pyinfra.api.operation import PyinfraOperation

from .access import Pve, client, find, node_name
from .facts import PveConfFile
from .spec import pending_keys
from .tun import marker_path

if TYPE_CHECKING:
    from pyinfra.api.host import Host

    from .client import ContainerRef, PveClient

T = TypeVar("T")


class ContainerView:
    """One container's state as the API (and, for the raw TUN method, the node's conf
    file) shows it, read lazily and cached for the run (see the module doc).

    + pve: the API connection and which container (:class:`.access.Pve`)
    + node_host: the pyinfra host of the Proxmox node (its state, and its SSH for the
      conf file)
    + conf_dir: the node's conf directory when the conf file is read (raw TUN), else None
    """

    def __init__(self, pve: Pve, node_host: Host, conf_dir: str | None = None) -> None:
        self.pve = pve
        self.conf_dir = conf_dir
        self._host = node_host
        self._values: dict[str, Any] = {}
        self._executing = False

    def __repr__(self) -> str:
        return f"ContainerView({self.pve.hostname} on {self.pve.host})"

    @property
    def api(self) -> PveClient:
        return client(self.pve)

    # --- what the operations ask ------------------------------------------------------

    def node(self) -> str:
        """The node the stage works on (``pve_node``, or the cluster's only node)."""
        return self._read("node", lambda: node_name(self.pve))

    def ref(self) -> ContainerRef | None:
        """Where the container is; None when it does not exist (or the API hides it)."""
        return self._read("ref", lambda: find(self.pve))

    def require(self) -> ContainerRef | None:
        """:meth:`ref`; while executing its absence is an error (the create failed)."""
        ref = self.ref()
        if ref is None and self._host.state.is_executing:
            raise OperationError(
                f"CT {self.pve.hostname} not found on {self.pve.host} (was it created? the "
                "API lists only containers the token has VM.Audit on)"
            )
        return ref

    def config(self) -> dict[str, Any]:
        """``GET …/config`` (pending values merged); {} when the container does not exist."""
        ref = self.ref()
        if ref is None:
            return {}
        return self._read("config", lambda: self.api.container_config(ref.node, ref.vmid))

    def status(self) -> str:
        """``running``, ``stopped`` (``GET …/status/current``), or ``absent``."""
        ref = self.ref()
        if ref is None:
            return "absent"
        status = self._read("status", lambda: self.api.container_status(ref.node, ref.vmid))
        return str(status.get("status"))

    def pending(self) -> list[str]:
        """Keys waiting in ``[pve:pending]`` until the next start (read while it runs)."""
        ref = self.ref()
        if ref is None or self.status() != "running":
            return []
        return self._read("pending", lambda: pending_keys(self.api.pending(ref.node, ref.vmid)))

    def templates(self, storage: str) -> set[str]:
        """The volume ids of the templates on ``storage``."""

        def listing() -> set[str]:
            items = self.api.storage_content(self.node(), storage, "vztmpl")
            return {str(item.get("volid")) for item in items}

        return self._read(f"templates {storage}", listing)

    def next_vmid(self) -> int:
        """The vmid a create would take: ``ct_vmid``, or the cluster's next free id."""
        return self.pve.vmid or self._read("nextid", self.api.next_id)

    def conf_file(self) -> dict[str, Any]:
        """The container's conf file on the node and the restart recorded beside it
        (:class:`.facts.PveConfFile`, plus its ``path``); the fact's default when the
        container does not exist."""
        ref = self.ref()
        if ref is None or self.conf_dir is None:
            return {**PveConfFile.default(), "path": None}
        path = f"{self.conf_dir}/{ref.vmid}.conf"

        def read() -> dict[str, Any]:
            fact = {"path": path, "marker": marker_path(path)}
            conf: dict[str, Any] = self._host.get_fact(PveConfFile, **fact)
            return {**conf, "path": path}

        return self._read("conf", read)

    # --- the cache ----------------------------------------------------------------------

    def changing(self) -> None:
        """An operation is about to change the container: while executing, forget what
        was read (preparing changes nothing)."""
        if self._host.state.is_executing:
            self._executing = True
            self._values.clear()

    def _read(self, key: str, read: Callable[[], T]) -> T:
        state = self._host.state
        if state.is_executing and not self._executing:
            self._executing = True
            if state.should_check_for_changes():  # the run stopped to ask: read again
                self._values.clear()
        if key not in self._values:
            self._values[key] = read()
        return copy.deepcopy(self._values[key])


def operation(
    **options: Any,
) -> Callable[[Callable[..., Generator[Any, None, None]]], PyinfraOperation[...]]:
    """pyinfra's ``@operation()`` for the node's operations, as
    :func:`deploys.common.snapshot.operation` is for a target fact: the operation decides
    from its first argument ``ct``, the run's :class:`ContainerView`, and each command it
    yields while executing drops that read (what is asked after it is read again)."""

    def decorate(func: Callable[..., Generator[Any, None, None]]) -> PyinfraOperation[...]:
        @functools.wraps(func)
        def commands(ct: ContainerView, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
            for command in func(ct, *args, **kwargs):
                ct.changing()
                yield command

        return cast(PyinfraOperation[...], pyinfra_operation(**options)(commands))

    return decorate
