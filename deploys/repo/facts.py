"""Facts about the app's git checkout."""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


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
            "remote": "9e0b…",                     # None: git missing or ref not found
            "dirty": [" M backend/main.py"],       # tracked files changed on the server
        }
    """

    def command(self, path: str, url: str, ref: str) -> StringCommand:
        p = QuoteString(path)
        if SHA_RE.match(ref):
            remote = StringCommand("echo", "remote", ref, "want")
        else:
            # Branch first, then a tag (peeled to its commit).
            remote = StringCommand(
                "git",
                "ls-remote",
                "--",
                QuoteString(url),
                QuoteString(f"refs/heads/{ref}"),
                QuoteString(f"refs/tags/{ref}"),
                QuoteString(f"refs/tags/{ref}^{{}}"),
                "2>/dev/null",
                "|",
                "sed",
                "'s/^/remote /'",
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
            "dirty": [],
        }

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        refs: dict[str, str] = {}
        for line in output:
            key, _, rest = line.partition(" ")
            if key == "exists":
                result["exists"] = True
            elif key in ("head", "branch", "origin"):
                result[key] = rest.strip() or None
            elif key == "dirty":
                result["dirty"].append(rest)
            elif key == "remote":
                sha, _, refname = rest.strip().partition("\t")
                refs[refname or "want"] = sha
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
