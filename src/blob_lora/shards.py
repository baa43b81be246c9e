"""How evaluation splits its inputs into batches and over processes, so that what it
returns depends on the seed and the inputs only, not on how many processes ran it.

The batches are formed once for all inputs (sorted by length: less padding) and dealt to
the processes in turn; batch k draws its noise from ``batch_seed(seed, k)``. One process
and `accelerate launch --num_processes P` then run the same batches with the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence


def global_batches(sizes: Sequence[int], batch_size: int) -> list[list[int]]:
    """Input indices in batches of `batch_size`, shortest inputs first (a stable sort)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def my_batches(
    batches: Sequence[list[int]], rank: int, world: int, lockstep: bool = False
) -> list[tuple[int | None, list[int]]]:
    """(k, indices) of the batches process `rank` of `world` runs: every world-th one.

    `lockstep` (a sharded model, whose every forward pass is a collective): every process
    runs the same number of batches, the short ones padding with (None, batch 0), a pass
    whose outputs the caller drops."""
    mine: list[tuple[int | None, list[int]]] = [
        (k, batch) for k, batch in enumerate(batches) if k % world == rank
    ]
    if lockstep and batches:
        rounds = -(-len(batches) // world)
        mine += [(None, batches[0])] * (rounds - len(mine))
    return mine


def batch_seed(seed: int, k: int) -> int:
    return seed * 1_000_003 + k
