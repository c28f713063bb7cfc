"""Where a run keeps its answers and counts its rate: a folder and a local limiter, or one Redis server
that many processes and machines share (``RunOptions.cache``, ``enrichkit[redis]``)."""

from __future__ import annotations

from enrichkit.cache.base import Cache
from enrichkit.cache.folder import RowCache, default_dir
from enrichkit.errors import UserError
from enrichkit.options import RunOptions


def need_redis() -> None:
    """A one-line error when redis-py is missing (the extra ``enrichkit[redis]``)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        raise UserError("a Redis cache needs redis-py: pip install 'enrichkit[redis]'") from None


def open_cache(options: RunOptions) -> Cache | None:
    """The run's cache: None with ``use_cache=False``, Redis when ``cache`` names a server, else the folder."""
    if not options.use_cache:
        return None
    if options.cache is None:
        return RowCache(options.cache_dir or default_dir())
    need_redis()
    from enrichkit.cache.redis import RedisCache

    return RedisCache(options.cache)
