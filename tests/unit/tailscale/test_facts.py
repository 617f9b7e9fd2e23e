"""Tailscale facts: process() on CLI-shaped samples, the pure helpers, and the probe script."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api.exceptions import FactProcessError

from deploys.tailscale.facts import (
    DAEMON_DOWN,
    FAILED_MARKER,
    SECTION_MARKER,
    TailscaleInstall,
    TailscaleNode,
    TailscaleServeConfig,
    TailscaleStatus,
)
from deploys.tailscale.plan import backend_state, dns_name, funnel_enabled, self_hostname

SAMPLES = Path(__file__).parent / "samples"


def lines(name: str) -> list[str]:
    return (SAMPLES / name).read_text().splitlines()


def status(name: str) -> dict[str, Any]:
    return TailscaleStatus().process(lines(name))


# -- TailscaleStatus ---------------------------------------------------------------------
def test_status_command_never_fails_the_host() -> None:
    fact = TailscaleStatus()
    assert fact.requires_command() == "tailscale"
    assert fact.command() == (
        f'tailscale status --json --peers=false 2>/dev/null || echo "{FAILED_MARKER} $?"'
    )
    assert fact.default() == {}


def test_status_running_node() -> None:
    st = status("status_running.json")
    assert backend_state(st) == "Running"
    assert self_hostname(st) == "egograph-prod"
    assert dns_name(st) == "egograph-prod.tail1234.ts.net"
    assert st["TUN"] is True


def test_status_userspace() -> None:
    st = status("status_running_userspace.json")
    assert st["TUN"] is False
    assert backend_state(st) == "Running"


def test_status_logged_out_needs_login() -> None:
    st = status("status_needs_login.json")
    assert backend_state(st) == "NeedsLogin"
    assert dns_name(st) == ""
    assert self_hostname(st) == "egograph-prod"


def test_status_stopped_keeps_identity() -> None:
    st = status("status_stopped.json")
    assert backend_state(st) == "Stopped"
    assert dns_name(st) == "egograph-prod.tail1234.ts.net"


def test_status_waiting_for_approval_is_not_a_login() -> None:
    st = status("status_needs_machine_auth.json")
    assert backend_state(st) == "NeedsMachineAuth"


def test_status_daemon_down() -> None:
    st = TailscaleStatus().process([f"{FAILED_MARKER} 1"])
    assert st == {"BackendState": DAEMON_DOWN, "ExitCode": 1}
    assert backend_state(st) == DAEMON_DOWN
    assert dns_name(st) == "" and self_hostname(st) == ""


def test_status_not_installed_default() -> None:
    st = TailscaleStatus.default()
    assert backend_state(st) == ""


@pytest.mark.parametrize("output", [["not json"], ["[1, 2]"], ['{"BackendState": ']])
def test_status_bad_output_fails_only_the_host(output: list[str]) -> None:
    with pytest.raises(FactProcessError):
        TailscaleStatus().process(output)


# -- TailscaleServeConfig ----------------------------------------------------------------
def test_serve_command() -> None:
    fact = TailscaleServeConfig()
    assert fact.requires_command() == "tailscale"
    assert (
        fact.command() == f'tailscale serve status --json 2>/dev/null || echo "{FAILED_MARKER} $?"'
    )
    assert fact.default() == {}


def test_serve_empty() -> None:
    cfg = TailscaleServeConfig().process(lines("serve_empty.json"))
    assert cfg == {}
    assert not funnel_enabled(cfg)


def test_serve_daemon_down_is_empty() -> None:
    assert TailscaleServeConfig().process([f"{FAILED_MARKER} 1"]) == {}
    assert TailscaleServeConfig().process([""]) == {}


def test_serve_with_handler() -> None:
    cfg = TailscaleServeConfig().process(lines("serve_handler.json"))
    assert not funnel_enabled(cfg)


def test_serve_with_funnel() -> None:
    cfg = TailscaleServeConfig().process(lines("serve_funnel.json"))
    assert funnel_enabled(cfg)


def test_serve_bad_output() -> None:
    with pytest.raises(FactProcessError):
        TailscaleServeConfig().process(["{"])


# -- TailscaleInstall --------------------------------------------------------------------
def run_probe(**paths: str) -> Any:
    fact = TailscaleInstall()
    cmd = fact.command(**paths).get_raw_value()
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert proc.stderr == ""
    return fact.process(proc.stdout.splitlines())


def test_install_command_quotes_paths() -> None:
    cmd = TailscaleInstall().command(keyring_path="/tmp/a b'c.gpg").get_raw_value()
    assert cmd.startswith("set -- " + shlex.quote("/tmp/a b'c.gpg") + " ")
    default = TailscaleInstall().command().get_raw_value()
    assert default.startswith(
        "set -- /usr/share/keyrings/tailscale-archive-keyring.gpg"
        " /etc/apt/sources.list.d/tailscale.list /etc/default/tailscaled /dev/net/tun ;"
    )


def test_install_probe_reports_missing_things_as_null(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    info = run_probe(
        keyring_path=missing, sources_list_path=missing, defaults_path=missing, tun_path=missing
    )
    assert info["keyring_sha256"] is None
    assert info["sources_list"] is None
    assert info["defaults_flags"] is None
    assert info["tun_device"] is False and info["tun_openable"] is False
    # No tailscale package on the test host; systemctl may or may not exist.
    assert info["package_version"] is None


def test_install_probe_reads_files_exactly(tmp_path: Path) -> None:
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"\x99\x01\x0dbinary key")
    sources = tmp_path / "dir with space" / "tailscale.list"
    sources.parent.mkdir()
    text = 'deb [signed-by=/k.gpg] http://127.0.0.1/stable/debian trixie main\n\t"q" \\ \x01 ünï\n'
    sources.write_text(text)
    defaults = tmp_path / "tailscaled"
    defaults.write_text(
        '# FLAGS="--commented"\nPORT="41641"\nFLAGS="--old"\nFLAGS="--tun=userspace-networking"\n'
    )
    info = run_probe(
        keyring_path=str(keyring),
        sources_list_path=str(sources),
        defaults_path=str(defaults),
        tun_path="/dev/null",  # a character device, but not 10:200
    )
    assert info["keyring_sha256"] == hashlib.sha256(keyring.read_bytes()).hexdigest()
    assert info["sources_list"] == text
    assert info["defaults_flags"] == "--tun=userspace-networking"
    assert info["tun_device"] is False


@pytest.mark.parametrize(
    ("content", "flags"),
    [
        ('FLAGS=""\n', ""),
        ("FLAGS='--a --b'\n", "--a --b"),
        ("FLAGS=--x", "--x"),
        ("PORT=1\n", None),
    ],
)
def test_install_probe_flags(tmp_path: Path, content: str, flags: str | None) -> None:
    defaults = tmp_path / "tailscaled"
    defaults.write_text(content)
    assert run_probe(defaults_path=str(defaults))["defaults_flags"] == flags


def test_install_probe_empty_and_unterminated_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    partial = tmp_path / "partial"
    partial.write_text("no newline")
    assert run_probe(sources_list_path=str(empty))["sources_list"] == ""
    assert run_probe(sources_list_path=str(partial))["sources_list"] == "no newline"


@pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="host has no /dev/net/tun")
def test_install_probe_sees_a_tun_device() -> None:
    assert run_probe(tun_path="/dev/net/tun")["tun_device"] is True


def test_install_process_validates_shape() -> None:
    with pytest.raises(FactProcessError):
        TailscaleInstall().process(["package_version 1.96.4"])  # not the whole probe
    with pytest.raises(FactProcessError):
        TailscaleInstall().process(["garbage"])
    with pytest.raises(FactProcessError):
        TailscaleInstall().process(["tun_device false", "sources_list not*base64"])
    info = TailscaleInstall().process(
        [
            "package_version 1.96.4",
            "tun_device true",
            "tun_openable false",
            "sources_list",  # an empty file, its line's trailing space stripped
            "ActiveState=active",
            "UnitFileState=",
        ]
    )
    assert info == {
        **TailscaleInstall.default(),
        "package_version": "1.96.4",
        "tun_device": True,
        "sources_list": "",
        "service_active": "active",
    }


# -- TailscaleNode: status, prefs, serve and the HTTPS feature answer in one read --------
def node_output(feature: list[str]) -> list[str]:
    status = (SAMPLES / "status_running.json").read_text().splitlines()
    serve = (SAMPLES / "serve_handler.json").read_text().splitlines()
    marker = [SECTION_MARKER]
    return [*status, *marker, '{"RunSSH": false}', *marker, *serve, *marker, *feature]


def test_node_reads_four_sections() -> None:
    node = TailscaleNode().process(node_output([]))
    assert node["status"]["BackendState"] == "Running"
    assert node["prefs"] == {"RunSSH": False}
    assert "Web" in node["serve"]
    assert node["https_feature"] is None  # not asked: the node has the https capability
    with pytest.raises(FactProcessError, match="expected 4 sections"):
        TailscaleNode().process(["{}", SECTION_MARKER, "{}"])


def test_node_reads_headscales_answer_to_the_https_feature_query() -> None:
    # curl's output against headscale v0.29 (hscontrol/noise.go NotImplementedHandler),
    # as captured from the real tailscaled's LocalAPI: the body, then the status line.
    node = TailscaleNode().process(node_output(["Not implemented yet", "", "501"]))
    assert node["https_feature"] == {
        "http_status": 501,
        "complete": False,
        "text": "",
        "url": "",
        "error": "Not implemented yet",
    }


def test_node_reads_a_query_feature_response() -> None:
    # tailcfg.QueryFeatureResponse, as Tailscale's control server answers a node of a
    # tailnet without HTTPS (fields omitted when zero).
    body = '{"Text":"Serve is not enabled on your tailnet.","URL":"https://login.example/f"}'
    node = TailscaleNode().process(node_output([body, "200"]))
    assert node["https_feature"] == {
        "http_status": 200,
        "complete": False,
        "text": "Serve is not enabled on your tailnet.",
        "url": "https://login.example/f",
        "error": "",
    }
    assert TailscaleNode().process(node_output(['{"Complete":true}', "200"]))["https_feature"][
        "complete"
    ]


def test_node_reports_when_tailscaled_could_not_be_asked() -> None:
    feature = TailscaleNode().process(
        node_output(["bash: line 1: curl: command not found", "##TAILSCALE_CLI_FAILED## 127"])
    )["https_feature"]
    assert feature["http_status"] == 0
    assert feature["error"] == (
        "could not ask tailscaled (curl exit 127): bash: line 1: curl: command not found"
    )


def fake_cli(bin_dir: Path, states: list[str], unit_state: str = "active") -> None:
    """A ``tailscale`` whose ``status`` walks through ``states`` (a missing state: daemon
    unreachable, exit 1) and a ``systemctl is-active`` answering ``unit_state``."""
    (bin_dir / "states").write_text("\n".join(states) + "\n")
    script = f"""#!/bin/sh
