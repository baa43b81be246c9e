"""What the fuzz tests share: the hypothesis profiles, the values they draw, and the
invariant every input must keep (it runs, or it is one line of BlobLoraError).

Profiles: ``ci`` (default; seeded, a few minutes in all) and ``release`` (25x the
examples, random seeds): ``BLOB_FUZZ=release bash scripts/test.sh tests/schema``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from blob_lora.errors import BlobLoraError

PROFILE = os.environ.get("BLOB_FUZZ", "ci")
SCALE = 25 if PROFILE == "release" else 1
# tiny runs are slow next to hypothesis' own timing; the CLI tests share capsys/monkeypatch
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=SLOW_OK
)
settings.register_profile("release", deadline=None, print_blob=True, suppress_health_check=SLOW_OK)
settings.load_profile(PROFILE)


def examples(n: int) -> settings:
    """`n` examples in CI, 25n in the release profile."""
    return settings(max_examples=n * SCALE)


# strings that have broken readers before: paths out, templates, surrogates, numbers as text
TRICKY_TEXT = [
    "", " ", "../../esc", "/tmp/x", "a/b", "..", "{", "}", "{s", "{source}", "Review: {s",
    "\ud83d", "nan", ".nan", "inf", "1e-4", "true", "null", "[1, 2", '{"name": 5}', "\x00",
    "é", "rte", "minilm", "blob", "mle", "fp32", "authors", "sequence",
]  # fmt: skip
TRICKY_NUMBERS = [0, -1, 1, 2, 7, 2**31, 2**32, 2**63, 10**20, 0.0, -0.0, 0.5, 1.0, 1e-300]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(TRICKY_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=6)), inner, max_size=4
        ),
    ),  # fmt: skip
    max_leaves=8,
)
# keys: mostly the schema's own (so values reach the checks), some junk, some non-text
any_keys = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none())


def mapping_of(known: list[str]) -> st.SearchStrategy[dict[Any, Any]]:
    keys = st.one_of(st.sampled_from(known), st.sampled_from(known), any_keys)
    return st.dictionaries(keys, values, max_size=6)


def outcome(call) -> Any:
    """`call()`'s result, or None when it raised a one-line BlobLoraError; anything else
    (another exception, a message over several lines) fails the test."""
    try:
        result = call()
    except BlobLoraError as err:
        message = str(err)
        assert message and "\n" not in message, f"not one line: {message!r}"
        event("refused in one line")
        return None
    event("accepted")
    return result
