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
- every audit event is counted for `/metrics` on its way to the audit log (`admin`, `metrics`).

mitmproxy calls every hook an addon defines for every request, even one that returns at once, and
that dispatch is a measurable share of the gateway's cost (docs/benchmarks.md): `request`,
needed only to read a warn form's body, is defined as an instance attribute while such a form is
being read and removed after.

mitmproxy forwards a request when a hook raises, so every hook runs inside `guard.guarded`, which
blocks what the hook was deciding and audits an `engine_error`.

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
from datetime import date

from mitmproxy import connection, ctx, http, tls
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

from ..audit.log import AuditLog
from ..content import detect_content, is_icy_response
from ..engine import Decision
from ..gateway import Gateway
from ..identity import Identity
from ..pages import REQUEST_ACCESS_PATH, RESERVED_PREFIX, Page, page_for, refused_page, render
from ..policy.model import STOPPING
from . import errorresponses, events, lifecycle, uploads
from . import options as opts
from .accessrequest import AccessRequests
from .admin import AdminEdge
from .deadline import ResponseDeadline
from .deciding import Decider
from .flowtext import response_headers, shown_url
from .forwarding import forward
from .guard import (
    fail_flow,
    fail_server,
    fail_tls,
    guarded,
    options_error,
    refuse_unrecorded,
)
from .loginrealm import relabel_login
from .resolver import ResolveOverride
from .responses import answer, make_response, redirect, replace_streaming, respond
from .state import ANSWERED, FlowRecord, FlowRecords, Tunnel
from .transfer import counting_stream
from .upstreamfailure import answer_failure
from .warnflow import WarnFlow

logger = logging.getLogger(__name__)


