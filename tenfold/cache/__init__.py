"""Caching: a two-level cache with tags, single flight and cross-instance invalidation.

    Cache                    the component (``cache``): L1 in process, L2 in Redis or Cluster
    cached                   ``@cached(namespace=..., key=..., ttl=..., tags=...)``
    CacheDep, get_cache      FastAPI dependency; ``CacheMiddleware`` binds the app's cache
    key, tag                 keys from typed parts (hostile input hashed, never concatenated)
    LocalLRU                 the L1: bounded by entries and bytes, TTL
    CacheBackend             the L2 contract; ``MemoryBackend`` and ``RedisBackend``
    CacheExtension           the platform extension (``TENFOLD_CACHE__*``)
    PROBLEMS                 how ``CacheUnavailable`` (503) and ``CacheSerializationError``
                             (500) are answered, for a ``tenfold.web.ProblemRegistry``

HTTP response caching is its own package, ``tenfold.httpcache``.

Settings are ``tenfold.CacheSettings`` (``TENFOLD_CACHE__*``). See docs/cache.md.
"""

from tenfold.cache._backend import CacheBackend, Subscription
from tenfold.cache._binding import CacheDep, CacheMiddleware, current_cache, get_cache, use_cache
from tenfold.cache._cache import Cache
from tenfold.cache._decorator import CachedFunction, cached
from tenfold.cache._errors import PROBLEMS, CacheSerializationError, CacheUnavailable
from tenfold.cache._extension import CacheExtension
from tenfold.cache._keys import KeyPart, key, tag, tag_key
from tenfold.cache._l1 import MISS, Entry, LocalLRU
from tenfold.cache._memory import MemoryBackend
from tenfold.cache._redis import RedisBackend
from tenfold.cache._serde import MsgpackSerializer, OrjsonSerializer, PickleSerializer, Serializer
from tenfold.cache._settings import CacheSettings, NamespacePolicy

__all__ = [
    "MISS",
    "PROBLEMS",
    "Cache",
    "CacheBackend",
    "CacheDep",
    "CacheExtension",
    "CacheMiddleware",
    "CacheSerializationError",
    "CacheSettings",
    "CacheUnavailable",
    "CachedFunction",
    "Entry",
    "KeyPart",
    "LocalLRU",
    "MemoryBackend",
    "MsgpackSerializer",
    "NamespacePolicy",
    "OrjsonSerializer",
    "PickleSerializer",
    "RedisBackend",
    "Serializer",
    "Subscription",
    "cached",
    "current_cache",
    "get_cache",
    "key",
    "tag",
    "tag_key",
    "use_cache",
]
