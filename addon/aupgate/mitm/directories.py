"""The directories the policies in force log people in against: one authenticator (with its
login cache, thread pool and connections) per distinct `directory:` section, one Kerberos
acceptor per distinct `kerberos:` section, and the challenges each agency's 407 offers.

They are made when policies load, before a policy set is put in force (`Gateway`'s vet): a
password file or keytab that cannot be read refuses the start, or the reload (the last good set
stays, with its directories). A reload that keeps a section keeps its authenticator, so cached
logins survive an edit elsewhere in the file; one no policy uses any more is closed a little
later, once requests that started under the old policy are done with it.

mitmproxy's own `proxyauth` option and a `directory:` section both ask for logins: a gateway
uses one or the other, so the combination is refused, as is `proxyauth=ldap:...` on its own
(mitmproxy 11's LDAP login puts the user name unescaped into the filter: docs/identity.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..directory import (
    DirectoryAuthenticator,
    DirectorySettings,
    DirectorySettingsError,
    KerberosSettings,
    authenticate_challenges,
)
from ..errors import Problem
from ..policy.model import Policy, PolicySet

if TYPE_CHECKING:
    from ..directory.negotiate import NegotiateAcceptor

__all__ = ["Directories", "DirectoryLogin", "proxyauth_problem"]

logger = logging.getLogger(__name__)

RETIRE_AFTER_SECONDS = 60.0
"""How long an authenticator no policy uses any more is kept for requests already under way."""

KerberosKey = tuple[str, str | None, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class DirectoryLogin:
    """What one agency's logins need: the directory, the Kerberos acceptor (if single sign-on is
    configured) and the `Proxy-Authenticate` values of its 407, Negotiate first."""

    authenticator: DirectoryAuthenticator
    acceptor: NegotiateAcceptor | None
    challenges: tuple[str, ...]
    realm: str


def realm_of(policy: Policy, settings: DirectorySettings) -> str:
    """The Basic realm: `directory.realm`, else "<agency name> internet gateway"."""
    return settings.realm or f"{policy.name} internet gateway"


def proxyauth_problem(spec: str | None, policies: PolicySet | None) -> str | None:
    """Why mitmproxy's `proxyauth` option cannot be used with these policies, or None."""
    if not spec:
        return None
    if spec.startswith("ldap"):
        return ("proxyauth=ldap... is not supported: mitmproxy 11's LDAP login puts the user "
                "name unescaped into the LDAP filter and returns no groups. Configure the "
                "agency's directory in its policy instead (directory:, docs/identity.md)")
    with_directory = sorted(a for a, p in (policies.policies.items() if policies else ())
                            if p.directory is not None)
    if with_directory:
        return (f"proxyauth is set, but the policies of {', '.join(with_directory)} log users in "
                "against their directory (directory:); use one or the other")
    return None


def _kerberos_key(settings: KerberosSettings) -> KerberosKey:
    return (str(settings.keytab), settings.service_principal,
            tuple(sorted(settings.realms.items())))


def _make_acceptor(settings: KerberosSettings) -> NegotiateAcceptor:
    try:
        from ..directory.negotiate import NegotiateAcceptor
    except ImportError as exc:  # gssapi is the optional `kerberos` extra
        raise DirectorySettingsError([Problem(
            "", None, "kerberos", f"single sign-on needs python-gssapi ({exc}): "
            "pip install 'aupgate[kerberos]' (it builds against libkrb5-dev)")]) from exc
    return NegotiateAcceptor(settings)


