"""The generation task and its set-up: the training loss is the model's own NLL of the target
tokens (prompt and padding masked) for decoder-only and encoder-decoder models, per-row
log-likelihoods, default adapter targets, dataset mappings, config checks, input parsing and
the metrics of a results row on hand-checked cases."""

from __future__ import annotations

import json
import math

import pytest
import torch
from gen_tiny import ARCHS, bart_tokenizer, llama_tokenizer, tiny_gemma, tiny_t5
from tiny_models import tiny_bart

from blob_lora import get_blob_model
from blob_lora.data import GenerationExample, load_examples, parse_spec, resolve_data_root
from blob_lora.errors import ConfigError
from blob_lora.generation.checks import check_generation
from blob_lora.generation.cli import read_inputs
from blob_lora.generation.summary import mean_output_metrics, sample_metrics
from blob_lora.run.checks import resolve_task_kind
from blob_lora.run.config import RunConfig
from blob_lora.tasks import build_task
from blob_lora.tasks.generation import default_targets, reference_pairs, target_positions

TEMPLATE = "dialogue : {source} summary :"
EXAMPLES = [
    GenerationExample("hello the cat sat on the mat", ("cat sat",), "a", TEMPLATE),
    GenerationExample("hi", ("he says hello to the dog",), "b", TEMPLATE),
    GenerationExample("the dog", ("ok",), "c", TEMPLATE),
]
ENCDEC = {"bart", "t5"}


def _task(arch: str):
    make_model, make_tok, _ = ARCHS[arch]
    tok = make_tok()
    task = build_task("generate", tokenizer=tok, max_length=40, encoder_decoder=arch in ENCDEC)
    return make_model(), task


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_the_training_loss_is_the_models_own_nll_of_the_target_tokens(arch):
    model, task = _task(arch)
    batch = task.collate(EXAMPLES)
    with torch.no_grad():
        nll, correct, seen = task.train_loss(task.train_outputs(model, batch), batch)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        if "position_ids" in batch:
            inputs["position_ids"] = batch["position_ids"]
        reference = model(**inputs).loss  # transformers' shifted, masked cross-entropy
        logp, tokens = task.sequence_logprobs(model, batch)
    assert torch.allclose(nll, reference, atol=1e-5)
    targets = int((batch["labels"] != -100).sum())
    assert int(seen) == targets == int(tokens.sum()) and 0 <= int(correct) <= targets
    # per-row sums of log p make up the same mean
    assert torch.allclose(-logp.sum() / tokens.sum(), reference, atol=1e-5)


def test_target_positions_follow_each_row_and_pad_with_ignored_targets():
    labels = torch.tensor([[-100, -100, 5, 6, 1], [-100, 7, 1, -100, -100]])
    positions, targets = target_positions(labels)
    assert positions.tolist() == [[1, 2, 3], [0, 1, 0]]
    assert targets.tolist() == [[5, 6, 1], [7, 1, -100]]


def test_a_prompt_token_changes_the_loss_only_through_the_context():
    """The prompt is never a target: its labels are masked, so the number of scored tokens
    is that of the target (+ eos), whatever the prompt's length."""
    _, task = _task("llama")
    short = task.collate([EXAMPLES[1]])
    longer = task.collate([GenerationExample("hi " * 10, EXAMPLES[1].references, "x", TEMPLATE)])
    count = lambda b: int((b["labels"] != -100).sum())  # noqa: E731
    assert count(short) == count(longer) == len("he says hello to the dog".split()) + 1


def test_reference_pairs_give_one_example_per_reference():
    ex = GenerationExample("x", ("a", "b", "c"), "i", TEMPLATE)
    pairs = reference_pairs([ex, EXAMPLES[0]])
    assert [p.references for p in pairs] == [("a",), ("b",), ("c",), ("cat sat",)]


def test_default_targets_are_qkv_of_every_attention_and_the_head():
    assert default_targets(tiny_bart(), ["query", "value"]) == [
        "q_proj", "k_proj", "v_proj", "lm_head",
    ]  # fmt: skip
    assert default_targets(tiny_t5(), ["query", "value"]) == ["q", "k", "v", "lm_head"]
    assert default_targets(tiny_gemma(), ["q_proj"]) == ["q_proj"]  # the user's own choice
    assert default_targets(tiny_bart(), ".*fc1") == ".*fc1"  # a regex is kept as given
    # BART's targets reach encoder self-, decoder self- and cross-attention, and the head
    blob = get_blob_model(tiny_bart(), kind="blob", r=2, target_modules=["q_proj", "lm_head"])
    names = list(blob.adapters())
    for part in ("encoder.layers.0.self_attn", "decoder.layers.0.self_attn",
                 "decoder.layers.0.encoder_attn"):  # fmt: skip
        assert any(n.endswith(part + ".q_proj") for n in names), part
    assert "lm_head" in names


def test_a_users_jsonl_mapping_is_a_generation_dataset(tmp_path):
    rows = [
        {"doc": "hello the cat", "sum": "cat", "key": 1},
        {"doc": "hello the cat", "sum": "a cat", "key": 2},
        {"doc": "hi", "sum": "ok", "key": 3},
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"paths": {"validation": str(path)}, "source": "doc", "target": "sum", "id": "key",
            "template": TEMPLATE}  # fmt: skip
    parsed, options = parse_spec(json.dumps(spec))
    assert parsed.kind == "generate" and options.source is None  # "source" is the field
    examples = load_examples(json.dumps(spec), "validation")
    assert [(e.source, e.references, e.id) for e in examples] == [
        ("hello the cat", ("cat", "a cat"), "1"),
        ("hi", ("ok",), "3"),
    ]
    assert examples[0].prompt == "dialogue : hello the cat summary :"
    cfg = RunConfig(model="gemma-270m", dataset=json.dumps(spec))
    assert resolve_task_kind(cfg) == "generate"  # task=auto
    with pytest.raises(ConfigError, match="source/target texts and the task is choice"):
        from blob_lora.run.checks import check_compatible

        check_compatible(RunConfig(model="gemma-270m", dataset=json.dumps(spec)), "choice")


