"""Facts read on the PVE node over SSH."""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand


class PveConfFile(FactBase[dict[str, Any]]):
    """
    A container's conf file on the node (``/etc/pve/lxc/<vmid>.conf``), with its digest so
    a rewrite can refuse to clobber a concurrent edit, and the restart a TUN change left
    recorded in ``marker`` beside it (its lines: why; None without one).

    .. code:: python

        {"exists": True, "sha256": "9f2c…", "text": "arch: amd64\\ncores: 2\\n…",
         "restart": ["TUN lines added"]}
    """

    def command(self, path: str, marker: str) -> StringCommand:
        p, m = QuoteString(path), QuoteString(marker)
        return StringCommand(
            "if [ -f", p, "]; then echo exists $(sha256sum <", p, "| cut -c1-64);",
            "sed 's/^/| /'", p, "; fi;",
            "if [ -f", m, "]; then echo restart; sed 's/^/restart: /'", m, "; fi",
        )  # fmt: skip

    @staticmethod
    def default() -> dict[str, Any]:
        return {"exists": False, "sha256": None, "text": "", "restart": None}

    def process(self, output: list[str]) -> dict[str, Any]:
        result = self.default()
        lines: list[str] = []
        for line in output:
            if line.startswith("exists "):
                result["exists"] = True
                result["sha256"] = line.split(" ", 1)[1].strip()
            elif line.startswith("| ") or line == "|":
                lines.append(line[2:])
            elif line == "restart":
                result["restart"] = []
            elif line.startswith("restart: ") and result["restart"] is not None:
                result["restart"].append(line.removeprefix("restart: "))
        result["text"] = "\n".join(lines) + ("\n" if lines else "")
        return result
