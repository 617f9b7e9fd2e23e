"""PVE API schema subset: loading and parameter validation (test support).

The JSON data files in ``schema/`` are unchanged extracts of the API schema that Proxmox
ships (see ``schema/PROVENANCE.md``).  This module re-implements, in plain Python, the
*behaviour* of PVE's parameter checker so that the emulator refuses bad input with the
same messages as a real node:

* check order per property: type, named/nested format, pattern, maxLength, minLength,
  maximum, minimum, enum -- the first failure wins;
* booleans are exactly ``1``/``0`` on the wire (or JSON ``true``/``false``);
* patterns are anchored the Perl way (``^...$``; one trailing newline still matches);
* property strings (``net0``, ``rootfs``, ``features``...) are parsed like PVE does
  (``default_key``, booleans accepting on/off/yes/no/true/false, unknown sub-keys refused);
* numbered keys (``net[n]``...) are expanded to ``net0``..``net31`` etc.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

SCHEMA_FILES = {
    "9": "pve9-lxc-api-subset.json",
    "8": "pve8-lxc-api-subset.json",
}
# The extra endpoints (same commits) the emulator serves: snapshots and the privilege
# preflight, and the feature check (snapshot). The others there (resize, vzdump) are not
# emulated and stay 501.
EXTRA_FILES = {
    "9": "pve9-lxc-api-extra.json",
    "8": "pve8-lxc-api-extra.json",
}
EXTRA_ENDPOINTS = frozenset(
    {
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot"),
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot"),
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}"),
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback"),
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config"),
        ("GET", "/nodes/{node}/lxc/{vmid}/feature"),
        ("GET", "/access/permissions"),
    }
)

# numbered keys: upper bound (exclusive) from pve-container Config.pm
NUMBERED_LIMITS = {"net": 32, "mp": 256, "dev": 256, "unused": 256}


class FormatError(Exception):
    """A format check failed.  ``str(err)`` is the message as PVE's ``die`` text."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}

    def stringify(self) -> str:
        """Like PVE::Exception's stringification: message + ``key: error`` lines."""
        msg = self.message if self.message.endswith("\n") else self.message + "\n"
        for key in sorted(self.errors):
            msg += f"{key}: {self.errors[key]}\n"
        return msg


def perl_match(pattern: str, value: str) -> bool:
    """``$value =~ m/^$pattern$/`` with Perl's ``(?^:...)`` groups translated."""
    py = pattern.replace("(?^:", "(?:")
    return re.match("^" + py + "$", value) is not None


def is_integer(value: str) -> bool:
    # Perl's ``$`` also matches before one trailing newline
    return re.match(r"^[+-]?\d+$", value) is not None


def split_list(value: str) -> list[str]:
    """PVE::Tools::split_list: split on ``;``, ``,``, whitespace and NUL."""
    return [p for p in re.split(r"[;,\s\0]+", value.strip()) if p]


def parse_boolean(value: str) -> int | None:
    if re.match(r"^(1|on|yes|true)$", value, re.IGNORECASE):
        return 1
    if re.match(r"^(0|off|no|false)$", value, re.IGNORECASE):
        return 0
    return None


# ---------------------------------------------------------------------------------------
# named formats


def _die(msg: str) -> None:
    raise FormatError(msg + "\n")


_IPV4_RE = r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


def _is_ipv4(value: str) -> bool:
    return re.match("^(?:" + _IPV4_RE + ")$", value) is not None


def _is_ipv6(value: str) -> bool:
    if ":" not in value or "%" in value or "/" in value:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _cidr_ok(value: str, v6: bool) -> bool:
    addr, sep, bits = value.partition("/")
    if not sep or not bits.isdigit():
        return False
    n = int(bits)
    if v6:
        return _is_ipv6(addr) and 7 < n <= 128
    return _is_ipv4(addr) and 7 < n <= 32


def _verify_vmid(v: str) -> None:
    if not re.match(r"^[1-9][0-9]{2,8}$", v):
        _die("value does not look like a valid VM ID")


def _verify_node(v: str) -> None:
    if not re.match(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$", v):
        _die("value does not look like a valid node name")


_DNS_LABEL = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)"


def _verify_dns_name(v: str) -> None:
    if not re.match(rf"^({_DNS_LABEL}\.)*{_DNS_LABEL}$", v):
        _die("value does not look like a valid DNS name")


