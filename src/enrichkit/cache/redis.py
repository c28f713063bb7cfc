"""A cache many machines share: the per-row cache in Redis (``enrichkit[redis]``), and in-flight leases.

The keys are ``RowCache``'s row keys under a prefix, the values the same entry JSON, and the same rule
holds: only validated values, nothing expires. A pack is one round trip each way (``MGET``; one
pipeline of ``MSET``, the end of its leases and a count of writes). A lease (``SET PX``, taken for the rows
of a pack that are free) keeps a row in flight in one worker: the others leave it to that worker. A
thread renews the leases a worker holds every third of the lease time, so a pack may wait on the rate
limit or a 429 as long as it must; a worker that dies stops renewing, and its rows are free after
the lease time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

import redis

from enrichkit.cache.entry import Entry, decode
from enrichkit.cache.leases import lease_time
from enrichkit.errors import StorageError
from enrichkit.providers.redact import redacted_url

_QUERY_KEYS = 500

# KEYS: the n lease keys, then the n row keys; ARGV[1]: this holder's token, ARGV[2]: milliseconds. All
# free (or ours) and unanswered: take (or renew) every lease and return {}; else take none and return
# the indexes (1-based) of the rows another holds or that are stored already (the caller reads them).
_LEASE = """
local n = #KEYS / 2
local taken = {}
for i = 1, n do
  local owner = redis.call('GET', KEYS[i])
  if (owner and owner ~= ARGV[1]) or redis.call('EXISTS', KEYS[n + i]) == 1 then taken[#taken + 1] = i end
end
local t = 1
for i = 1, n do
  if taken[t] == i then t = t + 1 else redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
end
return taken
"""

# KEYS: lease keys; ARGV[1]: token, ARGV[2]: milliseconds. Extend the leases this holder still has.
_RENEW = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 0
"""

# KEYS: lease keys; ARGV[1]: token. Drop the leases this holder has.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


@contextmanager
def guarded(url: str, doing: str) -> Iterator[None]:
    """Redis errors in the block as a ``StorageError`` of one line (the URL without its password)."""
    try:
        yield
    except redis.RedisError as exc:
        raise StorageError(f"redis at {redacted_url(url)}: cannot {doing} ({exc})") from exc


def connect(url: str) -> redis.Redis:
    """A client of the Redis server at ``url`` (``redis://host:6379/0``, ``rediss://``, ``unix://``)."""
    return redis.Redis.from_url(url, socket_connect_timeout=10, socket_timeout=30)


class RedisCache:
    """Validated answers in Redis, shared by every process and machine that names the same server."""

    remote = True

    def __init__(self, url: str, *, prefix: str = "enrichkit", lease_seconds: float | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.lease_seconds = lease_time() if lease_seconds is None else lease_seconds
        self.damaged = 0
        self._token = uuid.uuid4().hex
        self._client = connect(url)
        self._held: set[str] = set()  # the keys this object leases, renewed by ``_renewer``
        self._held_lock = threading.Lock()
        self._closed = threading.Event()
        self._renewer: threading.Thread | None = None
        self._writes = f"{prefix}:writes"
        with self._guard("open"):
            self._expected = int(self._client.get(self._writes) or 0)

    def _guard(self, doing: str) -> AbstractContextManager[None]:
        return guarded(self.url, doing)

    def _row(self, key: str) -> str:
        return f"{self.prefix}:row:{key}"

    def _lease(self, key: str) -> str:
        return f"{self.prefix}:lease:{key}"

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Look up many keys, a few hundred in one ``MGET``; a damaged entry is a miss, counted in
        ``damaged`` and deleted (so that its row is asked again)."""
        wanted = list(keys)
        found: dict[str, Entry] = {}
        damaged: list[str] = []
        with self._guard("read"):
            for start in range(0, len(wanted), _QUERY_KEYS):
                part = wanted[start : start + _QUERY_KEYS]
                for key, raw in zip(part, self._client.mget([self._row(k) for k in part]), strict=True):
                    if raw is None:
                        continue
                    entry = decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                    if entry is None:
                        damaged.append(self._row(key))
                    else:
                        found[key] = entry
            if damaged:
                self.damaged += len(damaged)
                self._client.delete(*damaged)
        return found

    def put_many(self, entries: Mapping[str, Entry]) -> None:
        """Store entries and end their leases atomically, in one round trip."""
        if not entries:
            return
        stored = time.time()
        pipe = self._client.pipeline(transaction=True)
        pipe.mset({self._row(k): e.dumps(e.stored_at or stored) for k, e in entries.items()})
        pipe.delete(*(self._lease(k) for k in entries))
        pipe.incrby(self._writes, len(entries))
        with self._guard("write"):
            pipe.execute()
        self._expected += len(entries)
        self._forget(entries)

    def shared(self) -> bool:
        """Always: any worker anywhere may ask the same rows."""
        return True

    def written_elsewhere(self) -> bool:
        """Whether anyone else stored entries since this object opened: one ``GET``."""
        with self._guard("read"):
            return int(self._client.get(self._writes) or 0) != self._expected

    def lease(self, keys: Sequence[str]) -> list[str]:
        """Take (or renew) the leases of the ``keys`` that are free; the keys others hold, or that are
        stored already (read them: ``get_many``). Nobody waits holding a lease, so none can deadlock."""
        if not keys or self.lease_seconds <= 0:
            return []
        with self._guard("lease"):
            names = [*map(self._lease, keys), *map(self._row, keys)]
            held: Any = self._client.eval(_LEASE, len(names), *names, self._token, self._lease_ms())
        taken = [keys[i - 1] for i in held]
        with self._held_lock:
            self._held.update(set(keys).difference(taken))
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, name="enrichkit-leases", daemon=True)
            self._renewer.start()
        return taken

    def release(self, keys: Iterable[str]) -> None:
        """End this object's leases of ``keys`` (a row it gave up on: the others may ask it)."""
        keys = self._forget(keys)
        if keys:
            names = [self._lease(k) for k in keys]
            with self._guard("release"):
                self._client.eval(_RELEASE, len(names), *names, self._token)

    def forget(self, keys: Iterable[str]) -> int:
        """Delete the entries of ``keys``; how many there were."""
        names = [self._row(k) for k in keys]
        if not names:
            return 0
        with self._guard("write"):
            return int(self._client.delete(*names))

    def _lease_ms(self) -> int:
        return max(1, round(self.lease_seconds * 1000))

    def _forget(self, keys: Iterable[str]) -> list[str]:
        """Stop renewing ``keys``; the list of them."""
        keys = list(keys)
        with self._held_lock:
            self._held.difference_update(keys)
        return keys

    def _renew(self) -> None:
        """Every third of the lease time, extend the leases held (a failed round is tried at the next)."""
        while not self._closed.wait(self.lease_seconds / 3):
            with self._held_lock:
                held = list(self._held)
            for start in range(0, len(held), _QUERY_KEYS):
                names = [self._lease(k) for k in held[start : start + _QUERY_KEYS]]
                try:
                    self._client.eval(_RENEW, len(names), *names, self._token, self._lease_ms())
                except redis.RedisError:
                    break

    def __len__(self) -> int:
        """How many entries there are (a scan: for tests and tools, not for runs)."""
        with self._guard("read"):
            return sum(1 for _ in self._client.scan_iter(match=f"{self.prefix}:row:*", count=1000))

    def close(self) -> None:
        """Stop renewing, give up the leases still held (rows a stopped run never answered), disconnect."""
        self._closed.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._held_lock:
            held, self._held = list(self._held), set()
        with suppress(StorageError):  # the server is gone: the leases end after their time
            self.release(held)
        self._client.close()
