"""egodeploy drift: the report from pyinfra's dry run, and its rendering."""

from __future__ import annotations

import json

from deploys.drift import DRIFT, IN_SYNC, _ready_hosts, _rolled_back, drift_report, render_text


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
