"""Turning rendered pages into mitmproxy responses, including after the upstream has answered.

A block decided at `responseheaders` (an audio stream, an installer) must replace a response whose
body is still arriving, possibly forever. mitmproxy would otherwise buffer the upstream body and
write it over ours, so the replacement is streamed: our headers go out at once, the first body
chunk event sends our page, and everything the upstream sends after that is dropped.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable

from mitmproxy import http

from ..pages import Page, Rendered, render
from .state import ANSWERED

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def make_response(rendered: Rendered, extra: dict[str, str] | None = None) -> http.Response:
    headers = {"Content-Type": rendered.content_type, **_HEADERS, **dict(rendered.headers),
               **(extra or {})}
    return http.Response.make(rendered.status, rendered.body, headers)


def replace_streaming(flow: http.HTTPFlow, rendered: Rendered) -> None:
    """Answer with our page although the upstream's body is still to come (or never ends)."""
    # HTTP/1: tell the client to hang up once it has our page, which ends an endless upstream
    # stream; HTTP/2 forbids the header and ends the stream by itself.
    extra = {} if flow.request.is_http2 else {"Connection": "close"}
    response = make_response(rendered, extra)
    body = response.raw_content or b""
    response.stream = _send_once(body)
    flow.response = response


def _send_once(body: bytes) -> Callable[[bytes], bytes]:
    sent = False

    def stream(_data: bytes) -> bytes:
        nonlocal sent
        if sent:
            return b""
        sent = True
        return body

    return stream


def redirect(location: str, cookie: str | None = None) -> http.Response:
    """A 303 to `location`, setting `cookie` (a whole Set-Cookie value) if given."""
    extra = {"Set-Cookie": cookie} if cookie else {}
    return http.Response.make(303, b"", {"Location": location, **_HEADERS, **extra})


def respond(flow: http.HTTPFlow, page: Page) -> None:
    """Answer with a page in the format the client's Accept header prefers."""
    answer(flow, make_response(render(with_back(page, flow), flow.request.headers.get("accept"))))


def with_back(page: Page, flow: http.HTTPFlow) -> Page:
    """The page with its "Go back" link: the origin of the page the employee came from.

    Only the origin (scheme, host, port) of an http(s) Referer, so no path or query the site put
    there reaches the page; none when the Referer is the stopped site itself.
    """
    referer = flow.request.headers.get("referer", "")
    try:
        parts = urllib.parse.urlsplit(referer)
        host = parts.hostname
    except ValueError:
        return page
    if parts.scheme not in ("http", "https") or not host or host == flow.request.host:
        return page
    return dataclasses.replace(page, back=f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/")


def answer(flow: http.HTTPFlow, response: http.Response) -> None:
    """Answer the request ourselves (it never goes upstream), and mark the flow so."""
    flow.metadata[ANSWERED] = True
    flow.response = response
