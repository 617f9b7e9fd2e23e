"""bench/report.py: medians, targets and the README section, from recorded runs (no
containers: the benchmark itself is ``make bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import report


def run(tool: str, scenario: str, seconds: float, hosts: int = 1, **extra: Any) -> dict[str, Any]:
    return {"tool": tool, "scenario": scenario, "hosts": hosts, "seconds": seconds, "ok": True,
            **extra}  # fmt: skip


META = {"options": {"runs": 3}}


def test_targets_and_ratios_come_from_medians_of_successful_runs() -> None:
    runs = [
        run("pyinfra", "noop", s) for s in (0.7, 0.8, 0.9)
    ] + [
        run("pyinfra", "noop", 9.0) | {"ok": False},  # a failed run counts for nothing
        run("ansible", "noop", 8.0),
        run("pyinfra", "converge", 8.0),
        run("shell", "converge", 7.0),
        run("pyinfra", "fleet-noop", 0.8, 1, cpu_s=0.8, controller_cpu_s=0.60),
        run("pyinfra", "fleet-noop", 1.6, 8, cpu_s=2.4, controller_cpu_s=0.81),
        run("pyinfra", "fleet-noop", 1.4, 8, cpu_s=2.2, controller_cpu_s=0.79),
        run("pyinfra", "fleet-noop-vv", 1.5, 8, commands=8),
    ]  # fmt: skip
    result = report.build(META, runs)
    assert result["medians_s"]["pyinfra"]["noop"]["1"] == 0.8
    assert result["ratios"]["noop ansible / pyinfra"] == 10.0
    assert result["ratios"]["fleet noop pyinfra 8 / 1"] == 1.88
    assert result["fleet_noop_cpu_s"] == {"1": 0.8, "8": 2.3}
    # The controller's own CPU per extra host: (0.80 - 0.60) / 7.
    assert result["fleet_noop_controller_cpu_s_per_extra_host"] == 0.0286
    status = {t["target"]: t["status"] for t in result["targets"]}
    assert status["no-op ≤ 1.0 s (one container)"] == "pass"
    assert status["fleet no-op: controller CPU per extra host ≤ 0.03 CPU-s (1 → 8 hosts)"] == (
        "pass"
    )
    assert status["fleet no-op: 1 remote command per host (every size)"] == "pass"
    assert status["first converge ≤ 1.2x the shell baseline"] == "pass"  # 1.14x
    assert status["drift check ≤ 1.1 s"] == "not measured"


def test_the_readme_section_is_replaced_up_to_the_next_heading(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Performance\n\nold\n\n### kept? no\n\n## Next\n\nstays\n")
    assert report.replace_section(readme, "## Performance\n\nnew figures\n")
    assert readme.read_text() == "# Title\n\n## Performance\n\nnew figures\n\n## Next\n\nstays\n"
    assert not report.replace_section(readme, "## Missing\n\nx\n")
    readme.write_text("## Performance\nold, last section\n")
    assert report.replace_section(readme, "## Performance\nnew\n")
    assert readme.read_text() == "## Performance\nnew\n"


def test_fail_fast_figures_come_from_the_probe_log_and_the_restart() -> None:
    from bench.failfast import figures

    # Restart at t=100.0; the probe (10 Hz) fails from 100.05 to 103.45, release 1 at 103.55.
    probes = [{"t": 99.95, "status": 200, "release": "1"}]
    probes += [{"t": 100.05 + i / 10, "status": 0, "release": None} for i in range(35)]
    probes += [{"t": 103.55, "status": 200, "release": "1"}]
    got = figures(probes, restart=100.0)
    assert got == {"failed_probes": 35, "failing_s": 3.5, "restore_s": 3.55}
    result = report.build(META, [run("pyinfra", "failfast-restore", 3.55),
                                 run("probe", "failfast-failing", 3.5)])  # fmt: skip
    status = {t["target"]: t["status"] for t in result["targets"]}
    assert status["crash at import: restart → previous release healthy ≤ 10 s"] == "pass"
    assert status["crash at import: requests failing (10 Hz probe) ≤ 5 s"] == "pass"
