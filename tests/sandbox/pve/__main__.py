"""CLI: ``python -m tests.sandbox.pve serve --version 9 --port 8006 --state-dir DIR``.

Prints one JSON line on stdout (``url``, ``api_url``, ``ca_path``, ``fingerprint``, ``node``,
``version``, ``pid`` and the configured credentials), then serves until SIGTERM/SIGINT.
Users and tokens come from ``--config FILE`` (JSON ``{"users": {...}, "tokens": {...},
"roles": {...}, "acl": [...], "pools": {...}}``, see :class:`.emulator.PveEmulator`);
without it, ``root@pam`` gets a random password and ``root@pam!emulator`` (privsep 0) a
random token secret (both printed in the JSON line -- this is a loopback test server).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .emulator import PveEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.pve")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="run the emulator until SIGTERM")
    serve.add_argument("--version", default="9.1", help="PVE version: 9, 9.1, 8 or 8.4")
    serve.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--state-dir", required=True)
    serve.add_argument("--node", default="pve")
    serve.add_argument("--config", help="JSON file with users/tokens")
    serve.add_argument("--auth-delay", type=float, default=3.0, help="delay of 401s (s)")
    serve.add_argument("--no-default-template", action="store_true")
    serve.add_argument("--template-source", help="directory with real template files")
    args = parser.parse_args(argv)

    users: dict[str, Any]
    tokens: dict[str, Any]
    access: dict[str, Any] = {}
    if args.config:
        cfg = json.loads(Path(args.config).read_text())
        users = cfg.get("users", {})
        tokens = cfg.get("tokens", {})
        access = {key: cfg[key] for key in ("roles", "acl", "pools") if key in cfg}
    else:
        users = {"root@pam": {"password": secrets.token_urlsafe(12)}}
        # privsep 0: the token has root's privileges (but is not root@pam: no dev[n] etc.)
        tokens = {"root@pam!emulator": {"secret": str(secrets.token_hex(16)), "privsep": 0}}
    kwargs: dict[str, Any] = dict(access)
    if args.no_default_template:
        kwargs["templates"] = ()
    emu = PveEmulator(
        args.state_dir,
        version=args.version,
        users=users,
        tokens=tokens,
        node=args.node,
        auth_delay=args.auth_delay,
        template_source=args.template_source,
        **kwargs,
    ).start(port=args.port, host=args.host)
    info = {
        "url": emu.url,
        "api_url": emu.api_url,
        "ca_path": str(emu.ca_path),
        "fingerprint": emu.fingerprint,
        "node": emu.node,
        "version": args.version,
        "pid": os.getpid(),
        "users": users,
        "tokens": tokens,
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