def _parse_id(v: str, kind: str) -> None:
    if len(v) < 2:
        _die(f"{kind} ID '{v}' cannot be shorter than 2 characters")
    if not re.match(r"^[a-z][a-z0-9\-\_\.]*[a-z0-9]$", v, re.IGNORECASE):
        _die(f"{kind} ID '{v}' contains illegal characters")


def _verify_configid(v: str) -> None:
    if not re.match(r"^[a-z][a-z0-9_-]+$", v, re.IGNORECASE):
        _die(f"invalid configuration ID '{v}'")


def _verify_volume_id(v: str) -> None:
    if not re.match(r"^([a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$", v, re.IGNORECASE):
        _die(f"unable to parse volume ID '{v}'")


def _verify_mp_string(v: str) -> None:
    if re.search(r"/\.\.?/", v) or re.search(r"/\.\.?$", v) or re.match(r"^\.\./", v):
        _die(f"{v} contains illegal character sequences")


def _verify_dev_string(v: str) -> None:
    if re.search(r"/\.\.?(?:/|$)", v) or not v.startswith("/dev/"):
        _die(f"{v} is not a valid device path")


def _verify_disk_size(v: str) -> None:
    if not re.match(r"^(\d+(\.\d+)?)([KMGT](?:iB)?)?$", v):
        _die(f"value does not look like a valid disk size: {v}")


def _verify_ipv4(v: str) -> None:
    if not _is_ipv4(v.rstrip("\n")):
        _die("value does not look like a valid IPv4 address")


def _verify_ipv6(v: str) -> None:
    if not _is_ipv6(v.rstrip("\n")):
        _die("value does not look like a valid IPv6 address")


def _verify_ip(v: str) -> None:
    if not (_is_ipv4(v) or _is_ipv6(v)):
        _die("value does not look like a valid IP address")


def _verify_ipv4_config(v: str) -> None:
    if v in ("dhcp", "manual") or _cidr_ok(v, v6=False):
        return
    _die("value does not look like a valid ipv4 network configuration")


def _verify_ipv6_config(v: str) -> None:
    if v in ("auto", "dhcp", "manual") or _cidr_ok(v, v6=True):
        return
    _die("value does not look like a valid ipv6 network configuration")


def _verify_ip_ll_iface(v: str) -> None:
    addr, _, iface = v.partition("%")
    if _is_ipv4(addr) and not iface:
        return
    if _is_ipv6(addr) and (not iface or re.match(r"^[A-Za-z0-9_.\-]+$", iface)):
        return
    _die("value does not look like a valid IP address")


def _verify_mac(v: str) -> None:
    if not re.match(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$", v, re.IGNORECASE):
        _die("value does not look like a valid unicast MAC address")


def _verify_tag(v: str) -> None:
    if not re.match(r"^[a-z0-9_][a-z0-9_\-\+\.]*$", v, re.IGNORECASE):
        _die("invalid characters in tag")


def _verify_startup(v: str) -> None:
    for part in v.split(","):
        if re.match(r"^\s*$", part):
            continue
        if not re.match(r"^((order=)?\d+|up=\d+|down=\d+)$", part):
            _die("unable to parse startup options")


def _verify_timezone(v: str) -> None:
    if v in ("host", "UTC"):
        return
    zone_tab = Path("/usr/share/zoneinfo/zone.tab")
    if zone_tab.exists():
        for line in zone_tab.read_text(errors="replace").splitlines():
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) > 2 and cols[2] == v:
                return
        _die(f"invalid time zone '{v}'")
    if not re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+$", v):
        _die(f"invalid time zone '{v}'")


def _verify_poolid(v: str) -> None:
    if not re.match(r"^[A-Za-z0-9_\-]+$", v):
        _die(f"pool name '{v}' contains invalid characters")


def _verify_realm(v: str) -> None:
    if not re.match(r"^[A-Za-z][A-Za-z0-9\.\-_]+$", v):
        _die(f"realm '{v}' contains invalid characters")


_STORAGE_CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}


def _verify_storage_content(v: str) -> None:
    if v not in _STORAGE_CONTENT:
        _die(f"invalid content type '{v}'")


