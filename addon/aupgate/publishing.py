"""Where a request publishes: the posting and upload endpoints of social, blog, file-hosting and
paste services.

DNR's publishing clause ("Internet users will not publish or distribute information using any
Internet service besides electronic mail without the approval of their Program Director") is
about what a request does, not which site it names: reading a social network or a file host is
one thing, posting to it another. A request that sends a body is an *upload*; an upload to one of
the endpoints below is a *publish*. Rules match either with `direction` (docs/policy-language.md).

The list is curated by hand from the services' public API documentation and their web apps'
posting addresses, and kept short on purpose: an endpoint belongs here only when writing to it
means posting or uploading content for others to see or fetch. Services whose web app posts
through one generic endpoint that also serves reading (Facebook's and Medium's GraphQL, for
instance) are listed only by their dedicated upload hosts and public APIs, so reading them never
counts as publishing; a post made through such a generic endpoint is not recognised. An agency
adds its own endpoints, or removes a service, in its policy's `publishing` section.

A pattern is `host/path-prefix`: the host covers its subdomains (`*` alone means any host), the
path is a prefix compared without regard to case, `*` inside it stands for exactly one path
segment (`graph.facebook.com/*/feed`) and `**/` for any number of whole segments
(`*/**/wp-comments-post.php`: a WordPress site installed in any folder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["DEFAULT_ENDPOINTS", "PUBLISH_METHODS", "Endpoint", "Publishing", "parse_pattern"]

PUBLISH_METHODS: frozenset[str] = frozenset({"POST", "PUT", "PATCH"})
"""The methods that write; a GET or a DELETE never publishes."""

ANY_HOST = "*"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One service's posting or upload addresses."""

    service: str
    kind: str  # social | blog | file-hosting | paste | agency (an agency's own addition)
    patterns: tuple[str, ...]
    methods: frozenset[str] = PUBLISH_METHODS


def _e(service: str, kind: str, *patterns: str) -> Endpoint:
    return Endpoint(service, kind, patterns)


DEFAULT_ENDPOINTS: tuple[Endpoint, ...] = (
    # ---- file hosting: upload APIs and hosts, sharing links
    _e("Dropbox", "file-hosting", "content.dropboxapi.com/2/files/upload",
       "api.dropboxapi.com/2/sharing/", "api.dropboxapi.com/2/file_requests/"),
    _e("Google Drive", "file-hosting", "www.googleapis.com/upload/drive/",
       "content.googleapis.com/upload/drive/", "clients6.google.com/upload/drive/"),
    _e("OneDrive (personal)", "file-hosting", "api.onedrive.com/"),
    _e("Box", "file-hosting", "upload.box.com/"),
    _e("WeTransfer", "file-hosting", "wetransfer.com/api/v4/transfers",
       "dev.wetransfer.com/v2/transfers"),
    _e("MEGA", "file-hosting", "userstorage.mega.co.nz/"),
    _e("MediaFire", "file-hosting", "mediafire.com/api/upload/", "mediafire.com/api/*/upload/"),
    _e("pCloud", "file-hosting", "pcloud.com/uploadfile", "pcloud.com/upload_save"),
    _e("GoFile", "file-hosting", "gofile.io/uploadfile", "gofile.io/contents/uploadfile"),
    _e("file.io", "file-hosting", "file.io/"),
    _e("transfer.sh", "file-hosting", "transfer.sh/"),
    _e("0x0.st", "file-hosting", "0x0.st/"),
    _e("Catbox", "file-hosting", "catbox.moe/user/api.php", "litterbox.catbox.moe/"),
    # ---- paste services: every write creates or edits a paste
    _e("Pastebin", "paste", "pastebin.com/"),
    _e("paste.ee", "paste", "paste.ee/"),
    _e("Hastebin", "paste", "hastebin.com/documents", "toptal.com/developers/hastebin/documents"),
    _e("dpaste", "paste", "dpaste.org/", "dpaste.com/"),
    _e("GitHub Gist", "paste", "api.github.com/gists", "gist.github.com/"),
    _e("PrivateBin and 0bin", "paste", "privatebin.net/", "0bin.net/"),
    _e("Rentry", "paste", "rentry.co/", "rentry.org/"),
    _e("JustPaste.it", "paste", "justpaste.it/"),
    _e("ControlC", "paste", "controlc.com/"),
    _e("paste.mozilla.org", "paste", "paste.mozilla.org/api/"),
    _e("paste.debian.net", "paste", "paste.debian.net/"),
    _e("bpa.st", "paste", "bpa.st/"),
    _e("paste.rs", "paste", "paste.rs/"),
    # ---- social networks: post and media-upload endpoints (not their generic GraphQL)
    _e("X (Twitter)", "social", "x.com/i/api/graphql/*/CreateTweet",
       "twitter.com/i/api/graphql/*/CreateTweet", "upload.x.com/", "upload.twitter.com/",
       "api.x.com/2/tweets", "api.twitter.com/2/tweets"),
    _e("Facebook", "social", "graph.facebook.com/**/feed", "graph.facebook.com/**/photos",
       "graph.facebook.com/**/videos", "graph-video.facebook.com/", "rupload.facebook.com/",
       "upload.facebook.com/"),
    _e("Instagram", "social", "instagram.com/rupload_igphoto/", "instagram.com/rupload_igvideo/",
       "instagram.com/api/v1/media/configure", "graph.instagram.com/**/media"),
    _e("Threads", "social", "graph.threads.net/"),
    _e("LinkedIn", "social", "api.linkedin.com/v2/ugcposts", "api.linkedin.com/rest/posts",
       "linkedin.com/voyager/api/contentcreation/"),
    _e("Reddit", "social", "reddit.com/api/submit", "reddit.com/api/comment",
       "reddit.com/api/media/asset"),
    _e("TikTok", "social", "open.tiktokapis.com/v2/post/publish/"),
    _e("YouTube", "social", "www.googleapis.com/upload/youtube/", "upload.youtube.com/"),
    _e("Pinterest", "social", "api.pinterest.com/v5/pins", "api.pinterest.com/v5/media"),
    _e("Mastodon", "social", "mastodon.social/api/v1/statuses", "mastodon.social/api/v2/media",
       "mastodon.online/api/v1/statuses", "mastodon.online/api/v2/media"),
    _e("Bluesky", "social", "bsky.social/xrpc/com.atproto.repo.",
       "bsky.network/xrpc/com.atproto.repo."),
    # ---- blogs: platform APIs, and WordPress and Ghost wherever they are hosted
    _e("WordPress.com", "blog", "public-api.wordpress.com/rest/v1.1/sites/*/posts/new",
       "public-api.wordpress.com/rest/v1.1/sites/*/media/new",
       "public-api.wordpress.com/wp/v2/sites/*/posts",
       "public-api.wordpress.com/wp/v2/sites/*/media"),
    _e("WordPress (any site)", "blog", "*/**/wp-admin/post.php", "*/**/wp-admin/async-upload.php",
       "*/**/wp-json/wp/v2/posts", "*/**/wp-json/wp/v2/media", "*/**/wp-comments-post.php"),
    _e("Ghost (any site)", "blog", "*/**/ghost/api/admin/posts",
       "*/**/ghost/api/admin/images/upload"),
    _e("Blogger", "blog", "www.googleapis.com/blogger/v3/blogs/*/posts"),
    _e("Tumblr", "blog", "api.tumblr.com/v2/blog/*/post", "tumblr.com/api/v2/blog/*/post"),
    _e("Medium", "blog", "api.medium.com/v1/users/*/posts",
       "api.medium.com/v1/publications/*/posts"),
    _e("Substack", "blog", "substack.com/api/v1/drafts", "substack.com/api/v1/image"),
)


