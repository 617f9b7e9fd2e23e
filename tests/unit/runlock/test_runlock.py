"""The run lock: its record and messages (pure), and its two scripts in a real shell with a
real ``flock``. The script ties the lock to its nearest ``sshd`` ancestor; here that is a
copy of ``sh`` named ``sshd``, standing in for the process that serves a run's SSH
connection (the e2e tests run it under the real sshd of a sandbox container)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploys.runlock import tag_commands
from deploys.runlock.facts import POLL, RunLock, look_script, take_script
from deploys.runlock.holder import (
    RUN_ENV,
    Holder,
    controller_record,
    held_message,
    leftover_message,
    parse_answer,
    parse_holder,
    run_tag,
)

RECORD = (
    '{"entry":"deploys/prod.py","host":"laptop","pid":4242,'
    '"started":"2026-12-02T07:31:05Z","user":"ada"}'
)


class Connection:
    """A stand-in for one SSH connection's sshd process: a shell named ``sshd`` that runs
    each script as a child (as sshd runs a channel's command) and lives until closed."""

    def __init__(self, sshd: Path) -> None:
        self.proc = subprocess.Popen(
            [str(sshd), "-c", 'while read -r script; do sh -c "$script"; done'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, script: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(script.replace("\n", " ") + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sshd(tmp_path: Path) -> Path:
    shell = shutil.which("sh")
    assert shell is not None and shutil.which("flock") is not None
    copy = tmp_path / "sshd"
    shutil.copy(shell, copy)
    return copy


@pytest.fixture
def connections(sshd: Path) -> Iterator[list[Connection]]:
    made: list[Connection] = []
    yield made
    for c in made:
        c.close()


def _open(sshd: Path, made: list[Connection]) -> Connection:
    made.append(Connection(sshd))
    return made[-1]


def _take(lock: Path, wait: int, record: str = RECORD) -> str:
    return take_script(str(lock), record, wait).get_raw_value()


def _held(lock: Path) -> bool:
    """Whether anyone holds the lock, asked as another process would."""
    return subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0


def _freed_within(lock: Path, seconds: float) -> float:
    start = time.monotonic()
    while _held(lock):
        assert time.monotonic() - start < seconds, f"still held after {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_run_takes_the_lock_for_as_long_as_its_connection_lives(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "run.lock"
    first = _open(sshd, connections)
    answer = parse_answer([first.run(_take(lock, 0))])
    assert answer == {"state": "taken", "again": False, "connection": str(first.proc.pid)}
    conn, record = lock.read_text().rstrip("\n").split(" ", 1)
    assert conn == str(first.proc.pid) and json.loads(record) == json.loads(RECORD)
    time.sleep(0.5)  # the command ended long ago: the holder keeps the lock
    assert _held(lock)
    # the same connection asking again (a read made live again) holds it already
    assert parse_answer([first.run(_take(lock, 0))])["again"] is True
    first.close()  # the connection ends (the run ends, is killed, or its SSH drops)
    assert _freed_within(lock, float(POLL) + 1.0) <= float(POLL) + 1.0


def test_a_second_run_waits_then_fails_naming_the_holder(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "run.lock"
    _open(sshd, connections).run(_take(lock, 0))
    second = _open(sshd, connections)
    start = time.monotonic()
    answer = parse_answer([second.run(_take(lock, 1, record="{}"))])
    assert time.monotonic() - start >= 1.0
    assert answer["state"] == "held"
    holder = answer["holder"]
    assert holder["host"] == "laptop" and holder["user"] == "ada" and holder["pid"] == "4242"
    assert holder["entry"] == "deploys/prod.py" and holder["started"] == "2026-12-02T07:31:05Z"
    # with no wait it fails at once
    start = time.monotonic()
    assert parse_answer([second.run(_take(lock, 0))])["state"] == "held"
    assert time.monotonic() - start < 1.0


def test_a_second_run_waiting_gets_the_lock_when_the_first_ends(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "run.lock"
    first = _open(sshd, connections)
    first.run(_take(lock, 0))
    second = _open(sshd, connections)
    assert second.proc.stdin is not None and second.proc.stdout is not None
    second.proc.stdin.write(_take(lock, 10, record='{"entry":"second"}') + "\n")
    second.proc.stdin.flush()
    time.sleep(0.5)
    first.close()
    answer = parse_answer([second.proc.stdout.readline()])
    assert answer == {"state": "taken", "again": False, "connection": str(second.proc.pid)}
    assert json.loads(lock.read_text().split(" ", 1)[1]) == {"entry": "second"}


def test_looking_creates_nothing_and_takes_nothing(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "run.lock"
    look = look_script(str(lock)).get_raw_value()
    conn = _open(sshd, connections)
    assert parse_answer([conn.run(look)]) == {"state": "free"}
    assert not lock.exists()
    conn.run(_take(lock, 0))
    other = _open(sshd, connections)
    answer = parse_answer([other.run(look)])
    assert answer["state"] == "held" and answer["holder"]["user"] == "ada"


def test_a_look_keeps_runs_out_only_while_the_read_lasts(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    lock.touch()
    look = look_script(str(lock)).get_raw_value()
    # the state read's shell goes on for a while after the look: a run cannot take it
    reading = subprocess.Popen(["sh", "-c", f"({look}); sleep 1"], stdout=subprocess.PIPE)
    time.sleep(0.4)
    assert _held(lock)
    reading.wait()
    assert _freed_within(lock, float(POLL) + 1.0) <= float(POLL) + 1.0


def test_without_an_sshd_ancestor_no_lock_is_pretended(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    out = subprocess.run(["sh", "-c", _take(lock, 0)], capture_output=True, text=True)
    assert parse_answer(out.stdout.splitlines()) == {"state": "nossh"}
    assert not _held(lock)


def test_a_lock_file_that_cannot_be_opened_is_an_error(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "missing-dir" / "run.lock"
    answer = parse_answer([_open(sshd, connections).run(_take(lock, 0))])
    assert answer == {"state": "error", "detail": f"cannot open {lock}"}


def test_the_fact_takes_while_executing_and_looks_while_preparing() -> None:
    from pyinfra.api import Config, Inventory, State
    from pyinfra.context import ctx_state

    state = State(Inventory(([], {})), Config())
    fact = RunLock()
    with ctx_state.use(state):
        state.is_executing = False
        assert "flock -s -n 9" in fact.command("/run/x.lock", RECORD, 5).get_raw_value()
        state.is_executing = True
        assert "flock -w 5 9" in fact.command("/run/x.lock", RECORD, 5).get_raw_value()


def test_a_record_cut_short_names_what_it_can() -> None:
    assert parse_holder("") == Holder()
    assert parse_holder("812") == Holder()
    assert parse_holder('812 {"user": "ada", "pid": 7') == Holder()
    assert parse_holder('812 {"user": "ada"}') == Holder(user="ada")
    assert parse_holder(f"812 {RECORD}") == Holder(
        "laptop", "ada", "4242", "deploys/prod.py", "2026-12-02T07:31:05Z"
    )
    assert parse_answer([]) == parse_answer([""]) == {"state": "unknown"}
    assert parse_answer(["what"]) == {"state": "error", "detail": "what"}


def test_the_controller_record_names_this_process() -> None:
    import os
    import socket

    record = json.loads(controller_record("deploys/update.py", "2026-12-02T07:31:05Z"))
    assert record["entry"] == "deploys/update.py" and record["pid"] == os.getpid()
    assert record["started"] == "2026-12-02T07:31:05Z"
    assert record["host"] == socket.gethostname() and record["user"]


def test_the_messages_name_the_holder_the_wait_and_the_setting() -> None:
    holder = vars(Holder("ci", "runner", "7", "deploys/update.py", "2026-12-02T07:31:05Z"))
    run = held_message(holder, path="/run/l", wait=60, executing=True)
    assert "deploys/update.py run by runner@ci, pid 7, started 2026-12-02T07:31:05Z" in run
    assert "waited 60 s (run_lock_wait)" in run and "changed nothing" in run
    assert "did not wait" in held_message(holder, path="/run/l", wait=0, executing=True)
    dry = held_message(holder, path="/run/l", wait=60, executing=False)
    assert "cannot say the host is in sync" in dry and "runner@ci" in dry


@pytest.mark.parametrize("deploy", ["container.converge", "container.update", "vm.converge"])
def test_every_deploy_of_a_target_takes_the_lock_in_the_first_section_of_its_read(
    deploy: str, tmp_path: Path
) -> None:
    """The snapshot runs its sections in the order the operations declared them: the lock
    section first, so everything else the run reads is read under it."""
    import importlib

    from pyinfra.api import Config, Inventory, State
    from pyinfra.context import ctx_host, ctx_state

    from deploys.common import snapshot
    from deploys.inventory import SETTINGS_KEY
    from deploys.settings import raw_defaults, validate

    env = tmp_path / "backend.env"
    env.write_text("GREETING=hi\n")
    env.chmod(0o600)
    data = raw_defaults()
    data["services"][0]["env_source"] = {"file": str(env)}
    # a deploy with no keyring pin stops while it is loaded (deploys.tailscale)
    data["tailscale_keyring_sha256"] = "0" * 64
    inventory = Inventory((["@fake/target"], {SETTINGS_KEY: validate(data)}))
    state = State(inventory, Config())
    target = inventory.get_host("@fake/target")
    module, _, name = deploy.partition(".")
    steps = getattr(importlib.import_module(f"deploys.{module}"), name)
    with ctx_state.use(state), ctx_host.use(target):
        record = snapshot._record_of(target)
        record.planning = True  # the planning walk: declare every read, register nothing
        steps.__wrapped__()
    reads = list(record.wanted.values())
    assert reads[0].fact is RunLock and len(reads) > 3
    assert [r.fact for r in reads].count(RunLock) == 1
    assert json.loads(reads[0].kwargs["record"])["entry"].startswith("deploys/")


def test_a_run_kept_out_by_dry_runs_reading_says_so_not_the_last_holder(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    lock = tmp_path / "run.lock"
    earlier = _open(sshd, connections)
    earlier.run(_take(lock, 0))
    earlier.close()  # that run ended: its record stays in the file, its holder goes
    _freed_within(lock, float(POLL) + 1.0)
    look = look_script(str(lock)).get_raw_value()
    reading = subprocess.Popen(["sh", "-c", f"({look}) >/dev/null; sleep 3"])
    try:
        time.sleep(0.4)
        answer = parse_answer([_open(sshd, connections).run(_take(lock, 1))])
    finally:
        reading.wait()
    assert answer == {"state": "reading"}


def _tagged(tag: str, script: str) -> str:
    """``script`` as pyinfra sends it with the run's tag in ``config.ENV``."""
    return f"export '{RUN_ENV}={tag}' && {script}"


def test_a_run_waits_for_the_commands_a_killed_run_left_running(
    tmp_path: Path, sshd: Path, connections: list[Connection]
) -> None:
    # what a killed run leaves behind: its command goes on, its connection (and lock) gone
    left = subprocess.Popen(["sh", "-c", _tagged("old-1", "sleep 1.5")])
    lock = tmp_path / "run.lock"
    start = time.monotonic()
    answer = _open(sshd, connections).run(_tagged("new-2", _take(lock, 30)))
    waited = time.monotonic() - start
    assert answer.startswith("taken "), answer
    assert left.poll() is not None and waited >= 1.0, waited

    # the run's own commands do not count; a leftover that outlives the wait is named
    left = subprocess.Popen(["sh", "-c", _tagged("old-3", "sleep 30")])
    try:
        time.sleep(0.2)
        mine = subprocess.Popen(["sh", "-c", _tagged("new-4", "sleep 30")])
        try:
            other = _open(sshd, connections).run(_tagged("new-4", _take(tmp_path / "b", 0)))
        finally:
            mine.kill()
        word, *pids = other.split()
        assert word == "leftover" and str(left.pid) in pids and str(mine.pid) not in pids
        state = parse_answer([other])
        assert state == {"state": "leftover", "pids": pids}
        assert leftover_message(pids, wait=0).startswith(
            "commands of an earlier run that was cut off (killed, or its connection lost) "
            f"are still running on this host (pids {' '.join(pids)}); this run waited 0 s"
        )
    finally:
        left.kill()


def test_the_tag_is_exported_before_every_command_only_under_pyinfras_cli() -> None:
    tag = run_tag()
    assert re.fullmatch(r"[A-Za-z0-9.-]+-\d+-\d+", tag), tag
    assert run_tag() != tag
    tag_commands()  # no pyinfra config outside its CLI: nothing to do, nothing raised
