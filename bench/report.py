"""Medians, ratios and targets from the recorded runs, and their Markdown."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

Record = dict[str, Any]


TOOLS = ("pyinfra", "shell", "ansible")
LABEL = {
    "pyinfra": "pyinfra (this deploy)",
    "shell": "shell script, 1 SSH session",
    "ansible": "Ansible playbook",
}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def medians(runs: list[Record]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{tool: {scenario: {hosts: median seconds}}}`` over the successful runs."""
    found: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in runs:
        if r["ok"]:
            found[(r["tool"], r["scenario"], r["hosts"])].append(r["seconds"])
    out: dict[str, dict[str, dict[str, float | None]]] = defaultdict(lambda: defaultdict(dict))
    for (tool, scenario, hosts), values in sorted(found.items()):
        out[tool][scenario][str(hosts)] = _median(values)
    return {t: dict(s) for t, s in out.items()}


def _get(m: dict[str, Any], tool: str, scenario: str, hosts: int = 1) -> float | None:
    value = m.get(tool, {}).get(scenario, {}).get(str(hosts))
    return float(value) if value is not None else None


def cpu_medians(
    runs: list[Record], tool: str, scenario: str, key: str = "cpu_s"
) -> dict[str, float]:
    """``{hosts: median CPU seconds}`` of a scenario's runs: the machine's (``cpu_s``) or
    the timed command's own (``controller_cpu_s``)."""
    found: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        if r["ok"] and r["tool"] == tool and r["scenario"] == scenario and key in r:
            found[r["hosts"]].append(r[key])
    return {str(n): round(statistics.median(v), 2) for n, v in sorted(found.items())}


def _medians_by_hosts(runs: list[Record], tool: str, scenario: str, key: str) -> dict[int, float]:
    found: dict[int, list[float]] = defaultdict(list)
    for r in runs:
        if r["ok"] and r["tool"] == tool and r["scenario"] == scenario and r.get(key) is not None:
            found[r["hosts"]].append(r[key])
    return {n: statistics.median(v) for n, v in sorted(found.items())}


