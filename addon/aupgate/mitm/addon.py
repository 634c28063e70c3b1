"""The mitmproxy addon: every request decided, enforced and recorded, failing closed.

Where each decision is taken (see docs/proxy.md):

- `http_connect`: the CONNECT host, before any TLS. A never-decrypt site that is blocked is
  refused here (nothing else can answer it); everything else goes on to the ClientHello.
- `tls_clienthello`: the SNI. Never-decrypt sites are passed through untouched
  (`ignore_connection`) and, if blocked, stopped by failing the upstream connection in
  `server_connect` (see ../shared/MITMPROXY-NOTES.md); the rest is intercepted.
- `requestheaders`: the (decrypted) request, before its body is read or anything is sent
  upstream. The request host, the Host header and the SNI are each decided; the strictest wins.
- `responseheaders`: content rules (audio streams, torrents, executables, large transfers), and
  a byte counter for transfers whose size the headers do not state.
- `response` (or `error`): the request's audit line, once status and size are known.

mitmproxy calls every hook an addon defines for every request, even one that returns at once, and
that dispatch is a measurable share of the gateway's cost (docs/benchmarks.md): `request`,
needed only to read a warn form's body, is defined as an instance attribute while such a form is
being read and removed after.

mitmproxy forwards a request when a hook raises, so every hook runs inside `guard.guarded`, which
blocks what the hook was deciding and audits an `engine_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

from .. import __version__
from ..audit.log import AuditLog
from ..content import detect_content, is_icy_response
from ..engine import Decision, Facts, decide, decide_content
from ..errors import AupgateError, Problem
from ..gateway import Gateway, ReloadOutcome, Snapshot
from ..identity import Identity, client_address
from ..normalise import Url, parse_url
from ..pages import CONTINUE_PATH, RESERVED_PREFIX, CitedClause, Page, render
from ..paths import default_categories, default_policy_dir
from ..policy.model import Policy
from . import options as opts
from .decisionmemo import DecisionMemo
from .flowtext import (
    RequestUrls,
    authority_host,
    registered,
    response_headers,
    safe_path,
    shown_url,
    strictest,
    url_text,
)
from .guard import InjectedFaultError, guarded, options_error
from .passes import Passes, clean_reason
from .resolver import ResolveOverride
from .responses import make_response, redirect, replace_streaming

logger = logging.getLogger(__name__)

META = "aupgate"  # flow.metadata key: the _Record of what we decided
MAX_FORM_BYTES = 8192  # a warn form is a token and a reason of at most 500 characters


@dataclass(slots=True)
class Tunnel:
    """What was decided for one client connection's CONNECT and ClientHello."""

    identity: Identity
    connect_host: str | None = None
    connect_decision: Decision | None = None  # reused at the ClientHello when the SNI agrees
    refuse: str | None = None  # set: fail the upstream connection with this message


@dataclass(slots=True)
class _Record:
    """What the audit event of one HTTP request will say; filled in as the flow progresses."""

    identity: Identity
    decision: Decision | None
    enforced: str  # passed | blocked | warned | pass-used | refused | error | continue
    phase: str = "request"
    url: Url | None = None  # the request's own URL as decided (content rules reuse it)
    bytes_counted: int | None = None
    audited: bool = False
    extra: dict[str, Any] | None = None  # fields only some events have (content, work_reason)


# --------------------------------------------------------------------------- the addon


