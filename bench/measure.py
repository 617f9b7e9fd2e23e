"""Timed runs: the real pyinfra CLI, ``egodeploy drift``, the shell script, the playbook.

pyinfra's output is read line by line as it is printed and each line is stamped on arrival,
so a ``-vv`` run also yields the time of each phase (start-up, inventory, connecting, loading
the deploy) and of each operation (from its ``--> Starting operation`` line to the next),
without touching the deploy's code. The number of remote commands is the number of ``>>>``
lines pyinfra prints at ``-vv`` (one per command it sends).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.sandbox.api import KNOWN_HOSTS, PROJECT, SSH_CONFIG, SSH_KEY

BASELINE = Path(__file__).parent / "baseline"
TIMEOUT = 900.0


@dataclass
class Run:
    """One timed command."""

    tool: str
    scenario: str
    hosts: int
    seconds: float
    ok: bool
    changed: int | None = None
    """Operations (pyinfra), tasks (Ansible) or steps (shell) that changed something."""
    changed_steps: list[str] | None = None
    commands: int | None = None
    """Remote commands pyinfra sent (``-vv`` runs only)."""
    steps: dict[str, float] | None = None
    cpu_s: float | None = None
    """CPU time the whole machine spent while it ran (all processes: the controller, the
    containers, the sandbox's servers), from ``/proc/stat``."""
    controller_cpu_s: float | None = None
    """CPU time of the timed command's own processes on the controller (pyinfra; the ssh
    clients of the shell baseline)."""
    flags: str = ""
    note: str = ""
    tail: str = ""

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        if self.steps is not None:
            data["steps"] = {k: round(v, 3) for k, v in self.steps.items()}
        for key in ("cpu_s", "controller_cpu_s"):
            if data[key] is not None:
                data[key] = round(data[key], 2)
        return {k: v for k, v in data.items() if v not in (None, "", {}, [])}


@dataclass
class Output:
    lines: list[tuple[float, str]] = field(default_factory=list)
    returncode: int = 0
    seconds: float = 0.0
    cpu_s: float | None = None
    controller_cpu_s: float | None = None

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def stream(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = PROJECT,
    stdin: str | None = None,
    timeout: float = TIMEOUT,
    idle_first: bool = True,
) -> Output:
    """Run ``cmd`` (stdout and stderr together), stamping each output line on arrival; by
    default once the machine is idle (:func:`settle`)."""
    out = Output()
    if idle_first:
        settle()
    busy = machine_cpu_seconds()
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        if stdin is not None:
            feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
            feeder.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            out.lines.append((time.monotonic() - start, line.rstrip("\n")))
        # wait4, not wait: the rusage of this child alone (runs may be timed in parallel)
        _, status, usage = os.wait4(proc.pid, 0)
        out.returncode = proc.returncode = os.waitstatus_to_exitcode(status)
        out.controller_cpu_s = usage.ru_utime + usage.ru_stime
    finally:
        killer.cancel()
    out.seconds = time.monotonic() - start
    after = machine_cpu_seconds()
    out.cpu_s = after - busy if after is not None and busy is not None else None
    return out


def settle(*, busy_share: float = 0.15, window: float = 0.25, timeout: float = 10.0) -> float:
    """Wait until the machine is idle — under ``busy_share`` of one CPU busy over ``window``
    seconds — for at most ``timeout`` seconds, and return how long that took. Every timed run
    starts this way, so that what the previous run left behind (an Ansible run's SSH
    control masters and forks exiting, journald catching up) is not counted against the
    next tool."""
    start = time.monotonic()
    before = machine_cpu_seconds()
    if before is None:
        return 0.0
    while time.monotonic() - start < timeout:
        time.sleep(window)
        after = machine_cpu_seconds()
        assert after is not None
        if after - before < busy_share * window:
            break
        before = after
    return time.monotonic() - start


def machine_cpu_seconds() -> float | None:
    """CPU seconds the machine has been busy since boot (user, nice, system, irq, softirq of
    every CPU), or None where ``/proc/stat`` is not there."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)) / ticks


def speed_probe(runs: int = 3) -> float:
    """Seconds this machine takes for a fixed piece of Python work (10**7 empty loop turns,
    the best of ``runs``): the sandbox's CPUs are shared, and their speed has differed
    several-fold from one day to the next. Every figure of a run scales with it, so a result
    records it at its start and end (``machine.speed_probe_s_*``) and runs compare by it."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(10**7):
            pass
        best = min(best, time.perf_counter() - start)
    return round(best, 3)


def _feed(pipe: IO[str] | None, text: str) -> None:
    assert pipe is not None
    try:
        pipe.write(text)
        pipe.close()
    except BrokenPipeError:
        pass


# --- pyinfra -------------------------------------------------------------------------------

PHASES = {
    "--> Loading config": "config + inventory",
    "--> Connecting to hosts": "connect (SSH)",
    "--> Preparing operation files": "load deploy (+ facts it reads)",
    "--> Beginning operation run": "load deploy (+ facts it reads)",
    "--> Results:": "results + disconnect + exit",
}
"""pyinfra's phase lines, each naming the span that starts with it."""


def steps_of(out: Output) -> dict[str, float]:
    """Seconds per phase and per operation, from the arrival times of pyinfra's lines.

    Each span runs from one mark to the next (the last one to the exit), so the spans add
    up to the whole run: "start-up" is process start to pyinfra's first line, an operation
    runs from its ``--> Starting operation`` line to the next mark."""
    marks: list[tuple[float, str]] = [(0.0, "start-up (python, imports)")]
    for t, line in out.lines:
        text = line.strip()
        if text.startswith("--> Starting operation:"):
            marks.append((t, "op: " + text.removeprefix("--> Starting operation:").strip()))
            continue
        for prefix, label in PHASES.items():
            if text.startswith(prefix):
                marks.append((t, label))
    steps: dict[str, float] = {}
    ends = [t for t, _ in marks[1:]] + [out.seconds]
    for (start, label), end in zip(marks, ends, strict=True):
        steps[label] = steps.get(label, 0.0) + (end - start)
    return steps


def results_table(out: Output) -> list[list[str]]:
    """Rows of pyinfra's results table: operation, hosts, success, error, no change."""
    rows: list[list[str]] = []
    inside = False
    for _, line in out.lines:
        text = line.strip()
        if text.startswith("Operation") and "No Change" in text:
            inside = True
            continue
        if inside:
            cells = re.split(r"\s{2,}", text)
            if len(cells) < 5:
                break
            rows.append(cells)
    return rows


def changed_ops(out: Output) -> tuple[int | None, list[str]]:
    """Operations x hosts that changed something (the "Grand total" row), and which."""
    total, names = None, []
    for row in results_table(out):
        success = 0 if row[-3] == "-" else int(row[-3])
        if row[0] == "Grand total":
            total = success
        elif success:
            names.append(row[0])
    return total, names


def remote_commands(out: Output) -> int:
    return sum(1 for _, line in out.lines if ">>> " in line)


def pyinfra(
    hosts_file: Path, scenario: str, hosts: int, *args: str, deploy: str = "deploys/prod.py"
) -> Run:
    cmd = [sys.executable, "-m", "pyinfra", *args, "inventory.py", deploy]
    out = stream(cmd, env={"EGOGRAPH_HOSTS_FILE": str(hosts_file)})
    verbose = "-vv" in args
    changed, changed_steps = changed_ops(out)
    return Run(
        tool="pyinfra",
        scenario=scenario,
        hosts=hosts,
        seconds=out.seconds,
        ok=out.returncode == 0,
        changed=changed,
        changed_steps=changed_steps,
        commands=remote_commands(out) if verbose else None,
        steps=steps_of(out) if verbose else None,
        cpu_s=out.cpu_s,
        controller_cpu_s=out.controller_cpu_s,
        flags=" ".join(args),
        tail="" if out.returncode == 0 else out.text[-3000:],
    )


def drift(hosts_file: Path, hosts: int) -> Run:
    """``egodeploy drift --json``: exit 0 means in sync."""
    exe = Path(sys.executable).parent / "egodeploy"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "deploys.cli"]
    cmd = [*base, "drift", "--json"]
    out = stream(cmd, env={"EGOGRAPH_HOSTS_FILE": str(hosts_file)})
    drifted = None
    try:
        report = json.loads(out.text[out.text.index("{") :])
        drifted = sum(len(v) for v in report.get("hosts", {}).values())
    except ValueError:
        pass
    return Run(
        tool="egodeploy drift",
        scenario="drift",
        hosts=hosts,
        seconds=out.seconds,
        ok=out.returncode == 0,
        changed=drifted,
        cpu_s=out.cpu_s,
        controller_cpu_s=out.controller_cpu_s,
        tail="" if out.returncode == 0 else out.text[-3000:],
    )


