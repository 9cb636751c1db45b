"""Batch planning by padded-token budget."""

from __future__ import annotations


def plan_batches(lengths: list[int], max_tokens: int, max_items: int) -> list[list[int]]:
    """Group item indices into batches whose padded cost (items x longest) fits ``max_tokens``.

    Items are taken shortest first so that each batch holds inputs of similar length and padding stays
    small. An item longer than the budget on its own still gets a batch of one (it was accepted, so it
    must be answered). Returns lists of indices into ``lengths``.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[index]  # ascending order: the newcomer is the longest so far
        if current and ((len(current) + 1) * longest > max_tokens or len(current) >= max_items):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
