"""``make bench``: the deploy's speed on the sandbox, side by side with a shell script and an
Ansible playbook doing the same in-container work (issue 8).

Measured, each as the median of ``--runs`` runs (every run is recorded):

1. first converge from an empty container (a fresh container per run) — pyinfra, shell, Ansible;
   and from an empty emulated Proxmox node (the API creates, patches and starts the container,
   then the same in-container deploy), with that setup's no-op re-run;
2. no-op re-run of the full deploy, ``pyinfra -y inventory.py deploys/prod.py`` — and of the
   shell script and the playbook;
3. ``egodeploy drift`` on an in-sync host;
4. remote commands per no-op run (pyinfra's ``>>>`` lines at ``-vv``) and the time of each
   phase and operation of the no-op run (arrival times of pyinfra's ``-vv`` lines);
5. fleet: 1, 4, 8, 16 containers in ONE pyinfra run (one hosts file), no-op and first
   converge, and the same with Ansible;
6. fail fast: a release that crashes at import, from the restart to the previous release
   healthy again, and the seconds of failing requests a 10 Hz probe sees (``failfast.py``);
7. ``egodeploy status`` on one converged container, and its remote commands per host
   (``status.py``).

Runs of the different tools are interleaved, so machine noise hits them alike and the ratios
are taken in the same run. Writes ``bench/results/<date>.json`` (raw runs, medians, ratios,
targets), ``<date>.md``, ``<date>-fleet.png``, ``<date>-noop-steps.png`` and
``README-performance.md``. Containers are ``bench-…`` and are destroyed at the end, also on
failure.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

from deploys.services import render_unit
from deploys.services.settings import Service
from deploys.settings import Settings, validate
from deploys.tailscale import node_name, served_services
from deploys.uv import wheel
from tests.sandbox import api as sandbox

from . import containers, failfast, measure, report, results
from . import status as status_bench
from .measure import Run

NODE_PREFIX = "bench-ct"
NODE_CT = f"{NODE_PREFIX}100"
"""The container the emulated node makes (the default ``ct_vmid``)."""
NODE_HOST = "egograph-prod"
UV_WWW = "bench-uv"
"""Where the shell baseline downloads uv from (the sandbox's HTTP server on the bridge)."""


def log(message: str) -> None:
    print(f"bench [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Bench:
    def __init__(self, args: argparse.Namespace, data: dict[str, Any], settings: Settings) -> None:
        self.args = args
        self.data = data
        self.settings = settings
        self.runs: list[Run] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="egograph-bench-"))
        self.seed = not args.cold
        self.ansible: measure.Ansible | None = None
        if not args.skip_ansible:
            log("starting the Ansible driver (uv run --with ansible-core)")
            self.ansible = measure.Ansible(ansible_vars(settings))
        self.shell_vars = shell_vars(settings)

    # --- helpers -----------------------------------------------------------------------

    def hosts_file(self, cs: list[sandbox.Container]) -> Path:
        tag = f"{cs[0].name}-{len(cs)}"
        return sandbox.write_hosts_file(
            self.tmp / f"hosts-{tag}.json",
            [(c.name, {**c.pyinfra_data(), **self.data}) for c in cs],
        )

    def record(self, run: Run, *, noop: bool = False) -> Run:
        if run.ok and noop and run.changed:
            run.ok = False
            steps = ", ".join(run.changed_steps or [])
            run.note = f"not a no-op: {run.changed} change(s) {steps}".strip()
        self.runs.append(run)
        status = "ok" if run.ok else f"FAILED {run.note}"
        extra = f", {run.commands} commands" if run.commands is not None else ""
        log(
            f"{run.tool:<15} {run.scenario:<15} {run.hosts} host(s) {run.seconds:7.2f}s "
            f"changed={run.changed}{extra} {status}"
        )
        return run

    def attempt(self, fn: Callable[[], Run], *, noop: bool = False) -> Run:
        """Run once; when it fails (an infrastructure hiccup: a mirror, a known_hosts file
        rewritten under us), record the failure and try once more."""
        run = self.record(fn(), noop=noop)
        if run.ok:
            return run
        log(f"output tail:\n{run.tail[-1500:]}")
        run.note = (run.note + "; retried").lstrip("; ")
        again = self.record(fn(), noop=noop)
        if not again.ok:
            raise BenchError(f"{run.tool} {run.scenario} failed twice:\n{again.tail[-3000:]}")
        return again

    def converge(self, tool: str, names: list[str], scenario: str) -> list[sandbox.Container]:
        holder: dict[str, list[sandbox.Container]] = {}

        def once() -> Run:
            cs = containers.fresh(names, seed=self.seed and scenario != "converge-cold")
            holder["cs"] = cs
            return self.one(tool, cs, scenario)

        self.attempt(once)
        return holder["cs"]

    def one(self, tool: str, cs: list[sandbox.Container], scenario: str) -> Run:
        if tool == "pyinfra":
            flags = ("-y",) if scenario.endswith("noop") else ("-y", "-vv")
            return measure.pyinfra(self.hosts_file(cs), scenario, len(cs), *flags)
        if tool == "pyinfra-vv":
            return measure.pyinfra(self.hosts_file(cs), scenario, len(cs), "-y", "-vv")
        if tool == "drift":
            return measure.drift(self.hosts_file(cs), len(cs))
        if tool == "shell":
            if len(cs) == 1:
                return measure.shell(cs[0].name, scenario, self.shell_vars)
            return measure.shell_fleet([c.name for c in cs], scenario, self.shell_vars)
        assert tool == "ansible" and self.ansible is not None
        return self.ansible.run([(c.name, c.ip) for c in cs], scenario)

    # --- phases ----------------------------------------------------------------------------

    def node(self) -> None:
        """First converge from an EMPTY emulated Proxmox node, as ``make demo`` does (a new
        node per run: no container, no template), then no-op re-runs of that setup."""
        state = self.tmp / "pve"
        node: sandbox.PveNode | None = None

        def fresh_node() -> sandbox.PveNode:
            nonlocal node
            if node is not None:
                node.stop()
            containers.destroy([NODE_CT])
            shutil.rmtree(state, ignore_errors=True)
            if self.seed:
                containers.preseed(NODE_CT)
            node = sandbox.start_pve_node(state, prefix=NODE_PREFIX)
            return node

        def hosts_file(n: sandbox.PveNode) -> Path:
            data = {**self.data, **sandbox.pve_settings(n)}
            return sandbox.write_hosts_file(self.tmp / "hosts-node.json", [(NODE_HOST, data)])

        try:
            for _ in range(self.args.runs):
                self.attempt(lambda: measure.pyinfra(
                    hosts_file(fresh_node()), "converge-node", 1, "-y", "-vv"
                ))  # fmt: skip
            assert node is not None
            for _ in range(self.args.runs):
                run = partial(measure.pyinfra, hosts_file(node), "noop-node", 1, "-y")
                self.attempt(run, noop=True)
        finally:
            if node is not None:
                node.stop()
            containers.destroy([NODE_CT])

    def single(self) -> None:
        tools = ["pyinfra", "shell"] + (["ansible"] if self.ansible else [])
        if self.seed:
            log("cold first converge (pristine container; its package caches seed the rest)")
            (c,) = self.converge("pyinfra", ["bench-cold"], "converge-cold")
            containers.capture_seed(c)
            containers.destroy(["bench-cold"])
        kept: dict[str, list[sandbox.Container]] = {}
        for i in range(self.args.runs):
            for tool in tools[i % len(tools) :] + tools[: i % len(tools)]:
                kept[tool] = self.converge(tool, [f"bench-{tool}"], "converge")
        for _ in range(self.args.runs):
            self.attempt(partial(self.one, "pyinfra", kept["pyinfra"], "noop"), noop=True)
            self.attempt(partial(self.one, "pyinfra-vv", kept["pyinfra"], "noop-vv"), noop=True)
            self.attempt(partial(self.one, "drift", kept["pyinfra"], "drift"), noop=True)
            for tool in tools[1:]:
                self.attempt(partial(self.one, tool, kept[tool], "noop"), noop=True)
        containers.destroy(f"bench-{t}" for t in tools)

    def fleet(self) -> None:
        sizes = sorted(set(self.args.fleet))
        largest = sizes[-1]
        # The shell script, one SSH session per container, all at once: what the machine
        # itself allows for N containers converged or checked in parallel.
        tools = ["pyinfra", "shell"] + (
            ["ansible"] if self.ansible and not self.args.skip_ansible_fleet else []
        )
        names = {t: [f"bench-f{t[0]}{i}" for i in range(1, largest + 1)] for t in tools}
        kept: dict[str, list[sandbox.Container]] = {}
        # First converge: N fresh containers, one run over all of them. N = 1 is the
        # single-container phase's figure unless it is the only size.
        converge_sizes = [n for n in sizes if n > 1 or len(sizes) == 1]
        for n in converge_sizes:
            for _ in range(self.args.fleet_converge_runs):
                for tool in tools:
                    kept[tool] = self.converge(tool, names[tool][:n], "fleet-converge")
        # The largest set stays converged; no-op runs take its first N containers.
        for tool in tools:
            if len(kept.get(tool, [])) != largest:
                kept[tool] = self.converge(tool, names[tool], "fleet-converge")
        for n in sizes:
            vv = partial(self.one, "pyinfra-vv", kept["pyinfra"][:n], "fleet-noop-vv")
            self.attempt(vv, noop=True)
        for _ in range(self.args.runs):
            for n in sizes:
                for tool in tools:
                    run = partial(self.one, tool, kept[tool][:n], "fleet-noop")
                    self.attempt(run, noop=True)
        for tool in tools:
            containers.destroy(names[tool])

    def failfast(self) -> None:
        for _ in range(self.args.failfast_runs):
            for run in failfast.measure_once(lambda c: self.hosts_file([c]), seed=self.seed):
                self.record(run)

    def status(self) -> None:
        runs = self.args.status_runs
        if runs:
            one = lambda c: self.hosts_file([c])  # noqa: E731  (as failfast's)
            for run in status_bench.measure_runs(one, runs, seed=self.seed):
                self.record(run)

    def close(self) -> None:
        if self.ansible:
            self.ansible.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- what the baselines need, from the deploy's own settings ---------------------------------


