"""The small checks settings are declared with, and the patterns behind them.

Each check takes a raw value (from group data, a hosts file or ``--data``) and says whether it
has the expected form; the form itself is written beside the setting, in words, for the
error message and the README.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

Check = Callable[[Any], bool]

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,200}$")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
HOSTNAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
GIT_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")
REPO_URL = re.compile(
    r"^(https?|ssh|git|file)://[^\s'\"]+$|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s'\"]+$"
)
HTTP_URL = re.compile(r"^https?://[^\s'\"]+$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
APT_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$")
EXTENSION = re.compile(r"^[a-z0-9_]{1,64}$")
STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
NET_HOST = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?)$")
TOKEN_ID = re.compile(r"^[^\s!@:]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]+$")
IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", re.IGNORECASE)
IMAGE_NAME = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
FINGERPRINT = re.compile(r"^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$")


def int_range(lo: int, hi: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def is_abs_path(v: Any) -> bool:
    if not isinstance(v, str) or not SAFE_PATH.match(v) or v == "/":
        return False
    return ".." not in PurePosixPath(v).parts


def matches(pattern: re.Pattern[str]) -> Check:
    return lambda v: isinstance(v, str) and bool(pattern.match(v))


def one_of(*choices: str) -> Check:
    return lambda v: isinstance(v, str) and v in choices


def list_of(check: Check, *, empty_ok: bool = True) -> Check:
    return lambda v: (
        isinstance(v, list) and (empty_ok or bool(v)) and all(check(item) for item in v)
    )


def env_mapping(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str)
        and ENV_KEY.match(k)
        and isinstance(val, str)
        and "\n" not in val
        and "\0" not in val
        for k, val in v.items()
    )


def template_url(v: Any) -> bool:
    return isinstance(v, str) and bool(HTTP_URL.match(v))


def optional_url(v: Any) -> bool:
    return v == "" or (isinstance(v, str) and bool(HTTP_URL.match(v)))


def optional_abs_path(v: Any) -> bool:
    return v == "" or is_abs_path(v)


def optional(pattern: re.Pattern[str]) -> Check:
    return lambda v: v == "" or (isinstance(v, str) and bool(pattern.match(v)))


def optional_text(v: Any) -> bool:
    return isinstance(v, str) and "\n" not in v and "\0" not in v


def is_ipv4(v: Any) -> bool:
    try:
        ipaddress.IPv4Address(v)
    except (ipaddress.AddressValueError, TypeError, ValueError):
        return False
    return isinstance(v, str)


def is_ipv4_cidr(v: Any) -> bool:
    if not isinstance(v, str) or "/" not in v:
        return False
    try:
        ipaddress.IPv4Interface(v)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError):
        return False
    return True
