"""Connections to the directory: opened to the first URL that answers, secured (LDAPS or
StartTLS, certificate and host name checked), kept in small pools, and replaced when the
directory drops them.

Two pools, because their connections carry different identities: `search` connections are bound
as the service account (or anonymous) and only search; `bind` connections only ever check a
user's password, so a user's bind never changes who the searches run as. A connection that fails
with a communication error is thrown away together with every idle one (a directory that dropped
one has usually dropped all: restarted, failed over), and the operation is tried once more on a
fresh connection before the directory is reported down.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, SYNC, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPSSLConfigurationError,
    LDAPStartTLSError,
)

from .config import DirectorySettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# result codes that mean "the directory cannot answer now", not "no"
UNAVAILABLE_CODES = frozenset({1, 3, 11, 51, 52, 80})
COMMUNICATION_ERRORS: tuple[type[BaseException], ...] = (
    LDAPCommunicationError, LDAPResponseTimeoutError, LDAPStartTLSError, LDAPCertificateError,
    LDAPSSLConfigurationError, ssl.SSLError, OSError,
)


class DirectoryDownError(Exception):
    """The directory could not answer; `detail` says why without any secret."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class VerifyingTls(Tls):
    """ldap3's Tls, but verified by the standard library: certificate chain against the CA file
    (or the system's CAs), host name or IP address against the certificate, TLS 1.2 or later.

    ldap3 2.9.1 switches the context's host name check off and calls `ssl.match_hostname`
    itself, which is deprecated (and gone in Python 3.12); here the context does both checks
    during the handshake, so a certificate that does not name the host is never talked to.
    """

    def __init__(self, ca_file: Path | None, host: str) -> None:
        try:
            self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as e:
            raise DirectoryDownError(f"cannot load the CA file {ca_file}: {_reason(e)}") from e
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._host = host.strip("[]")
        super().__init__(validate=ssl.CERT_REQUIRED)

    def wrap_socket(self, connection: Connection, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket, server_hostname=self._host, do_handshake_on_connect=do_handshake)


def make_server(url: str, settings: DirectorySettings) -> Server:
    """A new ldap3 Server for each connection: ldap3 remembers an address that failed and skips
    it for several seconds, which would keep a just-restarted directory "down"."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ldaps"
    host = parts.hostname or ""
    port = parts.port or (636 if secure else 389)
    use_tls = secure or settings.start_tls
    return Server(host, port=port, use_ssl=secure, get_info=NONE,
                  tls=VerifyingTls(settings.ca_file, host) if use_tls else None,
                  connect_timeout=settings.connect_timeout)


class ConnectionPool:
    """Idle connections of one purpose, at most `size` kept; more are opened under load and
    closed when given back to a full pool."""

    def __init__(self, name: str, open_connection: Callable[[], Connection], size: int) -> None:
        self.name = name
        self._open = open_connection
        self._size = size
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self.opened = 0

    def run(self, operation: Callable[[Connection], T]) -> T:
        """Run one operation on a pooled connection, reconnecting once if the directory
        dropped it."""
        for attempt in (1, 2):
            conn = self._acquire()
            try:
                result = operation(conn)
            except COMMUNICATION_ERRORS as e:
                _close(conn)
                self.discard_idle()
                if attempt == 2:
                    raise DirectoryDownError(
                        f"lost the connection to the directory: {_reason(e)}") from e
                log.info("directory connection (%s) lost (%s); reconnecting", self.name,
                         _reason(e))
                continue
            except LDAPException as e:  # anything else ldap3 raises: refuse, don't crash
                _close(conn)
                raise DirectoryDownError(f"directory error: {_reason(e)}") from e
            except BaseException:
                _close(conn)
                raise
            self._release(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _acquire(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        conn = self._open()
        self.opened += 1
        return conn

    def _release(self, conn: Connection) -> None:
        if conn.closed:
            return
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append(conn)
                return
        _close(conn)

    def discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


def _close(conn: Connection) -> None:
    """Unbind and close; also the socket ldap3 leaves open when opening the connection failed
    half way (connection refused, TLS handshake refused)."""
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.close()


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]


class Connector:
    """Opens secured connections to the first of the configured URLs that answers."""

    def __init__(self, settings: DirectorySettings, service_password: str | None) -> None:
        self.settings = settings
        self._service_password = service_password
        if not settings.start_tls and any(u.lower().startswith("ldap://") for u in settings.urls):
            log.warning("directory %s is plain ldap:// without start_tls: passwords cross the "
                        "network unencrypted", ", ".join(settings.urls))

    def open(self, *, as_service: bool) -> Connection:
        failures: list[str] = []
        for url in self.settings.urls:
            try:
                return self._open_one(make_server(url, self.settings), as_service=as_service)
            except DirectoryDownError as e:
                if e.detail.startswith("service account"):
                    raise
                failures.append(f"{url}: {e.detail}")
        raise DirectoryDownError("; ".join(failures) or "no directory URL configured")

    def _open_one(self, server: Server, *, as_service: bool) -> Connection:
        settings = self.settings
        service = as_service and settings.bind_dn is not None
        conn = Connection(
            server, user=settings.bind_dn if service else None,
            password=self._service_password if service else None,
            authentication=SIMPLE if service else None, client_strategy=SYNC,
            read_only=True, raise_exceptions=False, auto_referrals=False, check_names=False,
            receive_timeout=settings.receive_timeout, return_empty_attributes=False,
        )
        opened = False
        try:
            conn.open(read_server_info=False)
            if settings.start_tls and not conn.start_tls(read_server_info=False):
                raise DirectoryDownError(f"StartTLS refused: {conn.result.get('description')}")
            if service and not conn.bind():
                code = conn.result.get("result")
                if code in UNAVAILABLE_CODES:
                    raise DirectoryDownError(
                        f"service account bind: {conn.result.get('description')}")
                raise DirectoryDownError(
                    f"service account bind refused ({conn.result.get('description')}): check "
                    "directory.bind_dn and the password in directory.bind_password_file")
            opened = True
        except COMMUNICATION_ERRORS as e:
            raise DirectoryDownError(_reason(e)) from e
        except LDAPException as e:
            raise DirectoryDownError(f"directory error: {_reason(e)}") from e
        finally:
            conn.password = None  # the service bind is done; keep no copy on the object
            if not opened:
                _close(conn)
        return conn
