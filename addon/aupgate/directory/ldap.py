"""The LDAP / Active Directory client: find a user, check their password, read their groups.

Every call here blocks (ldap3's synchronous strategy); the authenticator runs them in worker
threads. Values put into filters are escaped with ldap3's `escape_filter_chars`, user names
have already been vetted by `credentials.user_name_problem`, and a user search that matches more
than one entry refuses the login instead of picking one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from ldap3 import BASE, SIMPLE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from .config import DirectorySettings
from .connections import UNAVAILABLE_CODES, ConnectionPool, Connector, DirectoryDownError
from .entry import Entry, Scope
from .groups import resolve_groups
from .outcomes import DirectoryUser, LoginFailed, loggable_name

log = logging.getLogger(__name__)

AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID in supportedCapabilities

# Active Directory puts the real reason for a refused bind in the diagnostic message as
# "data NNN" (hex); the proxy audits it, the client sees the same 407 either way.
AD_BIND_REASONS = {
    "525": "user not found", "52e": "invalid credentials", "530": "not permitted at this time",
    "531": "not permitted at this workstation", "532": "password expired",
    "533": "account disabled", "568": "too many security IDs", "701": "account expired",
    "773": "password must be reset", "775": "account locked",
}


def _entries(conn: Connection) -> list[Entry]:
    entries = []
    for item in conn.response or ():
        if item.get("type") != "searchResEntry":
            continue  # search references (AD's DomainDnsZones and friends) are not followed
        raw = item.get("raw_attributes") or {}
        attributes = {
            str(name).lower(): tuple(v.decode("utf-8", errors="replace") if isinstance(v, bytes)
                                     else str(v) for v in values)
            for name, values in raw.items()
        }
        entries.append(Entry(str(item.get("dn", "")), attributes))
    return entries


class AmbiguousUserError(Exception):
    """The user filter matched more than one entry."""


class LdapDirectory:
    """One directory (one or more URLs for the same data), thread-safe through its pools."""

    def __init__(self, settings: DirectorySettings, service_password: str | None) -> None:
        self.settings = settings
        self._connector = Connector(settings, service_password)
        self._search_pool = ConnectionPool(
            "search", lambda: self._connector.open(as_service=True), settings.pool_size)
        self._bind_pool = ConnectionPool(
            "bind", lambda: self._connector.open(as_service=False), settings.pool_size)
        self._operation_count = 0
        self._count_lock = threading.Lock()
        self._active_directory: bool | None = None

    @property
    def operations(self) -> int:
        """LDAP requests sent so far (searches and binds): what a cache hit must not add to."""
        return self._operation_count

    @property
    def connections_opened(self) -> int:
        """Connections opened so far (a reconnect after the directory dropped one adds one)."""
        return self._search_pool.opened + self._bind_pool.opened

    def _count(self) -> None:
        with self._count_lock:
            self._operation_count += 1

    def close(self) -> None:
        self._search_pool.discard_idle()
        self._bind_pool.discard_idle()

    # --- searching --------------------------------------------------------------------------

    def search(self, base: str, search_filter: str, attributes: Sequence[str], *,
               scope: Scope = SUBTREE, size_limit: int = 0) -> list[Entry]:
        """Search as the service account; DirectoryDownError if the directory cannot answer."""
        def operation(conn: Connection) -> tuple[bool, dict[str, object], list[Entry]]:
            self._require_tls(conn)
            self._count()
            ok = conn.search(base, search_filter, search_scope=scope,
                             attributes=list(attributes) or ["1.1"], size_limit=size_limit,
                             time_limit=max(1, int(self.settings.receive_timeout)))
            return ok, dict(conn.result or {}), _entries(conn)

        ok, result, entries = self._search_pool.run(operation)
        code = result.get("result")
        if ok or (code == 4 and entries):  # 4: sizeLimitExceeded, with what fitted
            return entries
        if code == 0:
            return entries
        if code == 32 and base == "":
            return []
        if code == 32:
            raise DirectoryDownError(f"search base {base!r} does not exist or cannot be read by "
                                     "the service account (noSuchObject)")
        raise DirectoryDownError(f"search failed: {result.get('description')} ({code})")

    def is_active_directory(self) -> bool:
        """Whether the server says it is Active Directory (its root DSE lists the AD
        capability), so LDAP_MATCHING_RULE_IN_CHAIN can be used. Asked once."""
        if self._active_directory is None:
            root = self.search("", "(objectClass=*)", ["supportedCapabilities"], scope=BASE)
            capabilities = root[0].values("supportedCapabilities") if root else ()
            self._active_directory = AD_CAPABILITY in capabilities
            log.info("directory %s Active Directory", "is" if self._active_directory else
                     "is not")
        return self._active_directory

    def find_user(self, name: str) -> Entry | None:
        """The one entry the user filter matches for this name, None if none; AmbiguousUserError if
        several."""
        s = self.settings
        attributes = [s.user_name_attribute]
        if s.groups.member_of:
            attributes.append(s.groups.member_of)
        search_filter = s.user_filter.format(user=escape_filter_chars(name))
        found = self.search(s.base, search_filter, attributes, size_limit=2)
        if len(found) > 1:
            raise AmbiguousUserError
        return found[0] if found else None

    # --- binding ----------------------------------------------------------------------------

    def check_password(self, dn: str, password: str) -> str | None:
        """None if the directory accepts this password for this DN, else why not.

        The password goes as its UTF-8 bytes, exactly as typed (no SASLprep rewriting, which
        Active Directory does not apply either)."""
        def operation(conn: Connection) -> dict[str, object]:
            self._require_tls(conn)
            conn.authentication = SIMPLE
            conn.user = dn
            conn.password = password.encode("utf-8")
            try:
                self._count()
                conn.bind(read_server_info=False)
                return dict(conn.result or {})
            finally:
                conn.password = None
                conn.user = None

        result = self._bind_pool.run(operation)
        code = result.get("result")
        if code == 0:
            return None
        if code in UNAVAILABLE_CODES:
            raise DirectoryDownError(f"bind failed: {result.get('description')} ({code})")
        return _bind_refusal(result)

    def _require_tls(self, conn: Connection) -> None:
        """Never send anything over a connection that lost its StartTLS layer (ldap3 reopens a
        closed connection in bind() without it)."""
        if conn.closed or (self.settings.start_tls and not conn.tls_started):
            raise LDAPStartTLSError("connection is closed or no longer under StartTLS")

    # --- whole operations -------------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> DirectoryUser | LoginFailed:
        """Find the user, check the password, read the groups."""
        entry = self._entry_or_refusal(name)
        if isinstance(entry, LoginFailed):
            return entry
        refusal = self.check_password(entry.dn, password)
        if refusal is not None:
            return LoginFailed("bad_credentials", loggable_name(name), refusal)
        return self._user(name, entry)

    def lookup(self, name: str) -> DirectoryUser | LoginFailed:
        """The user and groups without a password: for a Kerberos-authenticated principal and
        for `aupgate explain --user`."""
        entry = self._entry_or_refusal(name)
        return entry if isinstance(entry, LoginFailed) else self._user(name, entry)

    def _entry_or_refusal(self, name: str) -> Entry | LoginFailed:
        try:
            entry = self.find_user(name)
        except AmbiguousUserError:
            return LoginFailed("unknown_user", loggable_name(name),
                               "the user filter matches several entries")
        if entry is None:
            return LoginFailed("unknown_user", loggable_name(name), "no such user")
        return entry

    def _user(self, typed: str, entry: Entry) -> DirectoryUser:
        canonical = entry.first(self.settings.user_name_attribute) or typed
        groups = resolve_groups(self, entry, canonical, self.settings)
        return DirectoryUser(canonical, entry.dn, groups)


def _bind_refusal(result: Mapping[str, object]) -> str:
    description = str(result.get("description") or "refused")
    message = str(result.get("message") or "")
    marker = message.find(", data ")
    if marker >= 0:
        code = message[marker + 7:marker + 10].lower()
        if code in AD_BIND_REASONS:
            return AD_BIND_REASONS[code]
    return description
