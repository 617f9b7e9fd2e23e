"""How the client reaches the API: TLS verification, the credentials on each request, and
proxmoxer's resource tree over a session built here.

- TLS is verified: against ``ca_bundle`` (the node's ``/etc/pve/pve-root-ca.pem``) or the
  system trust store. proxmoxer's session passes ``verify`` with *every* request, so
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` cannot replace a configured CA (requests
  prefers those variables over ``Session.verify``).
- ``fingerprint`` pins the server certificate's SHA-256 fingerprint (an adapter with
  urllib3's ``assert_fingerprint``); with a ``ca_bundle`` as well, both must hold. The
  ticket login goes through the same pin.
- Secrets stay :class:`pyinfra.api.HiddenValue` until a request is built: never in a
  ``repr``, a log record or an exception message.
"""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from proxmoxer import ProxmoxResource
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPAuthBase, ProxmoxHttpSession
from pyinfra.api import HiddenValue
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, cookiejar_from_dict

from .errors import PveAuthError, PveConnectionError, PveError, PveTLSError, transport_reason

DEFAULT_PORT = 8006
TICKET_RENEW_AGE = 3600.0
"""PVE tickets live 2 h; renewed after 1 h, as proxmoxer does (``ProxmoxHTTPAuth``)."""


class InsecureTLSWarning(UserWarning):
    """Emitted whenever a client is built with TLS verification switched off."""


def normalize_fingerprint(fingerprint: str) -> str:
    """``AA:BB:..`` / ``aabb..`` → ``aa:bb:..`` (64 hex digits, SHA-256)."""
    hexdigits = re.sub(r"[:\s]", "", fingerprint).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigits):
        raise ValueError("fingerprint must be a SHA-256 digest (64 hex digits)")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


def split_host(host: str, port: int | None) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or ``https://host/`` → (host, port)."""
    host = host.strip().removeprefix("https://").rstrip("/")
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", host)
    if m:
        return m.group(1), int(m.group(2) or port or DEFAULT_PORT)
    if host.count(":") == 1:
        name, _, p = host.partition(":")
        return name, int(p)
    return host, int(port or DEFAULT_PORT)


class FingerprintAdapter(HTTPAdapter):
    """Pins the peer certificate's SHA-256 fingerprint (urllib3 ``assert_fingerprint``)."""

    def __init__(self, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


def pinned(session: requests.Session, fingerprint: str | None) -> requests.Session:
    if fingerprint is not None:
        session.mount("https://", FingerprintAdapter(fingerprint))
    return session


class TokenAuth(ProxmoxHTTPAuthBase):
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


class TicketAuth(ProxmoxHTTPAuthBase):
    """Ticket cookie + ``CSRFPreventionToken`` on non-GET; renews the ticket after 1 h.

    The login is the deploy's own, not proxmoxer's ``ProxmoxHTTPAuth``: that one posts the
    password with a bare ``requests.post``, which a pinned fingerprint never reaches (with a
    pin and no CA, ``verify`` is off), and reports a refused login without PVE's reason."""

    def __init__(
        self,
        user: str,
        password: HiddenValue,
        base_url: str,
        verify: bool | str,
        timeout: float,
        fingerprint: str | None,
    ) -> None:
        super().__init__(timeout=timeout, service="PVE", verify_ssl=verify)
        self._user = user
        self._session = pinned(requests.Session(), fingerprint)
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
            raise PveTLSError(0, transport_reason(exc), method="POST", path=path) from None
        except requests.exceptions.RequestException as exc:
            raise PveConnectionError(0, transport_reason(exc), method="POST", path=path) from None
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


def api_root(base_url: str, auth: ProxmoxHTTPAuthBase, fingerprint: str | None) -> Any:
    """proxmoxer's resource tree (``root(["nodes", "pve"]).get()``) over a session built
    here: proxmoxer's own ``ProxmoxHttpSession`` (``verify``, the timeout and the cookies
    from ``auth`` on every request), with ``auth`` and the fingerprint pin.

    The one place the client leans on proxmoxer beyond its documented API. ``ProxmoxAPI``
    takes credentials only as the arguments it then sends itself, and offers no way to
    mount a transport adapter (the pin) or to hand it an auth object (the masked secret,
    the pinned ticket login). A :class:`proxmoxer.ProxmoxResource` is what ``ProxmoxAPI``
    is, built from the same three values it stores (``core.py``: ``base_url``, ``session``,
    ``serializer``); building it here needs no private attribute of proxmoxer's."""
    session = pinned(ProxmoxHttpSession(), fingerprint)
    session.auth = auth
    serializer = JsonSerializer()
    session.headers["Connection"] = "keep-alive"
    session.headers["accept"] = serializer.get_accept_types()
    return ProxmoxResource(base_url=base_url, session=session, serializer=serializer)
