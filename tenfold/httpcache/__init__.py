"""HTTP response caching, opt-in per route with ``cache_response``.

    cache_response           the route decorator: max_age, s_maxage, stale_while_revalidate,
                             per_user, vary, immutable
    HttpCacheMiddleware      plain ASGI: serves hits before routing, ETag/304, stores misses
    ResponseStore            where entries live: CacheResponseStore (the app's Cache),
                             BackendResponseStore (any CacheBackend), LocalResponseStore
    HttpCacheExtension       the platform extension (``TENFOLD_HTTPCACHE__*``)

Requests with a principal, a credential header or a session cookie never
read or fill a shared entry. See docs/cache.md.
"""

from tenfold.httpcache._extension import HttpCacheExtension
from tenfold.httpcache._middleware import HttpCacheMiddleware
from tenfold.httpcache._policy import IMMUTABLE_MAX_AGE, CachePolicy, cache_response
from tenfold.httpcache._request import (
    DEFAULT_BYPASS_HEADERS,
    DEFAULT_CREDENTIAL_HEADERS,
    DEFAULT_FORWARDED_HEADERS,
    DEFAULT_SESSION_COOKIES,
)
from tenfold.httpcache._settings import HttpCacheSettings
from tenfold.httpcache._store import (
    BackendResponseStore,
    CacheResponseStore,
    EntryStore,
    LocalResponseStore,
    ResponseStore,
    StoredResponse,
)

__all__ = [
    "DEFAULT_BYPASS_HEADERS",
    "DEFAULT_CREDENTIAL_HEADERS",
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_SESSION_COOKIES",
    "IMMUTABLE_MAX_AGE",
    "BackendResponseStore",
    "CachePolicy",
    "CacheResponseStore",
    "EntryStore",
    "HttpCacheExtension",
    "HttpCacheMiddleware",
    "HttpCacheSettings",
    "LocalResponseStore",
    "ResponseStore",
    "StoredResponse",
    "cache_response",
]
