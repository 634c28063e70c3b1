"""The mitmproxy addon: every request decided, enforced and recorded, failing closed.

Where each decision is taken (see docs/proxy.md and docs/security.md):

- `http_connect`: the CONNECT host and port, before any TLS; a blocked never-decrypt site is
  refused here. `tcp_start`: a tunnel whose bytes are neither TLS nor HTTP (`rawtcp`).
- `tls_clienthello`: the SNI. Never-decrypt sites are passed through (`ignore_connection`) and,
  if blocked, stopped by failing the upstream connection in `server_connect`.
- `requestheaders`: the (decrypted) request, before its body is read or anything is sent
  upstream: refused if oversized or malformed (`requestshape`), else every name it gives
  (absolute-form authority, request host, Host, SNI) is decided and the strictest wins.
- `responseheaders`: content rules, and a byte counter for transfers of unstated size.
- `response` (or `error`): the request's audit line, once status and size are known.
- every audit event is counted for `/metrics` on its way to the audit log (`admin`, `metrics`).

mitmproxy dispatches every hook an addon defines for every request, a measurable cost: `request`,
needed only to read a warn form's body, is an instance attribute while such a form is being read.
mitmproxy forwards a request when a hook raises, so every hook runs inside `guard.guarded`.
The hooks say *when*; the modules beside them say *what* (docs/architecture.md lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import weakref
from collections.abc import Awaitable
from datetime import date

from mitmproxy import connection, ctx, http, tcp, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

from ..audit.log import AuditLog
from ..content import detect_content, is_icy_response
from ..engine import Decision
from ..gateway import Gateway, Snapshot
from ..identity import Identity
from ..pages import REQUEST_ACCESS_PATH, RESERVED_PREFIX, Page, page_for, refused_page, render
from ..policy.model import STOPPING
from . import (
    errorresponses,
    events,
    failclosed,
    headlimits,
    lifecycle,
    rawtcp,
    requestshape,
    uploads,
)
from . import options as opts
from .accessrequest import AccessRequests
from .admin import AdminEdge
from .budgeting import Budgets
from .deadline import ResponseDeadline
from .deciding import Decider
from .flowtext import response_headers, shown_url
from .forwarding import forward
from .guard import (
    fail_flow,
    fail_server,
    fail_tcp,
    fail_tls,
    guarded,
    options_error,
    refuse_unrecorded,
)
from .loginrealm import relabel_login
from .logins import Logins
from .reassess import Boundaries
from .resolver import ResolveOverride
from .responses import answer, make_response, redirect, replace_streaming, respond
from .shadow import Shadow
from .state import ANSWERED, FlowRecord, FlowRecords, Tunnel
from .transfer import counting_stream
from .upstreamfailure import answer_failure
from .warnflow import WarnFlow, take_holder

logger = logging.getLogger(__name__)


class Aupgate:
    """Enforces agency acceptable-use policies on every flow. One instance per mitmproxy."""

    def __init__(self) -> None:
        self.audit: AuditLog = AuditLog([])
        self._audit_key: tuple[str, bool, str] | None = None
        self.decider = Decider()
        self.logins = Logins(self)  # proxy logins of agencies with a directory (logins.py)
        self.warn = WarnFlow()
        self.access = AccessRequests()
        self.deadline = ResponseDeadline()  # the site's answer is due within a deadline
        self.records: FlowRecords = weakref.WeakKeyDictionary()
        self.resolver = ResolveOverride()
        self.shadow = Shadow(self.decider, lambda: self.audit)  # a candidate, never enforced
        self.budgets = Budgets(self.decider, lambda: self.audit)  # personal-use budgets
        self._tunnels: dict[str, Tunnel] = {}
        self.boundaries = Boundaries(self.decider, self.warn, lambda: self.audit, self.records,
                                     self._tunnels)  # window boundaries (reassess.py)
        self.websocket_end = self.boundaries.websocket_end  # the hook: no longer open
        self._watcher: asyncio.Task[None] | None = None
        self._started: float | None = None  # monotonic time of `running`, for proxy_stop
        self._stop_reason = "shutdown"
        headlimits.install()  # HTTP/1 heads are cut off at the limits while they arrive
        self._audit_head = lambda client, status, reason: events.audit_refused_head(
            self.audit, self.decider, client, status, reason)
        self.admin = AdminEdge(lambda: self.gateway, lambda: self.audit)

    @property
    def gateway(self) -> Gateway | None:
        return self.decider.gateway

    def record_of(self, flow: http.HTTPFlow) -> FlowRecord | None:
        """What the addon decided and did for a flow in progress (None: nothing yet)."""
        return self.records.get(flow)

    def refuse_tunnel(self, client_id: str, message: str) -> None:
        """Fail the upstream connection of this client connection's tunnel."""
        tunnel = self._tunnels.setdefault(client_id, Tunnel(Identity(None, None, None)))
        tunnel.refuse = message

    # ------------------------------------------------------------------ options and lifecycle

    def load(self, loader: Loader) -> None:
        errorresponses.install()  # aupgate's pages where mitmproxy would send its own 502
        for spec in opts.OPTIONS:
            loader.add_option(spec.name, spec.typespec, spec.default, spec.help, spec.choices)

    def configure(self, updated: set[str]) -> None:
        o = ctx.options
        decider = self.decider
        lifecycle.configure_logins(self.logins, o, updated, self.gateway)
        try:
            lifecycle.configure_clock(decider, o, updated)  # aupgate_fixed_time, _clock_from
            if "aupgate_resolve" in updated:
                self.resolver.configure(o.aupgate_resolve)
            if "aupgate_fault" in updated:
                decider.fault = opts.parse_fault(o.aupgate_fault, os.environ)
            if "aupgate_warn_minutes" in updated:
                opts.check_positive("aupgate_warn_minutes", o.aupgate_warn_minutes,
                                    allow_zero=False)
                self.warn.passes.pass_seconds = o.aupgate_warn_minutes * 60
            if "aupgate_response_timeout" in updated:
                self.deadline.configure(o.aupgate_response_timeout)
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
            lifecycle.check_default_agency(ctx.options, self.gateway)
            decider.default_agency = o.aupgate_default_agency
            decider.forget_clients()  # cached agencies may change with the default
        self.shadow.configure(o, updated, self._today)
        self.budgets.configure(o, updated)
        lifecycle.enforce_options(o, updated)
        if {"aupgate_admin", "listen_host"} & updated:
            lifecycle.serve_admin(self.admin, o)

    def _open_audit(self) -> None:
        opened = lifecycle.open_audit(ctx.options, self._audit_key)
        if opened is not None:
            old, (self.audit, self._audit_key) = self.audit, opened
            self.audit.observer = self.admin.metrics.observe
            old.close()

    def _today(self) -> date:
        return self.decider.now().date()

    def _load_gateway(self) -> None:
        self.decider.gateway = lifecycle.load_gateway(
            ctx.options, self._today, self.audit, self.decider.fixed_time,
            self.logins.directories.prepare)

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watcher is None:
            self._watcher = loop.create_task(lifecycle.watch_files(
                ctx.options, lambda: self.gateway, lambda: self.audit,
                lambda gateway: self.logins.directories.sweep(gateway.current.policies,
                                                              time.monotonic()),
                self.boundaries.arm))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # logrotate's `postrotate kill -HUP`: reopen the audit file now, not at the next line
            loop.add_signal_handler(signal.SIGHUP, self._reopen_audit)
        # which signal stopped the proxy goes in `proxy_stop`; then it stops as mitmproxy does
        lifecycle.stop_on_signals(loop, ctx.master, lambda how: setattr(self, "_stop_reason", how))
        self.resolver.follow(loop)  # overridden names answer from aupgate_resolve
        self.shadow.start(lambda: ctx.options.aupgate_reload_seconds, self._today)
        self.budgets.start()
        headlimits.listen(self._audit_head)  # refused heads are audited
        self.admin.start(loop)
        self.boundaries.start(loop)  # the policy clock runs, each agency's next boundary armed
        if self._started is None:  # once, before the first request: the heap frozen, proxy_start
            self._started = lifecycle.started(self.audit, ctx.options, self.gateway, self.decider)

    def _reopen_audit(self) -> None:
        self.audit.reopen()  # at once: logrotate's new file gets its first line now

    async def done(self) -> None:
        headlimits.forget(self._audit_head)
        await self.shadow.stop()
        await self.budgets.stop()
        self.admin.close()
        self.boundaries.stop()
        self._watcher = await lifecycle.cancel(self._watcher)
        if self._started is not None:
            lifecycle.record_stop(self.audit, self._stop_reason, self._started)
            self._started = None
        self.resolver.uninstall()
        await self.logins.directories.aclose()
        self.audit.close()

    # ------------------------------------------------------------------ CONNECT

    @guarded(fail_flow)
    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live:
            # e.g. proxyauth already answered 407: the login prompt names the agency's gateway
            relabel_login(flow, self.decider, ctx.options.aupgate_login_realm)
            return None
        if refuse_unrecorded(self.audit, flow, self._respond):
            return None
        snap = self.decider.snapshot()
        ident = self.decider.identify(snap, flow.client_conn, flow.metadata)
        return self.logins.then(flow, ident, lambda i: self._connect(flow, snap, i), True)

    def _connect(self, flow: http.HTTPFlow, snap: Snapshot, ident: Identity) -> None:
        decider = self.decider
        host, port = flow.request.host, flow.request.port
        tunnel = Tunnel(ident, client=flow.client_conn, port=port)
        self._tunnels[flow.client_conn.id] = tunnel
        if ident.policy is None:
            page = refused_page(flow.id, host, f"{host}:{port}", ident.client_text)
            flow.response = make_response(render(page, None))
            events.audit_connect(self.audit, flow, ident, None, "refused")
            return
        decision, _ = decider.decide_names(snap, ident, "https", port, "/", "", [host], "connect")
        if self.shadow.active:
            self.shadow.connect(snap, ident, flow, decision)
        tunnel.connect_host, tunnel.connect_decision = decision.host, decision
        never = decision.intercept == "never"
        refuse = decision.action == "block" and (
            never or ctx.options.aupgate_https_block == "refuse")
        if decision.action == "warn" and never and not self.warn.has_pass(ident, decision.host):
            refuse = True  # a warn page cannot be shown without decrypting
        if refuse:
            page = page_for("block", flow.id, host, f"{host}:{port}", decision, ident.policy)
            flow.response = make_response(render(page, None))
            events.audit_connect(self.audit, flow, ident, decision, "refused")
            return
        events.audit_connect(self.audit, flow, ident, decision, "passed")

    # ------------------------------------------------------------------ TLS ClientHello

    @guarded(fail_tls)
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        tunnel = self._tunnels.get(client.id)
        decider = self.decider
        snap = decider.snapshot()
        if tunnel is None:  # no CONNECT seen (transparent or reverse mode)
            tunnel = Tunnel(decider.identify(snap, client, {}), client=client)
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
        decision, decisions = decider.decide_names(snap, ident, "https", port, "/", "", names,
                                                   "clienthello", known=tunnel.connect_decision)
        events.audit_fronting(self.audit, client.id, ident, decisions, "tls")
        never = all(d.intercept == "never" for d in decisions)
        if not never:
            return  # intercept: requestheaders decides with the full URL and shows the page
        data.ignore_connection = True
        tunnel.pass_through(sni, port, decision)  # unread bytes: re-decided at a boundary
        if decision.action == "block" or (
                decision.action == "warn" and not self.warn.has_pass(ident, decision.host)):
            tunnel.refuse = f"blocked by policy: {decision.rule}"
        events.audit_passthrough(self.audit, client.id, ident, decision, sni, tunnel)

    @guarded(fail_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        tunnel = self._tunnels.get(data.client.id)
        if tunnel is not None and tunnel.refuse:
            data.server.error = tunnel.refuse

    @guarded(fail_tcp)
    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Bytes after a CONNECT that are neither TLS nor HTTP: relayed only where allowed."""
        rawtcp.check(self.decider, self._tunnels, self.audit, flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)
        self.decider.forget_clients(client.id)
        self.logins.forget(client.id)

    # ------------------------------------------------------------------ HTTP requests

    @guarded(fail_flow)
    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live:
            relabel_login(flow, self.decider, ctx.options.aupgate_login_realm)
            return None
        if self.audit.refusing and refuse_unrecorded(self.audit, flow, self._respond):
            return None
        snap = self.decider.snapshot()
        # identified per request: a reload may have moved the client to another policy
        ident = self.decider.identify(snap, flow.client_conn, flow.metadata)
        return self.logins.then(flow, ident, lambda i: self._request(flow, snap, i), False)

    def _request(self, flow: http.HTTPFlow, snap: Snapshot, ident: Identity) -> None:
        req = flow.request
        decider = self.decider
        client = flow.client_conn
        refused = requestshape.refusal(req)
        if refused is not None:  # oversized or malformed: answered before anything is decided
            self.records[flow] = requestshape.refuse(flow, ident, refused)
            return
        tunnel = self._tunnels.get(client.id) if self._tunnels else None
        if tunnel is not None and tunnel.refuse:
            page = page_for("error", flow.id, req.host, shown_url(req), None, ident.policy)
            self._respond(flow, page, FlowRecord(ident, None, "error"))
            return
        if ident.policy is None:
            page = refused_page(flow.id, req.host, shown_url(req), ident.client_text)
            self._respond(flow, page, FlowRecord(ident, None, "refused"))
            return
        path, _, query = req.path.partition("?")
        if path.startswith(RESERVED_PREFIX):
            self._reserved(flow, ident, path)
            return
        body = uploads.body_of(req, path, query, ident.policy.transfer_limit_bytes)
        decision, names, url = decider.decide_request(snap, ident, flow, path, query, body)
        if self.shadow.active:
            self.shadow.request(snap, ident, flow, decision, body)
        if names:  # the request named several hosts: each was decided
            events.audit_fronting(self.audit, flow.id, ident, names, "request")
        if tunnel is not None:  # inside a tunnel its CONNECT's decision holds (host, port)
            decision = rawtcp.within_tunnel(tunnel, decision)
        extra = None
        if ident.policy.budgets:
            decision, extra = self.budgets.request(flow.id, req.host, ident, decision)
        record = self.records[flow] = FlowRecord.of_request(ident, decision, url, body)
        record.holder = take_holder(ident, req)  # the pass cookie never goes upstream
        if extra:  # the budget's fields on the decision line
            record.extra = {**(record.extra or {}), **extra}
        if decision.action in STOPPING:
            self._enforce(flow, decision, record)
        if flow.response is None and flow.error is None and failclosed.record_before_forwarding(
                self.audit, flow, record, self._audit_request):  # going upstream, on record
            forward(flow, record, body, decider=decider, pass_covers=self._pass_covers,
                    fail=lambda exc: fail_flow(self, flow, exc), audit=self._audit_request)
        self.deadline.start(flow)  # unless answered here: the site's answer is due

    def _reserved(self, flow: http.HTTPFlow, ident: Identity, path: str) -> None:
        """`/.aupgate/...` belongs to the gateway: never forwarded, whatever the host. Only a
        small, sized form is read; `request`, defined only while one is read, answers it."""
        phase = "request-access" if path == REQUEST_ACCESS_PATH else "continue"
        self.records[flow] = FlowRecord(ident, None, "continue", phase=phase)
        page = self.warn.reserved(flow, ident, path)
        if page is not None:  # only a small, sized form is read into memory
            self._respond(flow, page, None)
            return
        self.request = self._continue_form  # the body is read; `request` answers it

    def _form_settled(self, flow: http.HTTPFlow) -> None:
        """A warn form was answered (or its flow failed): drop `request` when none is pending."""
        if self.warn.settle(flow) and "request" in vars(self):
            del self.request

    @guarded(fail_flow)
    def _continue_form(self, flow: http.HTTPFlow) -> None:
        """The warn form's POST, installed as the `request` hook while a form is being read.

        Its body is needed, so it is handled here, never forwarded: every flow it sees either
        redirects to the original URL with a pass, or gets the form or an error page again.
        """
        self._form_settled(flow)  # first: nothing below may leave `request` defined for ever
        record = self.records.get(flow)
        if record is None or record.phase not in ("continue", "request-access") or flow.response:
            return
        if record.phase == "request-access":
            self._respond(flow, self.access.answer(flow, record, self.decider, self.audit), record)
            return
        outcome = self.warn.answer_form(flow, record,
                                        self.boundaries.window_end(record.identity.policy))
        if isinstance(outcome, tuple):
            self.records[flow] = record
            answer(flow, redirect(*outcome))
        else:
            self._respond(flow, outcome, record)

    def _enforce(self, flow: http.HTTPFlow, decision: Decision, record: FlowRecord) -> None:
        """Answer a block decision, or a warn decision without a live pass."""
        page = self.warn.stop_page(flow, decision, record)
        if page is not None:
            self._respond(flow, page, record)

    def _respond(self, flow: http.HTTPFlow, page: Page, record: FlowRecord | None) -> None:
        """Answer with a page (`record`: what the audit line will say); a body too large to read
        first (`uploads.refuse_body`) closes the connection instead."""
        if record is not None:
            self.records[flow] = record
        if not uploads.refuse_body(flow):
            respond(flow, page)

    # ------------------------------------------------------------------ HTTP responses

    @guarded(fail_flow)
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.deadline.stop(flow)
        if flow.metadata.get(ANSWERED) or flow.response is None or flow.error:
            return
        record = self.records.get(flow)
        if record is None or record.identity.policy is None:
            return
        policy = record.identity.policy
        resp = flow.response
        req = flow.request
        path, _, query = req.path.partition("?")
        wanted = response_headers(resp.headers.fields)
        length_text = wanted.get("content-length")
        length = int(length_text) if length_text and length_text.isdigit() else None
        bodiless = req.method == "HEAD" or resp.status_code in (204, 304)
        if bodiless:
            length = None  # no body follows, whatever the length says
        limit = policy.transfer_limit_bytes
        kinds = detect_content(
            content_type=wanted.get("content-type"), content_length=length,
            disposition=wanted.get("content-disposition"), path=path, query=query,
            limit_bytes=limit, has_body=not bodiless, icy=is_icy_response(resp.reason, wanted))
        self.decider.check_fault("responseheaders", req.host)
        if kinds:
            # what a response carries is downloaded: judged as read, whatever the request sent
            decision = self.decider.decide_content(flow, record.identity, record.url, kinds)
            if self.shadow.active:
                self.shadow.content(record, flow, decision, kinds)
            if decision is not None:
                record.decision = decision
                record.phase = "response"
                record.extra = {**(record.extra or {}), "content": sorted(kinds)}
                if decision.action == "block" or (
                        decision.action == "warn" and not self._pass_covers(record, decision)):
                    self._replace_response(flow, decision, record)
                    return
        if limit is not None and length is None and resp.stream is False:
            resp.stream = counting_stream(
                flow, record, limit,
                decide=lambda k: self.decider.decide_content(flow, record.identity, record.url, k),
                pass_covers=lambda d: self._pass_covers(record, d),
                fail=lambda exc: fail_flow(self, flow, exc),
                audit=lambda: self._audit_request(flow))

    def _pass_covers(self, record: FlowRecord, decision: Decision) -> bool:
        """A content warn is covered, as at request time, by a live pass for the host."""
        if not self.warn.has_pass(record.identity, decision.host, record.holder):
            return False
        record.enforced = "pass-used"
        return True

    def _replace_response(self, flow: http.HTTPFlow, decision: Decision,
                          record: FlowRecord) -> None:
        """Replace an arriving response with the block page, or with the warn page for a content
        warn without a pass (its form, once answered, gives a pass for the host: the re-request
        and what it turns out to be then pass, as after a request-time warn)."""
        req = flow.request
        ident = record.identity
        if decision.action == "warn":
            page = self.warn.warn_page(flow, decision, ident, shown_url(req))
            record.enforced = "warned"
        else:
            page = page_for("block", flow.id, req.host, shown_url(req), decision, ident.policy,
                            form_path=req.path.partition("?")[0],
                            content=record.content_named_by(decision))
            record.enforced = "blocked"
        flow.metadata[ANSWERED] = True
        replace_streaming(flow, render(page, req.headers.get("accept")))
        # audited now: the `response` hook comes only when the upstream stops sending
        self._audit_request(flow)

    def _audit_request(self, flow: http.HTTPFlow) -> None:
        record = self.records.get(flow)
        if record is not None and record.extra and "budget" in record.extra:
            self.budgets.response(flow, record)  # bytes against a byte budget
        events.audit_request(self.audit, flow, record, self.decider.fault)

    @guarded(fail_flow)
    def response(self, flow: http.HTTPFlow) -> None:
        self._audit_request(flow)
        # The record has done its job; a flow kept on (mitmweb, a saved-flow view) keeps only
        # its plain mark. (Should the audit raise, the record stays for the error handler, and
        # the WeakKeyDictionary drops it with the flow.) A WebSocket stays open: `boundaries`.
        self.boundaries.response(flow, self.records.pop(flow, None))

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.id in self.warn.pending:
            self._form_settled(flow)  # the client went away while sending its form
        try:
            late = self.deadline.error_text() if self.deadline.stop(flow) else None
            answer_failure(flow, self.records.get(flow), late)  # aupgate's page, not a bare 502
            self._audit_request(flow)
        except Exception:  # the flow failed already; nothing passes
            logger.exception("aupgate: could not audit a failed flow")
        self.records.pop(flow, None)

