"""The canary test: recognisable fake secrets never show up anywhere.

The secrets: the env file values (``app_site.CANARY``), the Tailscale auth key
(``tailscale_site.authkey()``, a real headscale pre-auth key) and, in the Proxmox run, the API token secret (``PVE_CANARY``).
Every entry point runs with them -- ``deploys/prod.py`` (without and with Proxmox),
``deploys/update.py``, ``egodeploy drift`` (text and ``--json``) and the README's ad-hoc fact
queries -- at ``-vvv``, with ``--diff`` and with ``--json``, at moments when the secrets are
in use (first deploy and Tailscale login, env file changes, a login after ``tailscale
logout``, a failing release). Scanned for the canaries (whole, and their tails): all output,
the logs the sandbox keeps on the controller side (the emulator's, the node sshd's) and the
process lists of the target and the controller, sampled every ~0.2 s during the runs.

Also: the env file is 0600 on the target, the controller-side secret files are 0600, and no
temporary secret file (``*.egograph-deploy.tmp``, ``/run/egograph-deploy/*``) is left on the
target after a run -- also after a failed one.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import site
from tests.sandbox.app import site as app_site
from tests.sandbox.container import Container
from tests.sandbox.pve import site as pve_site
from tests.sandbox.pve.sandbox_backend import SandboxBackend
from tests.sandbox.runner import PROJECT, PyinfraRun, pyinfra
from tests.sandbox.tailscale import site as tailscale_site

pytestmark = pytest.mark.e2e

PVE_CANARY = "pvecanary-0b7e-4f1d-9a2c-5ec2e7deadbf"


@functools.cache
def canaries() -> tuple[str, ...]:
    # The Tailscale key is a real pre-auth key of the sandbox's headscale, made on first use.
    return (app_site.CANARY, tailscale_site.authkey(), PVE_CANARY)


ENV_FILE = "/opt/egograph/repo/egograph/backend/.env"
SAMPLE_LOOP = "for i in $(seq 1 4000); do ps -eo args; echo @@; sleep 0.2; done"  # <= ~15 min


def hits(text: str) -> list[str]:
    """Canaries (or their last 12 characters: a truncated print) found in ``text``."""
    return [c for c in canaries() if c in text or c[-12:] in text]


class Sampler:
    """``ps -eo args`` every ~0.2 s from a background thread (one long-lived command)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.samples = 0
        self.found: set[str] = set()
        self.lines: list[str] = []
        """The sampled command lines that held a canary (shown when a check fails)."""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                self.samples += 1
            elif found := hits(line):
                self.found.update(found)
                self.lines.append(line.strip())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(10)


def sample_container(c: Container) -> Sampler:
    # over SSH, or by entering a container made through the emulated API (no sandbox key)
    return Sampler(c.shell_argv(SAMPLE_LOOP))


def sample_controller() -> Sampler:
    return Sampler(["sh", "-c", SAMPLE_LOOP])


class Record:
    """Every output of every run, by what ran."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def add(self, what: str, text: str) -> None:
        self.outputs.append((what, text))

    def pyinfra(self, hosts: Path, *args: str, deploy: str = "deploys/prod.py") -> PyinfraRun:
        r = pyinfra(hosts, *args, deploy=deploy, timeout=600)
        self.add(f"pyinfra {' '.join(args)} {deploy}", r.output)
        return r

    def command(self, hosts: Path, what: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        import os

        proc = subprocess.run(
            argv, cwd=PROJECT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "EGOGRAPH_HOSTS_FILE": str(hosts)},
        )  # fmt: skip
        self.add(what, proc.stdout + proc.stderr)
        return proc

    def leaks(self) -> list[tuple[str, list[str]]]:
        return [(what, found) for what, text in self.outputs if (found := hits(text))]


def readme_fact_queries() -> list[list[str]]:
    """The ad-hoc fact commands README lists (``pyinfra inventory.py fact …``)."""
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Ad-hoc facts", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if line.startswith("pyinfra inventory.py fact "):
            out.append(shlex.split(line, comments=True)[3:])
    assert len(out) >= 8, out
    return out


def assert_sampler_sees_a_planted_canary(c: Container) -> None:
    """Control: the sampling does catch a canary on the target's process list."""
    probe = sample_container(c)
    try:
        c.ssh(f"sh -c 'sleep 2; : {app_site.CANARY}'")
    finally:
        probe.stop()
    assert probe.found == {app_site.CANARY}, probe.samples


