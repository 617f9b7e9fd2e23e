"""The emulator refuses bad input exactly like PVE (status, reason phrase, body)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from typing import Any

import pytest
import requests

from tests.sandbox.pve.emulator import FakeBackend, PveEmulator, parse_pct_config
from tests.sandbox.pve.schema import load_schema, perl_match

UBUNTU = "local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
Raw = Any  # the conftest ``Raw`` helper (fixtures raw / raw8 / raw_root_token / raw_factory)

PVF = "Parameter verification failed."
UNDEF = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


def base(vmid: int = 100, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "vmid": vmid,
        "ostemplate": UBUNTU,
        "hostname": "app",
        "rootfs": "local-lvm:8",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        "unprivileged": 1,
        "features": "nesting=1",
    }
    for key, value in extra.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def wait(emu: PveEmulator, upid: str) -> dict[str, Any]:
    task = emu.tasks[upid]
    assert task.done.wait(10)
    return task.status_dict()


def create_ok(raw: Raw, vmid: int = 100, **extra: Any) -> str:
    resp = raw.call("POST", "/nodes/pve/lxc", base(vmid, **extra))
    assert resp.status_code == 200, (resp.status_code, resp.reason, resp.text)
    upid = resp.json()["data"]
    assert wait(raw.emu, upid)["exitstatus"] in ("OK", "WARNINGS: 1")
    return str(upid)


# (params for POST /nodes/pve/lxc, expected errors dict)
CREATE_400 = [
    pytest.param(
        base(vmid=99),
        {"vmid": "invalid format - value does not look like a valid VM ID\n"},
        id="vmid-99",
    ),
    pytest.param(base(memory=8), {"memory": "value must have a minimum value of 16"}, id="mem-8"),
    pytest.param(
        base(unprivileged="True"),
        {"unprivileged": "type check ('boolean') failed - got 'True'"},
        id="bool-True",
    ),
    pytest.param(
        base(net0="name=eth0,x=1"),
        {"net0": f"invalid format - format error\nnet0.x: {UNDEF}\n"},
        id="net0-unknown-subkey",
    ),
    pytest.param(
        base(net0="bridge=vmbr0"),
        {"net0": f"invalid format - format error\nnet0.name: {MISSING}\n"},
        id="net0-no-name",
    ),
    pytest.param(
        base(net0="name=eth0,tag=5000"),
        {
            "net0": "invalid format - format error\nnet0.tag: value must have a maximum value "
            "of 4094\n"
        },
        id="net0-tag-range",
    ),
    pytest.param(base(foo="1"), {"foo": UNDEF}, id="unknown-param"),
    pytest.param(base(net32="name=eth32"), {"net32": UNDEF}, id="net32"),
    pytest.param(base(ostemplate=None), {"ostemplate": MISSING}, id="missing-ostemplate"),
    pytest.param(
        base(hostname="bad_host"),
        {"hostname": "invalid format - value does not look like a valid DNS name\n"},
        id="bad-hostname",
    ),
    pytest.param(base(cores="0"), {"cores": "value must have a minimum value of 1"}, id="cores"),
    pytest.param(
        base(cores="two"), {"cores": "type check ('integer') failed - got 'two'"}, id="int-type"
    ),
    pytest.param(
        base(arch="sparc"),
        {
            "arch": "value 'sparc' does not have a value in the enumeration "
            "'amd64, i386, arm64, armhf, riscv32, riscv64'"
        },
        id="enum",
    ),
    pytest.param(
        base(password="abc"),
        {"password": "value must be at least 5 characters long"},
        id="minLength",
    ),
    pytest.param(
        base(tags="ok;no way!"),
        {"tags": "invalid format - invalid characters in tag\n"},
        id="tags",
    ),
    pytest.param(
        base(dev0="/tmp/tun"),
        {
            "dev0": "invalid format - format error\ndev0.path: invalid format - /tmp/tun is not "
            "a valid device path\n\n"
        },
        id="dev-path",
    ),
    pytest.param(
        base(features="nesting=1,nesting=0"),
        {"features": "invalid format - duplicate key in comma-separated list property: nesting\n"},
        id="dup-subkey",
    ),
    pytest.param(
        base(description="x" * 8193),
        {"description": "value may only be 8192 characters long"},
        id="maxLength",
    ),
    pytest.param(
        base(cpulimit="1.5.0"),
        {"cpulimit": "type check ('number') failed - got '1.5.0'"},
        id="number-type",
    ),
]


@pytest.mark.parametrize(("params", "errors"), CREATE_400)
def test_create_400(raw: Raw, params: dict[str, Any], errors: dict[str, str]) -> None:
    resp = raw.call("POST", "/nodes/pve/lxc", params)
    assert (resp.status_code, resp.reason) == (400, PVF)
    assert resp.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert resp.json() == {"data": None, "message": PVF + "\n", "errors": errors}


def test_hand_built_unencoded_property_string(raw: Raw) -> None:
    # ``features=nesting=1`` un-encoded reaches PVE as ``features=nesting``
    body = urllib.parse.urlencode(base(features=None)) + "&features=nesting=1"
    resp = raw.call(
        "POST",
        "/nodes/pve/lxc",
        body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 400
    assert resp.json()["errors"] == {
        "features": "invalid format - value without key, but schema does not define a default key\n"
    }


def test_json_body_and_booleans(raw: Raw) -> None:
    params = base(unprivileged=True, start=False, vmid=101)
    resp = raw.call("POST", "/nodes/pve/lxc", json=params)
    assert resp.status_code == 200, resp.text
    wait(raw.emu, resp.json()["data"])
    resp = raw.call("PUT", "/nodes/pve/lxc/101/config", json={"onboot": "yes"})
    assert resp.json()["errors"] == {"onboot": "type check ('boolean') failed - got 'yes'"}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            {"dev0": "/dev/net/tun"},
            "Permission check failed (configuring device passthrough is only allowed for root@pam)",
        ),
        (
            {"features": "nesting=1,keyctl=1"},
            "Permission check failed (changing feature flags (except nesting) is only "
            "allowed for root@pam)",
        ),
        (
            {"hookscript": "local:snippets/hook.pl"},
            "Permission check failed (changing the hookscript is only allowed for root@pam)",
        ),
        (
            {"mp0": "/srv/data,mp=/data"},
            "Permission check failed (mount point type bind is only allowed for root@pam)",
        ),
    ],
)
def test_root_pam_only_options_refused_for_any_token(
    raw_root_token: Raw, extra: dict[str, str], reason: str
) -> None:
    # even a root@pam token with every privilege is not root@pam
    resp = raw_root_token.call("POST", "/nodes/pve/lxc", base(**extra))
    assert (resp.status_code, resp.reason) == (403, reason)
    assert resp.json() == {"data": None, "message": reason + "\n"}


def test_nesting_allowed_for_token(raw: Raw) -> None:
    create_ok(raw, features="nesting=1")
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"features": "nesting=1,keyctl=1"})
    assert resp.status_code == 403


def test_put_errors(raw: Raw) -> None:
    create_ok(raw)
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {})
    assert (resp.status_code, resp.reason) == (500, "no options specified")
    assert resp.json() == {"data": None, "message": "no options specified\n"}
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"unprivileged": 0})
    assert resp.reason == "unable to modify read-only option: 'unprivileged'"
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"delete": "memory"})
    assert resp.reason == "unable to delete required option 'memory'"
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"delete": "bogus"})
    assert resp.json()["errors"] == {"delete": "unknown option 'bogus'"}
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"cores": 2, "digest": "0" * 40})
    assert resp.reason == "detected modified configuration - file changed by other user? Try again."
    resp = raw.call("PUT", "/nodes/pve/lxc/999/config", {"cores": 2})
    assert resp.reason == "Configuration file 'nodes/pve/lxc/999.conf' does not exist"


def test_duplicate_create_and_race(emulator: PveEmulator, raw: Raw) -> None:
    create_ok(raw)
    resp = raw.call("POST", "/nodes/pve/lxc", base())
    assert (resp.status_code, resp.reason) == (500, "CT 100 already exists on node 'pve'")
    emulator.inject_create_race(102)
    resp = raw.call("POST", "/nodes/pve/lxc", base(102))
    assert (resp.status_code, resp.reason) == (500, "CT 102 already exists on node 'pve'")


def test_unknown_path_and_auth_errors(emulator: PveEmulator, raw: Raw, raw_factory: Any) -> None:
    resp = raw.call("GET", "/foo")
    assert (resp.status_code, resp.reason) == (501, "Method 'GET /foo' not implemented")
    anon = requests.get(emulator.api_url + "/version", verify=str(emulator.ca_path), timeout=5)
    assert (anon.status_code, anon.reason, anon.content) == (401, "No ticket", b"")
    bad = raw_factory(emulator, "deploy@pve!pyinfra", "nope")
    resp = bad.call("GET", "/version")
    assert (resp.status_code, resp.reason, resp.content) == (401, "Authentication failed!", b"")
    resp = raw.call("POST", "/access/ticket", {"username": "root@pam", "password": "x"})
    assert resp.status_code == 403
    assert resp.reason.startswith("Permission check failed (URI '/access/ticket' not available")


def test_auth_header_space_form_and_delay(tmp_path: Any) -> None:
    emu = PveEmulator(
        tmp_path / "d", tokens={"a@pve!tk": {"secret": "s", "privs": ["*"]}}, auth_delay=0.3
    ).start()
    try:
        ca = str(emu.ca_path)
        ok = requests.get(
            emu.api_url + "/version",
            headers={"Authorization": "PVEAPIToken a@pve!tk=s"},
            verify=ca,
            timeout=5,
        )
        assert ok.status_code == 200
        started = time.monotonic()
        bad = requests.get(emu.api_url + "/version", verify=ca, timeout=5)
        assert bad.status_code == 401 and time.monotonic() - started >= 0.3
    finally:
        emu.stop()


def test_version_differences(raw: Raw, raw8: Raw) -> None:
    resp = raw8.call("POST", "/nodes/pve/lxc", base(entrypoint="/sbin/init"))
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"entrypoint": UNDEF}
    assert raw8.call("GET", "/version").json()["data"]["release"] == "8.4"
    create_ok(raw, entrypoint="/sbin/init")
    # default unprivileged: 1 on 9.x; on 8.x unset means privileged, where a token may
    # not set features (PERMISSIONS.md §2.8 step 2, pitfall "PVE 8 + features")
    create_ok(raw, vmid=103, unprivileged=None)
    assert "unprivileged: 1" in (raw.emu.conf_path(103)).read_text()
    resp = raw8.call("POST", "/nodes/pve/lxc", base(unprivileged=None))
    assert (resp.status_code, resp.reason) == (
        403,
        "Permission check failed (changing feature flags for privileged container is only "
        "allowed for root@pam)",
    )
    # an explicitly privileged create needs Sys.Modify on / on 9, nothing more on 8
    resp = raw.call("POST", "/nodes/pve/lxc", base(vmid=104, unprivileged=0, features=None))
    assert (resp.status_code, resp.reason) == (403, "Permission check failed (/, Sys.Modify)")
    assert raw8.call("POST", "/nodes/pve/lxc", base(unprivileged=0, features=None)).ok
    resp = raw8.call("POST", "/nodes/pve/lxc", base(net0="name=eth0,host-managed=1"))
    assert resp.json()["errors"] == {
        "net0": f"invalid format - format error\nnet0.host-managed: {UNDEF}\n"
    }


def test_pending_semantics(emulator: PveEmulator, raw: Raw) -> None:
    create_ok(raw, features=None)
    wait(emulator, raw.call("POST", "/nodes/pve/lxc/100/status/start").json()["data"])
    resp = raw.call("PUT", "/nodes/pve/lxc/100/config", {"features": "nesting=1", "cores": 2})
    assert resp.status_code == 200 and resp.json() == {"data": None}
    pending = raw.call("GET", "/nodes/pve/lxc/100/pending").json()["data"]
    by_key = {p["key"]: p for p in pending}
    assert by_key["features"] == {"key": "features", "pending": "nesting=1"}
    assert "pending" not in by_key["cores"] and by_key["cores"]["value"] == 2  # hotplugged
    current = raw.call("GET", "/nodes/pve/lxc/100/config", params={"current": 1}).json()["data"]
    assert "features" not in current
    merged = raw.call("GET", "/nodes/pve/lxc/100/config").json()["data"]
    assert merged["features"] == "nesting=1"
    assert "[pve:pending]" in emulator.conf_path(100).read_text()
    wait(emulator, raw.call("POST", "/nodes/pve/lxc/100/status/reboot").json()["data"])
    current = raw.call("GET", "/nodes/pve/lxc/100/config", params={"current": 1}).json()["data"]
    assert current["features"] == "nesting=1"
    assert "[pve:pending]" not in emulator.conf_path(100).read_text()


def test_lifecycle_errors(emulator: PveEmulator, raw: Raw) -> None:
    create_ok(raw)
    resp = raw.call("POST", "/nodes/pve/lxc/100/status/stop")
    assert (resp.status_code, resp.reason) == (500, "CT 100 not running")
    resp = raw.call("POST", "/nodes/pve/lxc/100/status/reboot")
    assert resp.reason == "VM 100 not running"
    assert raw.call("GET", "/nodes/pve/lxc/100/interfaces").json() == {"data": None}
    wait(emulator, raw.call("POST", "/nodes/pve/lxc/100/status/start").json()["data"])
    resp = raw.call("POST", "/nodes/pve/lxc/100/status/start")
    assert resp.reason == "CT 100 already running"
    resp = raw.call("DELETE", "/nodes/pve/lxc/100")
    assert resp.reason == "unable to destroy CT 100 - container is running"
    ifaces = raw.call("GET", "/nodes/pve/lxc/100/interfaces").json()["data"]
    assert [i["name"] for i in ifaces] == ["lo", "eth0"] and "inet" in ifaces[1]
    upid = raw.call("DELETE", "/nodes/pve/lxc/100", params={"force": 1}).json()["data"]
    assert wait(emulator, upid)["exitstatus"] == "OK"
    assert not emulator.conf_path(100).exists()


def test_create_lock_and_task_format(emulator: PveEmulator, raw: Raw) -> None:
    emulator.inject_task_fault("vzcreate", slow=0.5)
    upid = raw.call("POST", "/nodes/pve/lxc", base()).json()["data"]
    assert upid.startswith("UPID:pve:") and upid.endswith(":vzcreate:100:deploy@pve!pyinfra:")
    assert len(upid.split(":")) == 9
    conf = raw.call("GET", "/nodes/pve/lxc/100/config").json()["data"]
    assert conf["lock"] == "create"
    running = raw.call("GET", f"/nodes/pve/tasks/{upid}/status").json()["data"]
    assert running["status"] == "running" and "exitstatus" not in running
    # percent-encoded UPID path works too
    enc = urllib.parse.quote(upid, safe="")
    status = raw.call("GET", f"/nodes/pve/tasks/{enc}/status").json()["data"]
    assert status["user"] == "deploy@pve" and status["tokenid"] == "pyinfra"
    wait(emulator, upid)
    log = raw.call("GET", f"/nodes/pve/tasks/{upid}/log").json()
    assert log["data"][-1]["t"] == "TASK OK" and log["total"] == len(log["data"])
    assert [x["n"] for x in log["data"]] == list(range(1, log["total"] + 1))
    tasks = raw.call("GET", "/nodes/pve/tasks").json()["data"]
    assert tasks[0]["upid"] == upid and tasks[0]["status"] == "OK"
    resp = raw.call("GET", "/nodes/pve/tasks/UPID:pve:00000001:00000001:00000001:x:1:a@b:/status")
    assert resp.json()["errors"] == {"upid": "no such task"}


def test_a_lock_fails_the_start_task_and_a_reboot_ignores_it(
    emulator: PveEmulator, raw: Raw
) -> None:
    # Status.pm vm_start checks the lock in its vzstart worker: the request is accepted
    # and the task fails; vm_reboot (and LXC.pm vm_reboot) checks no lock
    create_ok(raw)
    with emulator.lock:
        conf = emulator.load_conf(100)
        conf["lock"] = "backup"
        emulator.write_conf(100, conf)
    resp = raw.call("POST", "/nodes/pve/lxc/100/status/start")
    assert resp.status_code == 200, resp.reason
    assert wait(emulator, resp.json()["data"])["exitstatus"] == "CT is locked (backup)"
    assert emulator.backend.status(100) == "stopped"
    with emulator.lock:
        conf = emulator.load_conf(100)
        conf.pop("lock")
        emulator.write_conf(100, conf)
    start = raw.call("POST", "/nodes/pve/lxc/100/status/start").json()["data"]
    assert wait(emulator, start)["exitstatus"] == "OK"
    with emulator.lock:
        conf = emulator.load_conf(100)
        conf["lock"] = "backup"
        emulator.write_conf(100, conf)
    stop = raw.call("POST", "/nodes/pve/lxc/100/status/stop").json()["data"]
    assert wait(emulator, stop)["exitstatus"] == "CT is locked (backup)"
    reboot = raw.call("POST", "/nodes/pve/lxc/100/status/reboot").json()["data"]
    assert wait(emulator, reboot)["exitstatus"] == "OK"


def test_conf_file_format_and_external_edit(emulator: PveEmulator, raw: Raw) -> None:
    create_ok(raw, description="My app: 100%\nline two", tags="B;a,b")
    path = emulator.conf_path(100)
    text = path.read_text()
    assert text.startswith("#My app%3A 100%25\n#line two\narch: amd64\n")
    assert "tags: a;b\n" in text
    conf = raw.call("GET", "/nodes/pve/lxc/100/config").json()["data"]
    assert conf["description"] == "My app: 100%\nline two\n"
    assert conf["digest"] == hashlib.sha1(text.encode()).hexdigest()
    assert conf["net0"].startswith("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
    assert conf["net0"].endswith(",ip=dhcp,type=veth")
    # the SSH-side TUN patch: raw lines edited into the file are seen at once
    path.write_text(
        text + "lxc.cgroup2.devices.allow: c 10:200 rwm\n"
        "lxc.mount.entry = /dev/net/tun dev/net/tun none bind,create=file\n"
    )
    conf2 = raw.call("GET", "/nodes/pve/lxc/100/config").json()["data"]
    assert conf2["lxc"] == [
        ["lxc.cgroup2.devices.allow", "c 10:200 rwm"],
        ["lxc.mount.entry", "/dev/net/tun dev/net/tun none bind,create=file"],
    ]
    assert conf2["digest"] != conf["digest"]
    # an API write keeps the raw lines after the sorted keys
    assert raw.call("PUT", "/nodes/pve/lxc/100/config", {"cores": 2}).status_code == 200
    lines = path.read_text().splitlines()
    assert lines[-2:] == [
        "lxc.cgroup2.devices.allow: c 10:200 rwm",
        "lxc.mount.entry: /dev/net/tun dev/net/tun none bind,create=file",
    ]
    assert parse_pct_config(path.read_text())["cores"] == "2"


def test_tun_only_after_restart(emulator: PveEmulator, raw: Raw) -> None:
    backend = emulator.backend
    assert isinstance(backend, FakeBackend)
    create_ok(raw)
    wait(emulator, raw.call("POST", "/nodes/pve/lxc/100/status/start").json()["data"])
    assert backend.tun_present(100) is False
    path = emulator.conf_path(100)
    path.write_text(
        path.read_text() + "lxc.cgroup2.devices.allow: c 10:200 rwm\n"
        "lxc.mount.entry: /dev/net/tun dev/net/tun none bind,create=file\n"
    )
    assert backend.tun_present(100) is False
    wait(emulator, raw.call("POST", "/nodes/pve/lxc/100/status/reboot").json()["data"])
    assert backend.tun_present(100) is True


def test_misc_endpoints(emulator: PveEmulator, raw: Raw) -> None:
    assert raw.call("GET", "/cluster/nextid").json() == {"data": "100"}
    create_ok(raw)
    assert raw.call("GET", "/cluster/nextid").json() == {"data": "101"}
    resp = raw.call("GET", "/cluster/nextid", params={"vmid": 100})
    assert resp.json()["errors"] == {"vmid": "VM 100 already exists"}
    res = raw.call("GET", "/cluster/resources", params={"type": "vm"}).json()["data"]
    assert res[0]["id"] == "lxc/100" and res[0]["name"] == "app"
    assert raw.call("GET", "/nodes/pve/lxc").json()["data"][0]["vmid"] == 100
    stor = raw.call("GET", "/nodes/pve/storage", params={"content": "rootdir"}).json()["data"]
    assert [s["storage"] for s in stor] == ["local-lvm", "local-dir"]
    resp = raw.call("POST", "/nodes/pve/aplinfo", {"storage": "local", "template": "nope"})
    assert resp.json()["errors"] == {"template": "no such template"}
    resp = raw.call("POST", "/nodes/pve/aplinfo", {"storage": "local-lvm", "template": "x.tar.zst"})
    assert resp.json()["errors"] == {"template": "no such template"}
    resp = raw.call("GET", "/nodes/other/lxc")
    assert resp.status_code == 500 and resp.reason.startswith("hostname lookup 'other' failed")
    resp = raw.call("GET", "/nodes/pve/lxc/100", params={"node": "x"})
    assert resp.json()["errors"] == {
        "node": "duplicate parameter (already defined in URI) with conflicting values!"
    }


def test_admin_fault_endpoint(emulator: PveEmulator, raw: Raw) -> None:
    def admin(method: str, body: Any = None) -> int:
        resp = requests.request(
            method,
            emulator.url + "/_emulator/faults",
            data=json.dumps(body) if body is not None else None,
            verify=str(emulator.ca_path),
            timeout=5,
        )
        return resp.status_code

    assert admin("POST", {"http_status": 595, "count": 1}) == 200
    resp = raw.call("GET", "/version")
    assert (resp.status_code, resp.reason) == (595, "Connection refused")
    assert raw.call("GET", "/version").status_code == 200
    assert admin("POST", {"task_type": "vzstart", "warnings": 2}) == 200
    create_ok(raw)
    upid = raw.call("POST", "/nodes/pve/lxc/100/status/start").json()["data"]
    assert wait(emulator, upid)["exitstatus"] == "WARNINGS: 2"
    assert admin("POST", {"http_status": 596, "count": 3}) == 200
    assert admin("DELETE") == 200
    assert raw.call("GET", "/version").status_code == 200


def test_schema_helpers() -> None:
    assert perl_match("0[0-7]{3}", "0644\n")  # Perl ``$``: one trailing newline matches
    assert not perl_match("0[0-7]{3}", "0644\n\n")
    assert perl_match("(?^:\\d+(?:;\\d+)*)", "1;2")
    schema9, schema8 = load_schema("9.1"), load_schema("8.4")
    # the 28 of the subset plus the 8 extra ones served (snapshots, /access/permissions)
    assert len(schema9.endpoints) == len(schema8.endpoints) == 28 + 9
    props = schema9.endpoint("POST", "/nodes/{node}/lxc").properties
    assert "net31" in props and "net32" not in props and "dev255" in props
