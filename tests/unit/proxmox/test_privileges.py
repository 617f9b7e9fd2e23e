"""deploys/proxmox/privileges.py: what a run needs, and what a permissions reply grants."""

from __future__ import annotations

from typing import Any

import pytest

from deploys.proxmox.privileges import (
    CONFIG_PRIVILEGES,
    Need,
    PrivilegeCheck,
    PrivilegeReport,
    StagePlan,
    bridge_paths,
    evaluate,
    held_on,
    required_privileges,
    undecided_paths,
)

NET0 = "name=eth0,bridge=vmbr0,ip=dhcp"
CREATE = {
    "vmid": 100, "ostemplate": "local:vztmpl/ubuntu.tar.zst", "hostname": "app", "cores": 2,
    "memory": 3072, "swap": 1024, "rootfs": "local-lvm:40", "net0": NET0, "unprivileged": 1,
    "onboot": 1, "start": 0, "ssh-public-keys": "ssh-ed25519 AAAA k", "features": "nesting=1",
}  # fmt: skip
LISTING = ("Datastore.Audit|Datastore.AllocateSpace", "/storage/local")


def needs(**plan: Any) -> set[tuple[str, str]]:
    fields: dict[str, Any] = {"vmid": 100, "template_storage": "local", "template_present": True}
    fields.update(plan)
    return {(n.label, n.path) for n in required_privileges(StagePlan(**fields))}


def test_a_create_from_an_empty_node() -> None:
    assert needs(template_present=False, create=CREATE, starts=True) == {
        LISTING,
        ("Datastore.AllocateTemplate", "/storage/local"),
        ("VM.Allocate", "/vms/100"),  # the gate, and nesting
        ("VM.Config.Network", "/vms/100"),  # hostname, net0
        ("VM.Config.CPU", "/vms/100"),
        ("VM.Config.Memory", "/vms/100"),
        ("VM.Config.Disk", "/vms/100"),
        ("Datastore.AllocateSpace", "/storage/local-lvm"),
        ("SDN.Use", "/sdn/zones/localnetwork/vmbr0"),
        ("VM.Config.Options", "/vms/100"),  # onboot
        ("VM.Audit", "/vms/100"),
        ("VM.PowerMgmt", "/vms/100"),
    }


def test_the_template_download_only_when_it_is_missing_or_unknown() -> None:
    assert ("Datastore.AllocateTemplate", "/storage/local") not in needs(template_present=True)
    assert ("Datastore.AllocateTemplate", "/storage/local") in needs(template_present=None)


def test_an_existing_running_container_that_matches() -> None:
    assert needs(current={"net0": NET0}) == {LISTING, ("VM.Audit", "/vms/100")}


def test_a_config_change_and_its_restart() -> None:
    update = {"cores": 3, "delete": "features"}
    got = needs(update=update, current={"net0": NET0, "features": "nesting=1"})
    assert got == {
        LISTING,
        ("VM.Audit", "/vms/100"),
        ("|".join(CONFIG_PRIVILEGES), "/vms/100"),  # the PUT's own check
        ("VM.Config.CPU", "/vms/100"),
        ("VM.Allocate", "/vms/100"),  # nesting off
    }
    assert ("VM.PowerMgmt", "/vms/100") in needs(update=update, may_restart=True)
    assert ("VM.PowerMgmt", "/vms/100") in needs(starts=True)


def test_net0_checks_the_bridge_it_leaves_and_joins() -> None:
    update = {"net0": "name=eth0,bridge=vmbr1,ip=dhcp"}
    got = needs(update=update, current={"net0": NET0})
    assert {("SDN.Use", "/sdn/zones/localnetwork/vmbr0"),
            ("SDN.Use", "/sdn/zones/localnetwork/vmbr1")} <= got  # fmt: skip


def test_bridge_paths() -> None:
    assert bridge_paths(NET0) == ["/sdn/zones/localnetwork/vmbr0"]
    # a tag is checked instead of the bridge, and each trunk VLAN
    assert bridge_paths("name=eth0,bridge=vmbr0,tag=10") == ["/sdn/zones/localnetwork/vmbr0/10"]
    assert bridge_paths("name=eth0,bridge=vmbr0,trunks=20;30") == [
        "/sdn/zones/localnetwork/vmbr0/20",
        "/sdn/zones/localnetwork/vmbr0/30",
    ]
    assert bridge_paths("name=eth0,ip=dhcp") == [] and bridge_paths(None) == []


