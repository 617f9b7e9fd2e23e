"""Secrets on the controller: the files they come from must be their owner's alone, and
once read they stay hidden, with a digest for the stamps that follow them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .checks import ENV_KEY


@dataclass(frozen=True)
class Secret:
    """A secret's text, read once on the controller. Its repr never shows it; ``sha256`` is
    what stamps and change checks compare (it reveals nothing useful of an env file)."""

    text: str = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def __repr__(self) -> str:
        return "Secret(<hidden>)"


def open_to_others(path: str) -> str | None:
    """A secret file on the controller must be its owner's alone (mode 0600 or stricter):
    the problem, or None (also when it does not exist: that is reported elsewhere)."""
    try:
        mode = Path(path).expanduser().stat().st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"file {path!r} is open to group or others (mode {mode:04o}); expected a secret file "
        f"only its owner can read: chmod 600 {path}"
    )


def secret_file_problem(path: str) -> str | None:
    """What is wrong with a secret file on the controller (missing, or open to others), or
    None: the one check the settings validation and ``egodeploy preflight`` both make."""
    if not Path(path).expanduser().is_file():
        return f"file {path!r} does not exist on the controller"
    return open_to_others(path)


def private_key_problem(path: str) -> str | None:
    """What is wrong with an SSH private key file on the controller (missing, open to
    others, or not a private key), or None. OpenSSH itself refuses a key open to others
    ("UNPROTECTED PRIVATE KEY FILE"); pyinfra's paramiko does not, so it is checked here."""
    problem = secret_file_problem(path)
    if problem:
        return problem
    try:
        with Path(path).expanduser().open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        return f"file {path!r} cannot be read ({exc.strerror})"
    if not head.lstrip().startswith(b"-----BEGIN ") or b"PRIVATE KEY" not in head:
        return f"file {path!r} is not a private key (expected '-----BEGIN … PRIVATE KEY-----')"
    return None


def parse_env_text(text: str) -> list[tuple[str, str]]:
    """Parse a KEY=VALUE env file (comments and blank lines allowed); raise ValueError."""
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.removeprefix("export ").strip()
        if not sep or not ENV_KEY.match(key):
            raise ValueError(f"line {number} is not KEY=VALUE (expected an env file)")
        pairs.append((key, value))
    if not pairs:
        raise ValueError("no KEY=VALUE lines (an empty env file is refused)")
    return pairs
