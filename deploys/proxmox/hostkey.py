"""The container's SSH host key, trusted from nothing: read through the node, pinned in a
known_hosts file the deploy manages (setting ``ct_ssh_known_hosts``).

A new container's host key is never trusted on first contact. Before the deploy first
connects to a container it has no line for, it reads the key on the node (``pct exec
<vmid> -- cat /etc/ssh/ssh_host_ed25519_key.pub`` over the node's SSH, whose own host key
is checked against ``pve_ssh_known_hosts``) and pins it; the connector then connects with
strict host key checking against that file. A key that differs from the pinned one stops
the run (:class:`HostKeyChanged`): the file is never rewritten for a container it already
has a line for, except when this deploy re-creates or destroys that container.

Each line is ``<address> ssh-ed25519 <key> egograph-ct=<pve_host>/<ct_hostname>``
(``[<address>]:<port>`` off port 22, as OpenSSH writes it); the last field, a comment to
SSH, says which container the line is for, so a re-create or destroy drops exactly its
lines. The file is written atomically (a temporary file renamed over it), mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import ProxmoxSettings

HOST_KEY_PUB = "/etc/ssh/ssh_host_ed25519_key.pub"
KEY_TYPE = "ssh-ed25519"
TAG_PREFIX = "egograph-ct="


class HostKeyError(Exception):
    """The container's host key could not be read or pinned; the message says why."""


class HostKeyChanged(HostKeyError):
    """The container presents a host key other than the one pinned for it."""


@dataclass(frozen=True)
class HostKey:
    """An OpenSSH public host key: its type and base64 blob."""

    kind: str
    blob: str

    @classmethod
    def parse(cls, text: str, what: str) -> HostKey:
        """The key in a ``.pub`` file's text (``ssh-ed25519 AAAA… [comment]``)."""
        fields = text.strip().split()
        if len(fields) < 2 or fields[0] != KEY_TYPE:
            raise HostKeyError(f"{what}: expected an {KEY_TYPE} public key, got {text[:80]!r}")
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except (binascii.Error, ValueError):
            raise HostKeyError(f"{what}: the key is not base64: {fields[1][:40]!r}") from None
        # the blob starts with its own type, length-prefixed (RFC 4253 §6.6)
        if raw[4 : 4 + len(KEY_TYPE)] != KEY_TYPE.encode():
            raise HostKeyError(f"{what}: the key blob is not an {KEY_TYPE} key")
        return cls(fields[0], fields[1])

    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
        import hashlib

        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_name(address: str, port: int) -> str:
    """The name SSH looks a host up by in known_hosts (``[addr]:port`` off port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def container_tag(pve_host: str, hostname: str) -> str:
    """The comment that marks a line as this deploy's, for one container."""
    return f"{TAG_PREFIX}{pve_host}/{hostname}"


def _fields(line: str) -> list[str]:
    stripped = line.strip()
    return [] if not stripped or stripped.startswith("#") else stripped.split()


def pinned(text: str, name: str) -> list[HostKey]:
    """The keys ``text`` (a known_hosts file) pins for ``name`` (plain host names only:
    the deploy never hashes its lines)."""
    found = []
    for line in text.splitlines():
        fields = _fields(line)
        if len(fields) >= 3 and name in fields[0].split(","):
            found.append(HostKey(fields[1], fields[2]))
    return found


def without_container(text: str, tag: str) -> str:
    """``text`` without the lines marked for the container ``tag`` names."""
    kept = [line for line in text.splitlines(keepends=True) if tag not in _fields(line)[3:]]
    return "".join(kept)


def with_pin(text: str, name: str, key: HostKey, tag: str) -> str:
    """``text`` with ``key`` pinned for ``name``, for the container ``tag`` names (its
    earlier lines, at any address, dropped). Refuses when another line pins ``name``: a
    key is never replaced silently."""
    rest = without_container(text, tag)
    if pinned(rest, name):
        raise HostKeyError(f"{name} already has a host key line (another container's)")
    if rest and not rest.endswith("\n"):
        rest += "\n"
    return f"{rest}{name} {key.kind} {key.blob} {tag}\n"


# --- the file on the controller ---------------------------------------------------------


def read_file(path: str) -> str:
    """The managed file's text; '' when it does not exist yet."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise HostKeyError(f"ct_ssh_known_hosts: cannot read {path}: {exc}") from None


def write_file(path: str, text: str) -> None:
    """Replace the managed file atomically (mode 0600; its directory made 0700)."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise HostKeyError(f"ct_ssh_known_hosts: cannot write {path}: {exc}") from None


def forget_container(path: str, tag: str) -> bool:
    """Drop the container's lines from the managed file (it was re-created or destroyed by
    this deploy); True when there were any."""
    text = read_file(path)
    rest = without_container(text, tag)
    if rest == text:
        return False
    write_file(path, rest)
    return True


# --- reading the key on the node ---------------------------------------------------------


@dataclass(frozen=True)
class NodeSsh:
    """The node over SSH (settings ``pve_ssh_*``); its host key is always checked."""

    host: str
    port: int
    user: str
    key: str
    known_hosts: str

    @classmethod
    def from_settings(cls, s: ProxmoxSettings) -> NodeSsh:
        """The node's SSH as the settings name it (``pve_ssh_*``, paths expanded)."""
        return cls(
            host=s.pve_ssh_host or s.pve_host,
            port=s.pve_ssh_port,
            user=s.pve_ssh_user,
            key=os.path.expanduser(s.pve_ssh_key) if s.pve_ssh_key else "",
            known_hosts=os.path.expanduser(s.pve_ssh_known_hosts) if s.pve_ssh_known_hosts else "",
        )

    def run(self, argv: list[str], timeout: float) -> str:
        """Run ``argv`` on the node; its stdout (an error naming the node on failure)."""
        import paramiko

        where = f"the node's SSH ({self.user}@{self.host}:{self.port})"
        known = self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.load_host_keys(known)
        except OSError as exc:
            raise HostKeyError(f"{where}: cannot read pve_ssh_known_hosts {known}: {exc}") from None
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                key_filename=self.key or None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
            _, stdout, stderr = client.exec_command(shlex.join(argv), timeout=timeout)
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace").strip()
            rc = stdout.channel.recv_exit_status()
        except paramiko.BadHostKeyException:
            raise HostKeyError(
                f"{where}: the node's host key differs from the one in {known}"
            ) from None
        except paramiko.SSHException as exc:
            raise HostKeyError(
                f"{where}: {exc} (its host key must be in pve_ssh_known_hosts, {known})"
            ) from None
        except OSError as exc:
            raise HostKeyError(f"{where}: {exc}") from None
        finally:
            client.close()
        if rc != 0:
            raise HostKeyError(f"{where}: {shlex.join(argv)} exited {rc}: {err or out.strip()}")
        return out


def read_on_node(node: NodeSsh, vmid: int, timeout: float) -> HostKey:
    """The container's ed25519 host key as the node reads it inside the container."""
    argv = ["pct", "exec", str(vmid), "--", "cat", HOST_KEY_PUB]
    out = node.run(argv, timeout)
    return HostKey.parse(out, f"CT {vmid} {HOST_KEY_PUB} (read through the node)")