# ------------------------------------------------------------------------ the reply


@pytest.mark.parametrize(
    ("reply", "path", "held"),
    [
        # a listed path is exact, whatever propagates
        ({"/vms/100": {"VM.Audit": 0}}, "/vms/100", {"VM.Audit"}),
        # unlisted: what propagates from the nearest listed ancestor
        ({"/vms": {"VM.Audit": 1, "VM.PowerMgmt": 1}}, "/vms/100", {"VM.Audit", "VM.PowerMgmt"}),
        (
            {"/": {"SDN.Use": 1}, "/vms": {"VM.Audit": 1}},
            "/sdn/zones/localnetwork/vmbr0",
            {"SDN.Use"},
        ),
        (
            {"/sdn/zones/localnetwork/vmbr0": {"SDN.Use": 1}},
            "/sdn/zones/localnetwork/vmbr0/10",
            {"SDN.Use"},
        ),
        # the nearest listed ancestor decides, even where an upper one holds more
        ({"/": {"VM.Allocate": 1}, "/vms": {"VM.Audit": 1}}, "/vms/100", {"VM.Audit"}),
        # an entry there that does not propagate: the reply cannot tell what is below
        ({"/vms": {"VM.Audit": 0}}, "/vms/100", None),
        ({"/vms": {"VM.Audit": 1, "VM.PowerMgmt": 0}}, "/vms/100", None),
        # nothing listed on the way: nothing held
        ({"/storage/local": {"Datastore.Audit": 1}}, "/vms/100", set()),
        ({}, "/", set()),
    ],
)
def test_held_on(reply: dict[str, dict[str, int]], path: str, held: set[str] | None) -> None:
    assert held_on(reply, path) == (None if held is None else frozenset(held))


def test_evaluate_takes_any_of_and_leaves_undecided_paths() -> None:
    listing = Need(("Datastore.Audit", "Datastore.AllocateSpace"), "/storage/local", "l", "T")
    audit = Need(("VM.Audit",), "/vms/100", "a", "D")
    reply = {"/storage/local": {"Datastore.AllocateSpace": 0}, "/vms": {"VM.Audit": 0}}
    assert evaluate([listing, audit], reply) == (
        PrivilegeCheck(listing, True),
        PrivilegeCheck(audit, None),
    )
    assert undecided_paths([listing, audit, audit], reply) == ["/vms/100"]
    # the caller asks for that path (a ``?path=`` reply) and merges it in
    reply["/vms/100"] = {"VM.Audit": 1}
    assert evaluate([audit], reply) == (PrivilegeCheck(audit, True),)


def test_the_refusal_message() -> None:
    net = Need(("SDN.Use",), "/sdn/zones/localnetwork/vmbr0", "net0 on vmbr0", "EgographNet")
    tmpl = Need(("Datastore.AllocateTemplate",), "/storage/local", "downloading the template",
                "EgographTemplates")  # fmt: skip
    audit = Need(("VM.Audit",), "/vms/100", "seeing the container", "EgographDeploy")
    checks = (PrivilegeCheck(net, False), PrivilegeCheck(tmpl, False), PrivilegeCheck(audit, True))
    report = PrivilegeReport("deploy@pve!egograph", checks)
    assert not report.ok and [c.need for c in report.missing] == [net, tmpl]
    assert report.message() == (
        "Proxmox privileges: the API token deploy@pve!egograph (pve_token_id) is missing on "
        "/sdn/zones/localnetwork/vmbr0: SDN.Use; on /storage/local: Datastore.AllocateTemplate "
        "(needed for: net0 on vmbr0; downloading the template). Nothing was changed; grant them "
        "to the user deploy@pve and to the token (privilege separation keeps only what both "
        "hold): the README's 'API access' roles EgographNet, EgographTemplates on those paths."
    )
    user = PrivilegeReport("deploy@pve", checks[:1])
    assert user.message().startswith("Proxmox privileges: the user deploy@pve is missing on ")
    assert "grant them to the user:" in user.message()
    assert user.message().endswith("the README's 'API access' role EgographNet on that path.")
    assert PrivilegeReport("x@pve!t", checks[2:]).message() == ""
    # undecided is not missing
    assert PrivilegeReport("x@pve!t", (PrivilegeCheck(audit, None),)).ok
