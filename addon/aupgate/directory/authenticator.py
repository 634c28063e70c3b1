"""Directory logins for the event loop: vetting, caching, one directory call per distinct login
at a time, and the refuse-or-grace decision when the directory is down.

The blocking LDAP work runs in a small thread pool (as many threads as `pool_size`), so a slow
directory slows logins, never the proxy's other traffic. Identical logins arriving together
(a browser opening six connections with the same credentials) share one directory call.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aupgate.errors import Problem

from .cache import CacheKey, LoginCache
from .config import DirectorySettings, DirectorySettingsError
from .connections import DirectoryDownError
from .credentials import (
    BasicCredentials,
    MalformedAuthorization,
    parse_authorization,
    password_problem,
    user_name_problem,
)
from .ldap import LdapDirectory
from .outcomes import (
    DirectoryUnavailable,
    DirectoryUser,
    LoginFailed,
    LoginOk,
    LoginOutcome,
    loggable_name,
)

log = logging.getLogger(__name__)

# Logins waiting for (or in) a directory call, per worker thread, beyond which new ones are
# refused at once: a flood of distinct made-up credentials must not queue without bound (each
# one is a directory round trip that no cache can save).
WAITING_PER_WORKER = 32


class DirectoryBusyError(DirectoryDownError):
    """Too many logins are already waiting for the directory."""


def read_secret(path: Path, field: str = "directory.bind_password_file") -> str:
    """The service account's password: the file's text without its final line break. Errors
    name the file and never quote it; a file others can read is logged as a warning."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise DirectorySettingsError([Problem(str(path), None, field,
                                              f"cannot read the password file: {reason}")]) from e
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise DirectorySettingsError([Problem(str(path), None, field,
                                              "the password file is empty")])
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by users other than its owner; chmod 600 it", path)
    return secret


@dataclass(slots=True)
class DirectoryStats:
    """Counters for metrics and tests: how logins were answered."""

    directory_checks: int = 0
    cache_hits: int = 0
    grace_hits: int = 0
    unavailable: int = 0
    refused_before_directory: int = 0
    shared_calls: int = 0
    busy: int = 0


