"""A host's status from what its one remote command read (and the Proxmox API): pure.

:func:`host_report` builds one host's part of ``egodeploy status --json``; :func:`render`
prints the report for people; :func:`exit_code` says how it went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..audit.entry import SUCCESS, iso
from ..tailscale import served_services
from ..tailscale.plan import dns_name, service_url

if TYPE_CHECKING:
    from ..settings import Settings

OK, FAILED, DEGRADED = 0, 1, 2
"""Exit codes: every service active and healthy / a host could not be read / a host was
read and something is not right (a service absent, inactive or unhealthy, the container
absent or stopped)."""


def release_of(
    services: Mapping[str, Any], times: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The release running: the commit the units were last started healthy with (their
    stamps), since when (the newest stamp), and who deployed it (the newest successful
    audit entry that ended on that commit)."""
    stamps = [u.get("stamp") or {} for u in services.get("units", {}).values()]
    commits = [s.get("commit") for s in stamps if s.get("commit")]
    if not commits:
        return None
    commit = commits[0]
    recorded = [t.get("recorded") for t in times.values() if t.get("recorded")]
    by = next(
        (
            e
            for e in reversed(entries)
            if e.get("result") == SUCCESS and e.get("commit_after") == commit
        ),
        None,
    )
    return {
        "commit": commit,
        "mixed": sorted(set(commits)) if len(set(commits)) > 1 else None,
        "since": iso(max(recorded)) if recorded else None,
        "deployed_by": by.get("controller") if by else None,
        "deployed_at": by.get("time") if by else None,
    }


def drift_summary(
    checkout: Mapping[str, Any], release: Mapping[str, Any] | None, marker: Any, branch: str
) -> dict[str, Any]:
    """The cheap drift check: the release against the commit ``branch`` names on the
    remote now (``git ls-remote`` in the same command), the rollback refusal, and local
    changes on the server. ``egodeploy drift`` is the full check."""
    remote = checkout.get("remote")
    dirty = list(checkout.get("dirty") or [])
    running = (release or {}).get("commit") or checkout.get("head")
    if running is None:
        state, summary = (
            "drift",
            "not deployed" + (f": {branch} is at {remote[:12]}" if remote else ""),
        )
    elif checkout.get("remote_error"):
        state, summary = "unknown", f"repo_url unreadable: {checkout['remote_error']}"
    elif remote is None and not checkout.get("remote_checked"):
        state, summary = "unknown", "git is not installed: the remote was not read"
    elif remote is None:
        state, summary = "unknown", f"the remote has no {branch!r}"
    elif isinstance(marker, dict) and marker.get("failed_commit") == remote:
        state = "rolled_back"
        summary = (
            f"{branch} names release {remote[:12]}, rolled back at {marker.get('at')}: "
            "not deploying it again"
        )
    elif running == remote:
        state, summary = "in_sync", f"running {branch} ({remote[:12]})"
    else:
        state, summary = "drift", f"{branch} is at {remote[:12]}, running {running[:12]}"
    if dirty:
        summary += f"; {len(dirty)} file(s) changed on the server"
        state = "drift" if state == "in_sync" else state
    return {"state": state, "branch_commit": remote, "local_changes": dirty, "summary": summary}


def host_report(
    settings: Settings,
    values: Mapping[str, Any],
    container: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One host's status. ``values``: the reads by name (``checkout``, ``services``,
    ``times``, ``audit``, ``lock``, ``tailscale``)."""
    services = values.get("services") or {}
    units = services.get("units", {})
    entries = list(values.get("audit") or [])
    dns = dns_name(values["tailscale"]) if values.get("tailscale") else ""
    urls = {p.name: service_url(p, dns) for p in served_services(settings.services)} if dns else {}
    release = release_of(services, values.get("times") or {}, entries)
    shown = []
    for svc in settings.services:
        unit = units.get(svc.unit, {})
        loaded = unit.get("LoadState") not in (None, "not-found")
        shown.append(
            {
                "name": svc.name,
                "unit": svc.unit,
                "state": unit.get("ActiveState") if loaded else "absent",
                "active": unit.get("ActiveState") == "active",
                "healthy": bool(unit.get("healthy")),
                "active_since": (values.get("times") or {}).get(svc.unit, {}).get("active_since"),
                "url": urls.get(svc.name),
            }
        )
    lock = values.get("lock") or {}
    marker = services.get("rolled_back")
    return {
        "reachable": True,
        "error": None,
        "container": container,
        "release": release,
        "services": shown,
        "last_deploy": entries[-1] if entries else None,
        "audit": entries,
        "rolled_back": marker,
        "releases": list(services.get("releases") or []),
        "run_lock": lock.get("holder") if lock.get("state") == "held" else None,
        "drift": drift_summary(values.get("checkout") or {}, release, marker, settings.repo_branch),
    }


def unreachable(error: str, container: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A host whose status could not be read (or, container absent or stopped, was not)."""
    return {"reachable": False, "error": error, "container": container}


