"""deploys/proxmox/tasks.py against the PVE API emulator: a task's end, its warnings, its
error with the log, the wait's timeout, the UPID."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from deploys.proxmox.client import PveClient
from deploys.proxmox.errors import PveTaskError, PveTaskTimeout
from deploys.proxmox.tasks import forked_task, parse_upid, task_status, wait_task
from tests.sandbox.pve.emulator import PveEmulator


def test_task_ok(client: PveClient, create_ct: Callable[..., str]) -> None:
    result = wait_task(client, create_ct(client, 140), timeout=10)
    assert (result.exitstatus, result.warnings) == ("OK", [])
    result = wait_task(client, client.start("pve", 140), timeout=10)
    assert result.exitstatus == "OK"
    assert client.find_container(vmid=140) is not None
    assert client.find_container(hostname="ct140").status == "running"  # type: ignore[union-attr]


def test_task_warnings_returns_warning_lines(
    client: PveClient, create_ct: Callable[..., str]
) -> None:
    upid = create_ct(client, 141, features=None)  # ubuntu 24.04 without nesting
    result = wait_task(client, upid, timeout=10)
    assert result.exitstatus == "WARNINGS: 1"
    assert result.warnings == ["WARN: Systemd 255 detected. You may need to enable nesting."]


def test_task_error_carries_exitstatus_and_log(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str]
) -> None:
    emulator.inject_task_fault("vzcreate", fail="unable to create CT 142 - disk quota exceeded")
    upid = create_ct(client, 142)
    with pytest.raises(PveTaskError) as info:
        wait_task(client, upid, timeout=10)
    err = info.value
    assert err.exitstatus == "unable to create CT 142 - disk quota exceeded"
    assert err.log_lines[-1] == "TASK ERROR: unable to create CT 142 - disk quota exceeded"
    assert err.upid == upid and upid in str(err)
    assert client.find_container(vmid=142) is None  # config removed after a failed create


def test_task_timeout(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str]
) -> None:
    emulator.inject_task_fault("vzcreate", slow=5)
    upid = create_ct(client, 143)
    started = time.monotonic()
    with pytest.raises(PveTaskTimeout) as info:
        wait_task(client, upid, timeout=0.3)
    assert time.monotonic() - started < 2
    assert info.value.upid == upid
    client.delete(f"/nodes/pve/tasks/{upid}")  # stop it
    with pytest.raises(PveTaskError) as stopped:
        wait_task(client, upid, timeout=5)
    assert stopped.value.exitstatus == "received interrupt"


def test_parse_upid(client: PveClient, creds: Any, create_ct: Callable[..., str]) -> None:
    upid = create_ct(client, 144)
    info = parse_upid(upid)
    named = {k: info[k] for k in ("node", "type", "id", "user")}
    assert named == {"node": "pve", "type": "vzcreate", "id": "144", "user": creds.DEPLOY_TOKEN}
    status = task_status(client, upid)
    assert status["tokenid"] == "pyinfra"
    assert int(info["starttime"], 16) == status["starttime"]
    assert int(info["pstart"], 16) == status["pstart"]
    with pytest.raises(ValueError):
        parse_upid("UPID:nope")


class FakeTaskApi:
    """A task on a fake clock: ``log`` is (second, line) pairs written while it runs; it
    stops ``OK`` at ``ends``. The log endpoint answers as pve-common's
    ``PVE::Tools::dump_logfile`` does (``no content`` for an empty log, ``[]`` past the
    end); ``log_reads`` keeps each read's ``start``."""

    UPID = "UPID:pve:0000A1B2:0001C3D4:65000000:download:t.tar.zst:deploy@pve!pyinfra:"

    def __init__(self, log: list[tuple[float, str]], ends: float) -> None:
        self.now = 0.0
        self.log = log
        self.ends = ends
        self.poll_interval = 1.0
        self.log_reads: list[int] = []
        self.status_reads = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def get(self, path: str, **params: Any) -> Any:
        if path.endswith("/status"):
            self.status_reads += 1
            if self.now >= self.ends:
                return {"status": "stopped", "exitstatus": "OK"}
            return {"status": "running"}
        assert path.endswith("/log"), path
        self.log_reads.append(params["start"])
        written = [t for at, t in self.log if at <= self.now]
        if not written:
            return [{"n": 1, "t": "no content"}]
        start, limit = params["start"], params["limit"]
        return [{"n": start + i + 1, "t": t} for i, t in enumerate(written[start : start + limit])]


