"""What ``egodeploy status`` reads on a target besides the deploy's own facts: the audit
log's last entries, who holds the run lock (looked at, never taken), and since when each
unit runs its release."""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from ..audit.entry import parse_entries
from ..common.facts import as_list
from ..common.stamps import STARTED_SUFFIX
from ..runlock.holder import parse_answer


class AuditTail(FactBase[list[dict[str, Any]]]):
    """
    The last ``lines`` entries of the audit log (``deploys.audit``), oldest first; ``[]``
    when there is none yet.

    .. code:: python

        [{"time": "2026-12-03T06:30:05Z", "controller": "ci@runner", "entry": "deploys/prod.py",
          "commit_before": "5d1c…", "commit_after": "9e0b…", "changed": ["…"],
          "failed": None, "result": "success", "duration_s": 41.2, ...}]
    """

    def command(self, path: str, lines: int) -> StringCommand:
        return StringCommand("tail -n", str(int(lines)), QuoteString(path), "2>/dev/null || true")

    @staticmethod
    def default() -> list[dict[str, Any]]:
        return []

    def process(self, output: list[str]) -> list[dict[str, Any]]:
        return parse_entries(output)


class RunLockHolder(FactBase[dict[str, Any]]):
    """
    Who holds the run lock, read from its file without taking it (a status never makes a
    deploy wait): ``{"state": "held", "holder": {...}}`` while the holder's connection lives
    (``deploys.runlock.holder``), else ``{"state": "free"}``.
    """

    def command(self, path: str) -> StringCommand:
        lock = QuoteString(path)
        return StringCommand(
            "line=; { read -r line <",
            lock,
            '; } 2>/dev/null; first=${line%% *}; if [ -n "$first" ] && [ -d "/proc/$first" ];',
            'then echo "held $line"; else echo free; fi',
        )

    @staticmethod
    def default() -> dict[str, Any]:
        return {"state": "free"}

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_answer(output)


class ReleaseTimes(FactBase[dict[str, dict[str, Any]]]):
    """
    For each unit: when its release was recorded healthy (the stamp's mtime, epoch
    seconds) and since when systemd has it active (``ActiveEnterTimestamp``, as systemd
    prints it); ``None`` when there is none.

    .. code:: python

        {"egograph-backend": {"recorded": 1796279401, "active_since": "Thu 2026-12-03 06:30:01 UTC"}}
    """

    def command(self, units: list[str], stamp_dir: str) -> StringCommand:
        return StringCommand(
            "for u in",
            *[QuoteString(u) for u in as_list(units)],
            '; do echo "unit $u $(stat -c %Y',
            StringCommand(QuoteString(stamp_dir), f'"/$u{STARTED_SUFFIX}"', _separator=""),
            "2>/dev/null || echo -)",
            '$(systemctl show -p ActiveEnterTimestamp --value -- "$u.service" 2>/dev/null)"; done',
        )

    @staticmethod
    def default() -> dict[str, dict[str, Any]]:
        return {}

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        times: dict[str, dict[str, Any]] = {}
        for line in output:
            word, unit, recorded, *since = [*line.split(" ", 3), ""][:4]
            if word != "unit" or not unit:
                continue
            times[unit] = {
                "recorded": int(recorded) if recorded.isdigit() else None,
                "active_since": " ".join(since).strip() or None,
            }
        return times