class Directories:
    """The logins of the policies in force, made and retired as policies load."""

    def __init__(self) -> None:
        self.proxyauth: str | None = None  # mitmproxy's `proxyauth` option, kept by `configure`
        self._authenticators: dict[DirectorySettings, DirectoryAuthenticator] = {}
        self._acceptors: dict[KerberosKey, NegotiateAcceptor] = {}
        # id(policy) -> (policy, its login): the policy is held so its id is never reused
        self._logins: Mapping[int, tuple[Policy, DirectoryLogin]] = {}
        self._retired: list[tuple[float, DirectoryAuthenticator]] = []

    def login_for(self, policy: Policy) -> DirectoryLogin | None:
        """The login service of a policy with a `directory:` section (None: it has none)."""
        found = self._logins.get(id(policy))
        return found[1] if found is not None and found[0] is policy else None

    def prepare(self, policies: PolicySet) -> list[Problem]:
        """Make what `policies` need (the gateway's vet, before they are put in force); the
        problems refuse them. Runs in the reload worker thread: the tables are replaced, never
        changed in place, so a request reading them sees the old or the new one."""
        problem = proxyauth_problem(self.proxyauth, policies)
        if problem is not None:
            return [Problem("", None, "proxyauth", problem)]
        problems: list[Problem] = []
        authenticators = dict(self._authenticators)
        acceptors = dict(self._acceptors)
        made: list[DirectoryAuthenticator] = []
        logins = dict(self._logins)
        for policy in policies.policies.values():
            settings = policy.directory
            if settings is None:
                continue
            try:
                authenticator = authenticators.get(settings)
                if authenticator is None:
                    authenticator = authenticators[settings] = DirectoryAuthenticator(settings)
                    made.append(authenticator)
                acceptor = None
                if policy.kerberos is not None:
                    key = _kerberos_key(policy.kerberos)
                    acceptor = acceptors.get(key)
                    if acceptor is None:
                        acceptor = acceptors[key] = _make_acceptor(policy.kerberos)
            except DirectorySettingsError as exc:
                problems += [_located(policy, p) for p in exc.problems]
                continue
            realm = realm_of(policy, settings)
            challenges = tuple(authenticate_challenges(realm, negotiate=acceptor is not None))
            logins[id(policy)] = (policy, DirectoryLogin(authenticator, acceptor, challenges,
                                                         realm))
        if problems:
            for authenticator in made:
                authenticator.close()
            return problems
        self._authenticators, self._acceptors, self._logins = authenticators, acceptors, logins
        return []

    async def sweep(self, current: PolicySet, now: float) -> None:
        """Forget the logins of policies no longer in force; close the authenticators none of
        the current policies uses once `RETIRE_AFTER_SECONDS` have passed."""
        in_force = {id(p) for p in current.policies.values()}
        if any(key not in in_force for key in self._logins):
            self._logins = {k: v for k, v in self._logins.items() if k in in_force}
            used = {p.directory for p in current.policies.values() if p.directory is not None}
            kerberos = {_kerberos_key(p.kerberos) for p in current.policies.values()
                        if p.kerberos is not None}
            retired = [a for s, a in self._authenticators.items() if s not in used]
            self._authenticators = {s: a for s, a in self._authenticators.items() if s in used}
            self._acceptors = {k: a for k, a in self._acceptors.items() if k in kerberos}
            self._retired += [(now + RETIRE_AFTER_SECONDS, a) for a in retired]
        due = [a for when, a in self._retired if when <= now]
        if due:
            self._retired = [(when, a) for when, a in self._retired if when > now]
            for authenticator in due:
                logger.info("aupgate: closing the directory connections of %s (no policy "
                            "uses them any more)", ", ".join(authenticator.settings.urls))
                await authenticator.aclose()  # waits for calls in progress, off the loop

    async def aclose(self) -> None:
        """Close every authenticator (the proxy is stopping)."""
        everything = [*self._authenticators.values(), *(a for _, a in self._retired)]
        self._authenticators, self._retired, self._logins = {}, [], {}
        for authenticator in everything:
            await authenticator.aclose()


def _located(policy: Policy, problem: Problem) -> Problem:
    """A problem of a file the policy names (password file, keytab), reported against the
    policy that names it."""
    message = f"{problem.file}: {problem.message}" if problem.file else problem.message
    return Problem(policy.source, problem.line, problem.field, message, problem.severity)
