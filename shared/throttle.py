"""Failed sign-in throttling per account and per client address (moving window, `limits`).

Counts live in this process's memory: with N worker processes an attacker gets up to N
times the allowance (the README says so). Only failures count, so a user who types the
password right is never slowed; a success clears that account's count.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from shared.errors import TooManyRequests

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Refuses sign-in attempts (429) once an account or an address has failed too often."""

    def __init__(self, *, per_account: int, per_address: int, window_s: int) -> None:
        self.window_s = window_s
        self._per_account = RateLimitItemPerSecond(per_account, window_s)
        self._per_address = RateLimitItemPerSecond(per_address, window_s)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, account: str, address: str | None) -> None:
        """Raise TooManyRequests (with Retry-After) when the account or address is locked out."""
        for item, kind, key in self._keys(account, address):
            if not self._limiter.test(item, kind, key):
                stats = self._limiter.get_window_stats(item, kind, key)
                retry_after_s = max(1, math.ceil(stats.reset_time - time.time()))
                whose = "for this account" if kind == "account" else "from this address"
                raise TooManyRequests(
                    f"too many failed sign-ins {whose}; try again in {retry_after_s} seconds",
                    retry_after_s=retry_after_s,
                )

    def failed(self, account: str, address: str | None) -> None:
        """Count one failed attempt against the account and the address."""
        for item, kind, key in self._keys(account, address):
            self._limiter.hit(item, kind, key)

    def succeeded(self, account: str) -> None:
        """Forget the account's failures (the address keeps its count)."""
        self._limiter.clear(self._per_account, "account", _account_key(account))

    def _keys(
        self, account: str, address: str | None
    ) -> list[tuple[RateLimitItemPerSecond, str, str]]:
        keys = [(self._per_account, "account", _account_key(account))]
        if address:
            keys.append((self._per_address, "address", address))
        return keys


def _account_key(account: str) -> str:
    return account.strip().lower()