_SLASHES = re.compile(r"/{2,}")
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"^(\*|{_LABEL}(\.{_LABEL})*)$")


def parse_pattern(text: str) -> tuple[str, re.Pattern[str]]:
    """`host/path` -> (host, compiled path prefix); raises ValueError saying what is wrong."""
    host, slash, path = text.strip().partition("/")
    host = host.lower().removeprefix("*.") if host != ANY_HOST else host
    if not _HOST.match(host) or (host != ANY_HOST and "." not in host):
        raise ValueError(f"'{text}' does not start with a host name (or * for any host)")
    path = "/" + path if slash else "/"
    if any(ch.isspace() for ch in path) or "?" in path or "#" in path:
        raise ValueError(f"'{text}': the path may not hold spaces, a query or a fragment")
    deep = [
        "[^/]+".join(re.escape(piece) for piece in part.split("*"))
        for part in path.split("**/")
    ]
    return host, re.compile("(?:[^/]+/)*".join(deep), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Compiled:
    service: str
    path: re.Pattern[str]
    methods: frozenset[str]


@dataclass(frozen=True, slots=True)
class Publishing:
    """The publishing endpoints in force for one agency: the shipped list, less the services it
    removes, plus its own."""

    endpoints: tuple[Endpoint, ...] = DEFAULT_ENDPOINTS
    _by_host: dict[str, tuple[_Compiled, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_host: dict[str, list[_Compiled]] = {}
        for endpoint in self.endpoints:
            for pattern in endpoint.patterns:
                host, path = parse_pattern(pattern)
                by_host.setdefault(host, []).append(
                    _Compiled(endpoint.service, path, endpoint.methods))
        self._by_host.update({host: tuple(found) for host, found in by_host.items()})

    @classmethod
    def of(cls, add: Iterable[Endpoint] = (), remove: Iterable[str] = ()) -> Publishing:
        removed = set(remove)
        kept = tuple(e for e in DEFAULT_ENDPOINTS if e.service not in removed)
        return cls((*kept, *add))

    def service_for(self, host: str, path: str, method: str) -> str | None:
        """The service a write to `host` + `path` publishes to, or None when it is not one."""
        method = method.upper()
        if method not in PUBLISH_METHODS:
            return None
        path = _SLASHES.sub("/", path)  # servers (nginx's merge_slashes) read // as /
        candidates = [host]
        dot = host.find(".")
        while dot != -1:
            candidates.append(host[dot + 1 :])
            dot = host.find(".", dot + 1)
        candidates.append(ANY_HOST)
        for name in candidates:
            for compiled in self._by_host.get(name, ()):
                if method in compiled.methods and compiled.path.match(path):
                    return compiled.service
        return None

    def services(self) -> tuple[str, ...]:
        return tuple(e.service for e in self.endpoints)
