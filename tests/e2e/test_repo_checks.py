"""A remote the target cannot read is a failed check, never drift (issue 15, item 8).

On a real deployed container: with ``repo_url`` pointing at a repository the sandbox's git
daemon does not export (``git ls-remote`` exits 128 there, as for any unreadable remote),
the drift check exits 1 naming ``repo_url``, and a deploy or an update stops before it
changes anything, although something is waiting to change (the service was stopped). A
``repo_branch`` the remote lacks is refused the same way, naming ``repo_branch``. With
the right URL back, the run converges and the next changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sandbox import paths, site
from tests.sandbox.container import Container
from tests.sandbox.runner import drift as run_drift
from tests.sandbox.runner import pyinfra

pytestmark = pytest.mark.e2e

UNIT = "egograph-backend"


def hosts_file(tmp: Path, c: Container, env: Path, name: str, **overrides: Any) -> Path:
    # no tailnet: this test is about the app's repository
    data = {**c.pyinfra_data(), **site.settings(env), "tailscale_enabled": False, **overrides}
    return site.write_hosts_file(tmp / f"{name}.json", [(c.name, data)])


def test_an_unreadable_remote_fails_the_check_and_stops_the_run_before_any_change(
    new_container: Any, secret_env: Path, tmp_path: Path
) -> None:
    c = new_container()
    good = hosts_file(tmp_path, c, secret_env, "good")
    first = pyinfra(good, "-y", "--json")
    assert first.returncode == 0, first.output[-3000:]
    assert run_drift(good)[0] == 0

    missing = f"git://{paths.HOST_IP}/no-such-repo.git"
    bad = hosts_file(tmp_path, c, secret_env, "bad", repo_url=missing)
    code, report, output = run_drift(bad)
    assert (code, report["status"]) == (1, "failed"), report
    assert f"repo_url {missing}: git ls-remote failed on the target" in report["error"], report
    assert "is at unknown" not in output

    # something is waiting to change; a run with the unreadable remote must not touch it
    c.ssh(f"systemctl stop {UNIT}")
    stopped = unit_state(c)
    assert stopped["ActiveState"] != "active", stopped
    head = c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip()
    for deploy in ("deploys/prod.py", "deploys/update.py"):
        run = pyinfra(bad, "-y", "--json", deploy=deploy)
        assert run.returncode != 0, (deploy, run.output[-3000:])
        assert f"repo_url {missing}: git ls-remote failed on the target" in run.output
        assert "nothing was changed" in run.output
        assert unit_state(c) == stopped, deploy  # not started: same state, same invocation
        assert c.ssh("git -C /opt/egograph/repo rev-parse HEAD").stdout.strip() == head

    # a branch the remote does not have: refused too, naming repo_branch
    nobranch = hosts_file(tmp_path, c, secret_env, "nobranch", repo_branch="no-such-branch")
    code, report, _ = run_drift(nobranch)
    assert (
        code == 1
        and "repo_branch 'no-such-branch': neither a branch nor a tag" in (report["error"])
    ), report
    run = pyinfra(nobranch, "-y", "--json")
    assert run.returncode != 0 and "repo_branch 'no-such-branch'" in run.output
    assert unit_state(c) == stopped

    # the right remote again: converges (the stopped service comes back), then 0 changes
    back = pyinfra(good, "-y", "--json")
    assert back.returncode == 0, back.output[-3000:]
    assert c.ssh(f"systemctl is-active {UNIT}", check=False).stdout.strip() == "active"
    again = pyinfra(good, "-y", "--json")
    assert again.returncode == 0 and again.totals()["success"] == 0, again.changed_ops()
    assert run_drift(good)[0] == 0


def unit_state(c: Container) -> dict[str, str]:
    """The unit's state and its invocation: a start (even a failed one) makes a new one."""
    out = c.ssh(f"systemctl show -p ActiveState -p InvocationID -p MainPID {UNIT}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