# --- shell baseline --------------------------------------------------------------------------


def shell(name: str, scenario: str, variables: dict[str, str], *, idle_first: bool = True) -> Run:
    """The runbook script over one SSH session: ``ssh -F <config> <name> bash -s``."""
    script = "".join(f"{k}={_sh_quote(v)}\n" for k, v in variables.items())
    script += (BASELINE / "runbook.sh").read_text()
    cmd = ["ssh", "-F", str(SSH_CONFIG), "-o", "ConnectTimeout=5", name, "bash", "-s"]
    out = stream(cmd, stdin=script, idle_first=idle_first)
    changed = [line for _, line in out.lines if line.startswith("CHANGED ")]
    done = any(line == "DONE" for _, line in out.lines)
    # Each step prints CHANGED when it ends: the time since the previous mark is its time.
    steps: dict[str, float] = {}
    previous = 0.0
    for t, line in out.lines:
        if line.startswith("CHANGED ") or line == "DONE":
            label = line.removeprefix("CHANGED ") if line != "DONE" else "checks, health, exit"
            steps[label] = steps.get(label, 0.0) + t - previous
            previous = t
    steps["exit"] = out.seconds - previous
    return Run(
        tool="shell",
        scenario=scenario,
        hosts=1,
        seconds=out.seconds,
        ok=out.returncode == 0 and done,
        changed=len(changed),
        changed_steps=[line.removeprefix("CHANGED ") for line in changed],
        steps=steps if changed else None,
        cpu_s=out.cpu_s,
        controller_cpu_s=out.controller_cpu_s,
        tail="" if out.returncode == 0 and done else out.text[-3000:],
    )


