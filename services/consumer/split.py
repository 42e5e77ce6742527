"""Finding the records of a failed batch that fail on their own (bisection).

A batch whose transaction fails for a reason in its content (not an outage) is split:
its halves are applied in order, each in its own transaction, and a half that fails is
split again, down to single records. A single record that fails, applied on top of
everything before it that committed, is refused with its error; the rest commits.

The rule knows nothing of Kafka or PostgreSQL: `apply(segment)` commits a segment or
raises, `refuse(item, error)` keeps one item as refused; `is_content(error)` tells a
failure of the content (split further) from one to give up on (an outage: the caller
retries the whole batch, which is idempotent).

The bound, for n items of which k fail on their own: when the left half of a failed
segment commits in one piece, its right half is split without being tried (it is the
rest of the failed segment, applied on the same state, so it fails); only a single item
is refused on a failure it showed itself. A failing item then costs at most two attempts
per level: at most k * (2 * ceil(log2 n) + 1) attempts. After `max_attempts`, a segment
still untried is tried whole once, and one that fails is applied item by item: at most
`max_attempts` + 2n attempts in all, each smaller than the batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_ATTEMPTS = 64
"""Attempts of the bisection for one batch (4 failing records of 50,000 fit well under
it); past them, a segment that fails is applied item by item."""


@dataclass(slots=True)
class Settled(Generic[T]):
    attempts: int = 0
    committed: int = 0  # items applied in segments that committed
    refused: list[tuple[T, BaseException]] = field(default_factory=list)
    one_by_one: bool = False  # the cap was reached


async def settle(
    items: Sequence[T],
    first_error: BaseException,
    apply: Callable[[Sequence[T]], Awaitable[None]],
    refuse: Callable[[T, BaseException], Awaitable[None]],
    is_content: Callable[[BaseException], bool],
    max_attempts: int = MAX_ATTEMPTS,
) -> Settled[T]:
    """Apply `items`, which failed as a whole with `first_error`, in order: each item
    ends in a segment that committed or refused. An error that is not `is_content`
    propagates (what committed so far stays committed)."""
    result: Settled[T] = Settled()

    async def attempt(segment: Sequence[T]) -> BaseException | None:
        result.attempts += 1
        try:
            await apply(segment)
        except Exception as error:
            if not is_content(error):
                raise
            return error
        result.committed += len(segment)
        return None

    async def split(segment: Sequence[T], error: BaseException | None, inferred: bool) -> bool:
        """Settle `segment`: `error` is how it failed (None: not tried yet), `inferred`
        when that failure was deduced, not seen. True if it committed in one piece."""
        if error is None or (inferred and len(segment) == 1):
            error = await attempt(segment)
            if error is None:
                return True
        if len(segment) == 1:
            result.refused.append((segment[0], error))
            await refuse(segment[0], error)
            return False
        if result.attempts >= max_attempts:
            result.one_by_one = True
            for item in segment:
                await split([item], None, False)
            return False
        middle = len(segment) // 2
        left_whole = await split(segment[:middle], None, False)
        await split(segment[middle:], error if left_whole else None, left_whole)
        return False

    await split(items, first_error, False)
    return result
