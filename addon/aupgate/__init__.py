"""aupgate: an acceptable-use-policy gateway built on mitmproxy.

The pipeline, one package or module per step: `normalise` and `hostname` (what the request names),
`identity` (who asks), `categories` (what the site is), `policy` (what the agency wrote), `content`
(what the transfer is), `engine` (deciding), `pages` (what the employee sees), `audit` (what is
recorded and read back), `gateway` (what is in force, reloaded) and `pac` (how browsers find the
gateway). `mitm/` (the mitmproxy addon) and `cli/` (the `aupgate` command) are the edges: the
only code that imports mitmproxy or reads the clock, and nothing else imports them.

The names below are the public API, for the CLI, the benchmarks and an integrator deciding
requests without a proxy:

    from aupgate import Facts, decide, load_index, load_policy_dir, parse_url
    policies = load_policy_dir(Path("policies"), today=date.today())
    index, _report = load_index(Path("categories/sources.yaml"))
    decision = decide(policies.policies["modot"], index, Facts(parse_url(url)), now)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .audit.log import AuditLog
from .categories.cache import load_index
from .categories.ids import CATEGORY_IDS, UNCATEGORIZED
from .categories.index import CategoryIndex, Classification
from .categories.listindex import ListIndex
from .engine import Decision, Facts, decide, decide_content, strictest
from .errors import AupgateError, CategoryError, PolicyError, Problem, UrlError
from .gateway import Gateway, Snapshot
from .hostname import normalise_host, registered_domain
from .identity import Identity, identify
from .normalise import Url, parse_url
from .pac import render_pac
from .policy.loader import load_policy, load_policy_dir
from .policy.model import ACTIONS, Policy, PolicySet

__all__ = [
    "ACTIONS",
    "CATEGORY_IDS",
    "UNCATEGORIZED",
    "AuditLog",
    "AupgateError",
    "CategoryError",
    "CategoryIndex",
    "Classification",
    "Decision",
    "Facts",
    "Gateway",
    "Identity",
    "ListIndex",
    "Policy",
    "PolicyError",
    "PolicySet",
    "Problem",
    "Snapshot",
    "Url",
    "UrlError",
    "__version__",
    "decide",
    "decide_content",
    "identify",
    "load_index",
    "load_policy",
    "load_policy_dir",
    "normalise_host",
    "parse_url",
    "registered_domain",
    "render_pac",
    "strictest",
]
