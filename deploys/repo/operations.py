"""Operations on the app's git checkout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand

from ..common.commands import chain
from ..common.report import change_reason, refuse
from ..common.snapshot import FactRead, fact_read, operation
from .commit import Commit, RunCommit
from .facts import SHA_RE, GitCheckout


def _checkout_read(url: str, path: str, ref: str, **_: Any) -> FactRead[dict[str, Any]]:
    return fact_read(GitCheckout, path=path, url=url, ref=ref)


def shown_url(url: str) -> str:
    """``url`` for messages: a password or token in its user part is not shown."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1***@", url)


def remote_problem(current: dict[str, Any], url: str, ref: str) -> str | None:
    """Why the remote's answer cannot be trusted (None: it can): ``git ls-remote`` failed,
    or it answered without ``ref``. Either is a failed check, never drift: the checkout is
    not "behind a commit called unknown"."""
    url = shown_url(url)
    if current["remote_error"]:
        return (
            f"repo_url {url}: git ls-remote failed on the target ({current['remote_error']}); "
            "check repo_url and that the target can reach it"
        )
    if current["remote_checked"] and current["remote"] is None:
        return (
            f"repo_branch {ref!r}: neither a branch nor a tag on repo_url {url}; expected a "
            "ref the remote has (or a 40-hex commit)"
        )
    return None


@operation(read=_checkout_read)
def remote_answers(current: dict[str, Any], url: str, path: str, ref: str) -> Any:
    """
    Stop the run while nothing has changed when ``url`` cannot be read or lacks ``ref``. It
    decides from the checkout's own read (the same fact and arguments, so a no-op run
    still sends one command), and goes first: on a target where git is not installed yet
    it cannot ask, and ``checkout`` makes the same check once git is there.

    + url, path, ref: as for :func:`checkout`

    **Example:**

    .. code:: python

        remote_answers(name="Check the app repository answers", url=URL,
                       path="/opt/egograph/repo", ref="main")
    """
    problem = remote_problem(current, url, ref)
    if problem:
        yield from refuse(f"{problem}; nothing was changed")
        return
    if not current["remote_checked"]:
        host.noop("git is not installed yet: the checkout asks the remote")
        return
    host.noop(f"{shown_url(url)} has {ref} at {str(current['remote'])[:12]}")


@operation(read=_checkout_read)
def checkout(
    current: dict[str, Any],
    url: str,
    path: str,
    ref: str,
    *,
    commit: Commit = None,
    discard_local_changes: bool = False,
) -> Any:
    """
    Clone ``url`` into ``path`` and keep it at the commit ``ref`` names on the remote.

    Uncommitted changes to tracked files on the server are never thrown away silently: the
    operation fails and lists them, unless ``discard_local_changes`` is set (then they are
    reset, as the runbook's ``git reset --hard`` would). Untracked files (the env files,
    ``.venv``) are left alone.

    + url: the repository
    + path: checkout directory (its parent is created)
    + ref: branch, tag or 40-hex commit to follow
    + commit: the run's commit (a :class:`~deploys.repo.commit.RunCommit`, which keeps every
      operation of one run on the same commit) or a known one; None: what ``ref`` is now
    + discard_local_changes: allow resetting local modifications

    **Example:**

    .. code:: python

        checkout(name="Check out main", url="https://github.com/endo-ava/ego-graph",
                 path="/opt/egograph/repo", ref="main")
    """
    problem = remote_problem(current, url, ref)
    if problem:
        yield from refuse(problem)
        return
    if isinstance(commit, RunCommit):
        want = commit.resolve(current["remote"])
    else:
        want = commit or current["remote"]
    p = QuoteString(path)
    is_branch = not SHA_RE.match(ref)

    if not current["exists"]:
        change_reason(f"{path} is not a checkout yet")
        parent = path.rsplit("/", 1)[0] or "/"
        clone = StringCommand(
            "mkdir",
            "-p",
            QuoteString(parent),
            "&&",
            "git",
            "clone",
            "--quiet",
            "--no-checkout",
            "--",
            QuoteString(url),
            p,
        )
        # The clone brought the branch already (a second fetch cost one more round trip to
        # the remote); a pinned commit is fetched as for an existing checkout.
        yield chain([clone, *_move(path, ref, want, is_branch, force=False, fetch=not is_branch)])
        return

    if current["dirty"]:
        files = "\n  ".join(current["dirty"])
        if not discard_local_changes:
            yield from refuse(
                f"{path} has local changes to tracked files:\n  {files}\n"
                "Commit or revert them on the server, or set repo_discard_local_changes = "
                "True to let the deploy discard them."
            )
            return
        host.log(f"Discarding local changes in {path}:\n  {files}")

    commands = []
    if current["origin"] != url:
        change_reason(f"origin is {current['origin']}, want {url}")
        commands.append(
            StringCommand("git", "-C", p, "remote", "set-url", "origin", QuoteString(url))
        )

    on_branch = current["branch"] == ref if is_branch else current["branch"] is None
    if want is not None and current["head"] == want and on_branch and not current["dirty"]:
        if commands:
            yield chain(commands)
        else:
            host.noop(f"{path} is at {want[:12]} ({ref})")
        return
    change_reason(
        f"checkout at {(current['head'] or 'nothing')[:12]}, {ref} is at {(want or 'unknown')[:12]}"
    )
    force = bool(current["dirty"])
    yield chain([*commands, *_move(path, ref, want, is_branch, force=force, fetch=True)])


def _move(
    path: str, ref: str, want: str | None, is_branch: bool, *, force: bool, fetch: bool
) -> Iterator[StringCommand]:
    p = QuoteString(path)
    if fetch:
        refspec = (
            f"+refs/heads/{ref}:refs/remotes/origin/{ref}"
            if is_branch
            else f"+refs/tags/{ref}:refs/tags/{ref}"
        )
        if SHA_RE.match(ref):
            # A pinned commit the clone has (a rollback's: the release history keeps a
            # ref to it) needs no fetch, so a rollback works while the remote is down.
            yield StringCommand(
                "git", "-C", p, "cat-file", "-e", QuoteString(f"{ref}^{{commit}}"),
                "2>/dev/null", "||", "git", "-C", p, "fetch", "--quiet", "origin",
            )  # fmt: skip
        else:
            yield StringCommand(
                "git", "-C", p, "fetch", "--quiet", "--prune", "origin", QuoteString(refspec)
            )
    target = want or (f"origin/{ref}" if is_branch else ref)
    force_flag = ["--force"] if force else []
    if is_branch:
        yield StringCommand(
            "git",
            "-C",
            p,
            "checkout",
            "--quiet",
            *force_flag,
            "-B",
            QuoteString(ref),
            QuoteString(target),
        )
    else:
        yield StringCommand(
            "git", "-C", p, "checkout", "--quiet", *force_flag, "--detach", QuoteString(target)
        )
    if is_branch:
        yield StringCommand(
            "git",
            "-C",
            p,
            "branch",
            "--quiet",
            "--set-upstream-to",
            QuoteString(f"origin/{ref}"),
            QuoteString(ref),
        )