case "$1" in
status)
  s=$(head -n 1 {bin_dir}/states); [ "$(wc -l < {bin_dir}/states)" -gt 1 ] && sed -i 1d {bin_dir}/states
  echo "$s" >> {bin_dir}/calls
  [ "$s" = down ] && exit 1
  printf '{{\\n  "BackendState": "%s",\\n  "Self": {{\\n    "CapMap": {{\\n      "https": null\\n    }}\\n  }}\\n}}\\n' "$s";;
debug) echo '{{}}';;
serve) echo '{{}}';;
esac
"""
    (bin_dir / "tailscale").write_text(script)
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho {unit_state}\n")
    for name in ("tailscale", "systemctl"):
        (bin_dir / name).chmod(0o755)


def run_node(bin_dir: Path) -> dict[str, Any]:
    cmd = TailscaleNode().command().get_raw_value()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=30)
    return TailscaleNode().process(proc.stdout.splitlines())


def test_node_waits_for_a_daemon_still_reading_its_state(tmp_path: Path) -> None:
    # After a boot tailscaled answers NoState until it has read its profile: no name and no
    # serve config yet, so the read waits (bounded) for the state that follows.
    fake_cli(tmp_path, ["down", "NoState", "NoState", "Running"], unit_state="activating")
    assert run_node(tmp_path)["status"]["BackendState"] == "Running"
    assert (tmp_path / "calls").read_text().split() == ["down", "NoState", "NoState", "Running"]


def test_node_does_not_wait_for_a_daemon_that_is_down_or_settled(tmp_path: Path) -> None:
    fake_cli(tmp_path, ["down", "Running"], unit_state="inactive")
    assert run_node(tmp_path)["status"]["BackendState"] == DAEMON_DOWN
    fake_cli(tmp_path, ["NeedsLogin", "Running"])
    (tmp_path / "calls").unlink()
    assert run_node(tmp_path)["status"]["BackendState"] == "NeedsLogin"
    assert (tmp_path / "calls").read_text().split() == ["NeedsLogin"]