def shell_fleet(names: list[str], scenario: str, variables: dict[str, str]) -> Run:
    """The runbook script on every container at once (one SSH session each, in parallel):
    timed from the first start to the last exit."""
    from concurrent.futures import ThreadPoolExecutor

    settle()
    busy = machine_cpu_seconds()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        runs = list(
            pool.map(lambda name: shell(name, scenario, variables, idle_first=False), names)
        )
    seconds = time.monotonic() - start
    after = machine_cpu_seconds()
    failed = [r for r in runs if not r.ok]
    return Run(
        tool="shell",
        scenario=scenario,
        hosts=len(names),
        seconds=seconds,
        ok=not failed,
        changed=sum(r.changed or 0 for r in runs),
        changed_steps=sorted({s for r in runs for s in r.changed_steps or []}),
        cpu_s=after - busy if after is not None and busy is not None else None,
        controller_cpu_s=sum(r.controller_cpu_s or 0.0 for r in runs),
        tail=failed[0].tail if failed else "",
    )


def _sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


# --- Ansible baseline --------------------------------------------------------------------------


class Ansible:
    """ansible-playbook, run by a co-process in ``uv run --with ansible-core`` (see
    ``bench/ansible_driver.py``), so that uv's environment set-up is not timed."""

    def __init__(self, extra_vars: dict[str, Any]) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="egograph-bench-ansible-"))
        self.vars_file = self.tmp / "vars.json"
        self.vars_file.touch(mode=0o600)
        self.vars_file.write_text(json.dumps(extra_vars))
        uv = os.environ.get("UV") or "uv"
        self.proc = subprocess.Popen(
            [
                uv,
                "run",
                "--no-project",
                "--quiet",
                # Bytecode, as `make deps` gives the deploy: both start from .pyc files.
                "--compile-bytecode",
                "--with",
                "ansible-core",
                "python",
                "-m",
                "bench.ansible_driver",
            ],
            cwd=PROJECT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.version = self._ask({"cmd": "version"})["version"]

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Ansible driver exited (see its output above)")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, hosts: list[tuple[str, str]], scenario: str) -> Run:
        """Run the playbook on ``[(name, ip)]``; time only ansible-playbook itself."""
        inventory = self.tmp / "inventory.ini"
        inventory.write_text(
            "[all]\n"
            + "".join(
                f"{name} ansible_host={ip} ansible_user=root "
                f"ansible_ssh_private_key_file={SSH_KEY} "
                f"ansible_ssh_common_args='-o UserKnownHostsFile={KNOWN_HOSTS} "
                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes' "
                "ansible_python_interpreter=/usr/bin/python3\n"
                for name, ip in hosts
            )
        )
        settle()
        reply = self._ask(
            {
                "cmd": "run",
                "dir": str(self.tmp),
                "playbook": str(BASELINE / "playbook.yml"),
                "inventory": str(inventory),
                "vars": str(self.vars_file),
                "forks": max(10, len(hosts)),
            }
        )
        recap: dict[str, dict[str, int]] = reply["recap"]
        ok = reply["rc"] == 0 and len(recap) == len(hosts)
        return Run(
            tool="ansible",
            scenario=scenario,
            hosts=len(hosts),
            seconds=reply["seconds"],
            ok=ok,
            changed=sum(h.get("changed", 0) for h in recap.values()),
            changed_steps=reply.get("changed_tasks", []),
            tail="" if ok else reply["tail"],
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
