"""The emulator's API errors: an HTTP status and PVE's message (the reason phrase is its first
line), as ``pve-common:src/PVE/Exception.pm`` raises them."""

from __future__ import annotations


class PveError(Exception):
    """An API error: HTTP status, message (reason phrase = first line), optional errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message if message.endswith("\n") else message + "\n"
        self.errors = errors


def param_error(errors: dict[str, str]) -> PveError:
    """``raise_param_exc``: 400 with per-parameter messages."""
    return PveError(400, "Parameter verification failed.\n", errors)


def perm_error(what: str | None = None) -> PveError:
    """``raise_perm_exc``: 403 ``Permission check failed (WHAT)``, or bare without WHAT."""
    msg = "Permission check failed"
    if what:
        msg += f" ({what})"
    return PveError(403, msg + "\n")
