"""The audit redaction rule set (docs/audit-log.md, "Redaction") as one table (issue 12, item 6).

Each row: what a request's path and query look like, and what the audit `path` field says. The
secret parts (`S...`) must be gone; everything else is kept as it was.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from aupgate.audit.log import AuditLog
from aupgate.audit.redaction import REDACTED, redact_url, scrub_url

R = REDACTED
TABLE = [
    # rule 1: a query value whose name looks secret
    ("/a?token=S1&x=1", f"/a?token={R}&x=1"),
    ("/a?password=S2", f"/a?password={R}"),
    ("/a?pw=S3&user=bob", f"/a?pw={R}&user=bob"),
    ("/a?PW=S4", f"/a?PW={R}"),
    ("/a?access%5Ftoken=S5", f"/a?access%5Ftoken={R}"),  # names are compared percent-decoded
    ("/s3?X-Amz-Signature=S6&X-Amz-Date=20260101", f"/s3?X-Amz-Signature={R}&X-Amz-Date=20260101"),
    ("/cb?code=S7&state=abc", f"/cb?code={R}&state=abc"),
    ("/sso?SAMLResponse=S8", f"/sso?SAMLResponse={R}"),
    # rule 2: `;` separates query parameters too
    ("/a?user=bob;pwd=S9;lang=en", f"/a?user=bob;pwd={R};lang=en"),
    ("/a?x=1;session=S10&y=2", f"/a?x=1;session={R}&y=2"),
    # rule 3: path parameters
    ("/login;jsessionid=S11", f"/login;jsessionid={R}"),
    ("/login;jsessionid=S12?next=/home", f"/login;jsessionid={R}?next=/home"),
    ("/a;v=2/b;sid=S13/c", f"/a;v=2/b;sid={R}/c"),
    ("/shop;lang=en", "/shop;lang=en"),
    # rule 4: userinfo
    ("http://bob:S14@intranet.example/x", "http://intranet.example/x"),
    # kept: nothing secret-looking
    ("/search?q=bet+odds&page=2", "/search?q=bet+odds&page=2"),
    ("/a?flag&token", "/a?flag&token"),  # no value, nothing to hide
]


@pytest.mark.parametrize(("given", "recorded"), TABLE)
def test_rule_table(given: str, recorded: str) -> None:
    assert scrub_url(given) == recorded
    sink = io.StringIO()
    AuditLog([sink]).event("decision", path=given, url="http://h.example" + given
                           if given.startswith("/") else given)
    line = json.loads(sink.getvalue())
    assert line["path"] == recorded
    assert not re.search(r"\bS\d+\b", sink.getvalue()), sink.getvalue()


def test_pages_and_audit_urls_follow_the_same_rules() -> None:
    assert redact_url("https", "h.example", None, "/login;jsessionid=S", "pw=S;x=1") == (
        f"https://h.example/login;jsessionid={R}?pw={R};x=1")
