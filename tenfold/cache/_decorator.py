"""``@cached``: cache an async function (or FastAPI dependency) by its arguments.

    @cached(namespace="profile", key=("user_id",), tags=lambda user_id, **_: [f"user:{user_id}"])
    async def load_profile(user_id: int, session: DbSession) -> Profile: ...

* ``key``: ``None`` (every parameter), a sequence of parameter names, or a
  callable with the function's parameters returning a key part or a tuple of
  parts. Parts are typed (``tenfold.cache.key``): user input is hashed, never
  concatenated. Unknown names fail at decoration time.
* ``tags``: strings, or a callable with the function's parameters returning them.
* ``ttl``: seconds, ``None`` for no expiry, ``...`` (default) for the namespace's.
* The signature is kept (``functools.wraps``, ``ParamSpec``), so FastAPI
  resolves the wrapped function's parameters as before.
* Values come back as the serializer returns them; when the function has a
  return annotation (a pydantic model, a dataclass, ``list[Team]``...), values
  read from Redis are validated back into that type with a pydantic
  ``TypeAdapter``, so a hit and a miss return the same kind of object.
* The hit path builds the key once per distinct arguments (a bounded memo)
  and reads L1 without creating the loader: see benchmarks/bench_cache.py.

How the function finds its ``Cache`` is described in ``_binding``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import EllipsisType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from tenfold._errors import ConfigurationError
from tenfold.cache._binding import current_cache
from tenfold.cache._cache import Cache
from tenfold.cache._keys import key as build_key
from tenfold.cache._levels import NEGATIVE, Namespace

__all__ = ["CachedFunction", "cached"]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)
_MEMO_MAX = 4096
_EMPTY = inspect.Parameter.empty
_NO_RESTORE = frozenset({None, type(None), Any, dict, list, str, int, float, bool, object})


class CachedFunction(Protocol[P, R]):
    """What ``@cached`` returns: the function, plus its cache controls."""

    __wrapped__: Callable[P, Awaitable[R]]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]: ...

    def bind(self, cache: Cache | None) -> None:
        """Use ``cache`` from now on (``None``: the current one again)."""

    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The key a call with these arguments reads."""
        ...

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Delete the entry a call with these arguments would read."""


class _KeyBuilder:
    """Arguments -> key string, memoized by the key values and their types."""

    def __init__(
        self,
        fn: Callable[..., Any],
        namespace: str,
        key: Sequence[str] | Callable[..., Any] | None,
    ) -> None:
        self.namespace = namespace
        self.signature = inspect.signature(fn)
        self.custom = key if callable(key) else None
        params = self.signature.parameters
        names = list(params) if key is None or callable(key) else list(key)
        unknown = [n for n in names if n not in params]
        variadic = (
            [
                n
                for n in names
                if params[n].kind in (params[n].VAR_POSITIONAL, params[n].VAR_KEYWORD)
            ]
            if not unknown
            else []
        )
        if unknown or (variadic and self.custom is None):
            raise TypeError(
                f"@cached on {fn.__qualname__}: key parameters {unknown or variadic} are not "
                "plain parameters of the function; pass key=(names...) or a callable"
            )
        positional = [
            p.name
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        self.spec = [
            (positional.index(n) if n in positional else None, n, params[n].default) for n in names
        ]
        self.memo: dict[tuple[Any, ...], str] = {}
        self.all_positional = [index for index, _, _ in self.spec] == list(range(len(self.spec)))
        self.single = names[0] if len(names) == 1 else None

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self.custom is not None:
            parts = self.custom(*args, **kwargs)
            return build_key(self.namespace, *(parts if isinstance(parts, tuple) else (parts,)))
        if not kwargs and self.all_positional and len(args) == len(self.spec):
            values: Sequence[Any] = args  # the common call: f(a, b) with every argument a key
        elif self.single is not None and not args and len(kwargs) == 1 and self.single in kwargs:
            values = (kwargs[self.single],)  # FastAPI calls dependencies with keywords
        else:
            values = self._values(args, kwargs)
        # Types are part of the memo key: 1, 1.0 and True are equal dict keys, not equal keys.
        memo_key = (*values, *map(type, values))
        try:
            return self.memo[memo_key]
        except KeyError:
            pass
        except TypeError:  # an unhashable part (a list): build it every time
            return build_key(self.namespace, *values)
        built = build_key(self.namespace, *values)
        if len(self.memo) >= _MEMO_MAX:
            self.memo.clear()
        self.memo[memo_key] = built
        return built

    def _values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        values = []
        for index, name, default in self.spec:
            if index is not None and index < len(args):
                values.append(args[index])
            elif name in kwargs:
                values.append(kwargs[name])
            elif default is not _EMPTY:
                values.append(default)
            else:  # the call itself will raise the TypeError
                raise TypeError(f"missing argument {name!r}")
        return values


class _Restorer:
    """Validates values read back from L2 into the function's return type (lazily built)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.adapter: Any = None
        self.resolved = False

    def __call__(self, value: Any) -> Any:
        if not self.resolved:
            self._resolve()
        return value if self.adapter is None else self.adapter.validate_python(value)

    def _resolve(self) -> None:
        self.resolved = True
        try:
            hint = typing.get_type_hints(self.fn).get("return")
        except Exception:  # unresolvable forward reference: values stay as stored
            return
        try:
            if hint in _NO_RESTORE:
                return
        except TypeError:  # an unhashable annotation: validate through it anyway
            pass
        from pydantic import TypeAdapter

        self.adapter = TypeAdapter(hint)


