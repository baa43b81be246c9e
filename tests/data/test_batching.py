"""Evaluation batches dealt over processes: every input once, the same batches whatever the
number of processes, and equal batch counts in lock-step."""

import pytest

from blob_lora.data.batching import batch_seed, global_batches, my_batches


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_every_input_is_in_one_batch_of_one_process_whatever_the_world(world):
    sizes = [7, 3, 9, 3, 1, 8, 2, 6, 5, 4, 10]
    batches = global_batches(sizes, 3)
    assert batches[0] == [4, 6, 1]  # shortest first, ties in input order
    assert [sizes[i] for b in batches for i in b] == sorted(sizes)
    shares = [my_batches(batches, rank, world) for rank in range(world)]
    dealt = sorted((k, tuple(b)) for share in shares for k, b in share)
    assert dealt == [(k, tuple(b)) for k, b in enumerate(batches)]  # the same k, same batch


def test_lockstep_pads_the_short_processes_with_passes_to_drop():
    batches = global_batches(list(range(10)), 4)  # 3 batches over 2 processes
    first, second = my_batches(batches, 0, 2, lockstep=True), my_batches(batches, 1, 2, True)
    assert len(first) == len(second) == 2
    assert [k for k, _ in first] == [0, 2] and [k for k, _ in second] == [1, None]
    assert my_batches(batches, 1, 2) == [(1, batches[1])]  # no padding without lock-step
    assert my_batches([], 0, 2, lockstep=True) == []


def test_batch_seeds_differ_between_batches_and_seeds():
    seeds = {batch_seed(s, k) for s in range(3) for k in range(100)}
    assert len(seeds) == 300