def target_files(c: Container) -> tuple[str, list[str]]:
    """(mode of the env file, temporary secret files left on the target)."""
    mode = c.ssh(f"stat -c %a {ENV_FILE}").stdout.strip()
    left = c.ssh(
        "find / -xdev -name '*.egograph-deploy.tmp' 2>/dev/null; "
        "ls -A /run/egograph-deploy 2>/dev/null | sed 's|^|/run/egograph-deploy/|'",
        check=False,
    ).stdout.split()
    return mode, left


def assert_controller_secret_files(*files: Path) -> None:
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, (f, oct(f.stat().st_mode))


def new_env(name: str, step: int) -> Path:
    """The env source again, with the canary and a changed value (the env file changes)."""
    return app_site.write_secret_env(name, {"CORS_ORIGINS": f"https://step-{step}.example"})


@pytest.fixture
def restore_app(sandbox: None) -> Iterator[None]:
    yield
    app_site.publish_app()


def test_no_entry_point_leaks_a_secret_without_proxmox(
    new_container: Any, tmp_path: Path, restore_app: None
) -> None:
    app_site.publish_app("fixture")
    env_name = f"backend-secrets-{tmp_path.name}"
    env = new_env(env_name, 0)
    authkey = tailscale_site.authkey_file()
    c = new_container()
    data = {**c.pyinfra_data(), **site.settings(env), "service_health_timeout": 20}
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [(c.name, data)])
    rec = Record()
    assert_sampler_sees_a_planted_canary(c)
    on_target, on_controller = sample_container(c), sample_controller()
    try:
        # the first deploy: env file created, Tailscale installed and logged in with the key
        first = rec.pyinfra(hosts, "-y", "-vvv", "--diff")
        assert first.returncode == 0, first.output[-3000:]
        assert target_files(c) == ("600", [])
        # control: the secrets did reach the target (not shown: kept out of the record)
        assert app_site.CANARY in c.ssh(f"cat {ENV_FILE}").stdout
        assert "Running" in c.ssh("tailscale status --json").stdout

        # the key used again (logged out) and the env file changed, reported as JSON
        c.ssh("tailscale logout", check=False)
        new_env(env_name, 1)
        second = rec.pyinfra(hosts, "-y", "-vvv", "--json")
        assert second.returncode == 0, second.output[-3000:]
        assert "Tailscale" in " ".join(second.changed_ops()), second.changed_ops()
        assert target_files(c) == ("600", [])

        # an existing env file changed, with --diff (the diff of a secret file)
        new_env(env_name, 2)
        third = rec.pyinfra(hosts, "-y", "-vvv", "--diff")
        assert third.returncode == 0, third.output[-3000:]
        assert any(".env" in op for op in _changed_names(third)), third.output[-3000:]

        # the update flow, both ways, with a new release each time
        for step, flags in ((3, ("-vvv", "--diff")), (4, ("-vvv", "--json"))):
            app_site.publish_app(f"release {step}",
                             {"egograph/backend/__init__.py": f'RELEASE = "r{step}"\n'})  # fmt: skip
            upd = rec.pyinfra(hosts, "-y", *flags, deploy="deploys/update.py")
            assert upd.returncode == 0, upd.output[-3000:]
            assert target_files(c) == ("600", [])

        # drift (text and JSON), with the env source changed so that there is drift to report
        new_env(env_name, 5)
        egodeploy = str(Path(sys.executable).with_name("egodeploy"))
        text = rec.command(hosts, "egodeploy drift", [egodeploy, "drift"])
        js = rec.command(hosts, "egodeploy drift --json", [egodeploy, "drift", "--json"])
        assert (text.returncode, js.returncode) == (2, 2), (text.stdout, js.stdout[-2000:])

        # every ad-hoc fact query in the README, at -vvv, plain and --json
        for query in readme_fact_queries():
            for fact_flags in (["-vvv"], ["-vvv", "--json"]):
                r = rec.command(hosts, f"fact {' '.join(query)} {fact_flags}",
                                [sys.executable, "-m", "pyinfra", *fact_flags, "inventory.py",
                                 "fact", *query])  # fmt: skip
                assert r.returncode == 0, (query, (r.stdout + r.stderr)[-2000:])

        # a FAILED run (the release's health check fails; rolled back) with a changed env file
        app_site.publish_app("broken", {"egograph/backend/__init__.py":
                                    'raise RuntimeError("this release cannot start")\n'})  # fmt: skip
        new_env(env_name, 6)
        failed = rec.pyinfra(hosts, "-y", "-vvv", "--diff")
        assert failed.returncode != 0, failed.output[-3000:]
        assert target_files(c) == ("600", [])
        failed_update = rec.pyinfra(hosts, "-y", "-vvv", "--json", deploy="deploys/update.py")
        assert failed_update.returncode != 0
        assert target_files(c) == ("600", [])
    finally:
        on_target.stop()
        on_controller.stop()

    # the target's own logs: the journal (units, sshd, the deploy's commands) and /var/log
    logs = c.ssh("journalctl --no-pager -o cat 2>/dev/null; cat /var/log/*.log 2>/dev/null",
                 check=False, timeout=60).stdout  # fmt: skip
    assert "egograph" in logs.lower()  # it is the target's journal, with the service in it
    rec.add("target journal and /var/log", logs)
    assert rec.leaks() == []
    assert on_target.samples >= 50 and on_controller.samples >= 50
    assert on_target.found == set(), on_target.lines[:5]
    assert on_controller.found == set(), on_controller.lines[:5]
    assert_controller_secret_files(env, authkey)
    assert env.parent.stat().st_mode & 0o077 == 0


