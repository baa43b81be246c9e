"""Which training examples each step sees: a seeded, resumable order (and its by-length cut)."""

from __future__ import annotations

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
