"""Tailscale: apt install, tailscaled, `tailscale up` and `tailscale serve` (runbook §2, §9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyinfra.api import OperationError, deploy

from .operations import tailscale_login, tailscale_package, tailscale_serve
from .plan import Published
from .settings import KEYRING_PIN_FIX, keyring_pin_problem

if TYPE_CHECKING:
    from ..services.settings import Service
    from ..settings import Settings
    from .settings import TailscaleSettings


def node_name(settings: Settings) -> str:
    """The node's tailnet name: ``tailscale_hostname``, else the container's hostname."""
    return str(settings.tailscale_hostname or settings.ct_hostname)


def served_services(services: Sequence[Service]) -> list[Published]:
    """What ``tailscale serve`` publishes: every service whose ``publish`` is not 'off',
    each proxied to where uvicorn listens."""
    return [
        Published(
            name=svc.name,
            scheme=svc.publish,
            port=svc.tailnet_port,
            # serve's proxy is local; uvicorn on localhost/0.0.0.0 answers on 127.0.0.1.
            target="http://{}:{}".format(
                "127.0.0.1" if svc.host in ("localhost", "0.0.0.0") else svc.host, svc.port
            ),
            setting=f"services[{index}].publish",
        )
        for index, svc in enumerate(services)
        if svc.publish != "off"
    ]


@deploy("Tailscale")
def join_tailnet(settings: Settings) -> None:
    """Install Tailscale from its signed repository and log the node in (runbook §2)."""
    if not settings.tailscale_enabled:
        return
    # While the deploy is loaded, before any operation runs (also with -y): an empty pin
    # would otherwise stop the run only at this step, after the packages were installed.
    problem = keyring_pin_problem(settings.tailscale_enabled, settings.tailscale_keyring_sha256)
    if problem:
        raise OperationError(f"{problem}; nothing was changed. To pin it: {KEYRING_PIN_FIX}")
    tailscale_package(
        name="Install tailscale from its signed apt repository, tailscaled running",
        repo_url=settings.tailscale_repo_url,
        keyring_url_template=settings.tailscale_keyring_url,
        keyring_sha256=settings.tailscale_keyring_sha256,
        version=settings.tailscale_version,
        userspace=settings.tailscale_userspace,
        lock_timeout=settings.apt_lock_timeout,
        cache_time=settings.apt_cache_time,
    )
    tailscale_login(
        name=f"Logged in to the tailnet as {node_name(settings)}",
        hostname=node_name(settings),
        flags=list(settings.tailscale_extra_up_flags),
        authkey_source=dict(settings.tailscale_authkey_source),
        login_server=settings.tailscale_login_server,
    )


@deploy("Tailscale serve")
def publish_services(targets: list[Published], hostname: str, settings: TailscaleSettings) -> None:
    """Publish ``targets`` in the tailnet of the node called ``hostname`` (runbook §2, §9)."""
    if not settings.tailscale_enabled or not settings.tailscale_serve or not targets:
        return
    tailscale_serve(
        name="Publish "
        + ", ".join(f"{s.name} on {s.scheme.upper()} {s.port}" for s in targets)
        + (" (funnel)" if settings.tailscale_funnel else ""),
        services=targets,
        hostname=hostname,
        funnel=settings.tailscale_funnel,
        reset_foreign=settings.tailscale_serve_reset_foreign,
    )
