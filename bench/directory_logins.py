"""What a directory login costs, cached and not, against a real slapd started for the run.

    .venv/bin/python bench/directory_logins.py --seconds 3

Measures `DirectoryAuthenticator.authenticate` on the event loop: logins answered from the cache
(the same user and password again), logins that go to the directory (cache TTL 0: user search,
bind, memberOf and the nested-group walk), both one at a time and 8 at once, and names refused
before any directory call. Prints logins per second, the time per login, LDAP requests per
login, and the cached/uncached ratio from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "directory"))
sys.path.insert(0, str(ROOT / "addon"))

from slapd_server import BASE, PASSWORDS, SERVICE_DN, SERVICE_PASSWORD, running_slapd  # noqa: E402

from aupgate.directory import (  # noqa: E402
    DirectoryAuthenticator,
    LoginFailed,
    LoginOk,
    parse_directory_settings,
)

USERS = ["alice", "bob", "carol", "zoë", "comma,user", "deep"]


async def rate(name: str, seconds: float, batch: int,
               one: Callable[[int], Awaitable[object]], auth: DirectoryAuthenticator
               ) -> float:
    operations = auth.directory_operations
    done = 0
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        await asyncio.gather(*(one(done + i) for i in range(batch)))
        done += batch
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    per_second = done / wall
    print(f"{name:<44} {per_second:>10,.0f}/s {1e6 * wall / done:>9,.1f} µs "
          f"{1e6 * cpu / done:>9,.1f} µs CPU "
          f"{(auth.directory_operations - operations) / done:>5.1f} LDAP/login")
    return per_second


async def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_slapd(Path(tmp) / "slapd") as slapd:
        secret = Path(tmp) / "password"
        secret.write_text(SERVICE_PASSWORD)
        secret.chmod(0o600)

        def settings(success_ttl: float) -> DirectoryAuthenticator:
            return DirectoryAuthenticator(parse_directory_settings({
                "url": slapd.ldap_url, "bind_dn": SERVICE_DN, "bind_password_file": str(secret),
                "base": BASE, "user_filter": "(uid={user})", "user_name_attribute": "uid",
                "cache": {"success_ttl": success_ttl}, "pool_size": 4}, file="bench"))

        async def login(auth: DirectoryAuthenticator, i: int) -> object:
            user = USERS[i % len(USERS)]
            outcome = await auth.authenticate(user, PASSWORDS[user])
            assert isinstance(outcome, LoginOk), outcome
            return outcome

        async def refused(auth: DirectoryAuthenticator, i: int) -> object:
            outcome = await auth.authenticate(f"user\x00{i}", "pw")
            assert isinstance(outcome, LoginFailed)
            return outcome

        print(f"slapd {slapd.ldap_url}, {seconds:g} s per figure, users {', '.join(USERS)}")
        uncached = settings(0)
        cached = settings(300)
        try:
            direct_1 = await rate("directory (TTL 0), one at a time", seconds, 1,
                                  lambda i: login(uncached, i), uncached)
            direct_8 = await rate("directory (TTL 0), 8 at once", seconds, 8,
                                  lambda i: login(uncached, i), uncached)
            for i in range(len(USERS)):
                await login(cached, i)
            hit_1 = await rate("cached, one at a time", seconds, 1,
                               lambda i: login(cached, i), cached)
            hit_8 = await rate("cached, 8 at once", seconds, 8,
                               lambda i: login(cached, i), cached)
            await rate("refused name (no directory call), 8 at once", seconds, 8,
                       lambda i: refused(cached, i), cached)
        finally:
            await uncached.aclose()
            await cached.aclose()
        print(f"cached / directory: {hit_1 / direct_1:,.0f}x one at a time, "
              f"{hit_8 / direct_8:,.0f}x 8 at once")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().seconds))
