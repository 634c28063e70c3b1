"""Kerberos single sign-on: accept the SPNEGO token of a `Proxy-Authorization: Negotiate` header.

A browser on a domain-joined PC gets a service ticket for the gateway (HTTP/<proxy host>@REALM)
from the domain's KDC and sends it; the acceptor decrypts it with the key in the gateway's
keytab, which proves the client principal without a password ever reaching the gateway. The
principal's realm must be one the policy lists; its name is mapped to the directory user name
(the proxy then looks the user's groups up with `DirectoryAuthenticator.lookup`).

MIT Kerberos (through python-gssapi) does the cryptography and the checks: ticket and
authenticator times against `clockskew`, the replay cache, the service key. A refusal says why
in words for the audit log; the client just gets the 407 again (and falls back to Basic).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import gssapi
from gssapi.raw import exceptions as gss_errors
from gssapi.raw.misc import GSSError

from aupgate.errors import Problem

from .config import DirectorySettingsError, KerberosSettings
from .credentials import MAX_HEADER_LENGTH
from .outcomes import loggable_name

RefusalReason = Literal["malformed", "unsupported_mechanism", "expired", "replay",
                        "not_for_this_service", "foreign_realm", "not_a_user", "bad_ticket"]

# MIT's messages for the minor status (stable across releases); under SPNEGO the numeric minor
# code is remapped, so the text is what identifies the Kerberos error.
_MESSAGES: tuple[tuple[str, RefusalReason], ...] = (
    ("clock skew too great", "expired"),  # an authenticator or ticket older than clockskew
    ("ticket expired", "expired"),
    ("ticket not yet valid", "expired"),
    ("request is a replay", "replay"),
    ("not found in keytab", "not_for_this_service"),
    ("no key table entry", "not_for_this_service"),
    ("wrong principal in request", "not_for_this_service"),
    ("cannot find key", "not_for_this_service"),
    ("cannot decrypt ticket", "not_for_this_service"),
    ("decrypt integrity check failed", "not_for_this_service"),
)


@dataclass(frozen=True, slots=True)
class KerberosOk:
    """The client proved `principal`; `user` is its directory user name under the realm map.
    `reply_token` (mutual authentication) may be sent back as `Negotiate <token>`."""

    principal: str
    user: str
    realm: str
    reply_token: bytes | None = field(default=None, repr=False)
    event: ClassVar[str] = "login"


@dataclass(frozen=True, slots=True)
class KerberosRefused:
    """The ticket is refused; audited as `login_failed` with method `negotiate`."""

    reason: RefusalReason
    detail: str
    principal: str = ""
    event: ClassVar[str] = "login_failed"

    def audit_fields(self) -> dict[str, object]:
        return {"event": self.event, "method": "negotiate", "user": self.principal,
                "reason": self.reason, "detail": self.detail}


NegotiateOutcome = KerberosOk | KerberosRefused


def _check_keytab(settings: KerberosSettings) -> None:
    try:
        with settings.keytab.open("rb") as keytab:
            header = keytab.read(2)
    except OSError as e:
        raise DirectorySettingsError([Problem(str(settings.keytab), None, "kerberos.keytab",
                                              f"cannot read the keytab: {e.strerror}")]) from e
    if header not in (b"\x05\x01", b"\x05\x02"):
        raise DirectorySettingsError([Problem(str(settings.keytab), None, "kerberos.keytab",
                                              "not a Kerberos keytab file")])


class NegotiateAcceptor:
    """Accepts Kerberos tickets for the gateway's service principal from its keytab. Make one
    at start-up (a missing keytab or principal is reported then, naming the file)."""

    def __init__(self, settings: KerberosSettings) -> None:
        _check_keytab(settings)
        self.settings = settings
        name = None
        if settings.service_principal is not None:
            name = gssapi.Name(settings.service_principal, gssapi.NameType.kerberos_principal)
        try:
            self._credentials = gssapi.Credentials(
                name=name, usage="accept", store={"keytab": f"FILE:{settings.keytab}"})
        except GSSError as e:
            raise DirectorySettingsError([Problem(
                str(settings.keytab), None, "kerberos.service_principal",
                f"cannot use the keytab for {settings.service_principal or 'any principal'}: "
                f"{_message(e)}")]) from e

    def accept_header(self, value: str) -> NegotiateOutcome:
        """Accept a `Negotiate <base64 token>` header value."""
        scheme, _, token = value.strip().partition(" ")
        if scheme.casefold() != "negotiate" or not token.strip():
            return KerberosRefused("malformed", "not a Negotiate header")
        if len(token) > MAX_HEADER_LENGTH:
            return KerberosRefused("malformed", "Negotiate token too long")
        try:
            raw = base64.b64decode(token.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return KerberosRefused("malformed", "Negotiate token is not base64")
        return self.accept(raw)

    async def accept_header_async(self, value: str) -> NegotiateOutcome:
        """`accept_header` in a worker thread (the keytab is read from disk)."""
        return await asyncio.to_thread(self.accept_header, value)

    def accept(self, token: bytes) -> NegotiateOutcome:
        """Accept one SPNEGO (or bare Kerberos) token."""
        if not token:
            return KerberosRefused("malformed", "empty token")
        context = gssapi.SecurityContext(creds=self._credentials, usage="accept")
        try:
            # with SPNEGO, a refused ticket can come back as a reject token with the error kept
            # for the next call on the context: reading `complete` raises it
            reply = context.step(token)
            principal = str(context.initiator_name) if context.complete else None
        except (gss_errors.BadMechanismError, gss_errors.BadNameError) as e:
            return KerberosRefused("unsupported_mechanism",
                                   f"not a Kerberos token: {_message(e)}")
        except gss_errors.InvalidTokenError as e:
            return KerberosRefused("malformed", _message(e))
        except GSSError as e:
            return KerberosRefused(_reason(e), _message(e))
        if principal is None:
            return KerberosRefused("unsupported_mechanism",
                                   "the token asks for more than one round (not Kerberos)")
        return self._map(principal, reply)

    def _map(self, principal: str, reply: bytes | None) -> NegotiateOutcome:
        shown = loggable_name(principal)
        name, at, realm = principal.rpartition("@")
        if not at or not name or not realm:
            return KerberosRefused("bad_ticket", "the client principal has no realm", shown)
        template = self.settings.realms.get(realm)
        if template is None:
            return KerberosRefused("foreign_realm", f"realm {realm} is not accepted", shown)
        name = name.replace("\\@", "@")
        if "/" in name or name.endswith("$"):
            return KerberosRefused("not_a_user", "a service or computer principal, not a person",
                                   shown)
        user = template.replace("{realm}", realm).replace("{user}", name)
        return KerberosOk(principal, user, realm, reply or None)


def _message(error: GSSError) -> str:
    try:
        text = error.gen_message()
    except (GSSError, UnicodeDecodeError):  # display_status itself failing
        return type(error).__name__
    minor = text.rpartition("Minor (")[2]
    detail = minor.partition("): ")[2] if "): " in minor else text
    return " ".join(detail.split())[:300] or type(error).__name__


def _reason(error: GSSError) -> RefusalReason:
    message = _message(error).casefold()
    for fragment, reason in _MESSAGES:
        if fragment in message:
            return reason
    return "bad_ticket"