def _verify_task_status_type(v: str) -> None:
    if not re.match(r"^(ok|error|warning|unknown)$", v, re.IGNORECASE):
        _die(f"invalid status '{v}'")


def _verify_priv(v: str) -> None:
    if not re.match(r"^[A-Za-z]+\.[A-Za-z.]+$", v):
        _die(f"invalid privilege name '{v}'")


def _verify_email(v: str) -> None:
    if not re.match(r"^[\w\+\-\~]+(\.[\w\+\-\~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$", v):
        _die("value does not look like a valid email address")


NAMED_FORMATS: dict[str, Callable[[str], None]] = {
    "pve-vmid": _verify_vmid,
    "pve-node": _verify_node,
    "dns-name": _verify_dns_name,
    "pve-storage-id": lambda v: _parse_id(v, "storage"),
    "pve-configid": _verify_configid,
    "pve-volume-id": _verify_volume_id,
    "pve-lxc-mp-string": _verify_mp_string,
    "pve-lxc-dev-string": _verify_dev_string,
    "disk-size": _verify_disk_size,
    "ipv4": _verify_ipv4,
    "ipv6": _verify_ipv6,
    "ip": _verify_ip,
    "pve-ipv4-config": _verify_ipv4_config,
    "pve-ipv6-config": _verify_ipv6_config,
    "lxc-ip-with-ll-iface": _verify_ip_ll_iface,
    "mac-addr": _verify_mac,
    "pve-tag": _verify_tag,
    "pve-startup-order": _verify_startup,
    "pve-ct-timezone": _verify_timezone,
    "pve-poolid": _verify_poolid,
    "pve-realm": _verify_realm,
    "pve-storage-content": _verify_storage_content,
    "pve-task-status-type": _verify_task_status_type,
    "pve-priv": _verify_priv,
    "email": _verify_email,
}


def check_named_format(fmt: str, value: str) -> None:
    """Run a named format check; unknown formats accept.  ``-list`` formats split first."""
    m = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    assert m is not None
    name, kind = m.group(1), m.group(2)
    if fmt in NAMED_FORMATS:
        name, kind = fmt, None
    checker = NAMED_FORMATS.get(name)
    if checker is None:
        return
    if kind == "list":
        for item in split_list(value):
            checker(item)
    elif kind == "opt":
        if value:
            checker(value)
    else:
        checker(value)


# ---------------------------------------------------------------------------------------
# property strings


def parse_property_string(
    fmt: dict[str, Any], data: str, path: str | None = None
) -> dict[str, Any]:
    """Parse ``k=v,k2=v2`` against a nested format, exactly like PVE (raises FormatError)."""
    res: dict[str, Any] = {}
    default_key: str | None = None
    for part in _perl_split_comma(data):
        if re.match(r"^\s*$", part):
            continue
        m = re.match(r"^([^=]+)=(.+)$", part)
        if m:
            key, val = m.group(1), m.group(2)
            if key in res:
                raise FormatError(f"duplicate key in comma-separated list property: {key}\n")
            sub = fmt.get(key) or {}
            if sub.get("type") == "boolean":
                parsed = parse_boolean(val)
                res[key] = parsed if parsed is not None else val
            else:
                res[key] = val
        elif "=" not in part:
            if default_key:
                raise FormatError(
                    f"duplicate key in comma-separated list property: {default_key}\n"
                )
            for key, sub in fmt.items():
                if sub.get("default_key"):
                    default_key = key
                    if not res.get(key):
                        val2: Any = part
                        if sub.get("type") == "boolean":
                            parsed = parse_boolean(part)
                            val2 = parsed if parsed is not None else part
                        res[key] = val2
                        break
                    raise FormatError(
                        f"duplicate key in comma-separated list property: {default_key}\n"
                    )
            if not default_key:
                raise FormatError("value without key, but schema does not define a default key\n")
        else:
            raise FormatError("missing key in comma-separated list property\n")
    errors: dict[str, str] = {}
    check_object(path or "", fmt, res, False, errors)
    if errors:
        raise FormatError("format error\n", errors)
    return res


