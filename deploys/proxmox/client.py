"""Proxmox VE API client for the deploy (proxmoxer ``https`` backend).

Security defaults:

* TLS is verified.  ``ca_bundle`` names the PVE root CA (``/etc/pve/pve-root-ca.pem``);
  without it the system trust store is used.  ``verify`` is passed with *every* request, so
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the environment cannot replace the
  configured CA (requests prefers those variables over ``Session.verify``).
* ``fingerprint`` pins the server certificate's SHA-256 fingerprint (a requests adapter with
  urllib3's ``assert_fingerprint``); with a ``ca_bundle`` as well, both must hold.
* ``insecure=True`` switches verification off and warns every time a client is built.
* Secrets (token secret, password) live in :class:`pyinfra.api.HiddenValue` and never show
  up in ``repr``/``str``, log records or exception messages.

Transport: request timeout (default 30 s), AnyEvent proxy errors 595/596 retried with
exponential backoff (bounded count and total time), booleans sent as ``1``/``0``.
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.backends.https import ProxmoxHTTPAuthBase
from pyinfra.api import HiddenValue
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, cookiejar_from_dict

log = logging.getLogger(__name__)

DEFAULT_PORT = 8006
DEFAULT_TIMEOUT = 30.0
RETRY_STATUSES = frozenset({595, 596})
TICKET_RENEW_AGE = 3600.0

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8,9}:"
    r"[0-9A-Fa-f]{8}:(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)


# --------------------------------------------------------------------------- exceptions


class InsecureTLSWarning(UserWarning):
    """Emitted whenever a client is built with TLS verification switched off."""


class PveError(Exception):
    """An API call failed.

    ``status_code`` is the HTTP status (0 for transport errors), ``reason`` PVE's message (the
    HTTP reason phrase, e.g. ``CT 100 already exists on node 'pve'``), ``errors`` the
    per-parameter errors of a 400 (``{"memory": "value must have a minimum value of 16"}``).
    """

    def __init__(
        self,
        status_code: int,
        reason: str,
        errors: Mapping[str, str] | None = None,
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.errors: dict[str, str] = dict(errors or {})
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        text = f"{where}{self.status_code} {self.reason}".rstrip()
        if self.errors:
            details = "; ".join(
                f"{key}: {' '.join(str(msg).split())}" for key, msg in sorted(self.errors.items())
            )
            text += f" ({details})"
        return text

    def __str__(self) -> str:
        return self._render()


class PveAuthError(PveError):
    """401: missing/bad credentials, or a bad CSRF token."""


class PvePermissionError(PveError):
    """403: ``Permission check failed (...)``."""


class PveConnectionError(PveError):
    """The request did not get an HTTP answer (refused, timed out, reset)."""


class PveTLSError(PveConnectionError):
    """TLS verification failed (untrusted certificate, fingerprint mismatch, bad hostname)."""


class PveTaskError(Exception):
    """A task ended with an error, or did not end in time (see :class:`PveTaskTimeout`)."""

    def __init__(self, upid: str, exitstatus: str | None, log_lines: list[str]) -> None:
        self.upid = upid
        self.exitstatus = exitstatus
        self.log_lines = list(log_lines)
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"task {self.upid} failed: {self.exitstatus}"
        if self.log_lines:
            text += "\n" + "\n".join(f"  | {line}" for line in self.log_lines)
        return text


class PveTaskTimeout(PveTaskError):
    """The task was still running when the wait timed out."""

    def __init__(self, upid: str, timeout: float, log_lines: list[str] | None = None) -> None:
        self.timeout = timeout
        super().__init__(upid, None, log_lines or [])

    def _render(self) -> str:
        return f"task {self.upid} still running after {self.timeout:g}s"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TaskResult:
    """A task that finished successfully (``OK`` or ``WARNINGS: n``)."""

    upid: str
    exitstatus: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerRef:
    """Where a container lives (from ``/cluster/resources``)."""

    node: str
    vmid: int
    status: str
    name: str | None = None


def parse_upid(upid: str) -> dict[str, str]:
    """Split a UPID into node/type/id/user; raises ValueError when malformed."""
    m = UPID_RE.match(upid)
    if not m:
        raise ValueError(f"not a PVE UPID: {upid!r}")
    return {k: m.group(k) for k in ("node", "type", "id", "user")}


def normalize_fingerprint(fingerprint: str) -> str:
    """``AA:BB:..`` / ``aabb..`` → ``aa:bb:..`` (64 hex digits, SHA-256)."""
    hexdigits = re.sub(r"[:\s]", "", fingerprint).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigits):
        raise ValueError("fingerprint must be a SHA-256 digest (64 hex digits)")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


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


# --------------------------------------------------------------------------- transport


class _FingerprintAdapter(HTTPAdapter):
    """Pins the peer certificate's SHA-256 fingerprint (urllib3 ``assert_fingerprint``)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


