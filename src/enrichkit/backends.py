"""Where a run keeps its answers and counts its rate: a folder and a local limiter, or one Redis server
that many processes and machines share (``RunOptions.cache``, ``enrichkit[redis]``)."""

from __future__ import annotations

from enrichkit.cache import Cache, RowCache, default_dir
from enrichkit.errors import UserError
from enrichkit.limiter import Limiter, RateLimiter
from enrichkit.options import RunOptions
from enrichkit.providers.base import Provider


def _redis_extra() -> None:
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
    _redis_extra()
    from enrichkit.redis_cache import RedisCache

    return RedisCache(options.cache)


def open_limiter(options: RunOptions, provider: Provider) -> Limiter:
    """The run's limiter: the one given, one shared through the Redis cache by every run on the same
    provider and model (its RPM/TPM and its 429 pauses), else a local one."""
    if options.limiter is not None:
        return options.limiter
    if options.cache is None or not options.use_cache:
        return RateLimiter(options.rpm, options.tpm)
    _redis_extra()
    from enrichkit.shared_limit import RedisRateLimiter

    return RedisRateLimiter(options.cache, options.rpm, options.tpm, name=f"{provider.name}:{provider.model}")