def _changed_names(run: PyinfraRun) -> list[str]:
    """Operation names pyinfra printed as changing (text output)."""
    return [ln for ln in run.output.splitlines() if "Starting operation" in ln]


def test_the_proxmox_run_leaks_no_secret(sandbox: None, tmp_path: Path) -> None:
    app_site.publish_app()
    state = tmp_path / "pve"
    state.mkdir()
    token = state / "token.secret"  # the emulator's token secret: the canary
    token.touch(mode=0o600)
    token.write_text(PVE_CANARY + "\n")
    prefix = f"ps{tmp_path.name[-4:].replace('_', '')}x"
    node = pve_site.start_node(state, prefix=prefix)
    backend = SandboxBackend(prefix)
    env = app_site.write_secret_env(f"backend-pve-secrets-{tmp_path.name}")
    authkey = tailscale_site.authkey_file()
    data = {**site.settings(env), **pve_site.settings(node, ct_tun_method="raw")}
    hosts = site.write_hosts_file(tmp_path / "hosts.json", [("egograph-prod", data)])
    rec = Record()
    on_controller = sample_controller()  # the node and the container are this host's too
    try:
        dry = rec.pyinfra(hosts, "--dry", "-vvv", "--diff")
        assert dry.returncode == 0, dry.output[-3000:]
        first = rec.pyinfra(hosts, "-y", "-vvv", "--diff")
        assert first.returncode == 0, first.output[-3000:]
        on_target = sample_container(_pve_container(backend))
        try:
            new_env(env.stem, 1)
            second = rec.pyinfra(hosts, "-y", "-vvv", "--json")
            assert second.returncode == 0, second.output[-3000:]
            egodeploy = str(Path(sys.executable).with_name("egodeploy"))
            js = rec.command(hosts, "egodeploy drift --json", [egodeploy, "drift", "--json"])
            assert js.returncode == 0, js.stdout[-2000:]
            fact = rec.command(hosts, "fact Deployment",
                               [sys.executable, "-m", "pyinfra", "-vvv", "inventory.py", "fact",
                                "deploys.facts.Deployment"])  # fmt: skip
            assert fact.returncode == 0, fact.stdout[-2000:]
            mode, left = target_files(_pve_container(backend))
            assert (mode, left) == ("600", [])
        finally:
            on_target.stop()
    finally:
        on_controller.stop()
        backend.tear_down(node)

    # the logs the sandbox keeps on the controller side
    for log in (state / "emulator.log", node.ssh_dir / "sshd.log"):
        if log.exists():
            rec.add(str(log), log.read_text(errors="replace"))
    assert rec.leaks() == []
    assert hits("".join(text for _, text in rec.outputs) + PVE_CANARY) == [PVE_CANARY]
    assert on_controller.samples >= 50 and on_target.samples >= 10
    assert on_controller.found == set() and on_target.found == set()
    assert_controller_secret_files(env, authkey, token, state / "root.password")


def _pve_container(backend: SandboxBackend) -> Container:
    from tests.sandbox import container as sandbox_container

    return sandbox_container.get(backend.name(100))
