"""``egodeploy status``: its reads run by a real shell, the report, its text and exit code."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from deploys.settings import Settings, raw_defaults, validate
from deploys.status import reads
from deploys.status.facts import AuditTail, ReleaseTimes, RunLockHolder
from deploys.status.report import DEGRADED, FAILED, OK, exit_code, host_report, render, unreachable

GOOD = "1" * 40
NEW = "2" * 40
BAD = "3" * 40


def _sh(command: Any) -> list[str]:
    text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
    out = subprocess.run(["sh", "-c", text], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def _settings(tmp_path: Path) -> Settings:
    env = tmp_path / "backend.env"
    env.write_text("GREETING=hi\n")
    env.chmod(0o600)
    data = raw_defaults()
    data["services"][0]["env_source"] = {"file": str(env)}
    return validate(data)


def test_the_audit_tail_reads_the_last_entries_and_nothing_when_there_is_no_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "audit.jsonl"
    fact = AuditTail()
    assert fact.process(_sh(fact.command(path=str(log), lines=2))) == []
    log.write_text("".join(json.dumps({"n": n}) + "\n" for n in range(5)))
    assert fact.process(_sh(fact.command(path=str(log), lines=2))) == [{"n": 3}, {"n": 4}]


def test_the_run_lock_is_looked_at_never_taken(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    fact = RunLockHolder()
    assert fact.process(_sh(fact.command(path=str(lock)))) == {"state": "free"}
    assert not lock.exists()  # looking creates nothing
    record = {"host": "ci", "user": "runner", "pid": 7, "entry": "deploys/prod.py", "started": "t"}
    lock.write_text(f"{os.getpid()} {json.dumps(record)}\n")  # a live "connection": this process
    held = fact.process(_sh(fact.command(path=str(lock))))
    assert held["state"] == "held" and held["holder"]["user"] == "runner"
    lock.write_text(f"999999999 {json.dumps(record)}\n")  # its connection is gone
    assert fact.process(_sh(fact.command(path=str(lock)))) == {"state": "free"}


def test_release_times_read_the_stamps_mtime(tmp_path: Path) -> None:
    (tmp_path / "egograph-backend.started.json").write_text("{}")
    os.utime(tmp_path / "egograph-backend.started.json", (1796279401, 1796279401))
    fact = ReleaseTimes()
    got = fact.process(
        _sh(fact.command(units=["egograph-backend", "other"], stamp_dir=str(tmp_path)))
    )
    assert got["egograph-backend"]["recorded"] == 1796279401
    assert got["other"]["recorded"] is None


def test_one_read_per_host_names_the_deploys_own_facts(tmp_path: Path) -> None:
    wanted = reads(_settings(tmp_path), 5)
    assert set(wanted) == {"checkout", "services", "times", "audit", "lock", "tailscale"}
    assert wanted["checkout"].fact.__name__ == "GitCheckout"
    assert wanted["services"].fact.__name__ == "ServiceStates"


def _values(**over: Any) -> dict[str, Any]:
    stamp = {"unit": "u", "env": "e", "commit": GOOD}
    values: dict[str, Any] = {
        "checkout": {"head": GOOD, "remote": GOOD, "remote_error": None, "dirty": []},
        "services": {
            "head": GOOD,
            "rolled_back": None,
            "units": {
                "egograph-backend": {
                    "LoadState": "loaded",
                    "ActiveState": "active",
                    "stamp": stamp,
                    "healthy": True,
                }
            },
        },
        "times": {"egograph-backend": {"recorded": 1796279401, "active_since": "Thu x"}},
        "audit": [
            {
                "time": "t1",
                "controller": "a@one",
                "commit_after": GOOD,
                "result": "success",
                "entry": "deploys/prod.py",
                "changed": ["x"],
                "failed": None,
                "duration_s": 3.0,
            },
            {
                "time": "t2",
                "controller": "b@two",
                "commit_after": GOOD,
                "result": "failed",
                "entry": "deploys/update.py",
                "changed": [],
                "failed": "y",
                "duration_s": 1.0,
            },
        ],
        "lock": {"state": "free"},
        "tailscale": {"Self": {"DNSName": "egograph-prod.tail1234.ts.net."}},
    }
    values.update(over)
    return values


def test_a_healthy_host_shows_release_who_deployed_it_url_and_its_last_run(
    tmp_path: Path,
) -> None:
    report = host_report(_settings(tmp_path), _values(), None)
    assert report["release"]["commit"] == GOOD
    assert report["release"]["since"] == "2026-12-03T06:30:01Z"
    # the last successful run that ended on that commit, not the failed one after it
    assert report["release"]["deployed_by"] == "a@one"
    assert report["services"] == [
        {
            "name": "backend",
            "unit": "egograph-backend",
            "state": "active",
            "active": True,
            "healthy": True,
            "active_since": "Thu x",
            "url": "https://egograph-prod.tail1234.ts.net/",
        }
    ]
    assert report["last_deploy"]["time"] == "t2"
    assert report["drift"]["state"] == "in_sync"
    assert exit_code({"h": report}) == OK
    text = render({"h": report}, 5)
    assert text.startswith("h: OK") and "https://egograph-prod.tail1234.ts.net/" in text
    assert "deployed by a@one" in text and "egodeploy drift" in text


def test_a_rolled_back_release_shows_the_marker_and_the_refusal(tmp_path: Path) -> None:
    marker = {
        "failed_commit": BAD,
        "failed_service": "egograph-backend",
        "restored_commit": GOOD,
        "at": "2026-12-03T06:40:00Z",
    }
    values = _values()
    values["services"]["rolled_back"] = marker
    values["checkout"]["remote"] = BAD
    report = host_report(_settings(tmp_path), values, None)
    assert report["rolled_back"] == marker
    assert report["drift"]["state"] == "rolled_back"
    assert "not deploying it again" in report["drift"]["summary"]
    assert exit_code({"h": report}) == OK  # the old release runs, healthy
    assert f"ROLLED BACK release {BAD[:12]}" in render({"h": report}, 0)


def test_before_any_deploy_the_service_is_absent_and_the_exit_is_2(tmp_path: Path) -> None:
    values = _values(
        # a fresh container: no git yet, so the remote was not read either
        checkout={"head": None, "remote": None, "remote_checked": False, "dirty": []},
        services={
            "head": None,
            "rolled_back": None,
            "units": {
                "egograph-backend": {
                    "LoadState": "not-found",
                    "ActiveState": "inactive",
                    "stamp": None,
                    "healthy": False,
                }
            },
        },
        times={},
        audit=[],
        tailscale={},
    )
    report = host_report(_settings(tmp_path), values, None)
    assert report["services"][0]["state"] == "absent"
    assert report["release"] is None and report["last_deploy"] is None
    assert (report["drift"]["state"], report["drift"]["summary"]) == ("drift", "not deployed")
    assert exit_code({"h": report}) == DEGRADED
    assert "none recorded" in render({"h": report}, 5)


def test_behind_the_branch_and_local_changes_are_drift(tmp_path: Path) -> None:
    values = _values()
    values["checkout"].update(remote=NEW, dirty=[" M app.py"])
    drift = host_report(_settings(tmp_path), values, None)["drift"]
    assert drift["state"] == "drift"
    assert (
        drift["summary"]
        == f"main is at {NEW[:12]}, running {GOOD[:12]}; 1 file(s) changed on the server"
    )


def test_a_host_not_read_fails_the_status_and_an_absent_container_is_degraded() -> None:
    absent = {"node": None, "vmid": None, "state": "absent", "cores": None, "memory_mb": None}
    assert exit_code({"a": unreachable("the container is absent", absent)}) == DEGRADED
    assert exit_code({"a": unreachable("could not connect (SSH)")}) == FAILED
    running = {"node": "pve1", "vmid": 100, "state": "running", "cores": 2, "memory_mb": 3072}
    text = render({"a": unreachable("could not connect (SSH)", running)}, 5)
    assert "UNREACHABLE" in text and "node pve1, vmid 100, running, 2 cores, 3072 MiB" in text


def test_a_remote_that_cannot_be_read_leaves_drift_unknown(tmp_path: Path) -> None:
    values = _values()
    values["checkout"].update(remote=None, remote_checked=True, remote_error="fatal: no route")
    drift = host_report(_settings(tmp_path), values, None)["drift"]
    assert (drift["state"], drift["summary"]) == ("unknown", "repo_url unreadable: fatal: no route")
