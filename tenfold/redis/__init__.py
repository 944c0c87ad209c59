"""Redis for a tenfold process: one hub, shared by every capability.

    RedisHub            one client (standalone or Cluster), one in-flight bound, one
                        multiplexed pub/sub connection and the script batcher; the
                        platform builds it from ``TENFOLD_REDIS__*`` (``platform.get(RedisHub)``)
    PubSub              the pub/sub connection: ``listen(channel, listener)``, reconnect,
                        resubscribe and a read-back hook (``Listener.on_live``)
    ScriptBatcher       Lua calls of one loop iteration sent as one pipeline
    RedisUnavailable    what a failed command raises (never the driver's error, never a host)
    Slots               the in-flight bound
    hash_tag            the Cluster hash tag of a key
    LeaderLease         one leader per name across processes, with a fencing token

See docs/architecture.md ("Redis: one hub per process").
"""

from tenfold.redis._batch import MAX_BATCH, ScriptBatcher
from tenfold.redis._clients import (
    PROBLEMS,
    REDIS_ERRORS,
    RedisUnavailable,
    Slots,
    cluster_client,
    cluster_seeds,
    hash_tag,
    standalone_client,
)
from tenfold.redis._hub import RedisHub, split_hub_options
from tenfold.redis._leader import LeaderLease
from tenfold.redis._pubsub import PubSub

__all__ = [
    "MAX_BATCH",
    "PROBLEMS",
    "REDIS_ERRORS",
    "LeaderLease",
    "PubSub",
    "RedisHub",
    "RedisUnavailable",
    "ScriptBatcher",
    "Slots",
    "cluster_client",
    "cluster_seeds",
    "hash_tag",
    "split_hub_options",
    "standalone_client",
]
