"""Directory identity: logins checked against LDAP or Active Directory, with groups.

The proxy makes one `DirectoryAuthenticator` from a policy's `directory:` section and asks it,
from the event loop, about each `Proxy-Authorization: Basic` value (`authenticate_header`) or
each Kerberos-authenticated user (`lookup`). Every answer is a value: `LoginOk` (user, groups and
where each came from), `LoginFailed` (audited as `login_failed`) or `DirectoryUnavailable`
(audited as `directory_unavailable`); none carries a password.

Kerberos single sign-on (`aupgate.directory.negotiate`) needs the optional `gssapi` package and
is imported from there, so a gateway without Kerberos does not need it installed.
"""

from __future__ import annotations

from .authenticator import DirectoryAuthenticator, DirectoryStats, read_secret
from .challenge import authenticate_challenges, basic_challenge, negotiate_reply
from .config import (
    DirectorySettings,
    DirectorySettingsError,
    GroupSettings,
    KerberosSettings,
    parse_directory_settings,
    parse_kerberos_settings,
)
from .credentials import (
    BasicCredentials,
    MalformedAuthorization,
    NegotiateToken,
    parse_authorization,
)
from .outcomes import (
    DirectoryUnavailable,
    DirectoryUser,
    Group,
    LoginFailed,
    LoginOk,
    LoginOutcome,
)

__all__ = [
    "BasicCredentials",
    "DirectoryAuthenticator",
    "DirectorySettings",
    "DirectorySettingsError",
    "DirectoryStats",
    "DirectoryUnavailable",
    "DirectoryUser",
    "Group",
    "GroupSettings",
    "KerberosSettings",
    "LoginFailed",
    "LoginOk",
    "LoginOutcome",
    "MalformedAuthorization",
    "NegotiateToken",
    "authenticate_challenges",
    "basic_challenge",
    "negotiate_reply",
    "parse_authorization",
    "parse_directory_settings",
    "parse_kerberos_settings",
    "read_secret",
]
