"""The API over HTTPS: the node's certificates, the request entry (authentication, the
schema's parameter checks and permissions, dispatch to the ``api_*`` handlers, PVE's error
replies), injected faults and the ``/_emulator/`` admin endpoint, the HTTP plumbing.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from .auth import AuthError, Identity
from .cluster import ClusterApi
from .errors import PveError, param_error, perm_error


@dataclass
class Response:
    status: int
    reason: str
    body: bytes = b""
    headers: dict[str, str] = dc_field(default_factory=dict)


def ensure_certificates(pki_dir: Path, node: str) -> tuple[Path, Path, Path]:
    """Create (or reuse) CA + server cert.  Returns (ca_pem, server_pem, server_key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_pem = pki_dir / "pve-root-ca.pem"
    ca_key_path = pki_dir / "pve-root-ca.key"
    srv_pem = pki_dir / "pve-ssl.pem"
    srv_key_path = pki_dir / "pve-ssl.key"
    if ca_pem.exists() and srv_pem.exists() and srv_key_path.exists():
        return ca_pem, srv_pem, srv_key_path
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment (emulator)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, secrets.token_hex(8)),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Manager CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.DNSName("localhost"),
            x509.DNSName(node),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{node}.localdomain"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=700))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    nokey = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    ca_key_path.write_bytes(ca_key.private_bytes(pem, pkcs8, nokey))
    ca_key_path.chmod(0o600)
    srv_key_path.write_bytes(key.private_bytes(pem, pkcs8, nokey))
    srv_key_path.chmod(0o600)
    ca_pem.write_bytes(ca_cert.public_bytes(pem))
    srv_pem.write_bytes(cert.public_bytes(pem))
    return ca_pem, srv_pem, srv_key_path