def tailscale_key(settings: Settings) -> str:
    source = dict(settings.tailscale_authkey_source)
    if "file" in source:
        return Path(source["file"]).expanduser().read_text().strip()
    return os.environ.get(source["environ"], "")


def uv_binaries(settings: Settings) -> tuple[Path, Path]:
    return wheel.ensure_binaries(settings.uv_wheel_index, settings.uv_version, "x86_64")


def publish_uv(settings: Settings) -> str:
    """Serve the uv and uvx binaries (from the uv wheel) on the sandbox's HTTP server."""
    uv, uvx = uv_binaries(settings)
    dest = sandbox.WWW_ROOT / UV_WWW / f"{settings.uv_version}-x86_64"
    dest.mkdir(parents=True, exist_ok=True)
    for src in (uv, uvx):
        target = dest / src.name
        if not target.exists() or target.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, target)
    return f"http://{sandbox.HOST_IP}:{sandbox.HTTP_PORT}/{UV_WWW}/{settings.uv_version}-x86_64"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_text(svc: Service) -> str:
    """The env file text validation read from the service's controller-side source."""
    assert svc.env is not None, "the bench writes its env files from the controller"
    return svc.env.text


def shell_vars(settings: Settings) -> dict[str, str]:
    svc = settings.services[0]
    uv, uvx = uv_binaries(settings)
    served = served_services(settings.services)[0] if settings.tailscale_enabled else None
    unit = render_unit(settings, svc)
    return {
        "APT_PACKAGES": " ".join(
            dict.fromkeys(["git", "curl", "ca-certificates", *list(settings.apt_packages)])
        ),
        "TS_ENABLED": "1" if settings.tailscale_enabled else "0",
        "TS_REPO_URL": str(settings.tailscale_repo_url).rstrip("/"),
        "TS_KEYRING_SHA256": str(settings.tailscale_keyring_sha256).lower(),
        "TS_HOSTNAME": node_name(settings),
        "TS_AUTHKEY_B64": base64.b64encode(tailscale_key(settings).encode()).decode()
        if settings.tailscale_enabled
        else "",
        "TS_LOGIN_SERVER": str(settings.tailscale_login_server),
        "TS_SERVE_SCHEME": served.scheme if served else "",
        "TS_SERVE_PORT": str(served.port) if served else "",
        "TS_SERVE_TARGET": served.target if served else "",
        "UV_VERSION": settings.uv_version,
        "UV_PATH": settings.uv_path,
        "UV_URL": publish_uv(settings),
        "UV_SHA256": _sha256(uv),
        "UVX_SHA256": _sha256(uvx),
        "UV_ENV": " ".join(f"{k}={v}" for k, v in sorted(settings.uv_environment.items())),
        "PROFILE": settings.uv_profile,
        "REPO_URL": settings.repo_url,
        "REPO_BRANCH": settings.repo_branch,
        "REPO_PATH": settings.repo_path,
        "ENV_FILE": svc.env_file,
        "ENV_B64": base64.b64encode(env_text(svc).encode()).decode(),
        "DUCKDB_EXTENSIONS": " ".join(settings.duckdb_extensions),
        "DUCKDB_REPOSITORY": settings.duckdb_extension_repository,
        "UNIT": svc.unit,
        "UNIT_B64": base64.b64encode(unit.encode()).decode(),
        "HEALTH_URL": svc.health_url,
        "HEALTH_TIMEOUT": str(settings.service_health_timeout),
    }


