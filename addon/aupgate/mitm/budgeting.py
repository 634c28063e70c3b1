"""Personal-use budgets in the proxy: counting, the spent budget's decision, and the flusher.

For a request a budget counts (`budgets.budget_scope`), the subject's use today is looked up in
this process's view (`BudgetUsage`); a request past the limit gets the budget's decision (the
budget page, or `log`), anything else is counted: its minute at `requestheaders`, its bytes when
its audit line is written. A flusher task writes what was counted to the shared database
(`BudgetStore`, SQLite in WAL mode) every `aupgate_budget_flush_ms` in a worker thread, and
reads everyone's counts back, so processes sharing the database see each other within about two
intervals and a restart loses at most the last interval.

When no loaded policy has budgets, nothing is opened and nothing runs. A database that cannot be
written is logged (once a minute); counting goes on in memory, the writes are retried, and
enforcement keeps using what this process knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mitmproxy import http

from ..audit.log import AuditLog
from ..budgets import budget_scope, is_spent, over_budget, subject_of
from ..budgetstore import BudgetStore, UsageKey, default_budget_db
from ..budgetusage import BudgetUsage
from ..engine import Decision
from ..identity import Identity
from ..policy.model import Budget, Policy
from .deciding import Decider
from .guard import options_error
from .state import FlowRecord

__all__ = ["Budgets"]

logger = logging.getLogger(__name__)

_SPENT_LIMIT = 100_000  # subjects whose spent budget was audited today, per process


class Budgets:
    """The budgets of the policies in force, counted in a shared database."""

    def __init__(self, decider: Decider, audit: Callable[[], AuditLog]) -> None:
        self.decider = decider
        self.audit = audit
        self.path: Path | None = None
        self.flush_seconds = 1.0
        self.store: BudgetStore | None = None
        self.usage = BudgetUsage()
        self._spent: set[UsageKey] = set()
        self._task: asyncio.Task[None] | None = None
        self._complained = -1

    # ------------------------------------------------------------------ configuration

    def configure(self, options: Any, updated: set[str]) -> None:
        if "aupgate_budget_flush_ms" in updated:
            if not options.aupgate_budget_flush_ms > 0:
                raise options_error("aupgate: aupgate_budget_flush_ms must be positive")
            self.flush_seconds = options.aupgate_budget_flush_ms / 1000
        if "aupgate_budget_db" in updated:
            self.path = Path(options.aupgate_budget_db) if options.aupgate_budget_db else None
            self._close()
        self.open_if_needed()

    def open_if_needed(self) -> None:
        """Open the database once a loaded policy has budgets (at start-up or after a reload),
        and read everyone's counts so a restart starts from them."""
        gateway = self.decider.gateway
        if self.store is not None or gateway is None:
            return
        if not any(p.budgets for p in gateway.current.policies.policies.values()):
            return
        path = self.path or default_budget_db()
        try:
            self.store = BudgetStore(path)
            self._refresh()
        except Exception as exc:
            raise options_error(f"aupgate: cannot open the budget database {path}: {exc}") from exc
        logger.info("aupgate: personal-use budgets counted in %s", path)

    def _close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ per request

    def request(self, request_id: str, host: str, ident: Identity,
                decision: Decision) -> tuple[Decision, dict[str, Any] | None]:
        """The decision once the budgets have had their say, and the audit fields they add."""
        policy = ident.policy
        assert policy is not None
        budgets = budget_scope(policy, decision)
        if not budgets or self.store is None:
            return decision, None
        now = self.decider.now()
        day, minute = _day_and_minute(policy, now)
        subject = subject_of(ident.user, ident.client_text)
        extra: dict[str, Any] | None = None
        for budget in budgets:
            key = (policy.agency, budget.id, subject, day)
            minutes, size = self.usage.used(key)
            used = minutes if budget.unit == "minutes" else size
            new_minute = not self.usage.counted(key, minute)
            if is_spent(budget, used, new_minute=new_minute):
                self._spent_once(key, budget, used, ident, request_id, host)
                decision = over_budget(decision, budget, used)
                extra = _fields(budget, used)
                if budget.action == "block":
                    return decision, extra
            if new_minute:
                self.usage.note_minute(key, minute)
                if budget.unit == "minutes":
                    used += 1
            if extra is None:
                extra = _fields(budget, used)
        return decision, extra

    def response(self, flow: http.HTTPFlow, record: FlowRecord) -> None:
        """Count the response's bytes against the byte budgets its request counted toward."""
        policy, decision = record.identity.policy, record.decision
        if policy is None or decision is None or self.store is None:
            return
        size = record.bytes_counted
        if size is None and flow.response is not None and flow.response.raw_content is not None:
            size = len(flow.response.raw_content)
        if not size:
            return
        budgets = [b for b in budget_scope(policy, decision) if b.unit == "bytes"]
        if not budgets:
            return
        day, _minute = _day_and_minute(policy, self.decider.now())
        subject = subject_of(record.identity.user, record.identity.client_text)
        for budget in budgets:
            self.usage.note_bytes((policy.agency, budget.id, subject, day), size)

    def _spent_once(self, key: UsageKey, budget: Budget, used: int, ident: Identity,
                    request_id: str, host: str) -> None:
        if key in self._spent:
            return
        if len(self._spent) >= _SPENT_LIMIT:
            self._spent.clear()
        self._spent.add(key)
        with contextlib.suppress(Exception):  # the audit file's own failure handling applies
            self.audit().event(
                "budget_spent", agency=key[0], budget=budget.id, subject=key[2], day=key[3],
                used=used, limit=budget.limit, unit=budget.unit, action=budget.action,
                clauses=list(budget.clauses), user=ident.user, client=ident.client_text or None,
                request_id=request_id, host=host)

    # ------------------------------------------------------------------ the flusher

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.store is not None:
            await asyncio.to_thread(self._flush_safely)  # what is counted survives the stop
        self._close()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            if self.store is None:
                self.open_if_needed_quietly()
                continue
            await asyncio.to_thread(self._flush_safely)

    def open_if_needed_quietly(self) -> None:
        """After a reload brought budgets in: open the database, or say why not."""
        try:
            self.open_if_needed()
        except Exception:
            self._complain("aupgate: cannot open the budget database")

    def _flush_safely(self) -> None:
        try:
            store = self.store
            if store is None:
                return
            minutes, sizes = self.usage.take()
            store.record(minutes, sizes)
            self.usage.written()
            self._refresh()
        except Exception:
            self._complain("aupgate: writing personal-use budgets failed; counting goes on in "
                           "memory and the write is retried")

    def _refresh(self) -> None:
        store = self.store
        if store is None:
            return
        since = (self.decider.now() - timedelta(days=1)).date().isoformat()
        self.usage.publish(store.usage(since))
        today = self.decider.now().date().isoformat()
        self._spent = {key for key in self._spent if key[3] >= since and key[3] <= today}

    def _complain(self, message: str) -> None:
        minute = int(time.time()) // 60
        if minute != self._complained:
            self._complained = minute
            logger.exception(message)


def _day_and_minute(policy: Policy, now: datetime) -> tuple[str, int]:
    """The agency-local date, and the minute (epoch minutes: the same instant everywhere)."""
    local = policy.schedule.local(now)  # a naive (frozen) time is agency-local
    return local.date().isoformat(), int(local.timestamp()) // 60


def _fields(budget: Budget, used: int) -> dict[str, Any]:
    return {"budget": budget.id, "budget_used": used, "budget_limit": budget.limit,
            "budget_unit": budget.unit}
