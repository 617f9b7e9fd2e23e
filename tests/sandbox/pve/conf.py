"""The container's configuration: PVE's conf files under ``<state>/etc/pve/lxc/<vmid>.conf``
(re-read on every request; digest = sha1 of the file), pending changes and their hotplug,
and the ``config``/``pending`` endpoints (pve-container:src/PVE/API2/LXC/Config.pm).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

from . import lxc_permissions as lxcperm
from .auth import Identity
from .errors import PveError, param_error
from .schema import parse_boolean, parse_property_string, print_property_string, split_list
from .tasks import Task, TasksApi

# PVE conf file format (pve-container Config.pm parse_pct_config / write_pct_config)
_META_KEYS = ("digest", "description", "pending", "snapshots", "snapname", "env", "lxc")


def encode_text(text: str) -> str:
    """Percent-encode control/hi-bit chars, ':' and '%' (PVE's description comments)."""
    out = []
    for ch in text:
        for byte in ch.encode("utf-8"):
            if byte < 0x20 or byte > 0x7E or byte in (0x25, 0x3A):
                out.append(f"%{byte:02X}")
            else:
                out.append(chr(byte))
    return "".join(out)


def decode_text(text: str) -> str:
    return urllib.parse.unquote(text, errors="replace")


def parse_pct_config(raw: str) -> dict[str, Any]:
    """Parse a CT conf file into PVE's structure (values kept as strings)."""
    res: dict[str, Any] = {
        "digest": hashlib.sha1(raw.encode("utf-8")).hexdigest(),
        "snapshots": {},
        "pending": {},
    }
    conf = res
    descr = ""
    section = ""
    for line in raw.split("\n"):
        if re.match(r"^\s*$", line):
            continue
        if re.match(r"^\[pve:pending\]\s*$", line, re.IGNORECASE):
            section = "pending"
            if descr:
                conf["description"] = descr
            descr = ""
            conf = res["pending"] = {}
            continue
        m = re.match(r"^\[([a-z][a-z0-9_\-]+)\]\s*$", line, re.IGNORECASE)
        if m:
            section = m.group(1)
            if descr:
                conf["description"] = descr
            descr = ""
            conf = res["snapshots"][section] = {}
            continue
        m = re.match(r"^#(.*)$", line)
        if m:
            descr += decode_text(m.group(1)) + "\n"
            continue
        m = re.match(r"^(lxc\.[a-z0-9_\-\.]+)(:|\s*=)\s*(.*?)\s*$", line)
        if m:
            key, value = m.group(1), m.group(3)
            if key == "lxc.environment.runtime":
                conf["env"] = value if conf.get("env") is None else conf["env"] + "\0" + value
            else:
                conf.setdefault("lxc", []).append([key, value])
            continue
        m = re.match(r"^(description):\s*(.*\S)\s*$", line)
        if m:
            descr += decode_text(m.group(2))
            continue
        m = re.match(r"^delete:\s*(.*\S)\s*$", line)
        if m:
            if section == "pending":
                conf["delete"] = m.group(1)
            continue
        m = re.match(r"^([a-z][a-z_]*\d*):\s*(.+?)\s*$", line)
        if m:
            conf[m.group(1)] = m.group(2)
    if descr:
        conf["description"] = descr
    return res


def write_pct_config(conf: dict[str, Any]) -> str:
    def gen(c: dict[str, Any]) -> str:
        raw = ""
        for line in (c.get("description") or "").split("\n"):
            if line:
                raw += "#" + encode_text(line) + "\n"
        for key in sorted(c):
            if key in _META_KEYS:
                continue
            value = str(c[key])
            if "\n" in value:
                raise PveError(500, f"detected invalid newline inside property '{key}'")
            raw += f"{key}: {value}\n"
        if c.get("env"):
            for var in re.split(r"\0+", c["env"]):
                if var:
                    raw += f"lxc.environment.runtime: {var}\n"
        for key, value in c.get("lxc") or []:
            if key != "lxc.environment.runtime":
                raw += f"{key}: {value}\n"
        return raw

    raw = gen(conf)
    if conf.get("pending"):
        raw += "\n[pve:pending]\n" + gen(conf["pending"])
    for name in sorted(conf.get("snapshots") or {}):
        raw += f"\n[{name}]\n" + gen(conf["snapshots"][name])
    return raw


_FASTPLUG = {
    "description", "onboot", "startup", "protection", "hostname", "hookscript", "cores",
    "tags", "lock",
}  # fmt: skip


class ConfApi(TasksApi):
    """The conf files, the config values as the API shows them, and the config endpoints."""

    @property
    def conf_dir(self) -> Path:
        return self.state_dir / "etc/pve/lxc"

    def conf_path(self, vmid: int) -> Path:
        return self.conf_dir / f"{vmid}.conf"

    def vmids(self) -> list[int]:
        out = []
        for p in self.conf_dir.glob("*.conf"):
            if p.stem.isdigit():
                out.append(int(p.stem))
        return sorted(out)

    def load_conf(self, vmid: int) -> dict[str, Any]:
        path = self.conf_path(vmid)
        try:
            raw = path.read_text()
        except FileNotFoundError:
            raise PveError(
                500, f"Configuration file 'nodes/{self.node}/lxc/{vmid}.conf' does not exist"
            ) from None
        return parse_pct_config(raw)

    def write_conf(self, vmid: int, conf: dict[str, Any]) -> None:
        path = self.conf_path(vmid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(write_pct_config(conf))
        os.replace(tmp, path)

    def _check_lock(self, conf: dict[str, Any]) -> None:
        if conf.get("lock"):
            raise PveError(500, f"CT is locked ({conf['lock']})")

    def _typed(self, key: str, value: Any) -> Any:
        props = self.schema.endpoint("PUT", "/nodes/{node}/lxc/{vmid}/config").properties
        typ = props.get(key, {}).get("type")
        if typ in ("integer", "boolean"):
            try:
                return int(str(value))
            except ValueError:
                if typ == "boolean":
                    return parse_boolean(str(value)) or 0
                return value
        return value

    def _net_format(self) -> dict[str, Any]:
        return dict(self.schema.prop("PUT", "/nodes/{node}/lxc/{vmid}/config", "net0")["format"])

    def _normalize_net(self, value: str) -> str:
        fmt = self._net_format()
        net = parse_property_string(fmt, value)
        if not net.get("hwaddr"):
            rnd = secrets.token_bytes(3)
            net["hwaddr"] = "BC:24:11:" + ":".join(f"{b:02X}" for b in rnd)
        net.setdefault("type", "veth")
        return print_property_string(fmt, net, first=("name",))

    @staticmethod
    def _normalize_tags(value: str) -> str:
        tags = sorted({t.lower() for t in split_list(value)})
        return ";".join(tags)

    def _parse_features(self, value: str | None) -> dict[str, Any]:
        return lxcperm.parse_features(self.schema, value)

    def _mp_type(self, key: str, value: str) -> tuple[str, dict[str, Any]]:
        return lxcperm.parse_mountpoint(self.schema, key, value)

    def check_ct_modify_config_perm(
        self,
        ident: Identity,
        vmid: int,
        pool: str | None,
        oldconf: dict[str, Any] | None,
        newconf: dict[str, Any],
        delete: list[str],
        unprivileged: bool,
    ) -> None:
        lxcperm.check_ct_modify_config_perm(
            self.rpc, ident.authuser, self.schema, self.storages, vmid, pool, oldconf,
            newconf, delete, unprivileged,
        )  # fmt: skip

    def _effective_conf(self, conf: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in conf.items() if k not in ("pending", "snapshots", "digest")}
        return out

    def _apply_pending(self, conf: dict[str, Any], task: Task | None = None) -> None:
        pending = conf.get("pending") or {}
        for opt in split_list(pending.get("delete", "")):
            opt = opt.lstrip("!")
            conf.pop(opt, None)
        for opt, value in sorted(pending.items()):
            if opt in ("delete", "description") and opt == "delete":
                continue
            if re.match(r"^net\d+$", opt):
                value = self._normalize_net(str(value))
            conf[opt] = value
        conf["pending"] = {}

    def _hotplug_pending(self, conf: dict[str, Any]) -> None:
        pending = conf.get("pending") or {}
        for opt in sorted(list(pending)):
            if opt in _FASTPLUG:
                conf[opt] = pending.pop(opt)
        deletes = [o.lstrip("!") for o in split_list(pending.get("delete", ""))]
        remaining = []
        for opt in deletes:
            if (
                opt in _FASTPLUG
                or opt in ("swap", "cpulimit", "cpuunits")
                or re.match(r"^(unused|net)\d+$", opt)
            ):
                conf.pop(opt, None)
            else:
                remaining.append(opt)
        if remaining:
            pending["delete"] = ",".join(remaining)
        else:
            pending.pop("delete", None)
        for opt in sorted(list(pending)):
            if opt == "delete":
                continue
            value = pending[opt]
            if opt in ("cpulimit", "cpuunits", "memory", "swap"):
                conf[opt] = pending.pop(opt)
            elif re.match(r"^net\d+$", opt):
                conf[opt] = self._normalize_net(str(pending.pop(opt)))
            elif opt not in conf and (
                re.match(r"^mp\d+$", opt) or (re.match(r"^dev\d+$", opt) and self.major >= 9)
            ):
                conf[opt] = pending.pop(opt)
            else:
                _ = value  # not hotpluggable: stays pending
        conf["pending"] = pending

    def _public_conf(self, conf: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in conf.items():
            if key in ("pending", "snapshots", "digest", "lxc", "description", "delete"):
                continue
            out[key] = self._typed(key, value)
        if conf.get("description") is not None:
            out["description"] = conf["description"]
        if conf.get("lxc"):
            out["lxc"] = [[k, v] for k, v in conf["lxc"]]
        return out

    def _read_restricted(self, ident: Identity, vmid: int, conf: dict[str, Any]) -> dict[str, Any]:
        """9.1: ``env`` (and its pending value) only for VM.Config.Options; no error
        (pve-container:src/PVE/LXC.pm:delete_read_restricted_options)."""
        if self.major < 9 or self.rpc.check_vm_perm(
            ident.authuser, vmid, None, ["VM.Config.Options"], noerr=True
        ):
            return conf
        conf.pop("env", None)
        (conf.get("pending") or {}).pop("env", None)
        return conf

    def api_get_nodes_node_lxc_vmid_config(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        if a.get("snapshot") and a.get("current"):
            msg = "cannot use 'snapshot' parameter with 'current'"
            raise param_error({"snapshot": msg, "current": msg})
        full = self._read_restricted(ident, vmid, self.load_conf(vmid))
        if a.get("snapshot"):
            snap = full["snapshots"].get(a["snapshot"])
            if snap is None:
                raise PveError(500, f"snapshot '{a['snapshot']}' does not exist")
            out = self._public_conf(snap)
        else:
            conf = {k: v for k, v in full.items()}
            if not a.get("current"):
                pending = full.get("pending") or {}
                for opt, value in pending.items():
                    if opt != "delete":
                        conf[opt] = value
                for opt in split_list(pending.get("delete", "")):
                    conf.pop(opt.lstrip("!"), None)
            out = self._public_conf(conf)
        out["digest"] = full["digest"]
        return out

    def api_get_nodes_node_lxc_vmid_pending(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a["vmid"])
        full = self._read_restricted(ident, vmid, self.load_conf(vmid))
        pending = full.get("pending") or {}
        deletes = {}
        for opt in split_list(pending.get("delete", "")):
            deletes[opt.lstrip("!")] = 2 if opt.startswith("!") else 1
        keys = {k for k in full if k not in ("pending", "snapshots", "digest", "lxc")}
        keys |= {k for k in pending if k != "delete"}
        keys |= set(deletes)
        out = []
        for key in sorted(keys):
            item: dict[str, Any] = {"key": key}
            if key in full and key not in ("pending", "snapshots"):
                item["value"] = self._typed(key, full[key])
            if key in pending:
                item["pending"] = self._typed(key, pending[key])
            if key in deletes:
                item["delete"] = deletes[key]
            out.append(item)
        return out

    def api_put_nodes_node_lxc_vmid_config(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        vmid = int(a.pop("vmid"))
        a.pop("node", None)
        digest = a.pop("digest", None)
        if not a:
            raise PveError(500, "no options specified")
        delete = split_list(a.pop("delete", "") or "")
        revert = split_list(a.pop("revert", "") or "")
        option_exists = self.schema.endpoint("PUT", "/nodes/{node}/lxc/{vmid}/config").properties
        with self.lock:
            conf = self.load_conf(vmid)
            self._check_lock(conf)
            if digest and digest != conf["digest"]:
                raise PveError(
                    500, "detected modified configuration - file changed by other user? Try again."
                )
            unpriv = str(conf.get("unprivileged", "0")) == "1"
            # deletes, then reverts (as deletes), then validation, then the set keys, all
            # with pool undef (pve-container:src/PVE/API2/LXC/Config.pm:update_vm, §2.10)
            self.check_ct_modify_config_perm(ident, vmid, None, conf, {}, delete, unpriv)
            self.check_ct_modify_config_perm(ident, vmid, None, conf, {}, revert, unpriv)
            for opt in revert:
                if opt not in option_exists or opt in ("delete", "revert", "digest", "node"):
                    raise param_error({"revert": f"unknown option '{opt}'"})
                if opt in a:
                    raise param_error(
                        {"revert": f"you can't use '-{opt}' and '-revert {opt}' at the same time"}
                    )
            for opt in delete:
                if opt not in option_exists or opt in ("delete", "revert", "digest", "node"):
                    raise param_error({"delete": f"unknown option '{opt}'"})
                if opt in a:
                    raise param_error(
                        {"delete": f"you can't use '-{opt}' and -delete {opt}' at the same time"}
                    )
                if opt in revert:
                    raise param_error(
                        {
                            "delete": f"you can't use '-delete {opt}' and '-revert {opt}' at the same time"
                        }
                    )
            self.check_ct_modify_config_perm(ident, vmid, None, conf, a, [], unpriv)
            pending = conf.setdefault("pending", {})
            for opt in revert:
                pending.pop(opt, None)
                self._remove_pending_delete(pending, opt)
            for opt in delete:
                if opt not in conf and opt not in pending:
                    continue
                if opt in ("memory", "rootfs", "ostype"):
                    raise PveError(500, f"unable to delete required option '{opt}'")
                if opt == "unprivileged":
                    raise PveError(500, f"unable to delete read-only option: '{opt}'")
                dels = split_list(pending.get("delete", ""))
                if opt not in dels:
                    dels.append(opt)
                pending["delete"] = ",".join(dels)
                pending.pop(opt, None)
            for opt in sorted(a):
                value = a[opt]
                if opt == "unprivileged":
                    raise PveError(500, f"unable to modify read-only option: '{opt}'")
                if opt == "tags":
                    value = self._normalize_tags(str(value))
                elif opt == "rootfs" or re.match(r"^mp\d+$", opt):
                    mptype, mp = self._mp_type(opt, str(value))
                    m = lxcperm.NEW_DISK_RE.match(str(mp.get("volume", "")))
                    if mptype == "volume" and m:
                        st = self._storage(m.group(1))
                        if "rootdir" not in st["content"]:
                            raise PveError(
                                500,
                                f"storage '{m.group(1)}' does not allow content type 'rootdir' "
                                "(Container)",
                            )
                elif re.match(r"^dev\d+$", opt):
                    dev = parse_property_string(
                        self.schema.prop("PUT", "/nodes/{node}/lxc/{vmid}/config", opt)["format"],
                        str(value),
                    )
                    if not dev.get("path"):
                        raise PveError(500, f"Path is not defined for passthrough device {opt}")
                pending[opt] = value
                self._remove_pending_delete(pending, opt)
            if self._is_running(vmid):
                self._hotplug_pending(conf)
            else:
                self._apply_pending(conf)
            self.write_conf(vmid, conf)
        return None

    @staticmethod
    def _remove_pending_delete(pending: dict[str, Any], opt: str) -> None:
        dels = [d for d in split_list(pending.get("delete", "")) if d.lstrip("!") != opt]
        if dels:
            pending["delete"] = ",".join(dels)
        else:
            pending.pop("delete", None)