def step_medians(runs: list[Record], tool: str, scenario: str) -> dict[str, float]:
    """Median seconds of each step, in the order the steps ran."""
    values: dict[str, list[float]] = {}
    for r in runs:
        if r["ok"] and r["tool"] == tool and r["scenario"] == scenario and r.get("steps"):
            for step, seconds in r["steps"].items():
                values.setdefault(step, []).append(seconds)
    return {k: round(statistics.median(v), 3) for k, v in values.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def fleet_series(m: dict[str, Any], tool: str) -> dict[str, dict[int, float]]:
    series: dict[str, dict[int, float]] = {"noop": {}, "converge": {}}
    for kind in series:
        for hosts, value in m.get(tool, {}).get(f"fleet-{kind}", {}).items():
            if value is not None:
                series[kind][int(hosts)] = value
    # One container's first converge is the single-container phase's (5-run) figure.
    single = _get(m, tool, "converge")
    if single is not None and 1 not in series["converge"] and series["converge"]:
        series["converge"][1] = single
    return series


def build(meta: dict[str, Any], runs: list[Record]) -> dict[str, Any]:
    m = medians(runs)
    commands = [
        r["commands"] / r["hosts"]
        for r in runs
        if r["ok"] and r["tool"] == "pyinfra" and r["scenario"] == "noop-vv" and "commands" in r
    ]
    fleet_commands = {
        str(r["hosts"]): r["commands"]
        for r in runs
        if r["ok"] and r["scenario"] == "fleet-noop-vv" and "commands" in r
    }
    noop = _get(m, "pyinfra", "noop")
    fleet = {t: fleet_series(m, t) for t in TOOLS}
    sizes = sorted(fleet["pyinfra"]["noop"])
    largest = sizes[-1] if sizes else None
    ratios = {
        "converge pyinfra / shell": _ratio(
            _get(m, "pyinfra", "converge"), _get(m, "shell", "converge")
        ),
        "converge ansible / shell": _ratio(
            _get(m, "ansible", "converge"), _get(m, "shell", "converge")
        ),
        "converge ansible / pyinfra": _ratio(
            _get(m, "ansible", "converge"), _get(m, "pyinfra", "converge")
        ),
        "noop ansible / pyinfra": _ratio(_get(m, "ansible", "noop"), noop),
        "noop pyinfra / shell": _ratio(noop, _get(m, "shell", "noop")),
        "noop -vv / noop (output overhead)": _ratio(_get(m, "pyinfra", "noop-vv"), noop),
    }
    if largest and 1 in fleet["pyinfra"]["noop"]:
        for tool in TOOLS:
            for kind in ("noop", "converge"):
                s = fleet[tool][kind]
                if largest in s and 1 in s:
                    ratios[f"fleet {kind} {tool} {largest} / 1"] = _ratio(s[largest], s[1])
    command_median = statistics.median(commands) if commands else None
    status_commands = [
        r["commands"] / r["hosts"]
        for r in runs
        if r["ok"] and r["tool"] == "egodeploy status" and "commands" in r
    ]
    status_command_median = statistics.median(status_commands) if status_commands else None
    controller = _medians_by_hosts(runs, "pyinfra", "fleet-noop", "controller_cpu_s")
    per_host = (
        round((controller[largest] - controller[1]) / (largest - 1), 4)
        if largest and largest > 1 and largest in controller and 1 in controller
        else None
    )
    per_host_commands = (
        max(fleet_commands[n] / int(n) for n in fleet_commands) if fleet_commands else None
    )
    targets = [
        _target("no-op ≤ 1.0 s (one container)", noop, "s", 1.0, "<="),
        _target("no-op: 1 remote command", command_median, "commands", 1, "<="),
        _target("drift check ≤ 1.1 s", _get(m, "egodeploy drift", "drift"), "s", 1.1, "<="),
        # On this machine the containers share the controller's 2 CPUs, so a fleet's wall
        # time says little (bench/analysis.md); what a real fleet adds per host is the
        # controller's CPU and its round trips.
        _target(
            f"fleet no-op: controller CPU per extra host ≤ 0.03 CPU-s (1 → {largest} hosts)",
            per_host,
            "CPU-s",
            0.03,
            "<=",
        ),
        _target(
            "fleet no-op: 1 remote command per host (every size)",
            per_host_commands,
            "commands",
            1,
            "<=",
        ),
        _target(
            "first converge ≤ 1.2x the shell baseline",
            ratios["converge pyinfra / shell"],
            "x",
            1.2,
            "<=",
        ),
        _target("no-op ≥ 6x faster than Ansible", ratios["noop ansible / pyinfra"], "x", 6.0, ">="),
        _target(
            "crash at import: restart → previous release healthy ≤ 10 s",
            _get(m, "pyinfra", "failfast-restore"),
            "s",
            10.0,
            "<=",
        ),
        _target(
            "crash at import: requests failing (10 Hz probe) ≤ 5 s",
            _get(m, "probe", "failfast-failing"),
            "s",
            5.0,
            "<=",
        ),
        _target(
            "status ≤ 1.5 s (one container)", _get(m, "egodeploy status", "status"), "s", 1.5, "<="
        ),
        _target(
            "status: 1 remote command per host",
            status_command_median,
            "commands",
            1,
            "<=",
        ),
    ]
    return {
        **meta,
        "medians_s": m,
        "noop_remote_commands": command_median,
        "status_remote_commands": status_command_median,
        "noop_remote_commands_by_fleet_size": fleet_commands,
        "noop_steps_median_s": step_medians(runs, "pyinfra", "noop-vv"),
        "converge_steps_median_s": step_medians(runs, "pyinfra", "converge"),
        "node_converge_steps_median_s": step_medians(runs, "pyinfra", "converge-node"),
        "fleet_noop_cpu_s": cpu_medians(runs, "pyinfra", "fleet-noop"),
        "fleet_noop_cpu_s_shell": cpu_medians(runs, "shell", "fleet-noop"),
        "fleet_noop_controller_cpu_s": {str(n): round(v, 3) for n, v in controller.items()},
        "fleet_noop_controller_cpu_s_per_extra_host": per_host,
        "shell_converge_steps_median_s": step_medians(runs, "shell", "converge"),
        "fleet_median_s": {
            t: {k: {str(n): v for n, v in s.items()} for k, s in fleet[t].items()} for t in fleet
        },
        "ratios": ratios,
        "targets": targets,
        "runs": runs,
    }


def _target(name: str, value: float | None, unit: str, limit: float, op: str) -> dict[str, Any]:
    if value is None:
        status = "not measured"
    elif op == "<=":
        status = "pass" if value <= limit else "FAIL"
    else:
        status = "pass" if value >= limit else "FAIL"
    return {
        "target": name,
        "value": value,
        "unit": unit,
        "limit": limit,
        "op": op,
        "status": status,
    }


# --- Markdown ------------------------------------------------------------------------------------


def _s(value: float | None, unit: str = " s") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def markdown_table(result: dict[str, Any]) -> str:
    m = result["medians_s"]
    runs = result["options"]["runs"]
    rows = [
        "| Scenario (median of {} runs) | {} |".format(runs, " | ".join(LABEL[t] for t in TOOLS)),
        "|---|" + "---:|" * len(TOOLS),
    ]
    for scenario, title in (
        ("converge", "First converge, empty container"),
        ("noop", "No-op re-run"),
    ):
        rows.append(f"| {title} | " + " | ".join(_s(_get(m, t, scenario)) for t in TOOLS) + " |")
    cold = _get(m, "pyinfra", "converge-cold")
    if cold is not None:
        rows.append(f"| First converge, cold package caches (1 run) | {_s(cold)} | - | - |")
    for scenario, title in (
        ("converge-node", "First converge from an empty emulated Proxmox node"),
        ("noop-node", "No-op re-run with the Proxmox stage (node API + container)"),
    ):
        value = _get(m, "pyinfra", scenario)
        if value is not None:
            rows.append(f"| {title} | {_s(value)} | - | - |")
    rows.append(
        f"| Drift check (`egodeploy drift`) | {_s(_get(m, 'egodeploy drift', 'drift'))} | - | - |"
    )
    cmds = result["noop_remote_commands"]
    rows.append(f"| Remote commands per no-op run | {cmds if cmds is not None else '-'} | - | - |")
    status = _get(m, "egodeploy status", "status")
    rows.append(f"| Status (`egodeploy status`) | {_s(status)} | - | - |")
    cmds = result.get("status_remote_commands")
    rows.append(
        f"| Remote commands per host of a status | {cmds if cmds is not None else '-'} | - | - |"
    )
    out = ["\n".join(rows), ""]
    fleet = result["fleet_median_s"]
    sizes = sorted({int(n) for t in fleet.values() for s in t.values() for n in s})
    if sizes:
        cpu = result.get("fleet_noop_cpu_s", {})
        shell_cpu = result.get("fleet_noop_cpu_s_shell", {})
        out += [
            "| Containers in one run | pyinfra no-op | its CPU (all processes) "
            "| pyinfra first converge | shell no-op | its CPU | shell first converge "
            "| Ansible no-op | Ansible first converge |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in sizes:
            cells = [
                _s(fleet.get(t, {}).get(k, {}).get(str(n)))
                for t in TOOLS
                for k in ("noop", "converge")
            ]
            cells.insert(1, _s(cpu.get(str(n)), " CPU-s"))
            cells.insert(4, _s(shell_cpu.get(str(n)), " CPU-s"))
            out.append(f"| {n} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["| Target | Measured | Result |", "|---|---:|---|"]
    for t in result["targets"]:
        value = t["value"]
        shown = (
            "-"
            if value is None
            else (f"{value:g} {t['unit']}" if t["unit"] != "x" else f"{value:.2f}x")
        )
        out.append(f"| {t['target']} | {shown} | {t['status']} |")
    return "\n".join(out) + "\n"


def steps_table(steps: dict[str, float], title: str) -> str:
    if not steps:
        return ""
    total = sum(steps.values())
    lines = [f"| {title} | median s | share |", "|---|---:|---:|"]
    for step, seconds in steps.items():
        name = step.removeprefix("op: ").replace("|", "\\|")
        lines.append(f"| {name} | {seconds:.3f} | {seconds / total:.0%} |")
    lines.append(f"| **total** | **{total:.2f}** | |")
    return "\n".join(lines) + "\n"


def document(result: dict[str, Any], stem: str) -> str:
    """``<date>.md``: everything measured, for humans."""
    opts = result["options"]
    machine = result["machine"]
    head = [
        f"# `make bench` — {result['date']}",
        "",
        f"{machine['cpus']} CPUs, load average {machine['loadavg_at_start']} at the start "
        f"(the machine is shared: other sandboxes run beside the benchmark), kernel "
        f"{machine['kernel']}; pyinfra {result['versions']['pyinfra']}, ansible-core "
        f"{result['versions']['ansible-core'] or '-'}. Medians of {opts['runs']} runs; fleet "
        f"first converges: {opts['fleet_converge_runs']} run(s) per size. Package caches "
        f"{'seeded from the cold run' if opts['package_caches_seeded'] else 'cold every run'}. "
        f"Whole benchmark: {result['duration_s'] / 60:.1f} min"
        + ("" if result["complete"] else f" — INCOMPLETE: {result['error']}")
        + ".",
        "",
        markdown_table(result),
        "## The no-op run, step by step (pyinfra `-vv`, arrival time of its lines)",
        "",
        steps_table(result["noop_steps_median_s"], "Step"),
        "## The first converge, step by step",
        "",
        steps_table(result["converge_steps_median_s"], "Step"),
        "## The first converge from an empty emulated Proxmox node, step by step",
        "",
        steps_table(result.get("node_converge_steps_median_s", {}), "Step"),
        "## The shell baseline's first converge, step by step",
        "",
        "(each step's end is the arrival of its `CHANGED` line)",
        "",
        steps_table(result.get("shell_converge_steps_median_s", {}), "Step"),
        "## Ratios (medians, same run)",
        "",
        "\n".join(f"- {k}: {v}" for k, v in result["ratios"].items()),
        "",
        f"Charts: `{stem}-fleet.png`, `{stem}-noop-steps.png`; raw runs: `{stem}.json`.",
        "",
    ]
    return "\n".join(head)


def replace_section(path: Path, section: str) -> bool:
    """Put ``section`` (a Markdown text starting with its ``## `` heading) in place of the
    section with the same heading in ``path``, up to the next ``## `` heading; False when
    ``path`` has no such section."""
    heading = section.split("\n", 1)[0]
    lines = path.read_text().split("\n")
    if heading not in lines:
        return False
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    new = [*section.rstrip("\n").split("\n"), ""]
    path.write_text("\n".join(lines[:start] + new + lines[end:]))
    return True
