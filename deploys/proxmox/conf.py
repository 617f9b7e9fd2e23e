"""Text edits of a PVE LXC conf file (``/etc/pve/lxc/<vmid>.conf``); pure functions, no I/O.

The file is a *top* section (the current config: ``#`` description comments, ``key: value``
lines, raw ``lxc.*`` lines), optionally followed by ``[pve:pending]`` and snapshot sections
(``[name]``).  Raw lines must go into the top section: appending with ``>>`` would put them
into the last section, i.e. a snapshot or the pending changes.

``lxc.*`` lines may be written ``key: value`` or ``key = value``; both spellings count as
the same line when checking for presence (PVE itself rewrites them as ``key: value``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PENDING = "pve:pending"

_HEADER_RE = re.compile(r"^\[([^\]]+)\]\s*$")
_LXC_RE = re.compile(r"^(lxc\.[a-z0-9_\-\.]+)(?::|\s*=)\s*(.*?)\s*$")
_KEY_RE = re.compile(r"^([a-z][a-z_\-]*\d*):\s*(.*?)\s*$")

TUN_CGROUP_LINE = "lxc.cgroup2.devices.allow: c 10:200 rwm"
TUN_MOUNT_LINE = "lxc.mount.entry: /dev/net/tun dev/net/tun none bind,create=file"
APPARMOR_UNCONFINED_LINE = "lxc.apparmor.profile: unconfined"


@dataclass
class Section:
    """One section: ``name`` is None for the top section, ``pve:pending`` or a snapshot name."""

    name: str | None
    header: str | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def is_top(self) -> bool:
        return self.name is None

    @property
    def is_pending(self) -> bool:
        return (self.name or "").lower() == PENDING

    def entries(self) -> list[tuple[str, str]]:
        """``(key, value)`` for every config line (comments and blanks skipped)."""
        out = []
        for line in self.lines:
            kv = parse_line(line)
            if kv is not None:
                out.append(kv)
        return out

    def description(self) -> list[str]:
        """The raw ``#`` comment lines (percent-encoded description)."""
        return [line for line in self.lines if line.startswith("#")]


def parse_line(line: str) -> tuple[str, str] | None:
    """``key: value`` (or ``lxc.key = value``) → (key, value); None for comments/blank/headers."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or _HEADER_RE.match(stripped):
        return None
    m = _LXC_RE.match(stripped)
    if m:
        return m.group(1), m.group(2)
    m = _KEY_RE.match(stripped)
    if m:
        return m.group(1), m.group(2)
    return None


def _norm(kv: tuple[str, str]) -> tuple[str, str]:
    return kv[0], " ".join(kv[1].split())


def parse_sections(text: str) -> list[Section]:
    """Split conf text into sections, keeping every line (comments, blanks, order)."""
    sections = [Section(name=None)]
    for line in text.splitlines():
        m = _HEADER_RE.match(line.strip())
        if m:
            sections.append(Section(name=m.group(1), header=line))
            continue
        sections[-1].lines.append(line)
    return sections


def render_sections(sections: list[Section]) -> str:
    """Inverse of :func:`parse_sections` (always ends with a newline when not empty)."""
    out: list[str] = []
    for section in sections:
        if section.header is not None:
            out.append(section.header)
        out.extend(section.lines)
    return "\n".join(out) + "\n" if out else ""


def top_section(text: str) -> Section:
    return parse_sections(text)[0]


def has_top_lines(text: str, lines: list[str]) -> bool:
    """True when every line in ``lines`` is present in the top section."""
    present = {_norm(kv) for kv in top_section(text).entries()}
    for line in lines:
        kv = parse_line(line)
        if kv is None:
            raise ValueError(f"not a config line: {line!r}")
        if _norm(kv) not in present:
            return False
    return True


def ensure_top_lines(text: str, lines: list[str]) -> tuple[str, bool]:
    """Insert the missing ``lines`` at the end of the top section; (new_text, changed).

    Lines go after the existing top-section entries and before the blank line that
    separates the top section from ``[pve:pending]``/snapshot sections.  Pending and
    snapshot sections are never touched; description comments stay where they are.
    """
    sections = parse_sections(text)
    top = sections[0]
    present = {_norm(kv) for kv in top.entries()}
    missing: list[str] = []
    for line in lines:
        kv = parse_line(line)
        if kv is None:
            raise ValueError(f"not a config line: {line!r}")
        if _norm(kv) not in present:
            present.add(_norm(kv))
            missing.append(line.strip())
    if not missing:
        return text, False
    # index after the last non-blank line of the top section
    last = len(top.lines)
    while last > 0 and not top.lines[last - 1].strip():
        last -= 1
    top.lines[last:last] = missing
    if len(sections) > 1:
        # keep exactly one blank separator before the next section header
        while top.lines and not top.lines[-1].strip():
            top.lines.pop()
        top.lines.append("")
    return render_sections(sections), True


def remove_top_lines(text: str, lines: list[str]) -> tuple[str, bool]:
    """Remove ``lines`` (either spelling) from the top section only; (new_text, changed)."""
    wanted = set()
    for line in lines:
        kv = parse_line(line)
        if kv is None:
            raise ValueError(f"not a config line: {line!r}")
        wanted.add(_norm(kv))
    sections = parse_sections(text)
    top = sections[0]
    kept = []
    changed = False
    for line in top.lines:
        kv = parse_line(line)
        if kv is not None and _norm(kv) in wanted:
            changed = True
            continue
        kept.append(line)
    if not changed:
        return text, False
    top.lines = kept
    return render_sections(sections), True


def tun_lines(apparmor_unconfined: bool = False) -> list[str]:
    """Raw lines that give an unprivileged CT ``/dev/net/tun`` (restart needed)."""
    lines = [TUN_CGROUP_LINE, TUN_MOUNT_LINE]
    if apparmor_unconfined:
        lines.append(APPARMOR_UNCONFINED_LINE)
    return lines