def _perl_split_comma(data: str) -> list[str]:
    parts = data.split(",")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def print_property_string(
    fmt: dict[str, Any], data: dict[str, Any], first: Iterable[str] = ()
) -> str:
    """Print a parsed property string: ``first`` keys, then the rest sorted."""
    keys = [k for k in first if k in data] + sorted(k for k in data if k not in first)
    out = []
    for k in keys:
        v = data[k]
        if v is None:
            continue
        out.append(f"{k}={v}")
    return ",".join(out)


# ---------------------------------------------------------------------------------------
# generic checks


def _perl_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _ref_name(value: Any) -> str | None:
    if isinstance(value, bool):
        return "JSON::PP::Boolean"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "HASH"
    return None


def add_error(errors: dict[str, str], path: str, msg: str) -> None:
    path = path or "_root"
    if path in errors:
        errors[path] = errors[path] + "\\n" + msg
    else:
        errors[path] = msg


def check_type(path: str, typ: str | None, value: Any, errors: dict[str, str]) -> bool:
    if not typ or typ == "any":
        return True
    if typ == "null":
        if value is not None:
            add_error(errors, path, f"type check ('{typ}') failed - value is not null")
            return False
        return True
    ref = _ref_name(value)
    if typ == "array":
        if not isinstance(value, list):
            add_error(errors, path, f"type check ('{typ}') failed")
            return False
        return True
    if typ == "object":
        if not isinstance(value, dict):
            add_error(errors, path, f"type check ('{typ}') failed")
            return False
        return True
    if ref:
        if typ == "boolean" and isinstance(value, bool):
            return True
        add_error(errors, path, f"type check ('{typ}') failed - got {ref}")
        return False
    sval = _perl_str(value)
    if typ == "string":
        return True
    if typ == "boolean":
        if sval in ("1", "0"):
            return True
        add_error(errors, path, f"type check ('{typ}') failed - got '{sval}'")
        return False
    if typ == "integer":
        if not is_integer(sval):
            add_error(errors, path, f"type check ('{typ}') failed - got '{sval}'")
            return False
        return True
    if typ == "number":
        if not _is_number(sval):
            add_error(errors, path, f"type check ('{typ}') failed - got '{sval}'")
            return False
        return True
    return True


