"""Which examples form each batch.

Training: a seeded, resumable order of the training examples (and its by-length cut).

Evaluation: how evaluation splits its inputs into batches and over processes, so that what it
returns depends on the seed and the inputs only, not on how many processes ran it.

The batches are formed once for all inputs (sorted by length: less padding) and dealt to
the processes in turn; batch k draws its noise from ``batch_seed(seed, k)``. One process
and `accelerate launch --num_processes P` then run the same batches with the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def example_stream(n: int, seed: int, start: int, count: int) -> list[int]:
    """Positions [start, start+count) of the infinite stream of per-epoch permutations."""
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).tolist()
        take = min(count - len(out), n - offset)
        out.extend(perm[offset : offset + take])
        pos += take
    return out


GROUP_BATCHES = 50  # batches re-cut together by `group_by_length` (HF uses 50 too)


def grouped_batch(sizes: list[int], seed: int, index: int, batch: int) -> list[int]:
    """Batch `index` of the stream when each run of GROUP_BATCHES consecutive batches is
    re-cut by length: the same examples at the same point of training, less padding.
    The re-cut batches are visited in a seeded random order, so length does not follow
    the learning-rate schedule."""
    chunk, within = divmod(index, GROUP_BATCHES)
    ids = example_stream(len(sizes), seed, chunk * GROUP_BATCHES * batch, GROUP_BATCHES * batch)
    ids.sort(key=lambda i: sizes[i])
    gen = torch.Generator().manual_seed(seed * 100_003 + chunk + 2**40)
    k = int(torch.randperm(GROUP_BATCHES, generator=gen)[within])
    return ids[k * batch : (k + 1) * batch]


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
