"""``bench/results/README-performance.md``: the README's "Performance" section, from a result.

The figures, tables and the data-driven notes are generated; ``bench/analysis.md`` (the
profile of the misses, written by a person from ``-vv`` timestamps and py-spy) is appended
verbatim when it exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import report

ANALYSIS = Path(__file__).parent / "analysis.md"


def _speed_sentence(machine: dict[str, Any]) -> str:
    """The machine's speed during the run (``measure.speed_probe``), for comparing runs:
    results from before the probe existed have none."""
    start, end = machine.get("speed_probe_s_at_start"), machine.get("speed_probe_s_at_end")
    if start is None or end is None:
        return ""
    return (
        f" The machine's speed: a fixed piece of Python work (10⁷ empty loop turns, "
        f"`bench/measure.py` `speed_probe`) took {start:.2f} s at the start and {end:.2f} s "
        "at the end; every figure here scales with it, so compare runs by it."
    )


def _fixed_vs_ops(steps: dict[str, float]) -> tuple[float, float, list[tuple[str, float]]]:
    ops = [(k.removeprefix("op: "), v) for k, v in steps.items() if k.startswith("op: ")]
    fixed = sum(v for k, v in steps.items() if not k.startswith("op: "))
    return fixed, sum(v for _, v in ops), sorted(ops, key=lambda kv: -kv[1])


def fleet_notes(result: dict[str, Any]) -> list[str]:
    """What the CPU figures say about the fleet: on a machine whose CPUs the containers share
    with the controller, a run cannot take less than the CPU time it needs over the CPUs."""
    fleet = result["fleet_median_s"]
    cpus = result["machine"]["cpus"] or 1
    sizes = sorted(int(n) for n in fleet.get("pyinfra", {}).get("noop", {}))
    if len(sizes) < 2 or sizes[0] != 1:
        return []
    n = sizes[-1]
    pyinfra = fleet["pyinfra"]["noop"]
    cpu = result.get("fleet_noop_cpu_s", {})
    shell = fleet.get("shell", {}).get("noop", {})
    if str(n) not in cpu or "1" not in cpu:
        return []
    per_host = (cpu[str(n)] - cpu["1"]) / (n - 1)
    floor = cpu[str(n)] / cpus
    controller = result.get("fleet_noop_controller_cpu_s", {})
    own = (
        f", of which pyinfra itself {(controller[str(n)] - controller['1']) / (n - 1):.2f}"
        if str(n) in controller and "1" in controller
        else ""
    )
    text = (
        f"The {n}-container no-op used {cpu[str(n)]:.2f} CPU-seconds of the machine "
        f"({cpu['1']:.2f} for one container; {per_host:.2f} more per container{own}, the rest "
        f"in the containers and the sandbox's servers: sshd and the checks of the state "
        f"read). The containers "
        f"share the {cpus} CPUs with the controller, and a run cannot take less than its CPU "
        f"time over the CPUs: {floor:.2f} s, {floor / pyinfra['1']:.2f}x the one-container run, "
        f"even with every CPU busy from start to end ({pyinfra[str(n)]:.2f} s measured)."
    )
    if str(n) in shell and "1" in shell:
        text += (
            f" The shell script, run on {n} containers at once, goes from {shell['1']:.2f} s "
            f"to {shell[str(n)]:.2f} s ({shell[str(n)] / shell['1']:.2f}x"
            + (
                f", on {result['fleet_noop_cpu_s_shell'][str(n)]:.2f} CPU-s"
                if str(n) in result.get("fleet_noop_cpu_s_shell", {})
                else ""
            )
            + ")."
        )
    return [text, ""]


def section(result: dict[str, Any], stem: str) -> str:
    opts = result["options"]
    m = result["medians_s"]
    steps = result["noop_steps_median_s"]
    fixed, ops_total, slowest = _fixed_vs_ops(steps)
    failed = [t for t in result["targets"] if t["status"] == "FAIL"]
    out = [
        "## Performance",
        "",
        f"Measured with `make bench` on the sandbox ({result['machine']['cpus']} CPUs, shared "
        f"with other work; {result['date'][:10]}). Medians of {opts['runs']} runs, every run "
        f"in `bench/results/{stem}.json`; the tools' runs are interleaved, so the ratios "
        "come from the same conditions. The deploy measured is `deploys/prod.py` as it is "
        f"(Tailscale {'on' if result['deploy']['tailscale'] else 'off'}, Proxmox stage "
        f"{'on' if result['deploy']['proxmox'] else 'off — the container exists'}). The "
        "baselines do the same in-container work: `bench/baseline/runbook.sh` (the runbook "
        "as one guarded shell script over one SSH session; on a fleet, one session per "
        "container, all at once) and `bench/baseline/playbook.yml` "
        f"(ansible-core {result['versions']['ansible-core'] or '-'}, pipelining and "
        "ControlPersist on). Every timed run starts on an idle machine (the harness waits "
        "until the CPUs are idle), so one tool's leftovers are not counted against the next."
        + _speed_sentence(result["machine"]),
        "",
        report.markdown_table(result),
    ]
    if opts["package_caches_seeded"]:
        cold = m.get("pyinfra", {}).get("converge-cold", {}).get("1")
        out += [
            "First converges run with the container's package caches (apt lists and `.deb`s, "
            "uv's wheel cache) copied from one cold converge, so they measure the deploy "
            "rather than the Debian mirror and the package index; every step still runs. "
            + (f"The one cold first converge took {cold:.1f} s." if cold else ""),
            "",
        ]
    if steps:
        out += [
            f"Where a no-op run's {sum(steps.values()):.2f} s go: {fixed:.2f} s are fixed costs "
            "(Python start-up and imports, inventory and settings, the SSH connection, "
            f"results) and {ops_total:.2f} s the {len(slowest)} operations: the first reads "
            "the state they all decide from in one remote command "
            "(`deploys/common/snapshot.py`). Slowest operations: "
            + "; ".join(f"{name} {sec:.2f} s" for name, sec in slowest[:3])
            + f". Chart: `bench/results/{stem}-noop-steps.png`.",
            "",
            report.steps_table(steps, "No-op step"),
        ]
    out += fleet_notes(result)
    out += [
        f"![Fleet scaling](bench/results/{stem}-fleet.png)",
        "",
        f"![No-op run, step by step](bench/results/{stem}-noop-steps.png)",
        "",
    ]
    if failed:
        out += [
            "Missed targets: " + ", ".join(f"**{t['target']}**" for t in failed) + ".",
            "",
        ]
    if ANALYSIS.exists():
        out += [ANALYSIS.read_text().strip(), ""]
    out += [
        f"Run it: `make bench` (this run: {result['duration_s'] / 60:.0f} minutes; "
        "`python -m bench --help` for `--runs`, `--fleet 1,2,4,8`, `--fleet-converge-runs`, "
        "`--skip-ansible`, `--cold`, `--quick`, `--rebuild`).",
        "",
    ]
    return "\n".join(out)