def _is_number(sval: str) -> bool:
    return re.match(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$", sval) is not None


def _num(v: Any) -> float:
    return float(str(v).strip())


def check_prop(value: Any, schema: dict[str, Any], path: str, errors: dict[str, str]) -> None:
    if value is None:
        if schema.get("type") == "null":
            return
        if not schema.get("optional"):
            add_error(errors, path, "property is missing and it is not optional")
        return
    if not check_type(path, schema.get("type"), value, errors):
        return
    if isinstance(value, list | dict) and not isinstance(value, bool):
        return
    sval = _perl_str(value) if not isinstance(value, bool) else ("1" if value else "0")
    fmt = schema.get("format")
    if fmt:
        try:
            if isinstance(fmt, dict):
                parse_property_string(fmt, sval, path)
            else:
                check_named_format(fmt, sval)
        except FormatError as err:
            add_error(errors, path, "invalid format - " + err.stringify())
            return
    pattern = schema.get("pattern")
    if pattern and not perl_match(pattern, sval):
        add_error(errors, path, "value does not match the regex pattern")
        return
    if schema.get("maxLength") is not None and len(sval) > int(schema["maxLength"]):
        add_error(errors, path, f"value may only be {schema['maxLength']} characters long")
        return
    if schema.get("minLength") is not None and len(sval) < int(schema["minLength"]):
        add_error(errors, path, f"value must be at least {schema['minLength']} characters long")
        return
    if _is_number(sval):
        if schema.get("maximum") is not None and _num(sval) > _num(schema["maximum"]):
            add_error(errors, path, f"value must have a maximum value of {schema['maximum']}")
            return
        if schema.get("minimum") is not None and _num(sval) < _num(schema["minimum"]):
            add_error(errors, path, f"value must have a minimum value of {schema['minimum']}")
            return
    enum = schema.get("enum")
    if enum and sval not in [str(e) for e in enum]:
        add_error(
            errors,
            path,
            f"value '{sval}' does not have a value in the enumeration '" + ", ".join(enum) + "'",
        )


def check_object(
    path: str,
    props: dict[str, Any],
    value: dict[str, Any],
    additional_properties: Any,
    errors: dict[str, str],
) -> None:
    for key in sorted(props):
        check_prop(value.get(key), props[key], f"{path}.{key}" if path else key, errors)
    for key in sorted(value):
        newpath = f"{path}.{key}" if path else key
        sub = props.get(key)
        if sub is not None:
            requires = sub.get("requires")
            if isinstance(requires, str) and value.get(requires) is None:
                add_error(
                    errors,
                    f"{path}.{requires}" if path else requires,
                    f"missing property required by '{newpath}'",
                )
            continue
        if additional_properties is not None and not additional_properties:
            add_error(
                errors,
                newpath,
                "property is not defined in schema and the schema does not allow additional "
                "properties",
            )


# ---------------------------------------------------------------------------------------
# schema / endpoints


@dataclass
class Endpoint:
    method: str
    path: str
    info: dict[str, Any]
    regex: re.Pattern[str] = field(init=False)
    properties: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{([a-z_-]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        self.regex = re.compile("^" + pattern + "$")
        self.properties = expand_properties(
            self.info.get("parameters", {}).get("properties", {}) or {}
        )

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def permissions(self) -> dict[str, Any] | None:
        perm = self.info.get("permissions")
        return perm if isinstance(perm, dict) else None

    @property
    def allowtoken(self) -> bool:
        return bool(self.info.get("allowtoken", 1))

    @property
    def proxyto(self) -> str | None:
        return self.info.get("proxyto")

    def validate(self, params: dict[str, Any]) -> dict[str, str]:
        """Validate ``params`` (uri + query + body); returns PVE's errors dict (empty = ok)."""
        errors: dict[str, str] = {}
        addprops = self.info.get("parameters", {}).get("additionalProperties", 0)
        check_object("", self.properties, params, addprops, errors)
        return errors

    def coerce(self, params: dict[str, Any]) -> dict[str, Any]:
        """Turn validated wire values into Python values (int, float-string, bool->0/1, str)."""
        out: dict[str, Any] = {}
        for key, value in params.items():
            typ = self.properties.get(key, {}).get("type")
            if value is None:
                continue
            if typ == "integer":
                out[key] = int(_perl_str(value).strip())
            elif typ == "boolean":
                out[key] = 1 if value in (True, 1, "1") else 0
            elif typ == "number":
                out[key] = _perl_str(value).strip()
            else:
                out[key] = value if isinstance(value, str) else _perl_str(value)
        return out


def expand_properties(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, schema in props.items():
        m = re.match(r"^([a-z]+)\[n\]$", key)
        if m:
            base = m.group(1)
            for i in range(NUMBERED_LIMITS.get(base, 256)):
                out[f"{base}{i}"] = schema
        else:
            out[key] = schema
    return out


class ApiSchema:
    """One PVE version's endpoint subset."""

    def __init__(self, version: str) -> None:
        major = version.split(".")[0]
        if major not in SCHEMA_FILES:
            raise ValueError(f"unsupported PVE version {version!r} (use 8 or 9)")
        self.major = int(major)
        data = json.loads((SCHEMA_DIR / SCHEMA_FILES[major]).read_text())
        extra = json.loads((SCHEMA_DIR / EXTRA_FILES[major]).read_text())
        self.source: dict[str, Any] = data.get("source", {})
        self.endpoints: list[Endpoint] = [
            Endpoint(e["method"], e["path"], e) for e in data["endpoints"]
        ] + [
            Endpoint(e["method"], e["path"], e)
            for e in extra["endpoints"]
            if (e["method"], e["path"]) in EXTRA_ENDPOINTS
        ]

    def find(self, method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        for ep in self.endpoints:
            if ep.method != method:
                continue
            m = ep.regex.match(path)
            if m:
                return ep, dict(m.groupdict())
        return None

    def endpoint(self, method: str, path: str) -> Endpoint:
        for ep in self.endpoints:
            if ep.method == method and ep.path == path:
                return ep
        raise KeyError(f"{method} {path}")

    def prop(self, method: str, path: str, name: str) -> dict[str, Any]:
        return dict(self.endpoint(method, path).properties[name])


_CACHE: dict[str, ApiSchema] = {}


def load_schema(version: str = "9") -> ApiSchema:
    major = version.split(".")[0]
    if major not in _CACHE:
        _CACHE[major] = ApiSchema(major)
    return _CACHE[major]