def ansible_vars(settings: Settings) -> dict[str, Any]:
    svc = settings.services[0]
    uv, uvx = uv_binaries(settings)
    served = served_services(settings.services)[0] if settings.tailscale_enabled else None
    return {
        "apt_packages": list(
            dict.fromkeys(["git", "curl", "ca-certificates", *settings.apt_packages])
        ),
        "ts_enabled": bool(settings.tailscale_enabled),
        "ts_repo_url": str(settings.tailscale_repo_url).rstrip("/"),
        "ts_keyring_sha256": str(settings.tailscale_keyring_sha256).lower(),
        "ts_hostname": node_name(settings),
        "ts_authkey": tailscale_key(settings) if settings.tailscale_enabled else "",
        "ts_login_server": str(settings.tailscale_login_server),
        "ts_serve_scheme": served.scheme if served else "https",
        "ts_serve_port": served.port if served else 443,
        "ts_serve_target": served.target if served else "",
        "uv_local": str(uv),
        "uvx_local": str(uvx),
        "uv_path": settings.uv_path,
        "uv_profile": settings.uv_profile,
        "uv_environment": dict(settings.uv_environment),
        "repo_url": settings.repo_url,
        "repo_branch": settings.repo_branch,
        "repo_path": settings.repo_path,
        "env_file": svc.env_file,
        "env_text": env_text(svc),
        "duckdb_extensions": list(settings.duckdb_extensions),
        "duckdb_repository": settings.duckdb_extension_repository,
        "unit": svc.unit,
        "unit_text": render_unit(settings, svc),
        "health_url": svc.health_url,
        "health_timeout": settings.service_health_timeout,
    }