@pytest.mark.skipif(resolve_data_root().path is None, reason="no benchmark data")
def test_dialogsum_is_a_registered_generation_dataset():
    assert resolve_task_kind(RunConfig(model="gemma-270m", dataset="dialogsum")) == "generate"
    test = load_examples("dialogsum", "test", limit=4, seed=0)
    assert len(test) == 4 and all(len(e.references) == 3 for e in test)
    assert test[0].prompt.startswith("Dialogue: ") and test[0].prompt.endswith("\nSummary:")


def test_generation_settings_are_checked_with_their_ranges():
    RunConfig(task="generate", gen_samples=2, num_beams=4, gen_top_p=1.0, bertscore=True)
    for bad, match in (
        ({"gen_samples": 1}, "gen_samples: Input should be greater than or equal to 2"),
        ({"gen_top_p": 1.5}, "gen_top_p: Input should be less than or equal to 1"),
        ({"gen_temperature": 0}, "gen_temperature: Input should be greater than 0"),
        ({"max_new_tokens": 0}, "max_new_tokens: Input should be greater than or equal to 1"),
        ({"gen_noise": "tokens"}, "gen_noise: Input should be 'auto', 'weights' or 'decoding'"),
        ({"bertscore": "yes"}, "bertscore: Input should be a valid boolean"),
        ({"task": "summarize"}, "task: Input should be 'auto'"),
    ):
        with pytest.raises(ConfigError, match=match):
            RunConfig(**bad)


def test_generation_needs_a_generating_model_and_method():
    with pytest.raises(ConfigError, match="is an encoder and cannot generate"):
        check_generation(RunConfig(model="minilm", task="generate"), "encoder")
    with pytest.raises(ConfigError, match="method 'la' has no generation path"):
        check_generation(RunConfig(task="generate", method="la"), "decoder")
    with pytest.raises(ConfigError, match="gen_noise=weights needs a posterior"):
        check_generation(RunConfig(task="generate", method="mle", gen_noise="weights"), "decoder")
    with pytest.raises(ConfigError, match="eval_samples=1 cannot measure"):
        check_generation(RunConfig(task="generate", eval_samples=[0, 1]), "decoder")


def test_inputs_are_json_lines_or_blank_line_separated_text():
    jsonl = '{"dialogue": "a\\nb", "id": "x"}\n"just text"\n{"source": "c"}\n'
    assert read_inputs(jsonl, "f", "dialogue") == [("x", "a\nb"), ("1", "just text"), ("2", "c")]
    text = "first line\nsecond line\n  \n\nnext input\n"
    assert read_inputs(text, "f") == [("0", "first line\nsecond line"), ("1", "next input")]
    with pytest.raises(ConfigError, match="no input: f is empty"):
        read_inputs(" \n\n", "f")
    with pytest.raises(ConfigError, match="f line 2: the input text is empty"):
        read_inputs('{"source": "a"}\n{"source": " "}\n', "f")
    with pytest.raises(ConfigError, match="no source text"):
        read_inputs('{"other": "a"}\n', "f")


def test_row_metrics_on_hand_checked_outputs():
    refs = [["the cat sat"], ["a dog ran", "the dog ran"]]
    row, per = mean_output_metrics(["the cat sat", "the dog"], refs, disagreement=[0.1, 0.9])
    # input 2: "the dog" vs "the dog ran": P = 1, R = 2/3, F1 = 0.8 (max); vs "a dog ran": 0.4
    assert row["rouge1"] == pytest.approx(100 * (1.0 + 0.8) / 2)
    assert row["rouge1_mean_ref"] == pytest.approx(100 * (1.0 + 0.6) / 2)
    assert row["rouge2"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)
    assert row["unc_auroc"] == 1.0 and row["bertscore_f1"] is None  # the worse one disagrees more
    assert row["aurc"] == pytest.approx((0.0 + (0.0 + 0.2) / 2) / 2)
    assert [p["rougeL"] for p in per] == pytest.approx([1.0, 0.8])
    samples = [["the cat sat", "cat"], ["the dog", "the dog"]]
    srow, sper = sample_metrics(samples, refs, disagreement=[0.5, 0.0])
    cat = 2 * (1 / 3) / (1 + 1 / 3)  # "cat" vs "the cat sat": P 1, R 1/3
    assert srow["rouge1"] == pytest.approx(100 * ((1 + cat) / 2 + 0.8) / 2)
    assert srow["rouge1_spread"] == pytest.approx(100 * ((1 - cat) / 2 + 0.0) / 2)
    assert srow["rougeL_oracle"] == pytest.approx(100 * (1.0 + 0.8) / 2)
    assert srow["disagreement"] == 0.25 and sper[0]["rougeL"] == pytest.approx([1.0, cat])
    # expected ROUGE-L: input 1 (1 + 0.5) / 2 = 0.75 < input 2's 0.8, and it disagrees more
    assert srow["unc_auroc"] == 1.0 and math.isfinite(srow["aurc"])


def test_a_causal_tokenizer_without_pad_still_collates():
    tok = llama_tokenizer()
    task = build_task("generate", tokenizer=tok, max_length=40)
    assert task.collate(EXAMPLES)["input_ids"].shape[0] == 3
    enc = build_task("generate", tokenizer=bart_tokenizer(), max_length=40, encoder_decoder=True)
    assert "position_ids" not in enc.collate(EXAMPLES)
