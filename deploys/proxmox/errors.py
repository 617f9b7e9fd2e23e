"""What a Proxmox API call or task can fail with, as the deploy reports it.

Every message is PVE's own text (the HTTP reason phrase, a task's exit status and log), and
none carries a secret: the transport errors are cut to the TLS or connection reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from proxmoxer import ResourceException


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


def from_resource_exception(exc: ResourceException, method: str, path: str) -> PveError:
    """proxmoxer's error for an HTTP status >= 400, as the :class:`PveError` for that status.
    proxmoxer puts PVE's message (the reason phrase) in ``content`` and the standard text
    for the status in ``status_message``."""
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


def transport_reason(exc: BaseException) -> str:
    """A transport error's reason, cut to the TLS verdict when it is one."""
    text = str(exc)
    for hint in ("CERTIFICATE_VERIFY_FAILED", "Fingerprints did not match", "hostname"):
        if hint in text:
            m = re.search(r"(\[SSL: [^\]]+\][^')\"]*|Fingerprints did not match[^')\"]*)", text)
            return m.group(1).strip() if m else text
    return text
