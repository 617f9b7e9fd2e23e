"""``make bench``: first converge, no-op re-run and dry run on a fresh sandbox container.

Prints a table and writes ``bench/results/<date>.json``. Medians of ``--runs`` runs; the
number of remote commands of a no-op run is counted from pyinfra's own ``-vv`` output
(one ``>>>`` line per command sent), which does not vary with machine noise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.sandbox import container, host, site
from tests.sandbox.runner import pyinfra

RESULTS = Path(__file__).parent / "results"


def timed(hosts: Path, *args: str) -> tuple[float, str]:
    start = time.monotonic()
    run = pyinfra(hosts, *args)
    elapsed = time.monotonic() - start
    if run.returncode != 0:
        sys.exit(f"bench: pyinfra {' '.join(args)} failed:\n{run.output[-3000:]}")
    return elapsed, run.output


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    reason = host.require_root_linux()
    if reason:
        sys.exit(f"bench: {reason}")
    host.ensure_packages()
    host.ensure_network()
    host.ensure_services()
    site.publish_app()
    env = site.write_secret_env("bench")
    c = container.get("bench-1")
    c.destroy()
    c = container.get("bench-1")
    boot_start = time.monotonic()
    c.start()
    boot = time.monotonic() - boot_start
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hosts = site.write_hosts_file(
                Path(tmp) / "hosts.json", [(c.name, {**c.pyinfra_data(), **site.settings(env)})]
            )
            first, _ = timed(hosts, "-y")
            noop = [timed(hosts, "-y")[0] for _ in range(args.runs)]
            dry = [timed(hosts, "--dry")[0] for _ in range(args.runs)]
            _, verbose = timed(hosts, "-y", "-vv")
            commands = sum(1 for line in verbose.splitlines() if ">>> " in line)
            changes = [line for line in verbose.splitlines() if "] Success" in line]
    finally:
        c.destroy()
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": args.runs,
        "container_boot_s": round(boot, 2),
        "first_converge_s": round(first, 2),
        "noop_median_s": round(statistics.median(noop), 2),
        "noop_runs_s": [round(x, 2) for x in noop],
        "dry_run_median_s": round(statistics.median(dry), 2),
        "noop_remote_commands": commands,
        "noop_changed_operations": len(changes),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{result['date'][:10]}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
