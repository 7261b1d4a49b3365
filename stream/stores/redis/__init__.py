"""The worker's state store in Redis (one Redis or a Redis Cluster).

keys (the layout, in one place), scripts (the Lua in `scripts/*.lua`, run by SHA1), codec (join
entries as bytes, the model table), partitions (running scripts on partitions, the clock),
transactions (a batch as an optimistic transaction), windows (sealing and claiming), counts (what
no window carries), outbox (the bytes to publish), store (`RedisStore`, the parts put together).
"""

from stream.stores.redis.store import RedisStore

__all__ = ["RedisStore"]
