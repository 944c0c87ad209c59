"""Scope keys the kernel's own layers share.

``RESPONSE_HEADERS``: the request-context layer (which already wraps ``send``
to add the request id) sets it to ``None`` for each HTTP request; an inner
kernel layer that must add response headers stores a function ``headers ->
headers`` under it instead of wrapping ``send`` a second time, and the
request-context layer applies it to the response start. When the key is
absent (an app wired without that layer), the inner layer wraps ``send``
itself. One ``send`` wrapper per request instead of two.
"""

from __future__ import annotations

__all__ = ["RESPONSE_HEADERS"]

RESPONSE_HEADERS = "tenfold.response_headers"
