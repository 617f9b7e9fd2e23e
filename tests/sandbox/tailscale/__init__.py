"""Real Tailscale in the sandbox: the pinned releases of tailscale/tailscaled and of the
control server headscale, built from their Go modules (``gobuild.py``); the ``tailscale``
.deb in a signed apt repository laid out like Tailscale's (``build.py``); headscale on the
sandbox host (``headscale.py``).

Versions are pinned together (headscale enforces a minimum client version only, see
shared notes/real-tailscale-headscale.md §1). tailscale 1.104.x needs Go 1.27.4, which this
machine cannot get; 1.102.5 is the newest release that builds with Go 1.26.
"""

from __future__ import annotations

from .gobuild import GoProgram

TAILSCALE_VERSION = "1.102.5"
HEADSCALE_VERSION = "0.29.3"

TAILSCALE = GoProgram(
    name="tailscale",
    module="tailscale.com",
    version=TAILSCALE_VERSION,
    commands=("cmd/tailscale", "cmd/tailscaled"),
    # The stamps Tailscale's own build_dist.sh sets: without them a module build reports
    # "<version>-ERR-BuildInfo" (version/version.go).
    ldflags=(
        f"-s -w -X tailscale.com/version.longStamp={TAILSCALE_VERSION}"
        f" -X tailscale.com/version.shortStamp={TAILSCALE_VERSION}"
    ),
)
HEADSCALE = GoProgram(
    name="headscale",
    module="github.com/juanfont/headscale",
    version=HEADSCALE_VERSION,
    commands=("cmd/headscale",),
)
