"""Facts about the app's git checkout."""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REF_LINE = re.compile(r"^[0-9a-f]{40}\trefs/")


class GitCheckout(FactBase[dict[str, Any]]):
    """
    The checkout at ``path`` and the commit ``ref`` points to on ``url`` (``git ls-remote``
    on the target, so it sees what a fetch would), in one round trip. A 40-hex ``ref`` is
    taken as the commit itself and not looked up.

    .. code:: python

        {
            "exists": True,
            "head": "5d1c…",                      # checked-out commit
            "branch": "main",                      # None when detached
            "origin": "https://github.com/endo-ava/ego-graph",
            "remote": "9e0b…",                     # None: not looked up, failed, or no such ref
            "remote_error": None,                  # git ls-remote's error, when it failed
            "remote_checked": True,                # False: git is not installed yet
            "dirty": [" M backend/main.py"],       # tracked files changed on the server
        }

    A remote that cannot be read (unreachable, refused, no such repository) is not "no
    commit": ``git ls-remote`` exits non-zero (128) and its last stderr lines are kept in
    ``remote_error``, so a check of the host fails instead of reporting drift.
    """

    def command(self, path: str, url: str, ref: str) -> StringCommand:
        p = QuoteString(path)
        if SHA_RE.match(ref):
            # a pinned commit is the commit itself: nothing to look up
            remote = StringCommand("echo checked; echo pinned", ref)
        else:
            # Branch first, then a tag (peeled to its commit). stdout and stderr are kept
            # together (a pipe would hide git's exit status from sh); the status line says
            # which they are: refs (0) or the error (non-zero). GIT_TERMINAL_PROMPT=0: a
            # remote asking for a password fails instead of waiting for an answer.
            remote = StringCommand(
                "echo checked;",
                "out=$(GIT_TERMINAL_PROMPT=0",
                "git",
                "ls-remote",
                "--",
                QuoteString(url),
                QuoteString(f"refs/heads/{ref}"),
                QuoteString(f"refs/tags/{ref}"),
                QuoteString(f"refs/tags/{ref}^{{}}"),
                "2>&1 </dev/null);",
                "echo remote-status $?;",
                "printf '%s\\n' \"$out\" | sed 's/^/remote-out /'",
            )
        return StringCommand(
            "if command -v git >/dev/null; then",
            remote,
            "; fi;",
            "if [ -d",
            QuoteString(f"{path}/.git"),
            "]; then",
            "echo exists;",
            "echo head $(git -C",
            p,
            "rev-parse HEAD 2>/dev/null);",
            "echo branch $(git -C",
            p,
            "symbolic-ref --short -q HEAD);",
            "echo origin $(git -C",
            p,
            "config --get remote.origin.url);",
            "git -C",
            p,
            "status --porcelain --untracked-files=no | sed 's/^/dirty /';",
            "fi",
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {
            "exists": False,
            "head": None,
            "branch": None,
            "origin": None,
            "remote": None,
            "remote_error": None,
            "remote_checked": False,
            "dirty": [],
        }

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        refs: dict[str, str] = {}
        status, remote_out = "0", []
        for line in output:
            key, _, rest = line.partition(" ")
            if key == "checked":
                result["remote_checked"] = True
            elif key == "remote-status":
                status = rest.strip()
            elif key == "remote-out":
                remote_out.append(rest)
            elif key == "exists":
                result["exists"] = True
            elif key in ("head", "branch", "origin"):
                result[key] = rest.strip() or None
            elif key == "dirty":
                result["dirty"].append(rest)
            elif key == "pinned":
                refs["want"] = rest.strip()
        if status != "0":
            lines = [ln.strip() for ln in remote_out if ln.strip()]
            # git's first "fatal:" line and the one after it say what failed (the
            # address it tried, the errno); the hints further down do not
            first = next(
                (i for i, ln in enumerate(lines) if ln.startswith(("fatal:", "error:"))), None
            )
            lines = lines[first : first + 2] if first is not None else lines[-3:]
            result["remote_error"] = "; ".join(lines) or f"git ls-remote exited {status}"
        else:
            # stderr is mixed in (e.g. "warning: redirecting to …"): only ref lines count
            for line in remote_out:
                if REF_LINE.match(line):
                    sha, _, refname = line.partition("\t")
                    refs[refname.strip()] = sha
        result["remote"] = _pick_remote(refs)
        return result


def _pick_remote(refs: dict[str, str]) -> str | None:
    """The commit a ref names: an explicit commit, else a branch, else a (peeled) tag."""
    if "want" in refs:
        return refs["want"]
    for prefix, suffix in (("refs/heads/", ""), ("refs/tags/", "^{}"), ("refs/tags/", "")):
        for refname, sha in refs.items():
            if refname.startswith(prefix) and refname.endswith(suffix):
                return sha
    return None