# --- entry point -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument(
        "--fleet",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 4, 8, 16],
        help="fleet sizes, comma-separated ('' skips the fleet phase)",
    )
    parser.add_argument(
        "--fleet-converge-runs",
        type=int,
        default=1,
        help="first converges per fleet size (each needs N fresh containers)",
    )
    parser.add_argument(
        "--failfast-runs", type=int, default=1, help="runs of the fail-fast scenario (0: none)"
    )
    parser.add_argument(
        "--only-failfast",
        action="store_true",
        help="only the fail-fast scenario; results under /tmp unless --out names a directory",
    )
    parser.add_argument(
        "--status-runs", type=int, default=None, help="runs of `egodeploy status` (default: --runs)"
    )
    parser.add_argument(
        "--only-status",
        action="store_true",
        help="only the status scenario; results under /tmp unless --out names a directory",
    )
    parser.add_argument("--skip-ansible", action="store_true", help="no Ansible baseline")
    parser.add_argument(
        "--skip-node", action="store_true", help="no runs from an empty emulated Proxmox node"
    )
    parser.add_argument(
        "--skip-ansible-fleet", action="store_true", help="Ansible on one container only"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no package-cache seeding: every converge downloads from the registries",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 runs, fleet 1,2, results under /tmp (not bench/results)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument(
        "--rebuild",
        type=Path,
        default=None,
        metavar="RESULT.json",
        help="measure nothing: redraw the Markdown, charts and README section from a result",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 2)
        args.fleet = [n for n in args.fleet if n <= 2]
    if args.status_runs is None:
        args.status_runs = args.runs
    if args.only_failfast and args.only_status:
        parser.error("--only-failfast and --only-status: pick one")
    if args.only_failfast:
        args.skip_ansible = True
        args.failfast_runs = max(args.failfast_runs, 1)
        args.status_runs = 0
    if args.only_status:
        args.skip_ansible = True
        args.failfast_runs = 0
        args.status_runs = max(args.status_runs, 1)
    if args.out is None and (args.quick or args.only_failfast or args.only_status):
        kind = "failfast" if args.only_failfast else "status" if args.only_status else "quick"
        args.out = Path(tempfile.gettempdir()) / f"egograph-bench-{kind}"
    elif args.out is None:
        args.out = results.RESULTS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rebuild:
        result = json.loads(args.rebuild.read_text())
        for path in results.write(result, args.rebuild.parent):
            log(f"wrote {path}")
        return
    reason = sandbox.require_root_linux()
    if reason:
        sys.exit(f"bench: {reason}")
    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    speed_at_start = measure.speed_probe()
    log("preparing the sandbox (host packages, network, git and HTTP servers, fixture app)")
    sandbox.prepare_host()
    env = sandbox.write_secret_env("bench")
    data = {**sandbox.settings(env), "repo_url": containers.publish_app()}
    settings = validate(data)
    containers.destroy_all()
    bench: Bench | None = None
    error: str | None = None
    try:
        bench = Bench(args, data, settings)
        if not (args.only_failfast or args.only_status):
            bench.single()
            if not args.skip_node:
                bench.node()
            if args.fleet:
                bench.fleet()
        bench.failfast()
        bench.status()
    except Exception as exc:  # whatever broke, what was measured is still written
        error = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {error[-2000:]}")
    except KeyboardInterrupt:
        error = "interrupted"
    finally:
        log("destroying the benchmark's containers")
        containers.destroy_all()
        if bench is not None:
            bench.close()
    runs = bench.runs if bench else []
    meta = {
        "date": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "complete": error is None,
        "error": error,
        "options": {
            "runs": args.runs,
            "fleet": args.fleet,
            "fleet_converge_runs": args.fleet_converge_runs,
            "failfast_runs": args.failfast_runs,
            "only_failfast": args.only_failfast,
            "status_runs": args.status_runs,
            "only_status": args.only_status,
            "ansible": not args.skip_ansible,
            "package_caches_seeded": not args.cold,
            "quick": args.quick,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "speed_probe_s_at_start": speed_at_start,
            "speed_probe_s_at_end": measure.speed_probe(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "versions": {
            "pyinfra": metadata.version("pyinfra"),
            "ansible-core": bench.ansible.version if bench and bench.ansible else None,
            "uv (target)": settings.uv_version,
        },
        "deploy": {
            "tailscale": bool(settings.tailscale_enabled),
            "proxmox": bool(settings.pve_host),
            "services": [s.unit for s in settings.services],
        },
    }
    result = report.build(meta, [r.record() for r in runs])
    written = results.write(result, args.out)
    for path in written:
        log(f"wrote {path}")
    print(report.markdown_table(result))
    if error:
        sys.exit(f"bench: incomplete: {error[-500:]}")


if __name__ == "__main__":
    main()