class Aupgate:
    """Enforces agency acceptable-use policies on every flow. One instance per mitmproxy."""

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.audit: AuditLog = AuditLog([])
        self._audit_key: tuple[str, bool, str] | None = None
        self.fixed_time: datetime | None = None
        self.resolver = ResolveOverride()
        self.urls = RequestUrls()
        self.decisions = DecisionMemo()
        self.fault: opts.Fault | None = None
        self.passes = Passes(15 * 60)
        self._tunnels: dict[str, Tunnel] = {}
        # client connection id -> (policies' digest, the identity without a login)
        self._clients: dict[str, tuple[str, Identity]] = {}
        # Flows whose warn form body is being read: `request` is defined while there are any.
        self._forms: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._started: float | None = None  # monotonic time of `running`, for proxy_stop
        self._stop_reason = "shutdown"

    # ------------------------------------------------------------------ options and lifecycle

    def load(self, loader: Loader) -> None:
        for spec in opts.OPTIONS:
            loader.add_option(spec.name, spec.typespec, spec.default, spec.help, spec.choices)

    def configure(self, updated: set[str]) -> None:
        o = ctx.options
        try:
            if "aupgate_fixed_time" in updated:
                self.fixed_time = opts.parse_fixed_time(o.aupgate_fixed_time)
                self.decisions.freeze(self.fixed_time)
                if self.fixed_time is not None:
                    logger.warning("!!! aupgate: POLICY CLOCK FROZEN AT %s (aupgate_fixed_time); "
                                   "every decision uses this time. Never use this in production.",
                                   self.fixed_time.isoformat())
            if "aupgate_resolve" in updated:
                self.resolver.table = opts.resolve_table(o.aupgate_resolve)
                for (host, port), (addr, to_port) in self.resolver.table.items():
                    logger.warning("aupgate: resolve override %s:%s -> %s:%s",
                                   host, port, addr, to_port)
                with contextlib.suppress(RuntimeError):  # no loop yet: `running` installs it
                    self._install_resolver(asyncio.get_running_loop())
            if "aupgate_fault" in updated:
                self.fault = opts.parse_fault(o.aupgate_fault, os.environ)
            if "aupgate_warn_minutes" in updated:
                opts.check_positive("aupgate_warn_minutes", o.aupgate_warn_minutes,
                                    allow_zero=False)
                self.passes.pass_seconds = o.aupgate_warn_minutes * 60
            if "aupgate_reload_seconds" in updated:
                opts.check_positive("aupgate_reload_seconds", o.aupgate_reload_seconds,
                                    allow_zero=True)
        except ValueError as exc:
            raise options_error(f"aupgate: {exc}") from exc

        if {"aupgate_audit_log", "aupgate_audit_stdout", "aupgate_on_audit_failure"} & updated:
            self._open_audit()
        if {"aupgate_policy_dir", "aupgate_categories"} & updated:
            self._load_gateway()
        if {"aupgate_policy_dir", "aupgate_categories", "aupgate_default_agency"} & updated:
            self._check_default_agency()
            self._clients.clear()  # cached agencies may change with the default
        if "connection_strategy" in updated and o.connection_strategy != "lazy":
            # Eager connects upstream at CONNECT, before the SNI is decided: a blocked
            # never-decrypt site would be contacted. Lazy is required, not a preference.
            logger.warning("aupgate: setting connection_strategy=lazy (needed to decide the SNI "
                           "before any upstream connection)")
            o.connection_strategy = "lazy"
        if "listen_host" in updated and o.listen_host == "":
            logger.warning("aupgate: listening on 127.0.0.1 only; set listen_host to serve "
                           "a network")
            o.listen_host = "127.0.0.1"

    def _open_audit(self) -> None:
        o = ctx.options
        key = (o.aupgate_audit_log, bool(o.aupgate_audit_stdout), o.aupgate_on_audit_failure)
        if key == self._audit_key:
            return
        try:
            audit = AuditLog.open(Path(o.aupgate_audit_log) if o.aupgate_audit_log else None,
                                  stdout=o.aupgate_audit_stdout,
                                  on_failure=o.aupgate_on_audit_failure)
        except OSError as exc:
            raise options_error(f"aupgate: cannot open the audit log: {exc}") from exc
        old, self.audit, self._audit_key = self.audit, audit, key
        old.close()

    def _load_gateway(self) -> None:
        o = ctx.options
        policy_dir = Path(o.aupgate_policy_dir) if o.aupgate_policy_dir else default_policy_dir()
        categories = Path(o.aupgate_categories) if o.aupgate_categories else default_categories()
        started = time.perf_counter()
        try:
            gateway = Gateway(policy_dir, categories, self._today)
        except AupgateError as exc:
            problems: Sequence[Problem] = getattr(exc, "problems", ())
            for problem in problems:
                logger.error("aupgate: %s", problem)
            raise options_error(
                f"aupgate: cannot load policies from {policy_dir} and categories from "
                f"{categories}: {len(problems)} problem(s), first: "
                f"{problems[0] if problems else exc}") from exc
        snap = gateway.current
        for warning in snap.policies.warnings:
            logger.warning("aupgate: %s", warning)
        self.gateway = gateway
        _freeze_heap()
        logger.info("aupgate: %d agencies (%s), %d category entries, loaded in %.2fs",
                    len(snap.policies.policies), ", ".join(sorted(snap.policies.policies)),
                    len(snap.index), time.perf_counter() - started)
        self.audit.event("policy_loaded", agencies=sorted(snap.policies.policies),
                         agency_digests=_agency_digests(snap),
                         policy_digest=snap.policy_digest,
                         categories_digest=snap.categories_digest,
                         fixed_time=self.fixed_time.isoformat() if self.fixed_time else None)

    def _check_default_agency(self) -> None:
        agency = ctx.options.aupgate_default_agency
        if agency and self.gateway is not None:
            known = self.gateway.current.policies.policies
            if agency not in known:
                raise options_error(f"aupgate: aupgate_default_agency '{agency}' is not a "
                                     f"loaded agency ({', '.join(sorted(known))})")

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watcher is None:
            self._watcher = loop.create_task(self._watch())
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # logrotate's `postrotate kill -HUP`: reopen the audit file now, not at the next line
            loop.add_signal_handler(signal.SIGHUP, self._reopen_audit)
        self._note_stop_signals(loop)
        self._install_resolver(loop)
        if self._started is None:
            self._started = time.monotonic()
            self._record_start()

    def _install_resolver(self, loop: asyncio.AbstractEventLoop) -> None:
        """Name lookups for overridden names answer from `aupgate_resolve` (see resolver.py)."""
        if self.resolver.table:
            self.resolver.install(loop)
        else:
            self.resolver.uninstall()

    def _note_stop_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember which signal stopped the proxy (for `proxy_stop`), then stop as mitmproxy does.

        mitmdump installs its SIGINT/SIGTERM handlers before `running`; these replace them and do
        the same thing (shut the master down, or ask first where the master prompts).
        """
        master = ctx.master

        def stop(name: str) -> None:
            self._stop_reason = name
            getattr(master, "prompt_for_exit", master.shutdown)()

        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop, signal.Signals(signum).name)

    def _record_start(self) -> None:
        """The `proxy_start` event: where the gateway listens and what it enforces."""
        o = ctx.options
        gateway = self.gateway
        fields: dict[str, Any] = {
            "version": __version__, "pid": os.getpid(), "listen": _listen_text(),
            "default_agency": o.aupgate_default_agency or None,
            "fixed_time": self.fixed_time.isoformat() if self.fixed_time else None,
            "on_audit_failure": o.aupgate_on_audit_failure,
        }
        if gateway is not None:
            snap = gateway.current
            fields.update(
                policy_dir=str(gateway.policy_dir), categories=str(gateway.categories),
                policy_digest=snap.policy_digest, categories_digest=snap.categories_digest,
                agencies=sorted(snap.policies.policies),
                agency_digests=_agency_digests(snap),
                category_entries=len(snap.index),
                category_counts=snap.index.category_counts())
        try:
            self.audit.event("proxy_start", **fields)
        except Exception:  # an unwritable log is reported by the writer; serving is decided there
            logger.exception("aupgate: could not record proxy_start")

    def _reopen_audit(self) -> None:
        for handle in self.audit.files:
            handle.request_reopen()

    async def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._started is not None:
            try:
                self.audit.event("proxy_stop", pid=os.getpid(), reason=self._stop_reason,
                                 uptime_s=round(time.monotonic() - self._started, 3))
            except Exception:
                logger.exception("aupgate: could not record proxy_stop")
            self._started = None
        self.resolver.uninstall()
        self.audit.close()

    async def _watch(self) -> None:
        """Poll policy and category files; load changes in a thread so traffic keeps flowing."""
        while True:
            interval = ctx.options.aupgate_reload_seconds
            await asyncio.sleep(interval or 5)
            gateway = self.gateway
            if not interval or gateway is None:
                continue
            try:
                parts = gateway.check()
                if parts:
                    for outcome in await asyncio.to_thread(gateway.reload, parts):
                        self._report_reload(outcome)
                    _freeze_heap()
            except Exception as exc:  # the watcher must survive anything
                logger.exception("aupgate: reload check failed")
                self.audit.event("policy_reload_failed", part="unknown", error=repr(exc))

    def _report_reload(self, outcome: ReloadOutcome) -> None:
        if outcome.ok:
            logger.warning("aupgate: reloaded %s (%s)", outcome.part, outcome.digest[:12])
            extra: dict[str, Any] = {}
            snap = self.gateway.current if self.gateway is not None else None
            if snap is not None and outcome.part == "policies":
                extra = {"agencies": sorted(snap.policies.policies),
                         "agency_digests": _agency_digests(snap)}
            elif outcome.entries is not None:
                extra = {"entries": outcome.entries}
            self.audit.event("policy_reloaded", part=outcome.part, digest=outcome.digest,
                             warnings=[str(p) for p in outcome.problems], **extra)
            return
        for problem in outcome.problems:
            logger.error("aupgate: %s", problem)
        logger.error("aupgate: %s NOT reloaded: %d error(s); the last good %s stay in force",
                     outcome.part, len(outcome.errors), outcome.part)
        self.audit.event("policy_reload_failed", part=outcome.part, digest=outcome.digest,
                         errors=[str(p) for p in outcome.errors])

    # ------------------------------------------------------------------ deciding

    def _now(self) -> datetime:
        return self.fixed_time or datetime.now(UTC)

    def _today(self) -> date:
        return self._now().date()

    def _snapshot(self) -> Snapshot:
        if self.gateway is None:
            raise RuntimeError("aupgate is not configured: no policies loaded")
        return self.gateway.current

    def _identify(self, snap: Snapshot, client: connection.Client,
                  metadata: dict[str, Any]) -> Identity:
        """Client address -> agency (or the default agency); the proxy login names the user.

        The address and its agency are worked out once per connection and policy set: a
        keep-alive connection carries many requests, and a reload may move the client.
        """
        cached = self._clients.get(client.id)
        if cached is None or cached[0] != snap.policy_digest:
            address = client_address(client.peername)
            policy = snap.policies.agency_for(address)
            if policy is None and ctx.options.aupgate_default_agency:
                policy = snap.policies.policies.get(ctx.options.aupgate_default_agency)
            # keyed by the policies' digest, not the snapshot: an idle connection must not keep
            # a replaced category index alive
            cached = self._clients[client.id] = (
                snap.policy_digest, Identity(address, None, policy))
        auth = metadata.get("proxyauth")
        if not auth:
            return cached[1]  # no login: the connection's identity, shared by its requests
        base = cached[1]
        user = str(auth[0]) if isinstance(auth, tuple) and auth[0] else None
        return Identity(base.client, user, base.policy, base.client_text)

    def _decide(self, snap: Snapshot, ident: Identity, url: Url, point: str = "decide") -> Decision:
        fault = self.fault
        if fault is not None and fault.point == point and fault.host in (None, url.host):
            raise InjectedFaultError(f"injected fault at {point} for {url.host}")
        assert ident.policy is not None
        facts = Facts(url=url, user=ident.user, client=ident.client)
        return decide(ident.policy, snap.index, facts, self._now())

    def _decide_names(self, snap: Snapshot, ident: Identity, scheme: str, port: int,
                      path: str, query: str, names: Sequence[str | None],
                      point: str = "decide", known: Decision | None = None,
                      ) -> tuple[Decision, list[Decision]]:
        """Decide each distinct name (request host, Host header, SNI) once; the strictest wins.

        `known` is a decision already taken for one of the names with the same scheme, port and
        target (the CONNECT host's, at the ClientHello): it is used for its name instead of
        deciding that name again.
        """
        decisions: list[Decision] = []
        seen: set[str] = set()
        for name in names:
            if not name:
                continue
            url = parse_url(url_text(scheme, name, port, path, query))
            if url.host in seen:
                continue
            seen.add(url.host)
            if known is not None and known.host == url.host:
                self._check_fault(point, url.host)
                decisions.append(known)
            else:
                decisions.append(self._decide(snap, ident, url, point))
        return strictest(decisions), decisions

    def _check_fault(self, point: str, host: str) -> None:
        """Test mode: the injected fault fires for a reused decision as for a fresh one."""
        fault = self.fault
        if fault is not None and fault.point == point and fault.host in (None, host):
            raise InjectedFaultError(f"injected fault at {point} for {host}")

    def _fronting(self, request_id: str, ident: Identity, decisions: Sequence[Decision],
                  phase: str) -> None:
        """Audit names that belong to different registered domains (domain fronting)."""
        if len(decisions) < 2:
            return
        domains = {registered(d.host) for d in decisions}
        if len(domains) > 1:
            self.audit.event(
                "domain_mismatch", request_id=request_id, phase=phase,
                client=ident.client_text, user=ident.user,
                agency=ident.policy.agency if ident.policy else None,
                policy_digest=ident.policy_digest,
                names=[d.host for d in decisions],
                actions=[d.action for d in decisions],
                action=strictest(decisions).action)

    # ------------------------------------------------------------------ pages

    def _page(self, kind: str, request_id: str, host: str, url: str,
              decision: Decision | None, policy: Policy | None, reason: str | None = None,
              token: str | None = None) -> Page:
        clauses: tuple[CitedClause, ...] = ()
        if decision is not None and policy is not None:
            clauses = tuple(CitedClause(cid, policy.clauses[cid].title, policy.clauses[cid].text)
                            for cid in decision.clauses if cid in policy.clauses)
        return Page(
            kind=kind,  # type: ignore[arg-type]
            request_id=request_id, host=host, url=url,
            reason=reason or (decision.reason if decision else ""),
            agency=policy.agency if policy else None,
            agency_name=policy.name if policy else None,
            document=policy.document.title if policy else None,
            clauses=clauses,
            categories=decision.categories if decision else (),
            window=decision.window if decision else None,
            rule=decision.rule if decision else None,
            contact=policy.contact if policy else None,
            action=decision.action if decision else None,
            token=token,
            pass_minutes=int(self.passes.pass_seconds // 60),
        )

    def _refused_page(self, request_id: str, host: str, url: str, ident: Identity) -> Page:
        who = ident.client_text or "this computer"
        return self._page(
            "refused", request_id, host, url, None, None,
            reason=f"The gateway serves agency networks only, and {who} is in none of them. "
                   "Ask your IT service desk to connect this computer to an agency network.")

    # ------------------------------------------------------------------ audit

    def _audit_request(self, flow: http.HTTPFlow) -> None:
        record: _Record | None = flow.metadata.get(META)
        if record is None or record.audited:
            return
        record.audited = True
        req = flow.request
        d = record.decision
        ident = record.identity
        policy = ident.policy
        response = flow.response
        status = size = None
        if response is not None:
            status = response.status_code
            raw = response.raw_content
            size = len(raw) if raw is not None else None
        if record.bytes_counted is not None:
            size = record.bytes_counted
        fault = self.fault
        if fault is not None and fault.point == "audit" and fault.host in (None, req.host):
            raise InjectedFaultError("injected fault at audit")
        fields: dict[str, Any] = {
            "request_id": flow.id,
            "phase": record.phase,
            "client": ident.client_text,
            "user": ident.user,
            "agency": policy.agency if policy is not None else None,
            "policy_digest": ident.policy_digest,
            "method": req.method,
            "scheme": req.scheme,
            "host": req.host,
            "path": safe_path(req.path),
            "http_version": req.http_version,
            "categories": d.categories if d is not None else (),
            "rule": d.rule if d is not None else None,
            "clauses": d.clauses if d is not None else (),
            "action": d.action if d is not None else None,
            "step": d.step if d is not None else None,
            "window": d.window if d is not None else None,
            "grant": d.grant if d is not None else None,
            "network": d.network if d is not None else None,
            "device": d.device if d is not None else None,
            "enforced": record.enforced,
            "status": status,
            "bytes": size,
            "error": flow.error.msg if flow.error else None,
        }
        if record.extra:
            fields.update(record.extra)
        self.audit.record("decision", fields)

    # ------------------------------------------------------------------ failing closed

    def _fail_flow(self, flow: Any, exc: BaseException) -> None:
        """An HTTP hook raised: answer with the error page (or kill the flow), then audit it."""
        logger.error("aupgate: engine error, request blocked: %r", exc, exc_info=exc)
        digest = None
        if isinstance(flow, http.HTTPFlow):
            record = flow.metadata.get(META)
            if isinstance(record, _Record):
                digest = record.identity.policy_digest
            self._block_on_error(flow)
        with contextlib.suppress(Exception):  # the audit may be what failed
            self.audit.event("engine_error", request_id=getattr(flow, "id", ""),
                             host=getattr(getattr(flow, "request", None), "host", None),
                             policy_digest=digest, error=repr(exc), action="block")

    def _block_on_error(self, flow: http.HTTPFlow) -> None:
        record = flow.metadata.get(META)
        if isinstance(record, _Record):
            record.enforced = "error"
            record.audited = True  # the engine_error event is this request's record
        if flow.response is not None and flow.response.stream:
            # the body is already on its way: stopping it is all that is left
            if flow.killable:
                flow.kill()  # type: ignore[no-untyped-call]
            return
        page = self._page("error", flow.id, flow.request.host, "", None, None,
                          reason="An internal error stopped this request before anything was "
                                 "sent to the site. Quote the request id to your IT service "
                                 "desk if it persists.")
        rendered = render(page, flow.request.headers.get("accept"))
        if flow.response is not None:
            replace_streaming(flow, rendered)
        elif flow.live:
            flow.response = make_response(rendered)

    def _fail_tls(self, data: Any, exc: BaseException) -> None:
        """The ClientHello hook raised: pass the TLS through and fail its upstream connection."""
        logger.error("aupgate: engine error at ClientHello, connection blocked: %r", exc,
                     exc_info=exc)
        client = data.context.client
        tunnel = self._tunnels.setdefault(client.id, Tunnel(Identity(None, None, None)))
        tunnel.refuse = "aupgate engine error"
        data.ignore_connection = True
        with contextlib.suppress(Exception):
            self.audit.event("engine_error", request_id=client.id, phase="tls",
                             sni=getattr(data.client_hello, "sni", None), error=repr(exc),
                             action="block")

    def _fail_server(self, data: Any, exc: BaseException) -> None:
        logger.error("aupgate: engine error at server_connect, connection refused: %r", exc,
                     exc_info=exc)
        data.server.error = "aupgate engine error"
        with contextlib.suppress(Exception):
            self.audit.event("engine_error", request_id=data.client.id, phase="server_connect",
                             error=repr(exc), action="block")

    # ------------------------------------------------------------------ CONNECT

    @guarded(_fail_flow)
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return  # e.g. proxyauth already answered 407
        if self._audit_refusing(flow):
            return
        snap = self._snapshot()
        ident = self._identify(snap, flow.client_conn, flow.metadata)
        host, port = flow.request.host, flow.request.port
        tunnel = Tunnel(ident)
        self._tunnels[flow.client_conn.id] = tunnel
        if ident.policy is None:
            page = self._refused_page(flow.id, host, f"{host}:{port}", ident)
            flow.response = make_response(render(page, None))
            self._audit_connect(flow, ident, None, "refused")
            return
        decision, _ = self._decide_names(snap, ident, "https", port, "/", "", [host], "connect")
        tunnel.connect_host = decision.host
        tunnel.connect_decision = decision
        never = decision.intercept == "never"
        refuse = decision.action == "block" and (
            never or ctx.options.aupgate_https_block == "refuse")
        if decision.action == "warn" and never and not self._has_pass(ident, decision.host):
            refuse = True  # a warn page cannot be shown without decrypting
        if refuse:
            page = self._page("block", flow.id, host, f"{host}:{port}", decision, ident.policy)
            flow.response = make_response(render(page, None))
            self._audit_connect(flow, ident, decision, "refused")
            return
        self._audit_connect(flow, ident, decision, "passed")

    def _audit_connect(self, flow: http.HTTPFlow, ident: Identity, d: Decision | None,
                       enforced: str) -> None:
        self.audit.event(
            "decision", request_id=flow.id, phase="connect", client=ident.client_text,
            user=ident.user, agency=ident.policy.agency if ident.policy else None,
            policy_digest=ident.policy_digest, method="CONNECT", scheme="https",
            host=flow.request.host, port=flow.request.port, path=None,
            categories=list(d.categories) if d else [], rule=d.rule if d else None,
            clauses=list(d.clauses) if d else [], action=d.action if d else None,
            window=d.window if d else None, intercept=d.intercept if d else None,
            enforced=enforced, status=flow.response.status_code if flow.response else 200,
            bytes=None)

    # ------------------------------------------------------------------ TLS ClientHello

    @guarded(_fail_tls)
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        tunnel = self._tunnels.get(client.id)
        snap = self._snapshot()
        if tunnel is None:  # no CONNECT seen (transparent or reverse mode)
            tunnel = Tunnel(self._identify(snap, client, {}))
            self._tunnels[client.id] = tunnel
        ident = tunnel.identity
        sni = data.client_hello.sni
        if ident.policy is None:
            return  # refused at CONNECT already, or intercept and refuse at requestheaders
        server = data.context.server.address
        port = server[1] if server else 443
        names = [tunnel.connect_host, sni]
        if not any(names):
            return  # nothing to decide on yet: intercept, decide at requestheaders
        decision, decisions = self._decide_names(snap, ident, "https", port, "/", "", names,
                                                 "clienthello", known=tunnel.connect_decision)
        self._fronting(client.id, ident, decisions, "tls")
        never = all(d.intercept == "never" for d in decisions)
        if not never:
            return  # intercept: requestheaders decides with the full URL and shows the page
        data.ignore_connection = True
        if decision.action == "block" or (
                decision.action == "warn" and not self._has_pass(ident, decision.host)):
            tunnel.refuse = f"blocked by policy: {decision.rule}"
        self.audit.event(
            "decision", request_id=client.id, phase="tls", client=ident.client_text,
            user=ident.user, agency=ident.policy.agency, policy_digest=ident.policy_digest,
            method=None, scheme="https",
            host=decision.host, sni=sni, connect_host=tunnel.connect_host, path=None,
            categories=list(decision.categories), rule=decision.rule,
            clauses=list(decision.clauses), action=decision.action, window=decision.window,
            intercept="never", enforced="refused" if tunnel.refuse else "passthrough",
            status=None, bytes=None)

    @guarded(_fail_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        tunnel = self._tunnels.get(data.client.id)
        if tunnel is not None and tunnel.refuse:
            data.server.error = tunnel.refuse

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)
        self._clients.pop(client.id, None)

    # ------------------------------------------------------------------ HTTP requests

    @guarded(_fail_flow)
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if self.audit.refusing and self._audit_refusing(flow):
            return
        req = flow.request
        snap = self._snapshot()
        client = flow.client_conn
        # identified per request: a reload may have moved the client to another policy
        ident = self._identify(snap, client, flow.metadata)
        tunnel = self._tunnels.get(client.id) if self._tunnels else None
        if tunnel is not None and tunnel.refuse:
            page = self._page("error", flow.id, req.host, shown_url(req), None, ident.policy)
            self._respond(flow, page, _Record(ident, None, "error"))
            return
        if ident.policy is None:
            page = self._refused_page(flow.id, req.host, shown_url(req), ident)
            self._respond(flow, page, _Record(ident, None, "refused"))
            return
        path, _, query = req.path.partition("?")
        if path.startswith(RESERVED_PREFIX):
            self._reserved(flow, ident, path)
            return
        # The names this request gives for its destination (the request's host, the Host header
        # or :authority, the SNI), each decided once; usually they are one name, decided once.
        scheme, host, port = req.scheme, req.host, req.port
        lower = host.lower()
        others: list[str] = []
        host_header = req.host_header
        if host_header:
            named = authority_host(host_header)
            if named.lower() != lower:
                others.append(named)
        if scheme == "https":
            sni = client.sni
            if sni and sni.lower() != lower:
                others.append(sni)
        if others:
            decision, decisions = self._decide_names(snap, ident, scheme, port, path or "/",
                                                     query, [host, *others])
            self._fronting(flow.id, ident, decisions, "request")
            url = None
        else:
            policy = ident.policy
            key = (id(policy), ident.client_text, ident.user, scheme, host, port, path, query)
            known = self.decisions.get(snap, key)
            if known is None or self.fault is not None:
                url = self.urls.url(scheme, host, port, path or "/", query)
                decision = self._decide(snap, ident, url)
                self.decisions.put(key, decision, url)
            else:
                decision, url = known
        record = _Record(ident, decision, "passed", url=url)
        flow.metadata[META] = record
        if decision.action == "warn" or decision.action == "block":
            self._enforce(flow, decision, record)

    def _reserved(self, flow: http.HTTPFlow, ident: Identity, path: str) -> None:
        """`/.aupgate/...` belongs to the gateway: never forwarded, whatever the host.

        Only the warn form (a POST of a small, sized body to the continue path) is read; its
        answer comes from `request`, which is defined only while such a form is being read
        (mitmproxy dispatches each hook an addon defines for every request, even one that
        returns at once).
        """
        req = flow.request
        flow.metadata[META] = _Record(ident, None, "continue", phase="continue")
        length = req.headers.get("content-length", "")
        if path != CONTINUE_PATH or req.method != "POST" or not (
                length.isdigit() and int(length) <= MAX_FORM_BYTES):
            # only a small, sized form is read into memory; anything else is answered now
            page = self._page("error", flow.id, req.host, shown_url(req), None, ident.policy,
                              reason="This address is reserved by the agency gateway.")
            self._respond(flow, page, None)
            return
        self._forms.add(flow.id)
        self.request = self._continue_form  # the body is read; `request` answers it

    def _form_settled(self, flow: http.HTTPFlow) -> None:
        """A warn form was answered (or its flow failed): drop `request` when none is pending."""
        self._forms.discard(flow.id)
        if not self._forms and "request" in vars(self):
            del self.request

    def _enforce(self, flow: http.HTTPFlow, decision: Decision, record: _Record) -> None:
        """Answer a block decision, or a warn decision without a live pass."""
        ident = record.identity
        url = shown_url(flow.request)
        host = decision.host
        if decision.action == "warn":
            if self._has_pass(ident, host):
                record.enforced = "pass-used"
                return
            assert ident.policy is not None
            token = self.passes.issue(
                client=ident.client_text, user=ident.user, host=host,
                url=flow.request.url, agency=ident.policy.agency, rule=decision.rule,
                clauses=decision.clauses, now=time.monotonic())
            page = self._page("warn", flow.id, flow.request.host, url, decision,
                              ident.policy, token=token)
            record.enforced = "warned"
            self._respond(flow, page, record)
        elif decision.action == "block":
            page = self._page("block", flow.id, flow.request.host, url, decision,
                              ident.policy)
            record.enforced = "blocked"
            self._respond(flow, page, record)

    def _has_pass(self, ident: Identity, host: str) -> bool:
        """Whether this client and user continued past a warn page for this host recently."""
        return self.passes.has_pass(client=ident.client_text, user=ident.user, host=host,
                                    now=time.monotonic())

    def _audit_refusing(self, flow: http.HTTPFlow) -> bool:
        """With on_audit_failure=fail-closed and the audit file unwritable, nothing passes."""
        if not self.audit.refusing:
            return False
        # Every write retries the file: try to record this request, and serve it if that worked.
        with contextlib.suppress(Exception):
            self.audit.event("audit_probe", request_id=flow.id, host=flow.request.host)
        return self._refuse_unrecorded(flow)

    def _refuse_unrecorded(self, flow: http.HTTPFlow) -> bool:
        if not self.audit.refusing:
            return False  # the probe got through: the file is back
        logger.critical("aupgate: audit log unwritable (on_audit_failure=fail-closed): "
                        "refusing %s", flow.request.host)
        page = self._page("error", flow.id, flow.request.host, "", None, None,
                          reason="The gateway cannot record decisions right now, and this "
                                 "agency allows no unrecorded traffic. Try again shortly.")
        self._respond(flow, page, None)
        return True

    def _respond(self, flow: http.HTTPFlow, page: Page, record: _Record | None) -> None:
        """Answer with a page in the format the client's Accept header prefers."""
        rendered = render(page, flow.request.headers.get("accept"))
        self._answer(flow, make_response(rendered), record)

    def _answer(self, flow: http.HTTPFlow, response: http.Response,
                record: _Record | None) -> None:
        if record is not None:
            flow.metadata[META] = record
        flow.metadata["aupgate_answered"] = True
        flow.response = response

    @guarded(_fail_flow)
    def _continue_form(self, flow: http.HTTPFlow) -> None:
        """The warn form's POST, installed as the `request` hook while a form is being read.

        Its body is needed, so it is handled here, never forwarded: every flow it sees either
        redirects to the original URL with a pass, or gets the form or an error page again.
        """
        self._form_settled(flow)  # first: nothing below may leave `request` defined for ever
        record = flow.metadata.get(META)
        if not isinstance(record, _Record) or record.phase != "continue" or flow.response:
            return
        req = flow.request
        form = urllib.parse.parse_qs((req.get_content(strict=False) or b"").decode(
            "utf-8", "replace"), keep_blank_values=True)
        token = (form.get("token") or [""])[0]
        reason = clean_reason((form.get("reason") or [""])[0])
        ident = record.identity
        if len(reason) < 4:
            page = self._page("warn", flow.id, req.host, "", None, ident.policy,
                              reason="A work reason of at least a few words is required.")
            self._respond(flow, page, record)
            return
        ticket = self.passes.redeem(token, client=ident.client_text, user=ident.user,
                                    host=req.host, now=time.monotonic())
        if ticket is None:
            page = self._page("error", flow.id, req.host, "", None, ident.policy,
                              reason="This continue form has expired or was issued to another "
                                     "computer or user. Open the site again.")
            self._respond(flow, page, record)
            return
        record.extra = {"rule_continued": ticket.rule, "clauses_continued": list(ticket.clauses),
                        "work_reason": reason, "continued_host": ticket.host,
                        "pass_minutes": int(self.passes.pass_seconds // 60)}
        self._answer(flow, redirect(ticket.url), record)

    # ------------------------------------------------------------------ HTTP responses

    @guarded(_fail_flow)
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("aupgate_answered") or flow.response is None or flow.error:
            return
        record = flow.metadata.get(META)
        if not isinstance(record, _Record) or record.identity.policy is None:
            return
        policy = record.identity.policy
        resp = flow.response
        req = flow.request
        path, _, query = req.path.partition("?")
        wanted = response_headers(resp.headers.fields)
        length_text = wanted.get("content-length")
        length = int(length_text) if length_text and length_text.isdigit() else None
        if req.method == "HEAD" or resp.status_code in (204, 304):
            length = None  # no body follows, whatever the length says
        limit = policy.transfer_limit_bytes
        kinds = detect_content(
            content_type=wanted.get("content-type"), content_length=length,
            disposition=wanted.get("content-disposition"), path=path, query=query,
            limit_bytes=limit)
        if is_icy_response(resp.reason, wanted):
            kinds = kinds | {"audio-stream"}  # SHOUTcast/Icecast: icy-* headers or ICY status
        fault = self.fault
        if fault is not None and fault.point == "responseheaders" and fault.host in (
                None, req.host):
            raise InjectedFaultError("injected fault at responseheaders")
        if kinds:
            decision = self._decide_content(flow, record, kinds)
            if decision is not None:
                record.decision = decision
                record.phase = "response"
                record.extra = {**(record.extra or {}), "content": sorted(kinds)}
                if decision.action == "block" or (
                        decision.action == "warn" and not self._pass_covers(record, decision)):
                    self._replace_response(flow, decision, record)
                    return
        if limit is not None and length is None and resp.stream is False:
            resp.stream = self._counter(flow, record, limit)

    def _pass_covers(self, record: _Record, decision: Decision) -> bool:
        """A content warn is covered, as at request time, by a live pass for the host."""
        if not self._has_pass(record.identity, decision.host):
            return False
        record.enforced = "pass-used"
        return True

    def _replace_response(self, flow: http.HTTPFlow, decision: Decision,
                          record: _Record) -> None:
        """Replace an arriving response with the block page, or with the warn page for a content
        warn without a pass (its form, once answered, gives a pass for the host: the re-request
        and what it turns out to be then pass, as after a request-time warn)."""
        req = flow.request
        ident = record.identity
        token = None
        if decision.action == "warn":
            assert ident.policy is not None
            token = self.passes.issue(
                client=ident.client_text, user=ident.user, host=decision.host, url=req.url,
                agency=ident.policy.agency, rule=decision.rule, clauses=decision.clauses,
                now=time.monotonic())
        page = self._page("warn" if token else "block", flow.id, req.host, shown_url(req),
                          decision, ident.policy, token=token)
        record.enforced = "warned" if token else "blocked"
        flow.metadata["aupgate_answered"] = True
        replace_streaming(flow, render(page, req.headers.get("accept")))
        # audited now: the `response` hook comes only when the upstream stops sending
        self._audit_request(flow)

    def _counter(self, flow: http.HTTPFlow, record: _Record,
                 limit: int) -> Callable[[bytes], bytes]:
        """A stream callable that counts bytes and stops the transfer past the agency limit."""
        counted = 0
        stopped = False
        passed = False  # past the limit under a warn pass: decided once, then let through

        def stream(data: bytes) -> bytes:
            nonlocal counted, stopped, passed
            if stopped:
                return b""
            counted += len(data)
            record.bytes_counted = counted
            if counted <= limit or passed:
                return data
            try:
                decision = self._decide_content(flow, record, frozenset({"large-transfer"}))
            except Exception as exc:  # fail closed inside the stream too
                stopped = True
                self._fail_flow(flow, exc)
                return b""
            if decision is None or decision.action not in ("block", "warn"):
                return data
            if decision.action == "warn" and self._pass_covers(record, decision):
                # the body is under way: a page cannot be shown now, but a pass lets it through
                record.decision, record.phase = decision, "stream"
                record.extra = {**(record.extra or {}), "content": ["large-transfer"]}
                passed = True
                return data
            stopped = True
            record.decision = decision
            record.phase = "stream"
            record.enforced = "cut"
            record.extra = {**(record.extra or {}), "content": ["large-transfer"]}
            if flow.killable:
                flow.kill()  # type: ignore[no-untyped-call]
            logger.warning("aupgate: transfer cut at %d bytes (limit %d): %s", counted, limit,
                           flow.request.host)
            try:  # audited now: the flow may linger until the upstream stops
                self._audit_request(flow)
            except Exception:  # the transfer is stopped already; only the record is lost
                logger.exception("aupgate: could not audit a cut transfer")
            return b""

        return stream

    def _decide_content(self, flow: http.HTTPFlow, record: _Record,
                        kinds: frozenset[str]) -> Decision | None:
        """The content rules' decision for what the response turned out to be, if any."""
        policy = record.identity.policy
        assert policy is not None
        req = flow.request
        url = record.url
        if url is None:
            path, _, query = req.path.partition("?")
            url = self.urls.url(req.scheme, req.host, req.port, path or "/", query)
        facts = Facts(url=url, user=record.identity.user, client=record.identity.client)
        return decide_content(policy, self._snapshot().index, facts, kinds, self._now())

    @guarded(_fail_flow)
    def response(self, flow: http.HTTPFlow) -> None:
        self._audit_request(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.id in self._forms:
            self._form_settled(flow)  # the client went away while sending its form
        try:
            self._audit_request(flow)
        except Exception:  # the flow failed already; nothing passes
            logger.exception("aupgate: could not audit a failed flow")


# --------------------------------------------------------------------------- helpers


def _agency_digests(snap: Snapshot) -> dict[str, str]:
    """Each agency's policy file digest: what a decision's `policy_digest` refers to."""
    return {agency: policy.digest for agency, policy in sorted(snap.policies.policies.items())}


def _listen_text() -> str:
    """The addresses the proxy listens on, `HOST:PORT` (comma-separated when several)."""
    addresses: list[tuple[Any, ...]] = []
    server = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
    with contextlib.suppress(Exception):
        addresses = list(server.listen_addrs())
    if not addresses:
        addresses = [(ctx.options.listen_host or "127.0.0.1", ctx.options.listen_port)]
    return ", ".join(f"[{a[0]}]:{a[1]}" if ":" in str(a[0]) else f"{a[0]}:{a[1]}"
                     for a in addresses)


def _freeze_heap() -> None:
    """Move the loaded policies and category index out of the garbage collector's sight.

    The shipped index is millions of long-lived objects; without this every full collection
    (triggered by the per-request allocations) walks all of them and stalls traffic. Objects
    allocated before a reload stay frozen (an old index is freed by reference counting, not by
    the cycle collector), which costs nothing for acyclic data like the index.
    """
    gc.freeze()


