"""The shell the Tailscale operations run, built from plain values (no facts, no
decisions): each builder returns one command."""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra.api import QuoteString, StringCommand

from ..common.shell import download_pinned
from .facts import DEFAULTS_PATH, KEYRING_PATH
from .plan import Published

DEFAULT_PORT = 41641
"""tailscaled's UDP port, as the package's /etc/default/tailscaled sets it."""
KEY_DIR = "/run/egograph-deploy"
KEY_FILE = f"{KEY_DIR}/tailscale-authkey"
"""Where the auth key lives for the duration of one `tailscale up` (tmpfs, 0600)."""
UP_TIMEOUT = 120
RENAME_WAIT = 15
"""Seconds a rename waits for the node's new MagicDNS name (the next netmap: about a second)."""


def download_keyring(url: str, pin: str) -> StringCommand:
    """The pinned keyring in place: moved in only when its SHA-256 is the pin."""
    return download_pinned(
        url,
        KEYRING_PATH,
        pin,
        setting="tailscale_keyring_sha256",
        rotated="If Tailscale rotated its key, verify the new one and update the pin.",
    )


def set_defaults_flags(flags: str) -> StringCommand:
    """Set FLAGS= in tailscaled's environment file, keeping the rest of it. The package ships
    it as a conffile that dpkg keeps when it exists before the first install; written then,
    it also gets the package's PORT (the unit passes ``--port=${PORT}``)."""
    path = QuoteString(DEFAULTS_PATH)
    line = f'FLAGS="{flags}"'
    return StringCommand(
        "if [ ! -e",
        path,
        "]; then printf '%s\\n'",
        QuoteString(f'PORT="{DEFAULT_PORT}"'),
        QuoteString(line),
        ">",
        path,
        "; elif grep -q '^[[:space:]]*FLAGS=' ",
        path,
        "; then sed -i",
        QuoteString(f"s|^[[:space:]]*FLAGS=.*|{line}|"),
        path,
        "; else printf '%s\\n'",
        QuoteString(line),
        ">>",
        path,
        "; fi",
    )


DAEMON_SETTLE = 30
"""Seconds a (re)started tailscaled has to leave NoState (it reads its state, then asks the
control server: NeedsLogin, Stopped or Starting follow within a second or two)."""


def start_daemon(verb: str) -> StringCommand:
    """(Re)start tailscaled and check it stays up (Type=notify: active means ready); a
    failure shows the daemon's own last words. Then wait, bounded, until its backend has
    left ``NoState``: the login decision that follows must not take a node that is still
    reading its state for one that needs a key."""
    settling = (
        f"i=0; while [ $i -lt {DAEMON_SETTLE * 5} ]; do"
        " st=$(tailscale status --json --peers=false 2>/dev/null) &&"
        ' ! printf \'%s\' "$st" | grep -q \'"BackendState": "NoState"\' && break;'
        " sleep 0.2; i=$((i+1)); done"
    )
    return StringCommand(
        "systemctl reset-failed tailscaled.service 2>/dev/null;",
        "{ systemctl",
        verb,
        "tailscaled.service && systemctl is-active --quiet tailscaled.service; }",
        "|| { journalctl -u tailscaled.service -n 20 --no-pager >&2; exit 1; };",
        settling,
    )


def wait_for_new_name(old_dns: str) -> StringCommand:
    """Until the node's MagicDNS name is no longer ``old_dns`` (the control server renames
    it with the next netmap), at most RENAME_WAIT seconds: serve is keyed by that name. A
    name the tailnet's admin fixed never changes; then the wait ends with the time."""
    probe = (
        "tailscale status --json --peers=false 2>/dev/null"
        ' | sed -n \'s/^ *"DNSName": "\\([^"]*\\)".*/\\1/p\' | head -n 1'
    )
    return StringCommand(
        f'i=0; while [ $i -lt {RENAME_WAIT * 5} ] && [ "$({probe})" = ',
        QuoteString(old_dns + "."),
        "]; do sleep 0.2; i=$((i+1)); done",
    )


def serve_commands(missing: Sequence[Published], funnel: bool) -> list[StringCommand]:
    verb = "funnel" if funnel else "serve"
    commands = []
    for svc in missing:
        # Where the tailnet has not enabled HTTPS and the control server says the CLI need
        # not wait, serve prints how to enable it and exits 0 having saved nothing
        # (serve_legacy.go enableFeatureInteractive): the saved config must hold the
        # target afterwards.
        unsaved = (
            f"`tailscale {verb} --{svc.scheme}={svc.port} {svc.target}` saved nothing "
            f"(see its output above): {svc.setting} = {svc.scheme} cannot be served here"
        )
        commands.append(
            StringCommand(
                "tailscale",
                verb,
                "--bg",
                QuoteString(f"--{svc.scheme}={svc.port}"),
                QuoteString(svc.target),
                "&& { tailscale serve status --json | grep -qF",
                QuoteString(f'"{svc.target}"'),
                "|| { echo",
                QuoteString(unsaved),
                ">&2; exit 1; }; }",
            )
        )
    return commands
