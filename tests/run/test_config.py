import json
import re

import pytest

from blob_lora import ConfigError
from blob_lora.run.config import RunConfig
from blob_lora.run.config_file import load_run_config


def test_yaml_then_overrides(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: minilm\nlr: 1.0e-4\nadapter:\n  r: 4\n  target_modules: [query]\n")
    cfg = load_run_config(str(cfg_file), ["lr=3e-4", "adapter.alpha=32", "eval_samples=[0, 5]"])
    assert cfg.lr == 3e-4 and cfg.adapter.r == 4 and cfg.adapter.alpha == 32
    assert cfg.adapter.target_modules == ["query"] and cfg.eval_samples == [0, 5]
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_numbers_without_a_dot_are_numbers_in_config_files_and_saved_configs(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-4` as a string; a config file, and a run's saved
    run_config.json given back as --config, must read it as the number it is."""
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("lr: 1e-4\nadam_eps: 1E-08\nadapter: {prior_std: 2e-1}\n")
    cfg = load_run_config(str(cfg_file))
    assert (cfg.lr, cfg.adam_eps, cfg.adapter.prior_std) == (1e-4, 1e-8, 0.2)
    saved = tmp_path / "run_config.json"
    saved.write_text(json.dumps(cfg.to_dict(), indent=2))  # as a run writes it: "1e-08"
    assert "1e-08" in saved.read_text()
    assert load_run_config(str(saved)) == cfg
    assert load_run_config(None, ['output_dir="1e-4"']).output_dir == "1e-4"  # quoted: text


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["learning_rate=1"], "unknown config key 'learning_rate'"),
        (["adapter.rank=4"], "adapter.rank"),
        (["adapter.r=0"], r"adapter.r: Input should be greater than or equal to 1; got 0"),
        (["lr"], "key=value"),
    ],
)
def test_bad_keys_are_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_run_config(None, overrides)


def test_missing_or_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_run_config(str(bad))


def test_method_options_replace_the_methods_settings_and_unknown_ones_fail():
    from blob_lora.methods import get_method

    la = get_method("la", {"fit_on": "anchor", "link": "mc"})
    assert (la.fit_on, la.link, la.name) == ("anchor", "mc", "la")
    assert get_method("la").fit_on == "train"  # the registry's instance is untouched
    with pytest.raises(ConfigError, match="fit_onn"):
        get_method("la", {"fit_onn": "anchor"})
    with pytest.raises(
        ConfigError, match="method_options.fit_on: Input should be 'train' or 'anchor'"
    ):
        get_method("la", {"fit_on": "everything"})  # the method's own validation runs
    cfg = load_run_config(None, ["method=tfb", "method_options.tolerance=0.05"])
    assert cfg.method_options == {"tolerance": 0.05}


def test_the_kl_plan_chooses_kl_lr_and_the_cycle_unless_told_not_to():
    cfg = load_run_config(None, [])
    assert (cfg.kl_plan, cfg.kl_lr, cfg.kl_cycle) == ("budget", None, None)
    with pytest.raises(ConfigError, match="conflict with kl_plan=budget"):
        load_run_config(None, ["kl_plan=budget", "kl_lr=0.01"])
    with pytest.raises(ConfigError, match="kl_plan: Input should be 'budget' or 'authors'"):
        load_run_config(None, ["kl_plan=fast"])
    with pytest.raises(ConfigError, match="kl_clock_scale"):
        load_run_config(None, ["kl_clock_scale=0"])
    # a fixed kl_lr or kl_cycle asks for the authors' plan; so does a run saved before kl_plan
    assert load_run_config(None, ["kl_cycle=50"]).kl_plan == "authors"
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in ("kl_plan", "kl_clock_scale")}
    assert RunConfig.from_dict(old | {"kl_lr": 0.002}).kl_plan == "authors"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=abc", "lr: Input should be a valid number; got 'abc' (str)"),
        ("max_steps=5.5", "max_steps: Input should be a valid integer; got 5.5"),
        ("seed=true", "seed: Input should be a valid integer; got True"),
        ("max_steps=-5", "max_steps: Input should be greater than or equal to 0; got -5"),
        ("max_length=0", "max_length: Input should be greater than or equal to 8"),
        ("batch_size=0", "batch_size: Input should be greater than or equal to 1"),
        ("warmup_ratio=1", "warmup_ratio: Input should be less than 1"),
        ("optim_scheme=sgd", "optim_scheme: Input should be 'authors' or 'elbo'; got 'sgd'"),
        ("head=none", "head: Input should be 'train', 'lora' or 'frozen'"),
        ("eval_samples=[0, -1]", "eval_samples[1]: Input should be greater than or equal to 0"),
        ("eval_datasets=rte", "eval_datasets: Input should be a valid list"),
    ],
)
def test_every_key_is_checked_for_type_range_and_choice(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_run_config(None, [override])


def test_ints_are_taken_where_floats_go_and_the_choices_match_the_optimizer():
    from blob_lora.optim import SCHEMES
    from blob_lora.run.config import OPTIM_SCHEMES

    cfg = load_run_config(None, ["lr=1", "weight_decay=0"])
    assert isinstance(cfg.lr, float) and isinstance(cfg.weight_decay, float)
    assert OPTIM_SCHEMES == SCHEMES


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["sharding=ddp"], r"sharding: Input should be 'none' or 'fsdp'; got 'ddp'"),
        (["sharding=fsdp", "method=la"], r"does not support method 'la' \(its Kronecker"),
        (["sharding=fsdp", "method=ens"], r"does not support method 'ens'"),
        (["sharding=fsdp", "task=generate"], "does not support generation tasks"),
    ],
)
def test_what_sharding_cannot_do_is_refused_before_anything_runs(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_run_config(None, overrides)
    assert load_run_config(None, ["sharding=fsdp", "method=blob"]).sharding == "fsdp"


def test_a_generation_dataset_under_sharding_is_refused_before_the_model_loads():
    from blob_lora.run.checks import check_compatible

    cfg = load_run_config(None, ["sharding=fsdp", "dataset=dialogsum", "model=gemma-270m"])
    with pytest.raises(ConfigError, match="does not support generation tasks"):
        check_compatible(cfg, "generate")


def test_a_saved_config_keeps_the_noise_it_ran_with_when_the_default_moved():
    """Saves are full dumps: one without predict_sample_mode predates it and sampled with
    the training noise (None); a fresh config gets today's default, one per input."""
    from blob_lora.config import AdapterConfig

    assert load_run_config(None, []).adapter.predict_sample_mode == "sequence"
    old = RunConfig().to_dict()
    del old["adapter"]["predict_sample_mode"]
    assert RunConfig.from_saved(old).adapter.predict_sample_mode is None
    assert RunConfig.from_dict(old).adapter.predict_sample_mode == "sequence"
    old_adapter = AdapterConfig().to_dict()
    del old_adapter["predict_sample_mode"]
    assert AdapterConfig.from_saved(old_adapter).predict_sample_mode is None
    saved_now = RunConfig().to_dict()  # a save that has the key keeps its own value
    assert RunConfig.from_saved(saved_now).adapter.predict_sample_mode == "sequence"
    assert load_run_config(None, ["protocol=paper"]).adapter.predict_sample_mode is None
