"""egodeploy: the drift report's rendering and the systemd timer it installs."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from deploys.cli import _ready_hosts, main, render_text


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
