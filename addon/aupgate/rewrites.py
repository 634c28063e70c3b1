"""What the gateway adds to a request it lets through: tenant restrictions and safe search.

Some clauses are enforced best by the provider itself, if the gateway tells it what the agency
allows. Each mechanism here is the vendor's own, documented for a proxy that decrypts HTTPS, and
is applied only on the hosts the vendor names (docs/policy-language.md has the sources):

- **Microsoft tenant restrictions.** On login.microsoftonline.com, login.microsoft.com and
  login.windows.net, `Restrict-Access-To-Tenants: <permitted tenants>` and
  `Restrict-Access-Context: <the agency's directory ID>`; Entra ID then issues tokens only for the
  permitted tenants. On login.live.com, `sec-Restrict-Tenant-Access-Policy: restrict-msa` refuses
  personal Microsoft accounts (Outlook.com, personal OneDrive).
- **Google Workspace.** On google.com and its subdomains, `X-GoogApps-Allowed-Domains: <domains>`;
  Google then refuses sign-in with any account outside those domains (personal Gmail included).
- **YouTube restricted mode.** On www.youtube.com, m.youtube.com, youtubei.googleapis.com,
  youtube.googleapis.com and www.youtube-nocookie.com, `YouTube-Restrict: Strict` or `Moderate`.
- **Safe search.** Google and the others document forced safe search through DNS
  (forcesafesearch.google.com, strict.bing.com, safe.duckduckgo.com), which a forward proxy
  cannot set for its clients; what works at a proxy is each engine's own search parameter, set on
  every search request: Google `safe=active`, Bing `adlt=strict`, DuckDuckGo `kp=1`.

The gateway *replaces*: any copy of these headers or parameters the client sent, under any
spelling a server might read as the same name (case, `_` for `-`, surrounding spaces, a
percent-encoded parameter name), is removed before the gateway's own is added, so an employee
cannot pre-set a more permissive value.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from .errors import AupgateError
from .hostname import registered_domain

__all__ = [
    "GOOGLE_HEADER",
    "MICROSOFT_LOGIN_HOSTS",
    "YOUTUBE_HOSTS",
    "RequestControls",
    "Rewrite",
    "SafeSearch",
    "TenantRestrictions",
    "header_key",
    "set_query_parameter",
]

MICROSOFT_LOGIN_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoft.com", "login.windows.net"})
MICROSOFT_CONSUMER_HOST = "login.live.com"
GOOGLE_DOMAIN = "google.com"
YOUTUBE_HOSTS = frozenset({"www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                           "youtube.googleapis.com", "www.youtube-nocookie.com"})
TENANTS_HEADER = "Restrict-Access-To-Tenants"
CONTEXT_HEADER = "Restrict-Access-Context"
CONSUMER_HEADER = "sec-Restrict-Tenant-Access-Policy"
GOOGLE_HEADER = "X-GoogApps-Allowed-Domains"
YOUTUBE_HEADER = "YouTube-Restrict"
YOUTUBE_MODES = ("strict", "moderate")


@dataclass(frozen=True, slots=True)
class TenantRestrictions:
    """The agency's own cloud tenants (MoDOT 11: department e-mail accounts only)."""

    clauses: tuple[str, ...]
    microsoft_tenants: tuple[str, ...] = ()  # domains or tenant (directory) IDs
    microsoft_context: str | None = None  # the agency's directory ID
    microsoft_consumer_block: bool = False
    google_domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SafeSearch:
    """Forced safe search and YouTube restricted mode (the sexually explicit clauses)."""

    clauses: tuple[str, ...]
    search: bool = True
    youtube: str | None = "strict"  # strict | moderate | None (not forced)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """The changes for one request: headers to set (replacing every copy the client sent) and
    the query to send instead (None: unchanged). `controls` names them for the audit line."""

    headers: tuple[tuple[str, str], ...] = ()
    query: str | None = None
    controls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestControls:
    """A policy's `tenants` and `safe_search` sections."""

    tenants: TenantRestrictions | None = None
    safe_search: SafeSearch | None = None

    def citing(self, clause_id: str) -> tuple[str, ...]:
        """The sections that cite a clause (the clause map counts them as enforcing it)."""
        found: list[str] = []
        if self.tenants is not None and clause_id in self.tenants.clauses:
            found.append("tenants")
        if self.safe_search is not None and clause_id in self.safe_search.clauses:
            found.append("safe_search")
        return tuple(found)

    def __bool__(self) -> bool:
        return self.tenants is not None or self.safe_search is not None

    def rewrite(self, host: str, path: str, query: str) -> Rewrite | None:
        """What to change in a request to `host` + `path` + `query` (canonical host), if any."""
        headers: list[tuple[str, str]] = []
        controls: list[str] = []
        new_query: str | None = None
        tenants = self.tenants
        if tenants is not None:
            if host in MICROSOFT_LOGIN_HOSTS and tenants.microsoft_tenants:
                headers.append((TENANTS_HEADER, ",".join(tenants.microsoft_tenants)))
                if tenants.microsoft_context:
                    headers.append((CONTEXT_HEADER, tenants.microsoft_context))
                controls.append("tenant-restrictions:microsoft")
            elif host == MICROSOFT_CONSUMER_HOST and tenants.microsoft_consumer_block:
                headers.append((CONSUMER_HEADER, "restrict-msa"))
                controls.append("tenant-restrictions:microsoft-consumer")
            elif tenants.google_domains and (
                    host == GOOGLE_DOMAIN or host.endswith("." + GOOGLE_DOMAIN)):
                headers.append((GOOGLE_HEADER, ",".join(tenants.google_domains)))
                controls.append("tenant-restrictions:google")
        safe = self.safe_search
        if safe is not None:
            if safe.youtube and host in YOUTUBE_HOSTS:
                headers.append((YOUTUBE_HEADER, safe.youtube.capitalize()))
                controls.append(f"youtube-restricted:{safe.youtube}")
            if safe.search:
                forced = _safe_search_parameter(host, path, query)
                if forced is not None:
                    engine, name, value = forced
                    new_query = set_query_parameter(query, name, value)
                    controls.append(f"safe-search:{engine}")
        if not controls:
            return None
        return Rewrite(tuple(headers), new_query, tuple(controls))


