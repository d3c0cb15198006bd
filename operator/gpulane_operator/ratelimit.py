"""A token bucket (pure): how long a caller waits before its next request may go out."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; taking one when none is left means waiting for it."""

    rate: float
    burst: float
    tokens: float
    at_s: float  # when ``tokens`` was last brought up to date

    @staticmethod
    def full(rate: float, burst: float, now_s: float) -> TokenBucket:
        return TokenBucket(rate, burst, burst, now_s)

    def take(self, now_s: float) -> tuple[TokenBucket, float]:
        """(the bucket after taking one token, seconds to wait before using it: 0 when one was there)."""
        tokens = min(self.burst, self.tokens + max(0.0, now_s - self.at_s) * self.rate)
        wait_s = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        return replace(self, tokens=tokens - 1.0, at_s=now_s), wait_s
