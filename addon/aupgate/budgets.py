"""Personal-use budgets: which decisions count against a budget, and the decision once it is spent.

A budget (the policy's `budgets` section) is an interpretation of the documents' words about how
much personal use: MoDOT asks that it "be infrequent", Saint Paul tolerates "incidental and
occasional" use. What counts:

- a request a rule (or grant, or the default) let through (`allow` or `log`; never one the
  agency's own allow list passed, never one already stopped),
- whose site is in one of the budget's categories (the winning list entry's categories),
- in one of its windows and device classes (all, when it names none),

per **subject** (the proxy login, or the client address when there is none) and agency-local
day. A minutes budget counts **minutes of activity**: distinct clock minutes (agency time) with
at least one counted request, so a page that loads forty resources in one minute costs one
minute, and a background tab that polls once a minute costs every minute it is open. A megabytes
budget counts the response bytes of counted requests.

Once the day's use has reached the limit, a counted request that would start a new minute (or,
for bytes, any counted request) gets the budget's action instead: `block` shows the budget page,
`log` lets it through flagged for review. The minute already under way stays usable, so an
employee is never cut off in the middle of a minute that was already counted. Pure: the usage
itself is kept by `budgetstore` and the proxy's `mitm/budgeting`.
"""

from __future__ import annotations

from aupgate.engine import Decision
from aupgate.policy.model import Budget, Policy

__all__ = ["apply_budget", "budget_scope", "over_budget", "subject_of"]

_PASSING = frozenset({"allow", "log"})
_COUNTED_STEPS = frozenset({"rule", "grant", "default"})


def budget_scope(policy: Policy, decision: Decision) -> tuple[Budget, ...]:
    """The budgets this decision counts against (none when it does not pass, or passed by list)."""
    if not policy.budgets or decision.action not in _PASSING or decision.step not in _COUNTED_STEPS:
        return ()
    return tuple(
        budget
        for budget in policy.budgets
        if not budget.categories.isdisjoint(decision.categories)
        and (budget.windows is None or decision.window in budget.windows)
        and (budget.devices is None or decision.device in budget.devices)
    )


def is_spent(budget: Budget, used: int, *, new_minute: bool) -> bool:
    """Whether one more counted request is over the budget, with `used` already used today."""
    if budget.unit == "minutes":
        return new_minute and used >= budget.limit
    return used >= budget.limit


def over_budget(decision: Decision, budget: Budget, used: int) -> Decision:
    """The decision for a request past a spent budget: the budget's action, clauses and reason."""
    return decision._replace(
        action=budget.action,
        rule=budget.id,
        clauses=budget.clauses,
        reason=f"{budget.reason} {_usage_text(budget, used)}",
        step="budget",
        grant=None,
        relaxed=(),
    )


def _usage_text(budget: Budget, used: int) -> str:
    if budget.unit == "minutes":
        return (f"Today's personal-use budget is spent: {used} of {budget.limit} minutes of "
                "activity. It starts again at midnight.")
    return (f"Today's personal-use budget is spent: {used / 1048576:.0f} of "
            f"{budget.limit / 1048576:.0f} MB. It starts again at midnight.")


def apply_budget(policy: Policy, decision: Decision, used: int, *, new_minute: bool) -> Decision:
    """The decision once the first budget in scope has `used` (for tests and `explain`)."""
    for budget in budget_scope(policy, decision):
        if is_spent(budget, used, new_minute=new_minute):
            return over_budget(decision, budget, used)
    return decision


def subject_of(user: str | None, client_text: str) -> str:
    """Whom a budget is counted for: `user:NAME`, else `client:ADDRESS`."""
    return f"user:{user.lower()}" if user else f"client:{client_text or '-'}"