def _safe_search_parameter(host: str, path: str, query: str) -> tuple[str, str, str] | None:
    """(engine, parameter, value) when the request is a search on one of the engines."""
    if host == "duckduckgo.com" or host.endswith(".duckduckgo.com"):
        return ("duckduckgo", "kp", "1") if _has_parameter(query, "q") else None
    if host in ("www.bing.com", "bing.com", "cn.bing.com"):
        searches = ("/search", "/images/search", "/videos/search", "/news/search")
        return ("bing", "adlt", "strict") if path.lower() in searches else None
    if "google." in host and path in ("/search", "/complete/search"):
        try:
            domain = registered_domain(host)
        except AupgateError:  # not a host name (a canonical host always is)
            return None
        if domain.split(".", 1)[0] == "google" and host in (domain, "www." + domain):
            return ("google", "safe", "active")
    return None


def header_key(name: str) -> str:
    """A header name as a lenient server might read it: case, `_`/`-` and spaces ignored."""
    return name.strip().lower().replace("_", "-")


def _parameter_name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0]).strip().lower()


def _has_parameter(query: str, name: str) -> bool:
    return any(_parameter_name(piece) == name for piece in query.split("&") if piece)


def set_query_parameter(query: str, name: str, value: str) -> str:
    """`query` with every `name` parameter (however spelled or encoded) replaced by one
    `name=value`; every other parameter stays exactly as sent."""
    kept = [piece for piece in query.split("&") if piece and _parameter_name(piece) != name]
    return "&".join([*kept, f"{name}={value}"])
