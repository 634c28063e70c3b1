"""A tiny loopback HTTP server that authenticates with the directory package, for real clients.

It answers like a proxy for absolute-form requests (407, Proxy-Authenticate, Proxy-Authorization)
and like an origin server otherwise (401, WWW-Authenticate, Authorization), offering Negotiate
before Basic with the helper the proxy will use. A good login gets 200 and a JSON body naming
the user, their groups and the method, so curl's output shows what the gateway would know.
The proxy integration comes with the adapter; this proves the acceptor and the authenticator
against curl's real Kerberos and Basic implementations.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aupgate.directory import (
    BasicCredentials,
    DirectoryAuthenticator,
    LoginOk,
    NegotiateToken,
    authenticate_challenges,
    negotiate_reply,
    parse_authorization,
)
from aupgate.directory.negotiate import KerberosOk, NegotiateAcceptor

REALM = "aupgate test gateway"


@dataclass
class AuthHttpServer:
    acceptor: NegotiateAcceptor | None
    authenticator: DirectoryAuthenticator | None
    outcomes: list[object] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                status, headers, body = await self._answer(head)
                lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers),
                         f"Content-Length: {len(body)}", "", ""]
                writer.write("\r\n".join(lines).encode() + body)
                await writer.drain()
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
        as_proxy = target.startswith("http://")
        wanted = "proxy-authorization" if as_proxy else "authorization"
        value = next((line.partition(":")[2].strip() for line in header_lines
                      if line.partition(":")[0].strip().lower() == wanted), None)
        challenge = "Proxy-Authenticate" if as_proxy else "WWW-Authenticate"
        if value is not None:
            found = await self._login(value, challenge)
            if found is not None:
                return found
        status = "407 Proxy Authentication Required" if as_proxy else "401 Unauthorized"
        values = authenticate_challenges(REALM, negotiate=self.acceptor is not None)
        return status, [(challenge, v) for v in values], b""

    async def _login(self, value: str, challenge: str
                     ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        parsed = parse_authorization(value)
        if isinstance(parsed, NegotiateToken) and self.acceptor is not None:
            accepted = await self.acceptor.accept_header_async(value)
            self.outcomes.append(accepted)
            if not isinstance(accepted, KerberosOk):
                return None
            groups: list[str] = []
            if self.authenticator is not None:
                looked_up = await self.authenticator.lookup(accepted.user)
                self.outcomes.append(looked_up)
                if not isinstance(looked_up, LoginOk):
                    return None
                groups = sorted(looked_up.user.group_names)
            body = {"method": "negotiate", "principal": accepted.principal,
                    "user": accepted.user, "groups": groups}
            return ("200 OK", [(challenge, negotiate_reply(accepted.reply_token))],
                    json.dumps(body).encode())
        if isinstance(parsed, BasicCredentials) and self.authenticator is not None:
            outcome = await self.authenticator.authenticate_header(value)
            self.outcomes.append(outcome)
            if isinstance(outcome, LoginOk):
                body = {"method": "basic", "user": outcome.user.name,
                        "groups": sorted(outcome.user.group_names)}
                return "200 OK", [], json.dumps(body).encode()
        return None
