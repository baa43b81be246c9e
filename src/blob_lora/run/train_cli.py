"""`blob train` and `blob config`: the flags, their help and the key listing all come from
the settings schema (`RunConfig`'s fields), so none can drift from what is checked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..config import AdapterConfig
from ..errors import ConfigError
from ..schema import add_flags, describe
from .config import RunConfig
from .config_file import parse_value

# RunConfig keys that also have a flag of their own (the rest: --set key=value)
TRAIN_FLAGS = ("model", "dataset", "method", "output_dir", "seed", "max_steps")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model with a method on a dataset",
        description="Train one run. Settings come from --config (YAML), then "
        "the flags below, then --set key=value overrides (e.g. "
        "--set adapter.r=16 --set lr=1e-4); a flag and a --set of the same key that "
        "disagree are an error. `blob config` lists every key with its type and range.",
    )
    p.add_argument("--config", help="YAML file of run settings (see configs/)")
    add_flags(p, RunConfig, only=TRAIN_FLAGS)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key; repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")


def add_config_parser(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("config", help="list every run-config key: type, range, default, meaning")


def cmd_config(args: argparse.Namespace) -> int:
    rows = describe(RunConfig)
    for key, kind, default, text in rows:
        print(f"{key:<26} {kind:<30} {default!r:<24} {text}")
    plain = AdapterConfig()
    print(
        f"\n(adapter.* defaults above are a run's; AdapterConfig() in Python: r={plain.r}, "
        f"alpha={plain.alpha:g} on {plain.target_modules})"
    )
    print("\nprecedence: --config file < flags (--method, --dataset, ...) < --set key=value")
    return 0


def _comparable(key: str, value: Any) -> Any:
    """A dataset given as JSON text and one given as a mapping are the same setting."""
    if key == "dataset" and isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def train_overrides(args: argparse.Namespace) -> list[str]:
    """The flags as `key=value` overrides before the --set ones; a flag and a --set of the
    same key must agree by value."""
    overrides = list(args.set)
    set_keys = {
        item.split("=", 1)[0].strip(): item.split("=", 1)[1] for item in overrides if "=" in item
    }
    for key in TRAIN_FLAGS:
        value = getattr(args, key)
        if value is None:
            continue
        if key in set_keys:
            given = _comparable(key, parse_value(set_keys[key], key))
            if given != _comparable(key, value):
                raise ConfigError(
                    f"--{key.replace('_', '-')} {value} and --set {key}={set_keys[key]} "
                    "disagree; give the key once"
                )
        overrides.insert(0, f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    return overrides


def _store_model_path(cfg: RunConfig) -> None:
    """A local model folder is stored as an absolute path, so the run can be evaluated
    from any directory (a run that stored the path as given, before this, resumes as it is)."""
    from ..models import SHORT_NAMES
    from .files import RunDir

    path = Path(cfg.model).expanduser()
    if cfg.model in SHORT_NAMES or not path.is_dir():
        return
    saved = RunDir(Path(cfg.output_dir)).config
    try:
        stored = json.loads(saved.read_text()).get("model") if saved.is_file() else None
    except (OSError, ValueError, AttributeError):
        stored = None
    if stored != cfg.model:
        cfg.model = str(path.resolve())


def run_train(args: argparse.Namespace) -> tuple[Any, dict[str, Any], RunConfig]:
    """(runner, its train() output, the settings) of `blob train`."""
    from .config_file import load_run_config
    from .runner import Runner

    cfg = load_run_config(args.config, train_overrides(args))
    _store_model_path(cfg)
    runner = Runner(cfg)
    return runner, runner.train(resume=args.resume), cfg
