"""Fuzz every settings reader: random values and types for every key (nested sections
included), random dataset mappings, override strings, YAML bytes and JSONL bytes. Each
input is accepted or refused in one line; nothing else may happen."""

import json
import math

from fuzzing import examples, mapping_of, outcome, values
from hypothesis import given
from hypothesis import strategies as st

from blob_lora.config import AdapterConfig
from blob_lora.data.fields import TextFields
from blob_lora.data.readers import read_rows
from blob_lora.data.specs import parse_spec
from blob_lora.methods import METHODS
from blob_lora.run.config import RunConfig
from blob_lora.run.config_file import load_run_config
from blob_lora.schema import describe

RUN_KEYS = [key for key, *_ in describe(RunConfig) if "." not in key]
ADAPTER_KEYS = [key for key, *_ in describe(AdapterConfig)]
OPTION_KEYS = sorted({k for m in METHODS.values() for k in m.option_names()})
SPEC_KEYS = [
    "name", "path", "paths", "hub", "config", "task", "dev", "resplit", "source", "data_root",
    "text", "text_pair", "label", "label_map", "question", "choices", "choice_words",
    "context", "id", "target", "template", "group_by_source",
]  # fmt: skip


def _finite_json(cfg: RunConfig) -> None:
    """An accepted config is standard JSON (no NaN or Infinity) and loads back equal."""
    text = json.dumps(cfg.to_dict(), allow_nan=False)
    assert RunConfig.from_saved(json.loads(text)) == cfg


@examples(150)
@given(
    data=mapping_of(RUN_KEYS),
    adapter=st.one_of(mapping_of(ADAPTER_KEYS), values),
    options=st.one_of(mapping_of(OPTION_KEYS), values),
    method=st.sampled_from(sorted(METHODS)),
)
def test_any_run_config_mapping_is_accepted_or_one_line(data, adapter, options, method):
    data = dict(data)
    data.setdefault("method", method)
    data["adapter"], data["method_options"] = adapter, options
    cfg = outcome(lambda: RunConfig.from_dict(data))
    if cfg is not None:
        _finite_json(cfg)


override_keys = st.one_of(
    st.sampled_from(RUN_KEYS),
    st.sampled_from(ADAPTER_KEYS).map("adapter.{}".format),
    st.sampled_from(OPTION_KEYS).map("method_options.{}".format),
    st.text(max_size=10),
)
override_values = st.one_of(
    values.map(lambda v: json.dumps(v) if not _has_nan(v) else "[.nan]"),
    st.text(max_size=16),
)


def _has_nan(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


@examples(150)
@given(st.lists(st.tuples(override_keys, override_values), max_size=5))
def test_any_key_value_overrides_are_accepted_or_one_line(pairs):
    overrides = [f"{key}={value}" for key, value in pairs]
    cfg = outcome(lambda: load_run_config(None, overrides))
    if cfg is not None:
        _finite_json(cfg)


@examples(200)
@given(mapping_of(SPEC_KEYS), st.sampled_from(["dataset", "eval_datasets[0]"]))
def test_any_dataset_mapping_is_accepted_or_one_line_naming_its_place(spec, where):
    result = outcome(lambda: parse_spec(spec, where))
    if result is None:
        return
    parsed, _ = result
    assert parsed.name and parsed.fields is not None


yaml_like = st.one_of(
    st.binary(max_size=60),
    st.lists(
        st.tuples(st.sampled_from([*RUN_KEYS, "adapter", "  r", "- ", "? "]), st.text(max_size=12)),
        max_size=5,
    ).map(lambda rows: "\n".join(f"{k}: {v}" for k, v in rows).encode("utf-8", "surrogatepass")),
)


@examples(150)
@given(yaml_like)
def test_any_yaml_file_bytes_are_accepted_or_one_line(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_bytes(raw)
    cfg = outcome(lambda: load_run_config(str(path)))
    if cfg is not None:
        _finite_json(cfg)


jsonl_lines = st.one_of(
    st.binary(max_size=30),
    values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.fixed_dictionaries({"t": values, "l": values}).map(lambda r: json.dumps(r).encode("utf-8")),
)


@examples(150)
@given(st.lists(jsonl_lines, min_size=1, max_size=4))
def test_any_jsonl_bytes_become_examples_or_one_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    path.write_bytes(b"\n".join(lines))
    fields = TextFields(text="t", label="l")

    def convert():
        rows = read_rows(path)
        return [fields.convert(row, f"{path} line {i}") for i, row in enumerate(rows)]

    outcome(convert)