class DirectoryAuthenticator:
    """Checks logins and looks users up in one directory. Make one at start-up, call
    `authenticate_header`/`authenticate`/`lookup` from the event loop, `close()` at the end."""

    def __init__(self, settings: DirectorySettings, *, clock: Callable[[], float] = time.monotonic,
                 service_password: str | None = None) -> None:
        if service_password is None and settings.bind_password_file is not None:
            service_password = read_secret(settings.bind_password_file)
        self.settings = settings
        self._clock = clock
        self._directory = LdapDirectory(settings, service_password)
        self._cache = LoginCache(success_ttl=settings.success_ttl,
                                 failure_ttl=settings.failure_ttl,
                                 grace_period=settings.grace_period if
                                 settings.on_unavailable == "grace" else 0.0,
                                 max_entries=settings.cache_size)
        self._pool = ThreadPoolExecutor(max_workers=settings.pool_size,
                                        thread_name_prefix="aupgate-directory")
        self._in_flight: dict[CacheKey, asyncio.Future[DirectoryUser | LoginFailed]] = {}
        self._down_since: float | None = None
        self._waiting = 0
        self._max_waiting = settings.pool_size * WAITING_PER_WORKER
        self.stats = DirectoryStats()

    @property
    def directory_operations(self) -> int:
        """LDAP requests (searches and binds) sent so far."""
        return self._directory.operations

    @property
    def connections_opened(self) -> int:
        """Directory connections opened so far."""
        return self._directory.connections_opened

    def close(self) -> None:
        """Stop the workers (waiting for the calls in progress) and close the connections."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._directory.close()

    async def aclose(self) -> None:
        """`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    async def authenticate_header(self, value: str) -> LoginOutcome:
        """Check a Basic `Proxy-Authorization` value."""
        parsed = parse_authorization(value)
        if isinstance(parsed, MalformedAuthorization):
            self.stats.refused_before_directory += 1
            return LoginFailed("malformed", "", parsed.detail)
        if not isinstance(parsed, BasicCredentials):
            self.stats.refused_before_directory += 1
            return LoginFailed("malformed", "", "not Basic credentials")
        return await self.authenticate(parsed.user, parsed.password)

    async def authenticate(self, user: str, password: str) -> LoginOutcome:
        """Check a user name and password."""
        problem = user_name_problem(user, self.settings.max_user_length)
        if problem is not None:
            self.stats.refused_before_directory += 1
            return LoginFailed("invalid_name", loggable_name(user), problem)
        problem = password_problem(password)
        if problem is not None:
            self.stats.refused_before_directory += 1
            return LoginFailed("bad_credentials", loggable_name(user), problem)
        key = self._cache.key(user, password)
        return await self._answer(key, self._directory.authenticate, user, password)

    async def lookup(self, user: str) -> LoginOutcome:
        """A user's directory entry and groups without a password (the login was proved some
        other way, e.g. a Kerberos ticket; or an administrator asks `aupgate explain`)."""
        problem = user_name_problem(user, self.settings.max_user_length)
        if problem is not None:
            self.stats.refused_before_directory += 1
            return LoginFailed("invalid_name", loggable_name(user), problem)
        return await self._answer(self._cache.key(user, None), self._directory.lookup, user)

    async def _answer(self, key: CacheKey, call: Callable[..., DirectoryUser | LoginFailed],
                      *args: str) -> LoginOutcome:
        now = self._clock()
        cached = self._cache.fresh(key, now)
        if cached is not None:
            self.stats.cache_hits += 1
            return _outcome(cached, "cache")
        try:
            answer = await self._shared_call(key, call, *args)
        except DirectoryDownError as e:
            return self._unavailable(key, args[0], e)
        self._mark_up()
        self._cache.remember(key, answer, self._clock())
        return _outcome(answer, "directory")

    async def _shared_call(self, key: CacheKey, call: Callable[..., DirectoryUser | LoginFailed],
                           *args: str) -> DirectoryUser | LoginFailed:
        running = self._in_flight.get(key)
        if running is not None:
            self.stats.shared_calls += 1
            return await asyncio.shield(running)
        if self._waiting >= self._max_waiting:
            raise DirectoryBusyError(f"{self._waiting} logins are already waiting for the "
                                     "directory")
        loop = asyncio.get_running_loop()
        self.stats.directory_checks += 1
        future = loop.run_in_executor(self._pool, call, *args)
        self._waiting += 1
        future.add_done_callback(self._done_waiting)
        self._in_flight[key] = future
        try:
            return await asyncio.shield(future)
        finally:
            if self._in_flight.get(key) is future:
                del self._in_flight[key]

    def _done_waiting(self, _future: object) -> None:
        self._waiting -= 1

    def _unavailable(self, key: CacheKey, user: str, error: DirectoryDownError) -> LoginOutcome:
        detail = error.detail
        if isinstance(error, DirectoryBusyError):
            self.stats.busy += 1
        elif self._down_since is None:
            self._down_since = self._clock()
            log.warning("directory unavailable: %s", detail)
        if self.settings.on_unavailable == "grace":
            known = self._cache.grace(key, self._clock())
            if known is not None:
                self.stats.grace_hits += 1
                return LoginOk(known, "grace")
        self.stats.unavailable += 1
        return DirectoryUnavailable(loggable_name(user), detail)

    def _mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("directory reachable again after %.0f s", self._clock() - self._down_since)
            self._down_since = None


def _outcome(answer: DirectoryUser | LoginFailed, source: str) -> LoginOk | LoginFailed:
    if isinstance(answer, DirectoryUser):
        return LoginOk(answer, "cache" if source == "cache" else "directory")
    if source == "cache":
        return LoginFailed(answer.reason, answer.user, answer.detail, "cache")
    return answer
