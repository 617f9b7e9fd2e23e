"""The benchmark's charts, drawn headless (Agg) from a results JSON.

    uv run --no-project --with matplotlib python -m bench.charts RESULT.json FLEET.png STEPS.png

Runs outside the project's environment (matplotlib is not a project dependency), so it
imports nothing from the project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {
    ("pyinfra", "noop"): ("tab:blue", "-", "o", "pyinfra no-op"),
    ("pyinfra", "converge"): ("tab:blue", "--", "s", "pyinfra first converge"),
    ("shell", "noop"): ("tab:gray", "-", "o", "shell script no-op"),
    ("shell", "converge"): ("tab:gray", "--", "s", "shell script first converge"),
    ("ansible", "noop"): ("tab:red", "-", "o", "Ansible no-op"),
    ("ansible", "converge"): ("tab:red", "--", "s", "Ansible first converge"),
}


def fleet_chart(result: dict[str, Any], path: Path) -> None:
    fleet = result["fleet_median_s"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (tool, kind), (color, line, marker, label) in STYLE.items():
        series = {int(n): v for n, v in fleet.get(tool, {}).get(kind, {}).items()}
        if not series:
            continue
        xs = sorted(series)
        ax.plot(
            xs, [series[x] for x in xs], color=color, linestyle=line, marker=marker, label=label
        )
        for x in xs:
            ax.annotate(
                f"{series[x]:.1f}",
                (x, series[x]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
                color=color,
            )
    shell = result["medians_s"].get("shell", {}).get("converge", {}).get("1")
    if shell:
        ax.axhline(shell, color="gray", linestyle=":", linewidth=1)
        ax.annotate(
            f"shell script first converge, 1 container ({shell:.1f} s)",
            (1, shell),
            textcoords="offset points",
            xytext=(4, -11),
            fontsize=7,
            color="gray",
        )
    sizes = sorted({int(n) for t in fleet.values() for s in t.values() for n in s})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes or [1])
    ax.set_xticklabels([str(s) for s in sizes] or ["1"])
    ax.set_yscale("log")
    ax.set_xlabel("containers in one run")
    ax.set_ylabel("seconds (median, log scale)")
    ax.set_title(f"Fleet scaling — {result['date'][:10]}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def steps_chart(result: dict[str, Any], path: Path) -> None:
    steps: dict[str, float] = result["noop_steps_median_s"]
    if not steps:
        return
    labels = [s.removeprefix("op: ") for s in steps]
    values = list(steps.values())
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(labels) + 1.4), dpi=120)
    colors = ["tab:gray" if not s.startswith("op: ") else "tab:blue" for s in steps]
    ys = range(len(labels))
    ax.barh(list(ys), values, color=colors)
    for y, v in zip(ys, values, strict=True):
        ax.annotate(f"{v:.3f}", (v, y), textcoords="offset points", xytext=(3, -3), fontsize=7)
    ax.set_yticks(list(ys))
    ax.set_yticklabels([lbl if len(lbl) < 70 else lbl[:67] + "…" for lbl in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (median of the -vv no-op runs)")
    total = sum(values)
    cmds = result.get("noop_remote_commands")
    ax.set_title(
        f"No-op run, one container: {total:.2f} s, {cmds:g} remote commands\n"
        "gray: pyinfra's phases, blue: the deploy's operations",
        fontsize=9,
    )
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    result_path, fleet_png, steps_png = (Path(a) for a in sys.argv[1:4])
    result = json.loads(result_path.read_text())
    fleet_chart(result, fleet_png)
    steps_chart(result, steps_png)


if __name__ == "__main__":
    main()
