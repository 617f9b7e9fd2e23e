"""Authentication (API tokens, tickets and their CSRF tokens) and the access endpoints."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PveError
from .permissions import ROOT, UserCfg, split_tokenid
from .state import EmulatorState


class AuthError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Identity:
    user: str  # bare user, e.g. deploy@pve
    tokenid: str | None = None  # token name, e.g. pyinfra
    ticket: bool = False

    @property
    def authuser(self) -> str:
        return f"{self.user}!{self.tokenid}" if self.tokenid else self.user

    @property
    def is_root(self) -> bool:
        # a string test, as everywhere in PVE: a token of root is not root
        return self.authuser == ROOT


class AuthApi(EmulatorState):
    """Who is asking: ``/access/ticket`` logins, API tokens, tickets, ``/access/permissions``."""

    users: dict[str, dict[str, Any]]
    tokens: dict[str, dict[str, Any]]
    auth_delay: float
    tickets: dict[str, tuple[str, float]]
    csrf: dict[str, str]

    def _make_user_cfg(
        self,
        roles: Mapping[str, Iterable[str]],
        acl: Iterable[Mapping[str, Any]],
        pools: Mapping[str, Mapping[str, Any]],
    ) -> UserCfg:
        cfg = UserCfg(major=self.major)
        for name, privs in roles.items():
            cfg.add_role(name, privs)
        shorthand = 0

        def grant_shorthand(spec: Any, **who: list[str]) -> None:
            nonlocal shorthand
            if spec is None:
                return
            by_path = {"/": spec} if isinstance(spec, list | set | tuple) else dict(spec)
            for path, privs in by_path.items():
                if "*" in privs or "Administrator" in privs:
                    role = "Administrator"
                else:
                    shorthand += 1
                    role = f"EmulatorRole{shorthand}"
                    cfg.add_role(role, privs)
                cfg.grant(path, [role], **who)

        for userid, spec in self.users.items():
            cfg.add_user(userid, spec.get("groups", ()))
            grant_shorthand(spec.get("privs"), users=[userid])
        for tokenid, spec in self.tokens.items():
            cfg.add_token(tokenid, privsep=bool(int(spec.get("privsep", 1))))
            owner = tokenid.split("!", 1)[0]
            grant_shorthand(spec.get("privs"), tokens=[tokenid], users=[owner])
        for entry in acl:
            cfg.grant(
                str(entry["path"]),
                list(entry["roles"]),
                users=list(entry.get("users", ())),
                groups=list(entry.get("groups", ())),
                tokens=list(entry.get("tokens", ())),
                propagate=bool(int(entry.get("propagate", 1))),
            )
        for name, spec in pools.items():
            cfg.add_pool(name, spec.get("vms", ()), spec.get("storage", ()))
        return cfg

    def _authenticate(self, headers: Mapping[str, str], method: str, rel: str) -> Identity | None:
        auth_header = headers.get("Authorization", "") or ""
        ticket = None
        cookie = headers.get("Cookie", "") or ""
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "PVEAuthCookie":
                ticket = urllib.parse.unquote(value)
        m = re.match(r"^PVEAuthCookie=(.+)$", auth_header)
        if not ticket and m:
            ticket = m.group(1).strip()
        api_token = None
        if not ticket:
            m = re.match(r"^PVEAPIToken[=\s](\S+)\s*$", auth_header)
            if m:
                api_token = m.group(1)
        if rel == "/access/ticket" and method in ("GET", "POST"):
            return Identity(user="", tokenid="__api_token__" if api_token else None)
        if api_token:
            m = re.match(r"^(\S+@\S+?)!([A-Za-z][A-Za-z0-9\.\-_]+)[=\s](\S+)$", api_token)
            if not m:
                raise AuthError("Authentication failed!")
            user, tokenid, secret = m.group(1), m.group(2), m.group(3)
            spec = self.tokens.get(f"{user}!{tokenid}")
            if (
                spec is None
                or not hmac.compare_digest(str(spec.get("secret", "")), secret)
                or spec.get("enabled", True) is False
            ):
                raise AuthError("Authentication failed!")
            return Identity(user=user, tokenid=tokenid)
        if not ticket:
            raise AuthError("No ticket")
        with self.lock:
            entry = self.tickets.get(ticket)
        if entry is None or entry[1] < time.time():
            raise AuthError("Authentication failed!")
        user = entry[0]
        if method != "GET":
            token = headers.get("CSRFPreventionToken")
            if not token or not hmac.compare_digest(self.csrf.get(ticket, ""), token):
                raise AuthError("Permission denied - invalid csrf token")
        return Identity(user=user, ticket=True)

    def can(self, ident: Identity, path: str, privs: list[str]) -> bool:
        """Any of ``privs`` on ``path`` (the silent ``check_any(..., noerr)`` of listings)."""
        return self.rpc.check_any(ident.authuser, path, privs, noerr=True)

    def api_post_access_ticket(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        username = a["username"]
        if a.get("realm") and "@" not in username:
            username = f"{username}@{a['realm']}"
        password = a["password"]
        spec = self.users.get(username)
        ok = False
        if spec is not None and spec.get("enabled", True) is not False:
            if hmac.compare_digest(str(spec.get("password", "")), password):
                ok = True
            else:
                with self.lock:
                    entry = self.tickets.get(password)
                ok = entry is not None and entry[0] == username and entry[1] > time.time()
        if not ok:
            if self.auth_delay:
                time.sleep(self.auth_delay)
            raise PveError(401, "authentication failure")
        stamp = f"{int(time.time()):08X}"
        ticket = f"PVE:{username}:{stamp}::" + base64.b64encode(secrets.token_bytes(48)).decode()
        csrf = f"{stamp}:" + base64.b64encode(secrets.token_bytes(20)).decode().rstrip("=")
        with self.lock:
            self.tickets[ticket] = (username, time.time() + 7200)
            self.csrf[ticket] = csrf
        return {
            "username": username,
            "ticket": ticket,
            "CSRFPreventionToken": csrf,
            # coarse, for the GUI (pve-access-control:src/PVE/API2/AccessControl.pm:create_ticket)
            "cap": self.rpc.compute_api_permission(username),
        }

    def api_get_access_permissions(
        self, ident: Identity, a: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        """Oneself and one's own tokens; anyone else needs Sys.Audit on /access. With
        ``path``: that path's set as ``check`` tests it (echoing ``path`` as sent); without:
        the dump (pve-access-control:src/PVE/API2/AccessControl.pm:permissions, §5)."""
        authid = ident.authuser
        userid = str(a["userid"]) if a.get("userid") is not None else authid
        token = split_tokenid(userid)
        if not (userid == authid or (token is not None and token[0] == authid)):
            self.rpc.check(authid, "/access", ["Sys.Audit"])
        path = a.get("path")
        if path:
            held = self.rpc.permissions(userid, str(path))
            return {str(path): {p: int(v) for p, v in sorted(held.items())}}
        return self.rpc.effective_permissions(userid)