def test_a_long_task_reports_every_few_seconds_with_its_newest_log_line() -> None:
    api = FakeTaskApi(
        [
            (0.5, "downloading http://download.proxmox.com/images/system/t.tar.zst to /x"),
            (3.0, "     0K ........ ........ ........ ........  25% 11.6M 8s"),
            (5.0, " 32768K ........ ........ ........ ........  50% 11.2M 5s"),
            (6.0, " 65536K ........ ........ ........ ........  75% 11.4M 3s"),
        ],
        ends=13.5,
    )
    said: list[tuple[int, str]] = []
    result = wait_task(
        api,  # type: ignore[arg-type]
        api.UPID,
        timeout=60,
        progress=lambda elapsed, last: said.append((int(elapsed), last)),
        every=4,
        clock=api.clock,
        sleep=api.sleep,
    )
    assert result.exitstatus == "OK"
    assert said == [
        (4, "     0K ........ ........ ........ ........  25% 11.6M 8s"),
        (8, " 65536K ........ ........ ........ ........  75% 11.4M 3s"),
        (12, " 65536K ........ ........ ........ ........  75% 11.4M 3s"),
    ]
    # the log is read only for a line, each time from where the last read ended
    assert api.log_reads == [0, 2, 4]
    assert api.status_reads > 10  # the status poll is not slowed by it


def test_a_task_that_logs_nothing_reports_only_its_time_and_a_short_one_nothing() -> None:
    quiet = FakeTaskApi([], ends=9)
    said: list[tuple[int, str]] = []
    wait_task(
        quiet,  # type: ignore[arg-type]
        quiet.UPID,
        progress=lambda elapsed, last: said.append((int(elapsed), last)),
        clock=quiet.clock,
        sleep=quiet.sleep,
    )
    assert said == [(4, ""), (8, "")]

    short = FakeTaskApi([(0.1, "TASK OK")], ends=3)
    wait_task(
        short,  # type: ignore[arg-type]
        short.UPID,
        progress=lambda elapsed, last: said.append((int(elapsed), last)),
        clock=short.clock,
        sleep=short.sleep,
    )
    assert len(said) == 2 and short.log_reads == []


def test_progress_of_a_slow_emulator_task(
    emulator: PveEmulator, client: PveClient, create_ct: Callable[..., str]
) -> None:
    """Against the emulator (real time): a slow create reports while it runs."""
    emulator.inject_task_fault("vzcreate", slow=1.2)
    said: list[tuple[float, str]] = []
    result = wait_task(
        client,
        create_ct(client, 145),
        timeout=10,
        progress=lambda elapsed, last: said.append((elapsed, last)),
        every=0.5,
    )
    assert result.exitstatus == "OK"
    assert 1 <= len(said) <= 3, said
    assert all(0.5 <= elapsed < 2 for elapsed, _ in said)


class ListedTasks:
    """``GET /nodes/{node}/tasks`` answering a fixed list (what forked_task reads)."""

    def __init__(self, upids: list[str]) -> None:
        self.upids = upids
        self.asked: list[dict[str, Any]] = []

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        assert path == "/nodes/pve/tasks"
        self.asked.append(params)
        return [{"upid": u} for u in self.upids]


def _upid(pstart: int, starttime: int, kind: str, user: str = "deploy@pve!pyinfra") -> str:
    return f"UPID:pve:0000AB12:{pstart:08X}:{starttime:08X}:{kind}:100:{user}:"


def test_forked_task_is_the_next_own_task_after_the_first() -> None:
    rollback = _upid(500, 1000, "vzrollback")
    earlier = _upid(400, 1000, "vzstart")  # the same second, but an older worker
    other_user = _upid(600, 1001, "vzstart", user="root@pam")
    forked, later = _upid(700, 1002, "vzstart"), _upid(900, 1003, "vzstart")
    api = ListedTasks([later, other_user, forked, earlier])
    assert forked_task(api, rollback, "vzstart") == forked  # type: ignore[arg-type]
    assert api.asked == [{"vmid": "100", "typefilter": "vzstart", "source": "all", "since": 1000}]


def test_no_forked_task_listed_is_none_after_the_wait() -> None:
    slept: list[float] = []
    api = ListedTasks([_upid(400, 999, "vzstart")])
    found = forked_task(api, _upid(500, 1000, "vzrollback"), "vzstart", wait=0, sleep=slept.append)  # type: ignore[arg-type]
    assert found is None and len(api.asked) == 1
