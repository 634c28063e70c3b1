"""Remembered directory answers: successes for `success_ttl`, failures for `failure_ttl`, and
successes again for `grace_period` while the directory cannot be reached.

The key is the user name as typed plus a keyed BLAKE2b digest of the password, with a random key
made when the process starts: the cache never holds a password, and its digests are useless to
anyone who does not also have this process's key. (A digest is not a slow password hash; a slow
hash would cost every request the time a cache exists to save. The process already sees every
password in the headers it reads, so this protects the cache from a dump, not from the process.)

A success with a new password for a user drops the entries for that user's other passwords, so
an old password stops working as soon as the new one is used. The cache is pure: it is handed the
time on every call.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from .outcomes import DirectoryUser, LoginFailed

KeyKind = Literal["password", "lookup"]


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Who asked and with which password (as a digest; empty for a look-up without one)."""

    kind: KeyKind
    user: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: DirectoryUser | LoginFailed
    stored_at: float


class LoginCache:
    """A bounded, least-recently-used map from CacheKey to the directory's last answer."""

    def __init__(self, *, success_ttl: float, failure_ttl: float, grace_period: float,
                 max_entries: int, key: bytes | None = None) -> None:
        self.success_ttl = success_ttl
        self.failure_ttl = failure_ttl
        self.grace_period = grace_period
        self.max_entries = max_entries
        self._key = key if key is not None else os.urandom(32)
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._by_user: dict[tuple[KeyKind, str], set[CacheKey]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, user: str, password: str | None) -> CacheKey:
        if password is None:
            return CacheKey("lookup", user, b"")
        digest = hashlib.blake2b(password.encode("utf-8"), key=self._key, digest_size=32,
                                 person=b"aupgate-login").digest()
        return CacheKey("password", user, digest)

    def fresh(self, key: CacheKey, now: float) -> DirectoryUser | LoginFailed | None:
        """The answer stored for this key if it is still within its time to live."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = now - entry.stored_at
        ttl = self.success_ttl if isinstance(entry.answer, DirectoryUser) else self.failure_ttl
        if 0 <= age < ttl:
            self._entries.move_to_end(key)
            return entry.answer
        if isinstance(entry.answer, LoginFailed) or not 0 <= age < self.grace_period:
            self._drop(key)
        return None

    def grace(self, key: CacheKey, now: float) -> DirectoryUser | None:
        """A success for exactly this key (same user, same password) no older than the grace
        period: what may be served while the directory is down."""
        entry = self._entries.get(key)
        if entry is None or not isinstance(entry.answer, DirectoryUser):
            return None
        if 0 <= now - entry.stored_at < self.grace_period:
            return entry.answer
        return None

    def remember(self, key: CacheKey, answer: DirectoryUser | LoginFailed, now: float) -> None:
        ttl = self.success_ttl if isinstance(answer, DirectoryUser) else self.failure_ttl
        if isinstance(answer, DirectoryUser):
            ttl = max(ttl, self.grace_period)
            for other in list(self._by_user.get((key.kind, key.user), ())):
                if other != key and isinstance(self._entries[other].answer, DirectoryUser):
                    self._drop(other)  # a new password works: the old one must stop working
        if ttl <= 0:
            return
        self._entries[key] = _Entry(answer, now)
        self._entries.move_to_end(key)
        self._by_user.setdefault((key.kind, key.user), set()).add(key)
        while len(self._entries) > self.max_entries:
            self._drop(next(iter(self._entries)))

    def forget_user(self, user: str) -> None:
        """Drop everything remembered about a user name (an administrator's `logout`)."""
        for kind in ("password", "lookup"):
            for key in list(self._by_user.get((kind, user), ())):
                self._drop(key)

    def _drop(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        keys = self._by_user.get((key.kind, key.user))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[(key.kind, key.user)]