class _TokenAuth(ProxmoxHTTPAuthBase):
    """API token header; the secret is unmasked only while building a request."""

    def __init__(self, token_id: str, secret: HiddenValue, verify: bool | str, timeout: float):
        super().__init__(timeout=timeout, service="PVE", verify_ssl=verify)
        self._token_id = token_id
        self._secret = secret

    def __call__(self, req: Any) -> Any:
        req.headers["Authorization"] = f"PVEAPIToken={self._token_id}={self._secret.unmask()}"
        return req

    def __repr__(self) -> str:
        return f"<PVE token auth {self._token_id}>"


class _TicketAuth(ProxmoxHTTPAuthBase):
    """Ticket cookie + ``CSRFPreventionToken`` on non-GET; renews the ticket after 1 h."""

    def __init__(
        self,
        user: str,
        password: HiddenValue,
        login_session: requests.Session,
        base_url: str,
        verify: bool | str,
        timeout: float,
    ) -> None:
        super().__init__(timeout=timeout, service="PVE", verify_ssl=verify)
        self._user = user
        self._password = password
        self._session = login_session
        self._base_url = base_url
        self._ticket = HiddenValue("")
        self._csrf = HiddenValue("")
        self._birth = 0.0
        self._login(password)

    def _login(self, password: HiddenValue) -> None:
        path = "/access/ticket"
        try:
            resp = self._session.post(
                self._base_url + path,
                data={"username": self._user, "password": password.unmask()},
                verify=self.verify_ssl,
                timeout=self.timeout,
            )
        except requests.exceptions.SSLError as exc:
            raise PveTLSError(0, _transport_reason(exc), method="POST", path=path) from None
        except requests.exceptions.RequestException as exc:
            raise PveConnectionError(0, _transport_reason(exc), method="POST", path=path) from None
        if resp.status_code != 200:
            cls = PveAuthError if resp.status_code == 401 else PveError
            raise cls(resp.status_code, resp.reason or "", method="POST", path=path)
        data = resp.json()["data"]
        if data.get("NeedTFA"):
            raise PveAuthError(401, "second factor required (not supported)", path=path)
        self._ticket = HiddenValue(data["ticket"])
        self._csrf = HiddenValue(data["CSRFPreventionToken"])
        self._birth = time.monotonic()

    def get_cookies(self) -> RequestsCookieJar:
        if time.monotonic() - self._birth >= TICKET_RENEW_AGE:
            self._login(self._ticket)
        return cookiejar_from_dict({"PVEAuthCookie": self._ticket.unmask()})

    def get_tokens(self) -> tuple[str, str]:
        return self._ticket.unmask(), self._csrf.unmask()

    def __call__(self, req: Any) -> Any:
        if req.method != "GET":
            req.headers["CSRFPreventionToken"] = self._csrf.unmask()
        return req

    def __repr__(self) -> str:
        return f"<PVE ticket auth {self._user}>"


