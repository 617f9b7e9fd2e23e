"""A hardened service's account: user, group, HOME and the directories it owns, decided
from one fact (read in a real shell where it can be)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from deploys.services import operations as service_ops
from deploys.services.facts import SystemUser
from tests.unit.fakes import run_op

HOME, DATA = "/var/lib/egograph", "/opt/egograph/data"


def account(current: dict[str, Any]) -> Any:
    return run_op(
        service_ops.system_user,
        {SystemUser: current},
        user="egograph",
        group="egograph",
        home=HOME,
        owned_dirs=[DATA],
    )


def state(**changes: Any) -> dict[str, Any]:
    mine = {"owner": "egograph:egograph", "mode": 0o750}
    return {
        "user": True,
        "group": True,
        "primary_group": "egograph",
        "home": HOME,
        "shell": "/usr/sbin/nologin",
        "dirs": {HOME: mine, DATA: mine},
        **changes,
    }


def test_a_fresh_host_gets_group_user_home_and_data_dir_in_one_round_trip() -> None:
    fake = account(SystemUser.default())
    assert fake.round_trips == 1
    assert [c.get_raw_value() for c in fake.commands] == [
        "groupadd --system egograph",
        "useradd --system --gid egograph --no-create-home --home-dir /var/lib/egograph "
        "--shell /usr/sbin/nologin egograph",
        "install -d -o egograph -g egograph -m 750 /var/lib/egograph",
        "install -d -o egograph -g egograph -m 750 /opt/egograph/data",
    ]


def test_an_earlier_homeless_user_gets_a_home_and_root_owned_data_is_handed_over() -> None:
    # As the deploy made users before (HOME /nonexistent: DuckDB cannot load extensions),
    # with data an earlier run as root left behind.
    fake = account(
        state(
            home="/nonexistent",
            dirs={HOME: None, DATA: {"owner": "root:root", "mode": 0o755}},
        )
    )
    assert [c.get_raw_value() for c in fake.commands] == [
        "usermod --home /var/lib/egograph egograph",
        "install -d -o egograph -g egograph -m 750 /var/lib/egograph",
        "chown -R egograph:egograph /opt/egograph/data",
        "chmod 750 /opt/egograph/data",
    ]


def test_an_account_in_place_is_a_noop() -> None:
    fake = account(state())
    assert fake.commands == []
    assert fake.noops == [
        "user egograph:egograph exists, HOME /var/lib/egograph, owning "
        "/var/lib/egograph, /opt/egograph/data"
    ]


def test_the_fact_reads_passwd_and_directories(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o750)
    mine.chmod(0o750)
    fact = SystemUser()
    cmd = fact.command(user="root", group="root", dirs=[str(mine), str(tmp_path / "gone")])
    out = subprocess.run(
        ["sh", "-c", cmd.get_raw_value()], capture_output=True, text=True, check=True
    ).stdout
    found = fact.process(out.splitlines())
    assert found["user"] and found["group"] and found["primary_group"] == "root"
    assert found["home"] == "/root"
    owner = subprocess.run(
        ["stat", "-c", "%U:%G", str(mine)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found["dirs"] == {
        str(mine): {"owner": owner, "mode": 0o750},
        str(tmp_path / "gone"): None,
    }
    assert fact.process(["user", "group", "primary"]) == SystemUser.default()
