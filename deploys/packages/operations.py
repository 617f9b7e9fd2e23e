"""apt operations that stay quiet when nothing has to change."""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.report import change_reason
from ..common.snapshot import fact_read, operation
from .facts import UPDATE_STAMP, AptState


def apt_get(lock_timeout: int, *args: Any) -> StringCommand:
    return StringCommand(
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "-q",
        "-y",
        "-o",
        f"DPkg::Lock::Timeout={lock_timeout}",
        "-o",
        'Dpkg::Options::="--force-confdef"',
        "-o",
        'Dpkg::Options::="--force-confold"',
        *args,
    )


def apt_update_for_source(lock_timeout: int, source_list: str, cache_time: int) -> StringCommand:
    """What adding a repository needs: when the other lists are younger than ``cache_time``
    (decided on the target, from the stamp), ``apt-get update`` of ``source_list`` alone,
    the other lists kept as they are and the stamp untouched; else a full :func:`apt_update`
    (the new packages' dependencies may come from the other repositories)."""
    only = apt_get(
        lock_timeout,
        "-o",
        StringCommand("Dir::Etc::sourcelist=", QuoteString(source_list), _separator=""),
        "-o",
        "Dir::Etc::sourceparts=-",
        "-o",
        "APT::Get::List-Cleanup=0",
        "update",
    )
    return StringCommand(
        f"if [ -e {UPDATE_STAMP} ] && "
        f"[ $(( $(date +%s) - $(stat -c %Y {UPDATE_STAMP}) )) -le {int(cache_time)} ];",
        "then",
        only,
        "; else",
        apt_update(lock_timeout),
        "; fi",
    )


def apt_update(lock_timeout: int) -> StringCommand:
    """``apt-get update``, then the stamp :class:`AptState` reads the lists' age from."""
    return StringCommand(
        apt_get(lock_timeout, "update"),
        "&&",
        "mkdir",
        "-p",
        "/var/lib/apt/periodic",
        "&&",
        "touch",
        UPDATE_STAMP,
    )


@operation(read=lambda packages, **_: fact_read(AptState, packages=packages))
def apt_packages(
    current: dict[str, Any],
    packages: list[str],
    *,
    cache_time: int = 86400,
    lock_timeout: int = 300,
) -> Any:
    """
    Install missing apt packages, refreshing the lists first only when they are older than
    ``cache_time`` — so a host that has everything never runs ``apt-get update``.

    + packages: names, optionally pinned as ``name=version``
    + cache_time: lists younger than this many seconds are used as they are
    + lock_timeout: seconds to wait for a dpkg/apt lock held by another process
      (unattended-upgrades, a second deploy) before failing with apt's message

    **Example:**

    .. code:: python

        apt_packages(name="Install git, curl", packages=["git", "curl"], cache_time=86400)
    """
    installed = current["installed"]
    missing = []
    for spec in packages:
        pkg, _, version = spec.partition("=")
        if pkg not in installed or (version and installed[pkg] != version):
            missing.append(spec)
    if not missing:
        host.noop(f"{', '.join(packages)} installed")
        return
    change_reason(f"not installed: {', '.join(missing)}")
    age = current["lists_age"]
    install = apt_get(
        lock_timeout, "install", "--no-install-recommends", *[QuoteString(p) for p in missing]
    )
    # One command (one round trip) for both steps.
    if age is None or age > cache_time:
        install = StringCommand(apt_update(lock_timeout), "&&", install)
    yield install
