import math

import pytest

from blob_lora import ConfigError, KLSchedule


def test_cycle_length_follows_authors_formula():
    s = KLSchedule("blob", n_train=2490, global_batch=32, gamma=8)
    assert s.cycle_length == int(100 * 2490 ** (math.pi / 8) / 32)


def test_same_global_batch_gives_same_schedule():
    # 4 processes x batch 8 consume what 1 process x batch 32 does per step
    one = KLSchedule("blob", n_train=5000, global_batch=32)
    four = KLSchedule("blob", n_train=5000, global_batch=4 * 8)
    assert [one.weight(i) for i in range(300)] == [four.weight(i) for i in range(300)]


def test_blob_weights_sum_to_one_per_cycle_and_grow():
    s = KLSchedule("blob", n_train=640, global_batch=8)
    m = s.cycle_length
    w = [s.weight(i) for i in range(m)]
    assert abs(sum(w) - 1) < 1e-9 * m + 2.0 ** (-m)
    assert all(b == 2 * a for a, b in zip(w, w[1:], strict=False))
    assert s.weight(m) == w[0]  # the next cycle restarts
    assert w[-1] == pytest.approx(2.0**m / (2.0 ** (m + 1) - 1))


def test_long_cycle_does_not_overflow():
    s = KLSchedule("blob", n_train=10**7, global_batch=1)
    assert s.cycle_length > 2000
    w = s.weight(s.cycle_length - 1)
    assert 0.49 < w < 0.51 and math.isfinite(w)


def test_uniform_elbo_none():
    s = KLSchedule("uniform", n_train=1000, global_batch=10)
    assert s.weight(3) == 1 / s.cycle_length
    assert KLSchedule("elbo", n_train=1000, global_batch=10).weight(7) == 1 / 1000
    assert KLSchedule("none", n_train=1000, global_batch=10).weight(7) == 0.0
    with pytest.raises(ConfigError):
        KLSchedule("cosine", n_train=10, global_batch=1)


def test_a_set_cycle_replaces_the_authors_m_and_puts_the_weight_on_its_last_steps():
    authors = KLSchedule("blob", n_train=4957, global_batch=8)
    assert authors.cycle_length > 300  # longer than a 100-step run: its KL would never act
    short = KLSchedule("blob", n_train=4957, global_batch=8, cycle=50)
    weights = [short.weight(i) for i in range(100)]
    assert weights[:50] == weights[50:]  # two whole cycles
    assert sum(weights[:50]) == pytest.approx(1.0, abs=1e-12)
    assert weights[49] == pytest.approx(0.5, rel=1e-9) and weights[48] == pytest.approx(0.25)
    assert sum(authors.weight(i) for i in range(100)) < 1e-60
    with pytest.raises(ConfigError, match="cycle: Input should be greater than or equal to 1"):
        KLSchedule("blob", n_train=10, global_batch=1, cycle=0)
