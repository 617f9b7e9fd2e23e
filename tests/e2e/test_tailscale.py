"""Tailscale on real systemd containers against the real thing: the ``tailscale`` package
(real tailscale/tailscaled) from the sandbox's signed apt repository, logged in with a
pre-auth key of the sandbox's headscale, services published with `tailscale serve`
(runbook §2, §9).

Two tailnets (tests/sandbox/tailscale/headscale.py): ``certs``, whose nodes hold the
``https`` capability, so the runbook's HTTPS serve stores the config it stores on
Tailscale's own service (TLS handshakes cannot succeed: headscale issues no certificates);
``plain``, stock headscale, where HTTPS is refused and plain HTTP is served for real.

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

from tests.sandbox import paths, site
from tests.sandbox.container import Container
from tests.sandbox.runner import PyinfraRun, pyinfra
from tests.sandbox.tailscale import site as tailscale_site

pytestmark = pytest.mark.e2e

TARGET = "http://127.0.0.1:8000"
KEYRING = "/usr/share/keyrings/tailscale-archive-keyring.gpg"
INSTALL = "Tailscale | Install tailscale from its signed apt repository, tailscaled running"
SERVE_HTTPS = "Tailscale serve | Publish backend on HTTPS 443"
SERVE_HTTP = "Tailscale serve | Publish backend on HTTP 80"


def login_op(name: str) -> str:
    return f"Tailscale | Logged in to the tailnet as {name}"


def hosts_file(
    tmp_path: Path, c: Container, env: Path, tailnet: str = tailscale_site.CERTS, **overrides: Any
) -> Path:
    # Each container its own tailnet name: names stay free for the next test.
    data = {
        **c.pyinfra_data(),
        **site.settings(env, tailnet=tailnet),
        "tailscale_hostname": c.name,
        **overrides,
    }
    return site.write_hosts_file(tmp_path / f"hosts-{c.name}.json", [(c.name, data)])


def publish_http(env: Path) -> list[dict[str, Any]]:
    services = site.settings(env)["services"]
    for svc in services:
        svc["publish"] = "http"
    return list(services)


def status(c: Container) -> dict[str, Any]:
    return dict(json.loads(c.ssh("tailscale status --json --peers=false").stdout))


def serve_config(c: Container) -> dict[str, Any]:
    return dict(json.loads(c.ssh("tailscale serve status --json").stdout))


def https_config(dns: str) -> dict[str, Any]:
    """What `tailscale serve --bg http://127.0.0.1:8000` stores on Tailscale's own service
    (the runbook's command): TCP 443 HTTPS, the handler under ``<dnsname>:443``."""
    return {
        "TCP": {"443": {"HTTPS": True}},
        "Web": {f"{dns}:443": {"Handlers": {"/": {"Proxy": TARGET}}}},
    }


def converge(hosts: Path, *args: str) -> PyinfraRun:
    run = pyinfra(hosts, "-y", "--json", *args)
    assert run.returncode == 0, run.output[-3000:]
    assert run.totals()["error"] == 0
    return run


def secret_part(key: str) -> str:
    """The part of a headscale key that is secret (``hskey-auth-<12-char prefix>-<secret>``;
    the prefix alone is what `headscale preauthkeys list` shows)."""
    return key[len("hskey-auth-") + 13 :]


def assert_no_key(key: str, *texts: str) -> None:
    assert len(secret_part(key)) >= 16
    for text in texts:
        assert key not in text
        assert secret_part(key) not in text


def test_install_login_serve_idempotent_repaired_and_renamed(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env)
    dns = tailscale_site.fqdn(c.name)

    first = converge(hosts)
    for op in (INSTALL, login_op(c.name), SERVE_HTTPS):
        assert op in first.changed_ops()
    assert f"backend is served at https://{dns}/" in first.stderr

    # --- verify independently: the signed repository, the daemon, the node, serve ---
    info = tailscale_site.publish_repo()
    assert c.ssh(f"sha256sum {KEYRING}").stdout.split()[0] == info.keyring_sha256
    assert c.ssh("cat /etc/apt/sources.list.d/tailscale.list").stdout == (
        f"deb [signed-by={KEYRING}] {tailscale_site.BASE_URL}/stable/debian trixie main\n"
    )
    assert c.ssh("dpkg-query -W -f='${Version}' tailscale").stdout == info.version
    assert c.ssh("tailscale version").stdout.splitlines()[0] == info.version
    assert c.ssh("systemctl is-enabled tailscaled; systemctl is-active tailscaled").stdout.split() == [
        "enabled",
        "active",
    ]  # fmt: skip
    st = status(c)
    assert st["BackendState"] == "Running" and st["TUN"] is True
    assert st["Self"]["HostName"] == c.name and st["Self"]["DNSName"] == dns + "."
    assert serve_config(c) == https_config(dns)
    prefs = json.loads(c.ssh("tailscale debug prefs").stdout)
    assert prefs["RunSSH"] is False and prefs["ControlURL"] == tailscale_site.LOGIN_SERVER
    assert c.ssh("test -e /run/egograph-deploy/tailscale-authkey", check=False).returncode == 1

    second = converge(hosts)
    assert second.totals()["success"] == 0, second.changed_ops()
    dry = pyinfra(hosts, "--dry", "--json")
    assert dry.returncode == 0 and dry.changed_ops() == []

    # --- each kind of drift on the target is repaired by the next run, and only it. A
    # logout deletes the node's login profile, and its serve config with it (the real
    # tailscaled: `serve status --json` is {} after `tailscale logout`); `down` keeps both.
    for breakage, changed in (
        ("tailscale logout", [login_op(c.name), SERVE_HTTPS]),
        ("systemctl stop tailscaled", [INSTALL]),
        ("tailscale serve reset", [SERVE_HTTPS]),
        ("tailscale down", [login_op(c.name)]),
    ):
        c.ssh(breakage)
        predicted = pyinfra(hosts, "--dry", "--json")
        assert predicted.changed_ops() == changed, breakage
        repaired = converge(hosts)
        assert repaired.changed_ops() == changed, breakage
        st = status(c)
        assert st["BackendState"] == "Running", breakage
        assert st["Self"]["DNSName"] == dns + ".", breakage
        assert serve_config(c) == https_config(dns), breakage

    # --- a new hostname: `tailscale set` (same node key, no new login), and serve is
    # keyed by the new name: tailscaled looks handlers up by <SNI host>:<port> ---
    key_before = status(c)["Self"]["PublicKey"]
    new_name = f"{c.name}-next"
    renamed_hosts = hosts_file(tmp_path, c, secret_env, tailscale_hostname=new_name)
    predicted = pyinfra(renamed_hosts, "--dry", "--json")
    assert predicted.changed_ops() == [login_op(new_name), SERVE_HTTPS]
    renamed = converge(renamed_hosts, "-vv")
    assert renamed.changed_ops() == [login_op(new_name), SERVE_HTTPS]
    assert f"tailscale set --hostname={new_name}" in renamed.stderr
    st = status(c)
    new_dns = tailscale_site.fqdn(new_name)
    assert st["Self"]["HostName"] == new_name and st["Self"]["DNSName"] == new_dns + "."
    assert st["Self"]["PublicKey"] == key_before
    assert serve_config(c) == https_config(new_dns)  # the old name's key is gone
    assert converge(renamed_hosts).totals()["success"] == 0
    assert_no_key(tailscale_site.authkey(), first.output, second.output, renamed.output)


def test_stock_headscale_https_refused_http_served_only_through_the_tailnet(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    """Stock headscale issues no certificates: HTTPS is refused naming the setting, from
    the daemon's own answer (no serve was run, none was left blocked). Plain HTTP is
    served, reachable from another tailnet node and not from the bridge; a rename keeps
    it reachable under the new name."""
    c = new_container()
    hosts = hosts_file(tmp_path, c, secret_env, tailscale_site.PLAIN)

    refused = pyinfra(hosts, "-y", "-vv")
    assert refused.returncode != 0
    assert "services[0].publish = 'https' (backend): this tailnet cannot issue HTTPS" in (
        refused.output
    )
    assert "HTTP 501: Not implemented yet" in refused.output
    assert "set publish = 'http' for that service" in refused.output
    assert serve_config(c) == {}
    assert "tailscale serve --bg" not in refused.output  # decided before serving

    http_hosts = hosts_file(
        tmp_path, c, secret_env, tailscale_site.PLAIN, services=publish_http(secret_env)
    )
    first = converge(http_hosts)
    assert SERVE_HTTP in first.changed_ops()
    dns = tailscale_site.fqdn(c.name)
    assert f"backend is served at http://{dns}/" in first.stderr
    assert serve_config(c) == {
        "TCP": {"80": {"HTTP": True}},
        "Web": {f"{dns}:80": {"Handlers": {"/": {"Proxy": TARGET}}}},
    }
    assert converge(http_hosts).totals()["success"] == 0

    # --- the runbook's promise: only the tailnet reaches the service ---
    laptop = tailscale_site.HostNode().ensure_up()
    laptop.wait_for_peer(c.name)
    through = laptop.curl(f"http://{dns}/health", "-f")
    assert through.returncode == 0, through.stderr
    assert json.loads(through.stdout)["status"] == "ok"
    for url in (f"http://{c.ip}:8000/health", f"http://{c.ip}/health"):
        direct = subprocess.run(
            ["curl", "-sS", "-m", "5", url], capture_output=True, text=True, check=False
        )
        assert direct.returncode == 7, (url, direct.returncode, direct.stderr)  # refused
    tailnet_ip = status(c)["TailscaleIPs"][0]
    # TUN mode: the app port is not on the tailnet address (uvicorn listens on 127.0.0.1).
    assert laptop.curl(f"http://{tailnet_ip}:8000/health").returncode != 0

    # --- a rename: the new name answers (a config left under the old name would 404) ---
    new_name = f"{c.name}-next"
    renamed_hosts = hosts_file(
        tmp_path,
        c,
        secret_env,
        tailscale_site.PLAIN,
        services=publish_http(secret_env),
        tailscale_hostname=new_name,
    )
    renamed = converge(renamed_hosts)
    assert renamed.changed_ops() == [login_op(new_name), SERVE_HTTP]
    new_dns = tailscale_site.fqdn(new_name)
    laptop.wait_for_peer(new_name)
    again = laptop.curl(f"http://{new_dns}/health", "-f")
    assert again.returncode == 0, again.stderr
    assert list(serve_config(c)["Web"]) == [f"{new_dns}:80"]


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
    assert serve_config(c) == https_config(tailscale_site.fqdn(c.name))
    assert c.ssh("ip -br link show tailscale0", check=False).returncode != 0  # no TUN device
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
    key = tailscale_site.authkey()
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
    assert any(op == login_op(c.name) for op in plan.changed_ops())

    sampled = "".join(samples)
    assert sampled.count("@@") > 20, "the sampler did not run"
    assert "--auth-key=file:/run/egograph-deploy/tailscale-authkey" in sampled
    assert_no_key(key, *outputs, sampled)
    # Nothing on the target keeps it either: the temp file is gone, and neither the real
    # daemon's state nor the journal holds it.
    assert c.ssh("test -e /run/egograph-deploy/tailscale-authkey", check=False).returncode == 1
    leftovers = c.ssh(
        f"grep -rlF -e {secret_part(key)} /run /var/lib/tailscale /etc /root 2>/dev/null; "
        f"journalctl --no-pager | grep -cF -e {secret_part(key)}",
        check=False,
    ).stdout.split()
    assert leftovers == ["0"]