class _Binding(Generic[R]):
    """The cache a function uses and what was resolved for it (namespace policy)."""

    __slots__ = ("bound", "cache", "namespace", "ns")

    def __init__(self, namespace: str, bound: Cache | None) -> None:
        self.namespace = namespace
        self.bound = bound
        self.cache: Cache | None = None
        self.ns: Namespace | None = None

    def resolve(self, qualname: str) -> Cache:
        cache = self.bound or current_cache()
        if cache is None:
            raise ConfigurationError(
                f"@cached function {qualname} has no cache: bind one (cache.bind(fn), "
                "@cached(cache=...)) or make one current (CacheMiddleware, use_cache)"
            )
        if cache is not self.cache or self.ns is None:
            self.ns = cache.namespace("", self.namespace)
            self.cache = cache
        return cache


def cached(
    *,
    namespace: str,
    key: Sequence[str] | Callable[..., Any] | None = None,
    ttl: float | EllipsisType | None = ...,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    cache: Cache | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], CachedFunction[P, R]]:
    """Cache an async function's results in ``namespace``; see the module docstring."""
    build_key(namespace)  # a bad namespace fails here, at import, not at the first call
    static_tags = None if callable(tags) else tuple(tags)  # type: ignore[arg-type]

    def decorate(fn: Callable[P, Awaitable[R]]) -> CachedFunction[P, R]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"@cached needs an async function; {fn.__qualname__} is not (wrap the sync "
                "work in `async def` + `anyio.to_thread.run_sync`)"
            )
        make_key = _KeyBuilder(fn, namespace, key)
        restore = _Restorer(fn)
        binding: _Binding[R] = _Binding(namespace, cache)
        qualname = fn.__qualname__

        def tags_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
            if static_tags is not None:
                return static_tags
            return tuple(tags(*args, **kwargs))  # type: ignore[operator]

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            c = binding.bound or current_cache()
            if c is None or c is not binding.cache:
                c = binding.resolve(qualname)
            ns = binding.ns
            assert ns is not None
            k = make_key(args, kwargs)
            if ns.l1:
                # The hit path, inlined (LocalLRU.get_entry + XFetch check): no loader, no tags.
                l1 = c._levels.l1
                entry = l1._data.get(k)
                if entry is not None:
                    now = l1._clock()
                    if entry.expires > now and now < entry.meta[0]:
                        l1._touch(k)
                        ns.stats.l1_hits += 1
                        value = entry.value
                        return None if value is NEGATIVE else value  # type: ignore[return-value]
            ttl_ = ns.ttl if ttl is ... else ttl
            loader = functools.partial(fn, *args, **kwargs)
            return await c._filler.get_or_load(  # type: ignore[no-any-return]
                k, loader, ns, ttl_, tags_for(args, kwargs), restore
            )

        def bind(new: Cache | None) -> None:
            binding.bound = new

        def cache_key(*args: P.args, **kwargs: P.kwargs) -> str:
            return make_key(args, kwargs)

        async def invalidate(*args: P.args, **kwargs: P.kwargs) -> None:
            c = binding.resolve(qualname)
            await c.delete(make_key(args, kwargs))

        wrapper.bind = bind  # type: ignore[attr-defined]
        wrapper.cache_key = cache_key  # type: ignore[attr-defined]
        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