def exit_code(hosts: Mapping[str, Mapping[str, Any]]) -> int:
    code = OK
    for report in hosts.values():
        container = report.get("container") or {}
        if not report.get("reachable") and container.get("state") in ("absent", "stopped"):
            code = max(code, DEGRADED)
        elif not report.get("reachable"):
            return FAILED
        elif not all(s["active"] and s["healthy"] for s in report["services"]):
            code = DEGRADED
    return code


def _entry_line(entry: Mapping[str, Any]) -> str:
    changed = entry.get("changed") or []
    failed = f", failed: {entry['failed']}" if entry.get("failed") else ""
    after = (entry.get("commit_after") or "-")[:12]
    return (
        f"{entry.get('time')} {entry.get('entry')} by {entry.get('controller')}: "
        f"{entry.get('result')} ({len(changed)} changed{failed}; {after}, "
        f"{entry.get('duration_s')} s)"
    )


def render_host(name: str, report: Mapping[str, Any], entries: int) -> list[str]:
    ct = report.get("container")
    lines: list[str] = []
    if ct:
        size = f", {ct['cores']} cores, {ct['memory_mb']} MiB" if ct.get("cores") else ""
        where = f"node {ct['node']}, vmid {ct['vmid']}, " if ct.get("vmid") else ""
        lines.append(f"  container  {where}{ct['state']}{size}")
    if not report.get("reachable"):
        return [f"{name}: UNREACHABLE: {report.get('error')}", *lines]
    healthy = all(s["active"] and s["healthy"] for s in report["services"])
    lines.insert(0, f"{name}: {'OK' if healthy else 'DEGRADED'}")
    rel = report.get("release")
    if rel:
        by = f", deployed by {rel['deployed_by']}" if rel.get("deployed_by") else ""
        lines.append(f"  release    {rel['commit'][:12]} since {rel.get('since') or '?'}{by}")
    else:
        lines.append("  release    none recorded healthy yet")
    for s in report["services"]:
        health = "healthy" if s["healthy"] else "NOT healthy"
        url = f"  {s['url']}" if s.get("url") else ""
        lines.append(f"  {s['name']:<10} {s['unit']} {s['state']}, {health}{url}")
    last = report.get("last_deploy")
    lines.append(f"  last run   {_entry_line(last) if last else 'none recorded'}")
    marker = report.get("rolled_back")
    if marker:
        lines.append(
            f"  ROLLED BACK release {str(marker.get('failed_commit'))[:12]} "
            f"({marker.get('reason') or marker.get('failed_service')}) at {marker.get('at')}; running "
            f"{str(marker.get('restored_commit'))[:12]}"
        )
    kept = [str(e.get("commit"))[:12] for e in reversed(report.get("releases") or [])]
    if kept:
        lines.append(f"  releases   {', '.join(kept)} (newest first; egodeploy rollback)")
    holder = report.get("run_lock")
    if holder:
        lines.append(
            f"  run lock   held: {holder.get('entry')} by {holder.get('user')}@"
            f"{holder.get('host')} since {holder.get('started')}"
        )
    drift = report["drift"]
    lines.append(f"  drift      {drift['state']}: {drift['summary']} (full check: egodeploy drift)")
    shown = report["audit"][-entries:] if entries else []
    if shown:
        lines.append(f"  audit log  last {len(shown)}:")
        lines += [f"    {_entry_line(e)}" for e in shown]
    return lines


def render(hosts: Mapping[str, Mapping[str, Any]], entries: int) -> str:
    out: list[str] = []
    for name, report in sorted(hosts.items()):
        out += render_host(name, report, entries)
    return "\n".join(out) or "no hosts"
