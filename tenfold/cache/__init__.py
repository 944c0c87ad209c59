"""Caching: a two-level cache with tags, single flight and cross-instance invalidation.

    Cache                    the component (``cache``): L1 in process, L2 in Redis or Cluster
    cached                   ``@cached(namespace=..., key=..., ttl=..., tags=...)``
    CacheDep, get_cache      FastAPI dependency; ``CacheMiddleware`` binds the app's cache
    key, tag                 keys from typed parts (hostile input hashed, never concatenated)
    LocalLRU                 the L1: bounded by entries and bytes, TTL
    CacheBackend             the L2 contract; ``MemoryBackend`` and ``RedisBackend``
    HttpCacheMiddleware      HTTP response caching, opt-in per route with ``cache_response``
    PROBLEMS                 how ``CacheUnavailable`` (503) and ``CacheSerializationError``
                             (500) are answered, for a ``tenfold.web.ProblemRegistry``

Settings are ``tenfold.CacheSettings`` (``TENFOLD_CACHE__*``). See docs/cache.md.
"""

from tenfold._settings import DEFAULT_NAMESPACES, CacheSettings, NamespacePolicy
from tenfold.cache._backend import CacheBackend, Subscription
from tenfold.cache._binding import CacheDep, CacheMiddleware, current_cache, get_cache, use_cache
from tenfold.cache._cache import Cache
from tenfold.cache._decorator import CachedFunction, cached
from tenfold.cache._errors import PROBLEMS, CacheSerializationError, CacheUnavailable
from tenfold.cache._http import HttpCacheMiddleware
from tenfold.cache._http_policy import IMMUTABLE_MAX_AGE, CachePolicy, cache_response
from tenfold.cache._http_request import DEFAULT_BYPASS_HEADERS, DEFAULT_FORWARDED_HEADERS
from tenfold.cache._http_store import (
    BackendResponseStore,
    CacheResponseStore,
    EntryStore,
    LocalResponseStore,
    ResponseStore,
    StoredResponse,
)
from tenfold.cache._keys import KeyPart, key, tag, tag_key
from tenfold.cache._l1 import MISS, Entry, LocalLRU
from tenfold.cache._memory import MemoryBackend
from tenfold.cache._redis import RedisBackend
from tenfold.cache._serde import MsgpackSerializer, OrjsonSerializer, PickleSerializer, Serializer

__all__ = [
    "DEFAULT_BYPASS_HEADERS",
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_NAMESPACES",
    "IMMUTABLE_MAX_AGE",
    "MISS",
    "PROBLEMS",
    "BackendResponseStore",
    "Cache",
    "CacheBackend",
    "CacheDep",
    "CacheMiddleware",
    "CachePolicy",
    "CacheResponseStore",
    "CacheSerializationError",
    "CacheSettings",
    "CacheUnavailable",
    "CachedFunction",
    "Entry",
    "EntryStore",
    "HttpCacheMiddleware",
    "KeyPart",
    "LocalLRU",
    "LocalResponseStore",
    "MemoryBackend",
    "MsgpackSerializer",
    "NamespacePolicy",
    "OrjsonSerializer",
    "PickleSerializer",
    "RedisBackend",
    "ResponseStore",
    "Serializer",
    "StoredResponse",
    "Subscription",
    "cache_response",
    "cached",
    "current_cache",
    "get_cache",
    "key",
    "tag",
    "tag_key",
    "use_cache",
]
