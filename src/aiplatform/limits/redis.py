"""Buckets in Redis, shared by every gateway replica.

One Lua script reads every bucket a request touches, refills them to Redis's own clock
(``TIME``, so replicas whose clocks differ still agree), and takes from all of them or none,
atomically: Redis runs a script without interleaving other commands. A bucket is a hash
(``level``, ``at`` in microseconds) that expires once it would be full again, so idle keys and
users leave nothing behind. Every call has a deadline; past it, or with Redis unreachable, the
request is refused with 503 rather than let through unlimited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from aiplatform.limits.limiter import (
    PERIOD_S,
    Charge,
    RateLimiterUnavailableError,
    Verdict,
    shortfall_s,
)

__all__ = ["KEY_PREFIX", "RedisLimiter"]

logger = logging.getLogger(__name__)

KEY_PREFIX = "aiplatform:ratelimit:"
#: Connections to Redis one server holds at most; more concurrent calls wait for one (within
#: the deadline).
MAX_CONNECTIONS = 64

#: KEYS: one per bucket. ARGV[1]: "take" (all or nothing) or "settle" (never refuses);
#: ARGV[2]: the period in microseconds; then per bucket its limit and the amount.
#: Returns "1" (taken) or "0" (refused), then each bucket's level: after the take, or before
#: it (refilled to now) when refused.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[2])
local n = #KEYS
local limits, amounts, levels = {}, {}, {}
for i = 1, n do
  limits[i] = tonumber(ARGV[1 + 2 * i])
  amounts[i] = tonumber(ARGV[2 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level = limits[i]
  if state[1] and state[2] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(limits[i], tonumber(state[1]) + elapsed * limits[i] / period)
  end
  levels[i] = level
end
local out = {'1'}
if ARGV[1] == 'take' then
  for i = 1, n do
    if levels[i] < amounts[i] then
      out[1] = '0'
      for j = 1, n do out[j + 1] = string.format('%.17g', levels[j]) end
      return out
    end
  end
end
for i = 1, n do
  local level = math.min(limits[i], levels[i] - amounts[i])
  if level >= limits[i] then
    redis.call('DEL', KEYS[i])
  else
    redis.call('HSET', KEYS[i], 'level', string.format('%.17g', level),
      'at', string.format('%.17g', now))
    local full_ms = math.ceil((limits[i] - level) * period / limits[i] / 1000)
    redis.call('PEXPIRE', KEYS[i], full_ms + 1000)
  end
  out[i + 1] = string.format('%.17g', level)
end
return out
"""


class RedisLimiter:
    def __init__(self, url: str, *, timeout_s: float, prefix: str = KEY_PREFIX) -> None:
        self._timeout_s = timeout_s
        self._prefix = prefix
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout_s,  # waiting for a free connection
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # the deadline is the caller's; a retry would pass it
        )
        self._client = Redis(connection_pool=pool)
        self._script = self._client.register_script(_SCRIPT)

    async def acquire(self, charges: Sequence[Charge]) -> Verdict:
        allowed, levels = await self._run("take", charges)
        if allowed:
            return Verdict(allowed=True, levels=levels)
        wait = shortfall_s(charges, levels)
        return Verdict(allowed=False, levels=levels, retry_after_s=wait or 0.0)

    async def settle(self, charges: Sequence[Charge]) -> None:
        await self._run("settle", charges)

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)

    async def _run(self, mode: str, charges: Sequence[Charge]) -> tuple[bool, tuple[float, ...]]:
        keys = [self._prefix + charge.key for charge in charges]
        args: list[str | int | float] = [mode, int(PERIOD_S * 1_000_000)]
        for charge in charges:
            args += [charge.limit, repr(float(charge.amount))]
        try:
            with anyio.fail_after(self._timeout_s):
                reply = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("rate limiter: Redis call failed: %s: %s", type(exc).__name__, exc)
            raise RateLimiterUnavailableError(
                "The rate limiter cannot be reached; try again shortly."
            ) from exc
        return reply[0] == b"1", tuple(float(level) for level in reply[1:])
