"""egodeploy: the drift report's rendering and the systemd timer it installs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from deploys.cli import DRIFT, IN_SYNC, _ready_hosts, _rolled_back, drift_report, main, render_text


def test_ready_hosts_are_read_from_pyinfra_output() -> None:
    stderr = (
        "--> Preparing\n    [web-1] Ready: deploys/prod.py\n    [web-2] Ready: deploys/prod.py\n"
    )
    assert _ready_hosts(stderr) == ["web-1", "web-2"]


def test_text_report_lists_operations_and_reasons() -> None:
    text = render_text(
        {
            "status": "drift",
            "hosts": {
                "a": [],
                "b": [{"operation": "Services | x running", "reasons": ["start x: not running"]}],
            },
        }
    )
    assert text.splitlines() == [
        "a: in sync",
        "b: DRIFT, 1 operation(s) would change",
        "  - Services | x running",
        "      start x: not running",
    ]
    assert render_text({"status": "failed", "error": "boom"}).startswith("drift check FAILED")


def test_a_setting_a_deploy_cannot_apply_is_drift_marked_so() -> None:
    plan = [
        {"op_hash": "h1", "name": "Proxmox | CT x exists", "hosts_with_change": []},
        {"op_hash": "h2", "name": "Services | x running", "hosts_with_change": []},
    ]
    said = [
        json.dumps({"host": "node", "op_hash": "h1", "reason": "CT 100: ct_disk_gb is 80 …",
                    "kind": "not_applied"}),
    ]  # fmt: skip
    code, report = drift_report(plan, ["ct", "node"], said)
    assert code == DRIFT and report["status"] == "drift"
    assert report["hosts"] == {
        "ct": [],
        "node": [
            {
                "operation": "Proxmox | CT x exists",
                "reasons": ["CT 100: ct_disk_gb is 80 …"],
                "not_applied": True,
            }
        ],
    }
    assert render_text(report).splitlines()[1:3] == [
        "node: DRIFT, 1 operation(s) would change",
        "  - Proxmox | CT x exists (not applied by a deploy: change it by hand)",
    ]
    assert drift_report(plan, ["ct", "node"], []) == (
        IN_SYNC, {"status": "in_sync", "hosts": {"ct": [], "node": []}},
    )  # fmt: skip


def test_install_timer_writes_a_service_and_timer_idempotently(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "install-timer",
        "--every",
        "10",
        "--project-dir",
        str(tmp_path),
        "--unit-dir",
        str(tmp_path),
        "--no-enable",
        "--hosts-file",
        "/etc/egograph/hosts.json",
    ]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    service = (tmp_path / "egograph-drift.service").read_text()
    timer = (tmp_path / "egograph-drift.timer").read_text()
    assert "Type=oneshot" in service and " drift --project-dir " in service
    assert "Environment=EGOGRAPH_HOSTS_FILE=/etc/egograph/hosts.json" in service
    assert "OnUnitActiveSec=10min" in timer and "WantedBy=timers.target" in timer
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and second.output == ""


def test_a_refused_rolled_back_release_is_reported_per_host_as_drift() -> None:
    commit = "b" * 40
    refusal = f"release {commit} was rolled back at 2026-12-01T10:00:00Z: not deploying it again"
    stderr = (
        "--> Loading config...\n"
        "[egograph-prod] Connected\n"
        f"--> \x1b[31mOperation error in deploys/services/operations.py line 9\x1b[0m: {refusal} "
        "(egograph-backend failed; 5d1c00000000 runs).\n"
    )
    found = _rolled_back(stderr)
    assert list(found) == ["egograph-prod"]
    assert found["egograph-prod"].startswith(refusal)
    text = render_text({"status": "rolled_back", "rolled_back": found})
    assert text.startswith(f"egograph-prod: {refusal}")


def test_rollback_runs_the_rollback_entry_with_its_target_and_user() -> None:
    from deploys.cli import rollback_command
    from deploys.common.envvars import ROLLBACK_BY_ENV, ROLLBACK_TO_ENV

    command, env = rollback_command("inventory.py", "9E0B1C2", True, True, "ops@lab", True)
    assert command[-2:] == ["inventory.py", "deploys/rollback.py"]
    assert {"--dry", "-y", "--json"} <= set(command)
    assert env == {ROLLBACK_BY_ENV: "ops@lab", ROLLBACK_TO_ENV: "9e0b1c2"}
    command, env = rollback_command("inventory.py", None, False, False, "ops@lab")
    assert not {"--dry", "-y", "--json"} & set(command)
    assert env == {ROLLBACK_BY_ENV: "ops@lab"}


def test_rollback_refuses_a_to_that_is_not_a_commit_before_running_anything() -> None:
    result = CliRunner().invoke(main, ["rollback", "--to", "main"])
    assert result.exit_code == 2
    assert "--to" in result.output and "7 to 40 hex digits" in result.output


def test_rollback_snapshot_refuses_the_release_options_and_list_together() -> None:
    runner = CliRunner()
    both = runner.invoke(main, ["rollback", "--list", "--snapshot", "egograph_0123456789ab"])
    assert both.exit_code == 2 and "not both" in both.output
    for extra in (["--to", "9e0b1c2"], ["--dry"], ["-y"], ["--json"]):
        result = runner.invoke(main, ["rollback", "--snapshot", "egograph_0123456789ab", *extra])
        assert result.exit_code == 2, extra
        assert f"{extra[0]}: not with --snapshot/--list" in result.output
