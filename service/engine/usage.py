"""What serving a request cost."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Usage:
    """What a request cost, for usage fields, headers and metrics."""

    item_tokens: list[int] = field(default_factory=list)
    cached_tokens: int = 0
    truncated: int = 0
    tokenize_s: float = 0.0
    queue_s: float = 0.0
    inference_s: float = 0.0
    #: Windows computed for inputs embedded in chunks (0: none chunked).
    chunks: int = 0

    @property
    def tokens(self) -> int:
        """Tokens computed for the request (cache hits cost none)."""
        return sum(self.item_tokens)

    @property
    def input_tokens(self) -> int:
        """Tokens of every input, computed or served from the cache (OpenAI's usage)."""
        return self.tokens + self.cached_tokens

    def merged(self, other: Usage | None) -> Usage:
        """This usage plus ``other`` (a request computed in two parts)."""
        if other is None:
            return self
        return Usage(
            item_tokens=self.item_tokens + other.item_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            truncated=self.truncated + other.truncated,
            tokenize_s=self.tokenize_s + other.tokenize_s,
            queue_s=max(self.queue_s, other.queue_s),
            inference_s=self.inference_s + other.inference_s,
            chunks=self.chunks + other.chunks,
        )
