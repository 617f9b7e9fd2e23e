"""Proxmox VE API client for the deploy: the calls it makes, each returning PVE's ``data``.

Authentication and TLS are :mod:`.transport`'s (token or password ticket, CA or pinned
fingerprint, secrets masked), the errors :mod:`.errors`', waiting for a task :mod:`.tasks`'.
Here: the request timeout (default 30 s), AnyEvent proxy errors 595/596 retried with
exponential backoff (bounded count and total time), booleans sent as ``1``/``0``.
``insecure=True`` switches verification off and warns every time a client is built.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from proxmoxer import ResourceException
from proxmoxer.backends.https import ProxmoxHTTPAuthBase
from pyinfra.api import HiddenValue

from .errors import (
    PveConnectionError,
    PveTLSError,
    from_resource_exception,
    transport_reason,
)
from .transport import (
    InsecureTLSWarning,
    TicketAuth,
    TokenAuth,
    api_root,
    normalize_fingerprint,
    split_host,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({595, 596})


@dataclass(frozen=True)
class ContainerRef:
    """Where a container lives (from ``/cluster/resources``)."""

    node: str
    vmid: int
    status: str
    name: str | None = None


def to_wire(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Drop ``None`` values, turn booleans into ``1``/``0`` (PVE refuses ``True``)."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = 1 if value else 0
        elif isinstance(value, HiddenValue):
            out[key] = value.unmask()
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- client


class PveClient:
    """Typed wrapper around proxmoxer for the calls the deploy needs.

    Authenticate with an API token (``token_id="deploy@pve!pyinfra"``, ``token_secret``) or
    with a password ticket (``user="root@pam"``, ``password``) -- only a root@pam ticket
    may set ``dev[n]``/features other than nesting.
    """

    def __init__(
        self,
        host: str,
        *,
        token_id: str | None = None,
        token_secret: str | HiddenValue | None = None,
        user: str | None = None,
        password: str | HiddenValue | None = None,
        port: int | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        fingerprint: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 4,
        retry_backoff: float = 0.5,
        retry_max_time: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        host, port = split_host(host, port)
        self.host = host
        self.port = port
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.retry_backoff = float(retry_backoff)
        self.retry_max_time = float(retry_max_time)
        self.poll_interval = float(poll_interval)
        self.insecure = bool(insecure)
        self.ca_bundle = os.fspath(ca_bundle) if ca_bundle is not None else None
        self.fingerprint = normalize_fingerprint(fingerprint) if fingerprint else None
        if self.insecure:
            msg = (
                f"TLS verification is disabled for the Proxmox API at {host}:{port} "
                "(insecure=True); anyone on the path can read the API token"
            )
            warnings.warn(msg, InsecureTLSWarning, stacklevel=2)
            log.warning(msg)
            self.verify: bool | str = False
        elif self.ca_bundle is not None:
            if not os.path.isfile(self.ca_bundle):
                raise ValueError(f"CA bundle {self.ca_bundle!r} does not exist")
            self.verify = self.ca_bundle
        elif self.fingerprint is not None:
            self.verify = False  # the pin replaces chain verification
        else:
            self.verify = True

        if token_id is not None:
            if token_secret is None or user is not None or password is not None:
                raise ValueError("use token_id + token_secret, or user + password")
            if not re.fullmatch(r"[^\s!@]+@[^\s!@]+![A-Za-z][A-Za-z0-9.\-_]+", token_id):
                raise ValueError(f"token id must look like user@realm!name, got {token_id!r}")
            self.auth_id = token_id
            secret = _hidden(token_secret)
        elif user is not None and password is not None:
            self.auth_id = user
            secret = _hidden(password)
        else:
            raise ValueError("no credentials: pass token_id + token_secret or user + password")

        bracketed = f"[{host}]" if ":" in host else host
        self.base_url = f"https://{bracketed}:{port}/api2/json"
        auth: ProxmoxHTTPAuthBase
        if token_id is not None:
            auth = TokenAuth(token_id, secret, self.verify, self.timeout)
        else:
            auth = TicketAuth(
                self.auth_id, secret, self.base_url, self.verify, self.timeout, self.fingerprint
            )
        self._auth = auth
        self._api = api_root(self.base_url, auth, self.fingerprint)

    def get_tokens(self) -> tuple[str | None, str | None]:
        """The ticket and CSRF token of a password login, ``(None, None)`` for a token (as
        proxmoxer's ``ProxmoxAPI.get_tokens``)."""
        return self._auth.get_tokens()

    def __repr__(self) -> str:
        mode = "insecure" if self.insecure else ("pinned" if self.fingerprint else "verified")
        return f"PveClient({self.host}:{self.port}, auth={self.auth_id!r}, tls={mode})"

    __str__ = __repr__

    # ------------------------------------------------------------------ raw calls
    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``METHOD /api2/json<path>``; returns ``data``.  Retries 595/596."""
        method = method.upper()
        segments = [s for s in path.split("/") if s]
        wire = to_wire(params)
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                log.debug("PVE %s %s", method, path)
                resource = self._api(segments)
                if method == "GET":
                    return resource.get(**wire)
                if method == "POST":
                    return resource.post(**wire)
                if method == "PUT":
                    return resource.put(**wire)
                if method == "DELETE":
                    return resource.delete(**wire)
                raise ValueError(f"unsupported method {method}")
            except ResourceException as exc:
                err = from_resource_exception(exc, method, path)
                elapsed = time.monotonic() - started
                delay = self.retry_backoff * (2**attempt)
                if (
                    err.status_code in RETRY_STATUSES
                    and attempt < self.retries
                    and elapsed + delay <= self.retry_max_time
                ):
                    log.warning(
                        "PVE %s %s answered %s %s; retrying in %.1fs",
                        method,
                        path,
                        err.status_code,
                        err.reason,
                        delay,
                    )
                    time.sleep(delay)
                    attempt += 1
                    continue
                raise err from None
            except requests.exceptions.SSLError as exc:
                raise PveTLSError(0, transport_reason(exc), method=method, path=path) from None
            except requests.exceptions.RequestException as exc:
                raise PveConnectionError(
                    0, transport_reason(exc), method=method, path=path
                ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params)

    def post(self, path: str, **params: Any) -> Any:
        return self.request("POST", path, params)

    def put(self, path: str, **params: Any) -> Any:
        return self.request("PUT", path, params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params)

    # ------------------------------------------------------------------ convenience
    def version(self) -> dict[str, Any]:
        return dict(self.get("/version"))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.get("/nodes"))

    def next_id(self) -> int:
        return int(self.get("/cluster/nextid"))

    def find_container(
        self, vmid: int | None = None, hostname: str | None = None
    ) -> ContainerRef | None:
        """Find an LXC container cluster-wide by vmid and/or hostname (None = not found)."""
        if vmid is None and hostname is None:
            raise ValueError("pass vmid and/or hostname")
        matches = []
        for item in self.get("/cluster/resources", type="vm") or []:
            if item.get("type") != "lxc":
                continue
            if vmid is not None and int(item.get("vmid", -1)) != int(vmid):
                continue
            if hostname is not None and item.get("name") != hostname:
                continue
            matches.append(item)
        if not matches:
            return None
        if len(matches) > 1:
            ids = ", ".join(str(m.get("vmid")) for m in matches)
            raise ValueError(f"hostname {hostname!r} is used by several containers: {ids}")
        item = matches[0]
        return ContainerRef(
            node=str(item["node"]),
            vmid=int(item["vmid"]),
            status=str(item.get("status", "unknown")),
            name=item.get("name"),
        )

    def container_config(self, node: str, vmid: int, current: bool = False) -> dict[str, Any]:
        return dict(self.get(f"/nodes/{node}/lxc/{vmid}/config", current=current or None))

    def container_status(self, node: str, vmid: int) -> dict[str, Any]:
        return dict(self.get(f"/nodes/{node}/lxc/{vmid}/status/current"))

    def pending(self, node: str, vmid: int) -> list[dict[str, Any]]:
        return list(self.get(f"/nodes/{node}/lxc/{vmid}/pending") or [])

    def create_container(self, node: str, params: Mapping[str, Any]) -> str:
        return str(self.request("POST", f"/nodes/{node}/lxc", params))

    def update_config(self, node: str, vmid: int, params: Mapping[str, Any]) -> None:
        self.request("PUT", f"/nodes/{node}/lxc/{vmid}/config", params)

    def start(self, node: str, vmid: int) -> str:
        return str(self.post(f"/nodes/{node}/lxc/{vmid}/status/start"))

    def stop(self, node: str, vmid: int) -> str:
        return str(self.post(f"/nodes/{node}/lxc/{vmid}/status/stop"))

    def shutdown(self, node: str, vmid: int, timeout: int | None = None) -> str:
        return str(self.post(f"/nodes/{node}/lxc/{vmid}/status/shutdown", timeout=timeout))

    def reboot(self, node: str, vmid: int, timeout: int | None = None) -> str:
        return str(self.post(f"/nodes/{node}/lxc/{vmid}/status/reboot", timeout=timeout))

    def destroy(self, node: str, vmid: int, purge: bool = True, force: bool = False) -> str:
        return str(self.delete(f"/nodes/{node}/lxc/{vmid}", purge=purge, force=force or None))

    def interfaces(self, node: str, vmid: int) -> list[dict[str, Any]] | None:
        result = self.get(f"/nodes/{node}/lxc/{vmid}/interfaces")
        return list(result) if result is not None else None

    def storage_content(
        self, node: str, storage: str, content: str | None = None
    ) -> list[dict[str, Any]]:
        return list(self.get(f"/nodes/{node}/storage/{storage}/content", content=content) or [])

    def aplinfo(self, node: str) -> list[dict[str, Any]]:
        return list(self.get(f"/nodes/{node}/aplinfo") or [])

    def download_template(self, node: str, storage: str, template: str) -> str:
        return str(self.post(f"/nodes/{node}/aplinfo", storage=storage, template=template))

    def permissions(self, path: str | None = None) -> dict[str, dict[str, int]]:
        """The caller's own effective privileges, ``{path: {privilege: propagate}}``: every
        path with an ACL entry (and the top ones), or just ``path`` (PVE's ``userid``
        defaults to the caller, a token included: it answers for the token itself)."""
        data = self.request("GET", "/access/permissions", {"path": path}) or {}
        return {str(k): {str(p): int(v) for p, v in dict(d).items()} for k, d in data.items()}


# --------------------------------------------------------------------------- helpers


def _hidden(value: str | HiddenValue) -> HiddenValue:
    return value if isinstance(value, HiddenValue) else HiddenValue(value)