def cert_fingerprint(pem_path: Path) -> str:
    """SHA-256 fingerprint ``AA:BB:...`` of a PEM certificate (as PVE shows it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(pem_path.read_bytes())
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


class ServerApi(ClusterApi):
    """Serving the API: start and stop, one request from its raw form to its reply."""

    http_faults: list[int]
    request_log: list[tuple[str, str, int]]
    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    url: str
    port: int

    def start(self, port: int = 0, host: str = "127.0.0.1") -> Self:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        emulator: ServerApi = self

        class Handler(_Handler):
            emu = emulator

        server = _TLSServer((host, port), Handler, ctx)
        self._server = server
        self.port = server.server_address[1]
        self.url = f"https://{host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="pve-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for task in list(self.tasks.values()):
            task.cancel.set()

    @property
    def api_url(self) -> str:
        return self.url + "/api2/json"

    @property
    def host(self) -> str:
        return self.url.removeprefix("https://")

    def inject_task_fault(
        self,
        task_type: str,
        *,
        fail: str | None = None,
        warnings: int | None = None,
        slow: float | None = None,
    ) -> None:
        """Next task of ``task_type`` (vzcreate, vzstart, download...) fails / warns / is slow."""
        with self.lock:
            self.task_faults.setdefault(task_type, []).append(
                {"fail": fail, "warnings": warnings, "slow": slow}
            )

    def inject_http_error(self, status: int = 596, count: int = 1) -> None:
        """The next ``count`` API requests answer ``status`` (595/596/...) without running."""
        with self.lock:
            self.http_faults.extend([status] * count)

    def inject_create_race(self, vmid: int) -> None:
        """Another client grabs ``vmid`` right before our next create of it."""
        with self.lock:
            self.race_vmids.add(vmid)

    def clear_faults(self) -> None:
        with self.lock:
            self.task_faults.clear()
            self.http_faults.clear()
            self.race_vmids.clear()

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        if path.startswith("/_emulator/"):
            return self._admin(method, path, body)
        if not path.startswith("/api2/json/") and path != "/api2/json":
            return self._error_response(PveError(501, f"no such uri {path}"), plain=True)
        rel = path[len("/api2/json") :] or "/"
        if len(rel) > 1:
            rel = rel.rstrip("/")
        with self.lock:
            fault = self.http_faults.pop(0) if self.http_faults else None
        if fault is not None:
            reason = {595: "Connection refused", 596: "Connection timed out"}.get(
                fault, "Injected fault"
            )
            return Response(fault, reason, reason.encode(), {"Content-Type": "text/plain"})
        try:
            ident = self._authenticate(headers, method, rel)
        except AuthError as err:
            if self.auth_delay:
                time.sleep(self.auth_delay)
            return Response(401, err.message, b"", {})
        try:
            params = self._extract_params(method, parsed.query, headers, body)
            data, extra = self._rest_handler(method, rel, ident, params)
        except PveError as err:
            return self._error_response(err)
        payload: dict[str, Any] = {"data": data}
        payload.update(extra)
        return Response(
            200,
            "OK",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json;charset=UTF-8"},
        )

    def _error_response(self, err: PveError, plain: bool = False) -> Response:
        reason = err.message.split("\n", 1)[0]
        if plain:
            return Response(err.status, reason, err.message.encode(), {})
        payload: dict[str, Any] = {"data": None, "message": err.message}
        if err.errors:
            payload["errors"] = err.errors
        return Response(
            err.status,
            reason,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json;charset=UTF-8"},
        )

    @staticmethod
    def _decode_urlencoded(data: str) -> dict[str, Any]:
        res: dict[str, Any] = {}
        if not data:
            return res
        for kv in re.split(r"[&;]", data):
            parts = kv.split("=")
            key = parts[0]
            val: str | None = parts[1] if len(parts) > 1 else None
            key = _pct_decode(key.replace("+", " "))
            if val is not None:
                val = _pct_decode(val.replace("+", " "))
                old = res.get(key)
                if old is not None:
                    res[key] = [*old, val] if isinstance(old, list) else [old, val]
                    continue
            res[key] = val
        return res

    def _extract_params(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if method in ("PUT", "POST"):
            ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                try:
                    loaded = json.loads(body.decode("utf-8") or "{}")
                except ValueError as exc:
                    raise PveError(500, f"malformed JSON string: {exc}") from None
                if not isinstance(loaded, dict):
                    raise PveError(500, "JSON text must be an object")
                params = loaded
            else:
                params = self._decode_urlencoded(body.decode("latin-1"))
        params.update(self._decode_urlencoded(query))
        params.pop("_dc", None)
        return params

    def _rest_handler(
        self, method: str, rel: str, ident: Identity, params: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        found = self.schema.find(method, rel)
        if found is None:
            raise PveError(501, f"Method '{method} {rel}' not implemented")
        ep, uri_params = found
        merged: dict[str, Any] = dict(uri_params)
        for key in sorted(params):
            if key in uri_params and uri_params[key] != params[key]:
                raise param_error(
                    {key: "duplicate parameter (already defined in URI) with conflicting values!"}
                )
            merged[key] = params[key]
        if ident.tokenid and not ep.allowtoken:
            raise perm_error(f"URI '{rel}' not available with API token, need proper ticket.\n")
        if rel != "/access/ticket":
            self.rpc.check_api2_permissions(ep.permissions, ident.authuser, merged)
        if ep.proxyto == "node" and merged.get("node") not in (None, self.node, "localhost"):
            node = merged["node"]
            raise PveError(
                500,
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
                "Name or service not known",
            )
        errors = ep.validate(merged)
        if errors:
            raise param_error(errors)
        args = ep.coerce(merged)
        handler = getattr(self, "api_" + _handler_name(method, ep.path))
        extra: dict[str, Any] = {}
        result = handler(ident, args, extra)
        return result, extra

    def _admin(self, method: str, path: str, body: bytes) -> Response:
        def ok(data: Any) -> Response:
            return Response(
                200, "OK", json.dumps({"data": data}).encode(),
                {"Content-Type": "application/json"},
            )  # fmt: skip

        try:
            if path == "/_emulator/faults" and method == "POST":
                spec = json.loads(body.decode() or "{}")
                if "task_type" in spec:
                    self.inject_task_fault(
                        spec["task_type"],
                        fail=spec.get("fail"),
                        warnings=spec.get("warnings"),
                        slow=spec.get("slow"),
                    )
                if "http_status" in spec:
                    self.inject_http_error(int(spec["http_status"]), int(spec.get("count", 1)))
                if "create_race" in spec:
                    self.inject_create_race(int(spec["create_race"]))
                return ok(True)
            if path == "/_emulator/faults" and method == "DELETE":
                self.clear_faults()
                return ok(True)
            if path == "/_emulator/state" and method == "GET":
                return ok(
                    {
                        "version": self.version,
                        "node": self.node,
                        "containers": {str(v): self.backend.status(v) for v in self.vmids()},
                        "tasks": [t.status_dict() for t in self.tasks.values()],
                        # every API request answered so far (method, path, status)
                        "api_requests": [
                            list(r) for r in self.request_log if not r[1].startswith("/_emulator/")
                        ],
                    }
                )
        except (ValueError, TypeError, KeyError) as exc:
            return Response(400, "Bad Request", str(exc).encode(), {})
        return Response(404, "Not Found", b"", {})


def _pct_decode(text: str) -> str:
    raw = re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text).encode(
        "latin-1", errors="replace"
    )
    return raw.decode("utf-8", errors="replace")


# the API handlers' names: api_<method>_<path with {x} -> x>
def _handler_name(method: str, path: str) -> str:
    name = re.sub(r"[{}]", "", path).strip("/").replace("/", "_").replace("-", "_")
    return f"{method.lower()}_{name}"


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        addr: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ctx: ssl.SSLContext,
    ) -> None:
        self.ssl_context = ctx
        super().__init__(addr, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        # http.server writes a response's headers and body separately; with Nagle's algorithm
        # the body then waits for the client's delayed ACK, 40 ms a request, which pveproxy
        # does not make its clients wait.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return (
            self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False),
            addr,
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS handshake failures (untrusted CA, fingerprint mismatch) and resets are normal
        pass


class _Handler(BaseHTTPRequestHandler):
    emu: ServerApi
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        self.request.settimeout(30)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        try:
            resp = self.emu.handle(self.command, self.path, headers, body)
        except Exception as exc:  # pragma: no cover - emulator bug
            resp = Response(500, f"emulator error: {exc}".split("\n")[0], str(exc).encode())
        self.emu.request_log.append((self.command, self.path, resp.status))
        reason = resp.reason.split("\n")[0].replace("\r", "")
        self.send_response(resp.status, reason)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        if resp.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
