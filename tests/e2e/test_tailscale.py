"""Tailscale on real systemd containers: the stand-in installed from its signed apt repository,
logged in with a key file, services published with `tailscale serve` (runbook §2, §9).

The deploy runs as a user runs it; the target is checked over SSH with the CLI and files,
never with the deploy's own facts.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import paths, site, tailscale_site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, pyinfra

pytestmark = pytest.mark.e2e

TARGET = "http://127.0.0.1:8000"
KEYRING = "/usr/share/keyrings/tailscale-archive-keyring.gpg"
SECRET_PART = tailscale_site.AUTHKEY.rsplit("-", 1)[1]
LOGIN = "Tailscale | Logged in to the tailnet as egograph-prod"
INSTALL = "Tailscale | Install tailscale from its signed apt repository, tailscaled running"
SERVE = "Tailscale serve | Publish backend on HTTPS 443"


def hosts_file(tmp_path: Path, c: Container, env: Path, **overrides: Any) -> Path:
    data = {**c.pyinfra_data(), **site.settings(env), **overrides}
    return site.write_hosts_file(tmp_path / f"hosts-{c.name}.json", [(c.name, data)])


def status(c: Container) -> dict[str, Any]:
    return dict(json.loads(c.ssh("tailscale status --json --peers=false").stdout))


def serve_targets(c: Container) -> list[str]:
    cfg = json.loads(c.ssh("tailscale serve status --json").stdout)
    return [
        h.get("Proxy")
        for web in (cfg.get("Web") or {}).values()
        for h in (web.get("Handlers") or {}).values()
    ]


def converge(hosts: Path, *args: str) -> PyinfraRun:
    run = pyinfra(hosts, "-y", "--json", *args)
    assert run.returncode == 0, run.output[-3000:]
    assert run.totals()["error"] == 0
    return run


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert tailscale_site.AUTHKEY not in text
        assert SECRET_PART not in text


def test_install_login_serve_idempotent_and_repaired(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env)

    first = converge(hosts)
    for op in (INSTALL, LOGIN, SERVE):
        assert op in first.changed_ops()
    assert "backend is served at https://egograph-prod.tail1234.ts.net/" in first.stderr

    # --- verify independently: the signed repository, the daemon, the node, serve ---
    info = tailscale_site.publish_repo()
    assert c.ssh(f"sha256sum {KEYRING}").stdout.split()[0] == info.keyring_sha256
    assert c.ssh("cat /etc/apt/sources.list.d/tailscale.list").stdout == (
        f"deb [signed-by={KEYRING}] {tailscale_site.BASE_URL}/stable/debian trixie main\n"
    )
    assert c.ssh("dpkg-query -W -f='${Version}' tailscale").stdout == info.version
    assert c.ssh(
        "systemctl is-enabled tailscaled; systemctl is-active tailscaled"
    ).stdout.split() == [
        "enabled",
        "active",
    ]
    st = status(c)
    assert st["BackendState"] == "Running" and st["TUN"] is True
    assert st["Self"]["HostName"] == "egograph-prod"
    assert serve_targets(c) == [TARGET]
    prefs = json.loads(c.ssh("tailscale debug prefs").stdout)
    assert prefs["RunSSH"] is False
    assert c.ssh("test -e /run/egograph-deploy/tailscale-authkey", check=False).returncode == 1

    second = converge(hosts)
    assert second.totals()["success"] == 0, second.changed_ops()
    dry = pyinfra(hosts, "--dry", "--json")
    assert dry.returncode == 0 and dry.changed_ops() == []

    # --- each kind of drift on the target is repaired by the next run, and only it ---
    for breakage, changed in (
        ("tailscale logout", [LOGIN]),
        ("systemctl stop tailscaled", [INSTALL]),
        ("tailscale serve reset", [SERVE]),
        ("tailscale down", [LOGIN]),
    ):
        c.ssh(breakage)
        predicted = pyinfra(hosts, "--dry", "--json")
        assert predicted.changed_ops() == changed, breakage
        repaired = converge(hosts)
        assert repaired.changed_ops() == changed, breakage
        assert status(c)["BackendState"] == "Running", breakage
        assert serve_targets(c) == [TARGET], breakage

    # --- a new hostname is applied with `tailscale set`: same node key, no new login ---
    key_before = status(c)["Self"]["PublicKey"]
    renamed_hosts = hosts_file(tmp_path, c, secret_env, tailscale_hostname="egograph-next")
    renamed = converge(renamed_hosts, "-vv")
    assert renamed.changed_ops() == ["Tailscale | Logged in to the tailnet as egograph-next"]
    assert "tailscale set --hostname=egograph-next" in renamed.stderr
    st = status(c)
    assert st["Self"]["HostName"] == "egograph-next"
    assert st["Self"]["DNSName"] == "egograph-next.tail1234.ts.net."
    assert st["Self"]["PublicKey"] == key_before
    assert converge(renamed_hosts).totals()["success"] == 0

    # --- a tailnet without HTTPS certificates: serve would save nothing; a clear error ---
    c.ssh("""echo '{"https_enabled": false}' > /etc/tailscale-standin.json""")
    c.ssh("tailscale serve reset")
    no_https = pyinfra(renamed_hosts, "-y")
    assert no_https.returncode != 0
    assert "HTTPS certificates are not enabled on the tailnet" in no_https.output
    assert "Enable HTTPS" in no_https.output and serve_targets(c) == []
    assert_no_key(first.output, second.output, renamed.output, no_https.output)


def test_missing_tun_fails_before_installing(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container(tun=False)
    hosts = hosts_file(tmp_path, c, secret_env)

    run = pyinfra(hosts, "-y")

    assert run.returncode != 0
    assert "/dev/net/tun is missing" in run.output
    assert "ct_tun_method" in run.output and "tailscale_userspace = True" in run.output
    left = c.ssh(
        "dpkg -s tailscale >/dev/null 2>&1 || test -e /etc/apt/sources.list.d/tailscale.list "
        f"|| test -e {KEYRING} || test -e /opt/egograph; echo $?",
        check=False,
    )
    assert left.stdout.strip() == "1", "something was installed"


def test_userspace_mode_works_without_the_device(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container(tun=False)
    hosts = hosts_file(tmp_path, c, secret_env, tailscale_userspace=True)

    converge(hosts)

    assert c.ssh("test -e /dev/net/tun", check=False).returncode != 0
    defaults = c.ssh("cat /etc/default/tailscaled").stdout
    assert 'FLAGS="--tun=userspace-networking"' in defaults and 'PORT="41641"' in defaults
    st = status(c)
    assert st["BackendState"] == "Running" and st["TUN"] is False
    assert serve_targets(c) == [TARGET]
    assert converge(hosts).totals()["success"] == 0


class ProcessSampler:
    """Every process's command line on the target, sampled about every 10 ms by one SSH
    session (bounded to ``limit`` seconds) while a run happens."""

    def __init__(self, c: Container, limit: int = 120) -> None:
        # What `ps -eo args` shows, read straight from /proc: one argument per line.
        loop = (
            f"end=$(( $(date +%s) + {limit} )); "
            'while [ "$(date +%s)" -lt "$end" ]; do '
            "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; echo @@; sleep 0.01; done"
        )
        self.proc = subprocess.Popen(
            ["ssh", "-F", str(paths.SSH_CONFIG), c.name, loop],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.5)  # the session is up before the run starts

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        return "".join(self.out)


def test_auth_key_never_shown_nor_in_any_command_line(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env)
    outputs, samples = [], []

    for args in (("-y", "-vvv"), ("-y", "--diff", "-vvv"), ("-y", "--json", "-vvv")):
        predicted = pyinfra(hosts, "--dry", "--diff", "-vvv")  # the login is predicted
        assert predicted.returncode == 0, predicted.output[-3000:]
        sampler = ProcessSampler(c)
        run = pyinfra(hosts, *args)
        samples.append(sampler.stop())
        assert run.returncode == 0, run.output[-3000:]
        assert "the node needs a login" in run.output
        outputs += [predicted.output, run.output]
        assert status(c)["BackendState"] == "Running"
        c.ssh("tailscale logout")

    plan = pyinfra(hosts, "--json")  # the JSON plan (no execution) of a login
    outputs.append(plan.output)
    assert any(op == LOGIN for op in plan.changed_ops())

    sampled = "".join(samples)
    assert sampled.count("@@") > 20, "the sampler did not run"
    assert "--auth-key=file:/run/egograph-deploy/tailscale-authkey" in sampled
    assert_no_key(*outputs, sampled)
    # Nothing on the target keeps it either: the temp file is gone, the stand-in daemon
    # keeps only a digest, and the journal never saw it.
    assert c.ssh("test -e /run/egograph-deploy/tailscale-authkey", check=False).returncode == 1
    leftovers = c.ssh(
        f"grep -rl {SECRET_PART} /run /var/lib/tailscale /etc /root 2>/dev/null; "
        f"journalctl --no-pager | grep -c {SECRET_PART}",
        check=False,
    ).stdout.split()
    assert leftovers == ["0"]
