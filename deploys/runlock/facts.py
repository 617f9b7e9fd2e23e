"""The run lock's read: take the lock (a run that executes) or look at it (a dry run).

The lock is ``flock(2)`` on a file under ``/run``, held by a small process on the target
that lives exactly as long as the run's SSH connection: pyinfra's SSH connector keeps one
paramiko connection per host for the whole run and opens a channel per command, and every
command runs under the one sshd process that serves that connection. The read finds that
process (the nearest ``sshd`` / ``sshd-session`` among its ancestors) and leaves behind
``tail --pid=<it>``, holding the lock's open file. When the run ends, the controller is
killed or the connection drops, sshd exits and the holder follows within its poll
interval (``POLL``): nothing needs to release the lock, and no command is spent on it.
The read is part of the run's one state read (:mod:`deploys.common.snapshot`), so a no-op
run still sends one command.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.context import ctx_state

from .holder import RUN_ENV, parse_answer

POLL = "0.2"
"""Seconds between the holder's checks that its connection is still there: the bound on
how long the lock outlives a run."""

CONNECTION = (
    # The nearest sshd ancestor of this shell ($$: the state read's own shell) is the
    # process serving the run's connection (OpenSSH >= 9.8 names it sshd-session).
    "conn=; p=$$; n=0; while [ $n -lt 16 ] && read -r _p comm _s pp _r < /proc/$p/stat; do "
    "case $comm in '(sshd)'|'(sshd-session)') conn=$p; break;; esac; "
    '[ "$pp" -gt 1 ] || break; p=$pp; n=$((n+1)); done;'
)


def _leftovers_ended(wait: int) -> list[str]:
    """Wait, up to ``wait`` seconds, until no process of another run is left on the target.

    A killed controller's connection goes, and the lock with it, but a command it had
    started goes on: sshd does not stop a command that has no terminal. Such a command
    carries the other run's tag (:data:`.holder.RUN_ENV`, which pyinfra exports in front
    of every command): its shell (``sh -c 'export ...=<tag> && ...'``) has the tag in its
    command line for as long as it runs, and anything it started has it in its
    environment. This run's own processes carry its own tag and are left out."""
    scan = (
        f"grep -las '{RUN_ENV}=' /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null"
        f' | xargs -r grep -Las "{RUN_ENV}=${RUN_ENV}" 2>/dev/null'
        " | cut -d/ -f3 | sort -u | tr '\\n' ' '"
    )
    return [
        f'if [ -n "${RUN_ENV}" ]; then n=0; while left=$({scan}); [ -n "$left" ]; do',
        f'[ $n -ge {int(wait) * 10} ] && {{ echo "leftover $left"; exit 0; }};',
        "n=$((n+1)); sleep 0.1; done; fi;",
    ]


def _holding(pid: str, mode: str) -> str:
    """The holder: it keeps fd 9 (the lock's open file) until process ``pid`` exits; its
    own stdio on /dev/null, so the command's channel closes without waiting for it."""
    return f"tail --pid={pid} -f /dev/null -s {POLL} </dev/null >/dev/null 2>&1 & echo {mode};"


def take_script(path: str, record: str, wait: int) -> StringCommand:
    """Take the lock for the rest of this connection, waiting up to ``wait`` seconds for
    another holder; a lock this connection already holds is taken again at once."""
    lock = QuoteString(path)
    # Still not free: the record names the holder while its connection lives; a dead one
    # means the lock is held by dry runs reading (their shared lock writes no record).
    held = [
        "{ line=; read -r line <",
        lock,
        '; first=${line%% *}; if [ -n "$first" ] && [ -d "/proc/$first" ]; then',
        'echo "held $line"; else echo reading; fi; exit 0; };',
    ]
    waiting = ["flock -w", str(int(wait)), "9 ||", *held] if wait > 0 else held
    return StringCommand(
        CONNECTION,
        'if [ -z "$conn" ]; then echo nossh; exit 0; fi;',
        # `true`, not `exec`: a redirection that fails on a special built-in ends the shell
        "if ! true 2>/dev/null >>",
        lock,
        "; then echo error cannot open",
        lock,
        "; exit 0; fi; exec 9<>",
        lock,
        "; if ! flock -n 9; then first=; read -r first _r <",
        lock,
        '; if [ "$first" = "$conn" ]; then echo "mine $conn"; exit 0; fi;',
        *waiting,
        "fi; printf '%s %s\\n' \"$conn\"",
        QuoteString(record),
        ">",
        lock,
        ";",
        *_leftovers_ended(wait),
        _holding('"$conn"', '"taken $conn"'),
    )


def look_script(path: str) -> StringCommand:
    """Look without taking: a run holding the lock is named. Otherwise a shared lock is
    kept until the state read's shell ends, so no run starts changing the host while the
    read is under way (a run waits that long). A dry run creates nothing: no file, free."""
    lock = QuoteString(path)
    return StringCommand(
        "if [ ! -e",
        lock,
        "]; then echo free; exit 0; fi; if ! true 2>/dev/null <",
        lock,
        "; then echo error cannot read",
        lock,
        "; exit 0; fi; exec 9<",
        lock,
        "; if flock -s -n 9; then",
        _holding("$$", "free"),
        "else read -r line <",
        lock,
        '; echo "held $line"; fi',
    )


class RunLock(FactBase[dict[str, Any]]):
    """
    The run lock (module doc). While the run executes the read takes it, waiting up to
    ``wait`` seconds; while preparing (``--dry``, the drift check, the check before an
    interactive run's prompt) it only looks.

    .. code:: python

        {"state": "taken", "again": False, "connection": "4121"}    # this run holds it
        {"state": "free"}                                            # looked: nobody holds it
        {"state": "held", "holder": {"host": "ci-runner", "user": "runner", "pid": "2211",
                                     "entry": "deploys/update.py",
                                     "started": "2026-12-02T07:31:05Z"}}
        {"state": "reading"}   # taking: dry runs held it (shared) for all of the wait
        {"state": "nossh"}     # not over SSH: nothing to tie the lock to
        {"state": "error", "detail": "cannot open /run/egograph-deploy.lock"}
        {"state": "unknown"}   # no answer: a container this run creates, or no flock
    """

    def requires_command(self, path: str, record: str, wait: int) -> str:
        return "flock"

    def command(self, path: str, record: str, wait: int) -> StringCommand:
        executing = ctx_state.isset() and ctx_state.get().is_executing
        return take_script(path, record, int(wait)) if executing else look_script(path)

    @staticmethod
    def default() -> dict[str, Any]:
        return {"state": "unknown"}

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_answer(output)
