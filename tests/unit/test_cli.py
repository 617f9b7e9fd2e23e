"""egodeploy: its commands' options and the systemd timer it installs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from deploys.cli import main


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
