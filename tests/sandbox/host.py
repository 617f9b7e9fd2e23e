"""Host preparation: packages, the bridge with NAT, and the long-running host services."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from . import paths

HOST_PACKAGES = (
    "debootstrap",
    "systemd-container",
    "iproute2",
    "iptables",
    "openssh-client",
    "git",
)


def run(*cmd: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def require_root_linux() -> str | None:
    """None when the sandbox can run here, else the reason it cannot."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return "the sandbox needs Linux (systemd-nspawn containers)"
    if os.geteuid() != 0:
        return "the sandbox needs root (containers, network namespaces, overlay mounts)"
    return None


def ensure_packages() -> None:
    missing = [
        p
        for p in HOST_PACKAGES
        if run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", p, check=False).stdout.strip() != "ii"
    ]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )


def ensure_network() -> None:
    """A bridge for the containers, with NAT so they reach the package registries."""
    if run("ip", "link", "show", paths.BRIDGE, check=False).returncode != 0:
        run("ip", "link", "add", paths.BRIDGE, "type", "bridge")
    if f"{paths.HOST_IP}/24" not in run("ip", "-br", "addr", "show", paths.BRIDGE).stdout:
        run("ip", "addr", "add", f"{paths.HOST_IP}/24", "dev", paths.BRIDGE)
    run("ip", "link", "set", paths.BRIDGE, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    subnet = f"{paths.SUBNET}.0/24"
    rules = [
        ("nat", "POSTROUTING", ["-s", subnet, "!", "-o", paths.BRIDGE, "-j", "MASQUERADE"]),
        ("filter", "FORWARD", ["-i", paths.BRIDGE, "-j", "ACCEPT"]),
        ("filter", "FORWARD", ["-o", paths.BRIDGE, "-j", "ACCEPT"]),
    ]
    for table, chain, rule in rules:
        if run("iptables", "-t", table, "-C", chain, *rule, check=False).returncode != 0:
            run("iptables", "-t", table, "-I", chain, *rule)


INOTIFY_INSTANCES = 1024
"""Floor for fs.inotify.max_user_instances. Every container's systemd, journald, logind ...
holds inotify instances under the host's root uid (about 7 per booted container, counted
here); Debian's default of 128 stops the ~20th container at boot with "Failed to create
control group inotify object: Too many open files" (systemd then exits PID 1). The bench's
fleet of 16 runs beside the shell and Ansible sets."""


def ensure_inotify_instances(floor: int = INOTIFY_INSTANCES) -> None:
    knob = Path("/proc/sys/fs/inotify/max_user_instances")
    if int(knob.read_text()) < floor:
        knob.write_text(f"{floor}\n")


def _listening(port: int, address: str = paths.HOST_IP) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def daemon(
    name: str,
    cmd: list[str],
    port: int,
    *,
    address: str = paths.HOST_IP,
    env: dict[str, str] | None = None,
) -> None:
    """Start a host service in the background unless something already listens on
    ``address:port``; wait until it does (``stop_services`` stops it)."""
    if _listening(port, address):
        return
    paths.RUN.mkdir(parents=True, exist_ok=True)
    log = open(paths.RUN / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    (paths.RUN / f"{name}.pid").write_text(f"{proc.pid}\n")
    for _ in range(100):
        if _listening(port, address):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not start; see {paths.RUN / f'{name}.log'}")


def ensure_services() -> None:
    """git daemon (the app repositories) and an HTTP server (extension and apt repositories)."""
    paths.GIT_ROOT.mkdir(parents=True, exist_ok=True)
    paths.WWW_ROOT.mkdir(parents=True, exist_ok=True)
    git = shutil.which("git") or "git"
    daemon(
        "git-daemon",
        [
            git,
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={paths.GIT_ROOT}",
            f"--listen={paths.HOST_IP}",
            str(paths.GIT_ROOT),
        ],
        9418,
    )
    import sys

    daemon(
        "http",
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            paths.HOST_IP,
            "--directory",
            str(paths.WWW_ROOT),
            str(paths.HTTP_PORT),
        ],
        paths.HTTP_PORT,
    )


def stop_services() -> None:
    import os
    import signal

    for pidfile in paths.RUN.glob("*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)
        pidfile.unlink(missing_ok=True)
