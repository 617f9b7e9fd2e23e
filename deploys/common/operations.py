"""Operations shared by the concerns."""

from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, HiddenValue, QuoteString, StringCommand
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import generate_color_diff

from .facts import FileStates
from .report import change_reason, refuse
from .snapshot import FactRead, fact_read, operation

"""Where the deploy keeps its stamps on the target (root-only)."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _unmask(content: str | HiddenValue) -> str:
    return content.unmask() if isinstance(content, HiddenValue) else content


def _file_read(path: str, **_: Any) -> FactRead[dict[str, Any]]:
    return fact_read(FileStates, paths=[path])


@operation(read=_file_read)
def managed_file(
    files: dict[str, Any],
    path: str,
    content: str | HiddenValue,
    *,
    mode: int = 0o644,
    user: str = "root",
    group: str = "root",
    create_parent: bool = False,
) -> Any:
    """
    Make a file hold exactly ``content``, replaced atomically, with the given mode and owner.

    + path: absolute path on the target
    + content: the text; a ``HiddenValue`` marks it secret: never printed, not even by
      ``--diff``, and the file exists only with ``mode`` (a temporary file is created
      ``0600`` before any byte is written, then renamed over the old one)
    + mode/user/group: wanted permissions, compared on every run
    + create_parent: create the parent directory (0755) when missing

    **Example:**

    .. code:: python

        managed_file(
            name="Env file for egograph-backend",
            path="/opt/egograph/repo/egograph/backend/.env",
            content=HiddenValue("API_KEY=...\\n"),
            mode=0o600,
        )
    """
    secret = isinstance(content, HiddenValue)
    text = _unmask(content)
    wanted = sha256_text(text)
    current = files.get(path)

    if current and current["sha256"] == wanted:
        fixes: list[StringCommand] = []
        if current["user"] != user or current["group"] != group:
            change_reason(f"{path} is owned by {current['user']}:{current['group']}")
            fixes.append(StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path)))
        if current["mode"] != mode:
            change_reason(f"{path} has mode {current['mode']:o}, want {mode:o}")
            fixes.append(StringCommand("chmod", f"{mode:o}", QuoteString(path)))
        if not fixes:
            host.noop(f"{path} is up to date")
        yield from fixes
        return

    change_reason(f"{path} {'differs' if current else 'is missing'}")
    if host.state.config.DIFF:
        _log_diff(path, text, secret, exists=current is not None)

    tmp = f"{path}.egograph-deploy.tmp"
    parent = path.rsplit("/", 1)[0] or "/"
    prepare: list[Any] = ["umask 077", "&&"]
    if create_parent:
        prepare += ["mkdir", "-p", QuoteString(parent), "&&"]
    # Create the temporary file empty and private first: the upload then writes into a file
    # nobody else can read, whatever the SFTP server's umask.
    prepare += ["rm", "-f", QuoteString(tmp), "&&", ":", ">", QuoteString(tmp)]
    if secret or create_parent:
        # (A file anyone may read, in a directory that exists, skips this round trip.)
        yield StringCommand(*prepare)
    yield FileUploadCommand(StringIO(text), tmp)
    yield StringCommand(
        "chown",
        QuoteString(f"{user}:{group}"),
        QuoteString(tmp),
        "&&",
        "chmod",
        f"{mode:o}",
        QuoteString(tmp),
        "&&",
        "mv",
        "-f",
        QuoteString(tmp),
        QuoteString(path),
    )


@operation(read=_file_read)
def kept_file(
    files: dict[str, Any],
    path: str,
    *,
    mode: int = 0o600,
    user: str = "root",
    group: str = "root",
) -> Any:
    """
    A file whose content is kept on the server and never written by the deploy (env files
    when ``env_files_managed`` is off): it must exist; mode and owner are enforced.

    **Example:**

    .. code:: python

        kept_file(name="Env file kept on the server", path="/opt/egograph/repo/egograph/backend/.env")
    """
    current = files.get(path)
    if current is None:
        yield from refuse(
            f"{path} does not exist on the server; with env_files_managed = False it must be "
            "created there (mode 0600) before the deploy, or set env_files_managed = True"
        )
        return
    if current["user"] != user or current["group"] != group:
        change_reason(f"{path} is owned by {current['user']}:{current['group']}")
        yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
    if current["mode"] != mode:
        change_reason(f"{path} has mode {current['mode']:o}, want {mode:o}")
        yield StringCommand("chmod", f"{mode:o}", QuoteString(path))
    if current["mode"] == mode and current["user"] == user and current["group"] == group:
        host.noop(f"{path} exists with mode {mode:o}")


def _log_diff(path: str, text: str, secret: bool, *, exists: bool) -> None:
    action = "modify" if exists else "create"
    if secret:
        host.log(f"Will {action} {path} (contents are secret and not shown)", logger.info)
        return
    current = host.get_fact(FileContents, path=path) if exists else None
    current_lines = [line + "\n" for line in current] if current else []
    host.log(f"Will {action} {path}", logger.info)
    for line in generate_color_diff(current_lines, text.splitlines(keepends=True)):
        logger.info("  %s", line)
    logger.info("")