class Aupgate:
    """Enforces agency acceptable-use policies on every flow. One instance per mitmproxy."""

    def __init__(self) -> None:
        self.audit: AuditLog = AuditLog([])
        self._audit_key: tuple[str, bool, str] | None = None
        self.decider = Decider()
        self.warn = WarnFlow()
        self.access = AccessRequests()
        self.deadline = ResponseDeadline()  # the site's answer is due within a deadline
        self.records: FlowRecords = weakref.WeakKeyDictionary()
        self.resolver = ResolveOverride()
        self._tunnels: dict[str, Tunnel] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._started: float | None = None  # monotonic time of `running`, for proxy_stop
        self._stop_reason = "shutdown"
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
        try:
            if "aupgate_fixed_time" in updated:
                decider.freeze(opts.parse_fixed_time(o.aupgate_fixed_time))
                if decider.fixed_time is not None:
                    logger.warning("!!! aupgate: POLICY CLOCK FROZEN AT %s (aupgate_fixed_time); "
                                   "every decision uses this time. Never use this in production.",
                                   decider.fixed_time.isoformat())
            if "aupgate_resolve" in updated:
                self.resolver.table = opts.resolve_table(o.aupgate_resolve)
                for (host, port), (addr, to_port) in self.resolver.table.items():
                    logger.warning("aupgate: resolve override %s:%s -> %s:%s",
                                   host, port, addr, to_port)
                with contextlib.suppress(RuntimeError):  # no loop yet: `running` installs it
                    self._install_resolver(asyncio.get_running_loop())
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
            ctx.options, self._today, self.audit, self.decider.fixed_time)

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._watcher is None:
            self._watcher = loop.create_task(lifecycle.watch_files(
                ctx.options, lambda: self.gateway, lambda: self.audit))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # logrotate's `postrotate kill -HUP`: reopen the audit file now, not at the next line
            loop.add_signal_handler(signal.SIGHUP, self._reopen_audit)
        self._note_stop_signals(loop)
        self._install_resolver(loop)
        self.admin.start(loop)
        if self._started is None:
            lifecycle.freeze_heap()  # once, before the first request: never after a reload
            self._started = time.monotonic()
            self._record_start()

    def _install_resolver(self, loop: asyncio.AbstractEventLoop) -> None:
        """Name lookups for overridden names answer from `aupgate_resolve` (see resolver.py)."""
        if self.resolver.table:
            self.resolver.install(loop)
        else:
            self.resolver.uninstall()

    def _note_stop_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember which signal stopped the proxy (for `proxy_stop`), then stop as mitmproxy."""
        lifecycle.stop_on_signals(loop, ctx.master, lambda name: setattr(
            self, "_stop_reason", name))

    def _record_start(self) -> None:
        """The `proxy_start` event: where the gateway listens and what it enforces."""
        fields = lifecycle.start_fields(ctx.options, self.gateway, self.decider.fixed_time)
        try:
            self.audit.event("proxy_start", **fields)
        except Exception:  # an unwritable log is reported by the writer; serving is decided there
            logger.exception("aupgate: could not record proxy_start")

    def _reopen_audit(self) -> None:
        self.audit.reopen()  # at once: logrotate's new file gets its first line now

    async def done(self) -> None:
        self.admin.close()
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

    # ------------------------------------------------------------------ CONNECT

    @guarded(fail_flow)
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            # e.g. proxyauth already answered 407: the login prompt names the agency's gateway
            relabel_login(flow, self.decider, ctx.options.aupgate_login_realm)
            return
        if refuse_unrecorded(self.audit, flow, self._respond):
            return
        decider = self.decider
        snap = decider.snapshot()
        ident = decider.identify(snap, flow.client_conn, flow.metadata)
        host, port = flow.request.host, flow.request.port
        tunnel = Tunnel(ident)
        self._tunnels[flow.client_conn.id] = tunnel
        if ident.policy is None:
            page = refused_page(flow.id, host, f"{host}:{port}", ident.client_text)
            flow.response = make_response(render(page, None))
            events.audit_connect(self.audit, flow, ident, None, "refused")
            return
        decision, _ = decider.decide_names(snap, ident, "https", port, "/", "", [host], "connect")
        tunnel.connect_host = decision.host
        tunnel.connect_decision = decision
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
            tunnel = Tunnel(decider.identify(snap, client, {}))
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
        if decision.action == "block" or (
                decision.action == "warn" and not self.warn.has_pass(ident, decision.host)):
            tunnel.refuse = f"blocked by policy: {decision.rule}"
        events.audit_passthrough(self.audit, client.id, ident, decision, sni, tunnel)

    @guarded(fail_server)
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        tunnel = self._tunnels.get(data.client.id)
        if tunnel is not None and tunnel.refuse:
            data.server.error = tunnel.refuse

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.pop(client.id, None)
        self.decider.forget_clients(client.id)

    # ------------------------------------------------------------------ HTTP requests

    @guarded(fail_flow)
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            relabel_login(flow, self.decider, ctx.options.aupgate_login_realm)
            return
        if self.audit.refusing and refuse_unrecorded(self.audit, flow, self._respond):
            return
        req = flow.request
        decider = self.decider
        snap = decider.snapshot()
        client = flow.client_conn
        # identified per request: a reload may have moved the client to another policy
        ident = decider.identify(snap, client, flow.metadata)
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
        if names:  # the request named several hosts: each was decided
            events.audit_fronting(self.audit, flow.id, ident, names, "request")
        record = self.records[flow] = FlowRecord.of_request(ident, decision, url, body)
        if decision.action in STOPPING:
            self._enforce(flow, decision, record)
        if flow.response is None and flow.error is None:  # going upstream
            forward(flow, record, body, decider=decider, pass_covers=self._pass_covers,
                    fail=lambda exc: fail_flow(self, flow, exc), audit=self._audit_request)
        self.deadline.start(flow)  # unless answered here: the site's answer is due

    def _reserved(self, flow: http.HTTPFlow, ident: Identity, path: str) -> None:
        """`/.aupgate/...` belongs to the gateway: never forwarded, whatever the host.

        Only the warn form (a POST of a small, sized body to the continue path) is read; its
        answer comes from `request`, which is defined only while such a form is being read
        (mitmproxy dispatches each hook an addon defines for every request, even one that
        returns at once).
        """
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
        outcome = self.warn.answer_form(flow, record)
        if isinstance(outcome, str):
            self.records[flow] = record
            answer(flow, redirect(outcome))
        else:
            self._respond(flow, outcome, record)

    def _enforce(self, flow: http.HTTPFlow, decision: Decision, record: FlowRecord) -> None:
        """Answer a block decision, or a warn decision without a live pass."""
        ident = record.identity
        url = shown_url(flow.request)
        if decision.action == "warn":
            if self.warn.has_pass(ident, decision.host):
                record.enforced = "pass-used"
                return
            page = self.warn.warn_page(flow, decision, ident, url)
            record.enforced = "warned"
        else:
            page = page_for("block", flow.id, flow.request.host, url, decision, ident.policy,
                            form_path=flow.request.path.partition("?")[0])
            record.enforced = "blocked"
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
        if not self.warn.has_pass(record.identity, decision.host):
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
        events.audit_request(self.audit, flow, self.records.get(flow), self.decider.fault)

    @guarded(fail_flow)
    def response(self, flow: http.HTTPFlow) -> None:
        self._audit_request(flow)
        # The record has done its job; a flow kept on (mitmweb, a saved-flow view) keeps only
        # its plain mark. (Should the audit raise, the record stays for the error handler, and
        # the WeakKeyDictionary drops it with the flow.)
        self.records.pop(flow, None)

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