def _transport_reason(exc: BaseException) -> str:
    text = str(exc)
    for hint in ("CERTIFICATE_VERIFY_FAILED", "Fingerprints did not match", "hostname"):
        if hint in text:
            m = re.search(r"(\[SSL: [^\]]+\][^')\"]*|Fingerprints did not match[^')\"]*)", text)
            return m.group(1).strip() if m else text
    return text


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
        host, port = _split_host(host, port)
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
        # proxmoxer builds the session; we replace its auth object so that the secret stays
        # masked and verification/pinning apply to every request (incl. the ticket login)
        self._api = ProxmoxAPI(
            f"{bracketed}:{port}",
            backend="https",
            user="placeholder@pve",
            token_name="placeholder",
            token_value="",
            verify_ssl=self.verify,
            timeout=self.timeout,
        )
        session: requests.Session = self._api._store["session"]
        if self.fingerprint is not None:
            session.mount("https://", _FingerprintAdapter(self.fingerprint))
        if token_id is not None:
            auth: ProxmoxHTTPAuthBase = _TokenAuth(token_id, secret, self.verify, self.timeout)
        else:
            login = requests.Session()
            if self.fingerprint is not None:
                login.mount("https://", _FingerprintAdapter(self.fingerprint))
            assert user is not None
            auth = _TicketAuth(user, secret, login, self.base_url, self.verify, self.timeout)
        session.auth = auth
        self._api._backend.auth = auth

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
                err = _from_resource_exception(exc, method, path)
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
                raise PveTLSError(0, _transport_reason(exc), method=method, path=path) from None
            except requests.exceptions.RequestException as exc:
                raise PveConnectionError(
                    0, _transport_reason(exc), method=method, path=path
                ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params)

    def post(self, path: str, **params: Any) -> Any:
        return self.request("POST", path, params)

    def put(self, path: str, **params: Any) -> Any:
        return self.request("PUT", path, params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params)

    # ------------------------------------------------------------------ tasks
    def task_status(self, upid: str) -> dict[str, Any]:
        node = parse_upid(upid)["node"]
        return dict(self.get(f"/nodes/{node}/tasks/{upid}/status"))

    def task_log(self, upid: str, last: int = 20) -> list[str]:
        """The last ``last`` lines of a task log."""
        node = parse_upid(upid)["node"]
        path = f"/nodes/{node}/tasks/{upid}/log"
        # proxmoxer returns only ``data`` (not ``total``), so page through the log
        lines: list[str] = []
        start = 0
        page = 500
        while True:
            chunk = self.request("GET", path, {"start": start, "limit": page}) or []
            lines.extend(str(item.get("t", "")) for item in chunk)
            if len(chunk) < page:
                break
            start += page
        if lines == ["no content"]:
            return []
        return lines[-last:] if last else lines

    def wait_task(
        self, upid: str, timeout: float = 300.0, poll_interval: float | None = None
    ) -> TaskResult:
        """Poll until the task stops.  ``OK``/``WARNINGS: n`` → result; else PveTaskError."""
        interval_cap = self.poll_interval if poll_interval is None else poll_interval
        deadline = time.monotonic() + timeout
        interval = min(0.1, interval_cap)
        while True:
            status = self.task_status(upid)
            if status.get("status") == "stopped":
                exitstatus = str(status.get("exitstatus", ""))
                if exitstatus == "OK":
                    return TaskResult(upid, exitstatus, [])
                if exitstatus.startswith("WARNINGS:"):
                    lines = self.task_log(upid, last=0)
                    warns = [ln for ln in lines if ln.startswith("WARN")]
                    warns = [ln for ln in warns if not ln.startswith("TASK WARNINGS")]
                    return TaskResult(upid, exitstatus, warns)
                raise PveTaskError(upid, exitstatus, self.task_log(upid, last=20))
            now = time.monotonic()
            if now >= deadline:
                raise PveTaskTimeout(upid, timeout)
            time.sleep(min(interval, max(0.0, deadline - now)))
            interval = min(interval * 2, interval_cap)

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


def _split_host(host: str, port: int | None) -> tuple[str, int]:
    host = host.strip().removeprefix("https://").rstrip("/")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", host)
    if m:
        return m.group(1), int(m.group(2) or port or DEFAULT_PORT)
    if host.count(":") == 1:
        name, _, p = host.partition(":")
        return name, int(p)
    return host, int(port or DEFAULT_PORT)


def _from_resource_exception(exc: ResourceException, method: str, path: str) -> PveError:
    status = int(exc.status_code)
    reason = str(exc.content or exc.status_message or "").strip()
    errors: dict[str, str] = {}
    if isinstance(exc.errors, dict):
        errors = {
            str(k): str(v) for k, v in exc.errors.items() if isinstance(v, str) and k != "errors"
        }
    cls: type[PveError] = PveError
    if status == 401:
        cls = PveAuthError
    elif status == 403:
        cls = PvePermissionError
    return cls(status, reason, errors, method=method, path=path)
