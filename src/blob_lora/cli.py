"""The `blob` command line: train, eval, report, demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .config import PREDICT_MODES
from .errors import BlobLoraError


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a model with a method on a dataset",
        description="Train one run. Settings come from --config (YAML), then "
        "the flags below, then --set key=value overrides (e.g. "
        "--set adapter.r=16 --set lr=1e-4); a flag and a --set of the same key that "
        "disagree are an error. `blob config` lists every key.",
    )
    p.add_argument("--config", help="YAML file of run settings (see configs/)")
    p.add_argument("--model", help="short name (minilm, gemma-270m), hub id or local path")
    p.add_argument("--dataset", help="short name (rte, mrpc, obqa, arc-c, ...) or JSON mapping")
    p.add_argument("--method", help="a registered method: `blob methods` lists them")
    p.add_argument("--output-dir", help="where the run writes its adapter, metrics and plots")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key; repeatable",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output-dir")


def _positive(text: str) -> int:
    """A whole number >= 1 (argparse's one-line error otherwise)."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} examples evaluate nothing; use 1 or more")
    return value


def _count(text: str) -> int:
    """A whole number >= 0, or argparse's one-line error naming the flag."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 or more")
    return value


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run on other datasets (OOD protocol)")
    p.add_argument("run_dir", help="a directory written by `blob train`")
    p.add_argument("--datasets", nargs="+", help="datasets to evaluate on (default: the run's)")
    p.add_argument("--samples", nargs="+", type=_count, help="N values, 0 = posterior mean")
    p.add_argument(
        "--limit", type=_positive, help="evaluate only K examples of each set (a seeded subset)"
    )
    p.add_argument(
        "--tag",
        default="eval",
        help="name of the results file: results-TAG.json (with "
        "--noise and no tag: results-eval-NOISE.json)",
    )
    p.add_argument(
        "--noise",
        choices=PREDICT_MODES,
        help="the noise of the N samples for this evaluation (weight-sampling runs: blob, "
        "bbb, tfb): flipout, sequence (one weight sample per input), or head (one pass: the "
        "trunk at its mean and the head adapter's exact Gaussian logits, blob and tfb runs "
        "with an adapter on the output layer); default: the run's",
    )


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="runs x seeds -> Markdown table of mean ± std")
    p.add_argument("paths", nargs="+", help="run directories or JSON/JSONL result files")
    p.add_argument("--output", help="write the table here (default: print)")
    p.add_argument(
        "--plot",
        help="generation results: write their plot here (default: beside --output, as .png)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help="rows per method (default: acc ece nll sigma_mean sigma_ratio_median; the "
        "sigma rows appear for Bayesian methods only)",
    )


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="outputs of a trained generation run for new inputs",
        description="For every input: the N=0 output, S sampled outputs and an uncertainty "
        'score (disagreement among the samples). Inputs: JSON lines ({"source": ..., '
        '"id": ...}) or plain text, one input per blank-line-separated block.',
    )
    p.add_argument("run_dir", help="a directory written by `blob train` with task=generate")
    p.add_argument("--input", help="file of inputs (default: stdin)")
    p.add_argument("--samples", type=_count, help="S sampled outputs per input (default: the "
                   "run's gen_samples; 0: the N=0 output only)")  # fmt: skip
    p.add_argument("--seed", type=_count, help="seed of the samples (default: the run's)")
    p.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    p.add_argument("--max-new-tokens", type=_positive, help="default: the run's max_new_tokens")
    p.add_argument("--truncate", action="store_true",
                   help="cut the end of an over-long input instead of refusing it")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: MiniLM on MRPC, LoRA vs BLoB, in minutes")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--dataset", default="mrpc", help="mrpc, trec or rte")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)


def _add_methods(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("methods", help="list the methods, their cost and default N")


def _add_config(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("config", help="list every run-config key: type, default and what it does")


def cmd_config(args: argparse.Namespace) -> int:
    import dataclasses
    import typing

    from .config import AdapterConfig
    from .run.config import RunConfig

    for prefix, cls in (("", RunConfig), ("adapter.", AdapterConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "adapter":
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kind = str(hints[f.name]).replace("typing.", "").replace("<class '", "")
            kind = kind.replace("'>", "")
            print(f"{prefix + f.name:<26} {kind:<18} {default!r:<24} {f.metadata.get('help', '')}")
    print("\nprecedence: --config file < flags (--method, --dataset, ...) < --set key=value")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blob", description="Uncertainty-aware LoRA fine-tuning with BLoB."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train, _add_eval, _add_generate, _add_report, _add_demo, _add_methods, _add_config,
    ):  # fmt: skip
        add(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .run.config_file import load_run_config
    from .run.runner import Runner

    overrides = list(args.set)
    set_keys = {
        item.split("=", 1)[0].strip(): item.split("=", 1)[1] for item in overrides if "=" in item
    }
    for flag, key in (
        ("model", "model"),
        ("dataset", "dataset"),
        ("method", "method"),
        ("output_dir", "output_dir"),
        ("seed", "seed"),
        ("max_steps", "max_steps"),
    ):
        value = getattr(args, flag)
        if value is not None and key in set_keys and set_keys[key] != str(value):
            raise ConfigError(
                f"--{flag.replace('_', '-')} {value} and --set {key}={set_keys[key]} disagree; "
                "give the key once"
            )
        if value is not None:
            overrides.insert(
                0, f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
            )
    cfg = load_run_config(args.config, overrides)
    runner = Runner(cfg)
    out = runner.train(resume=args.resume)
    if runner.acc.is_main_process:  # under `accelerate launch`, one table, not one a process
        _print_rows(out["results"])
        if out.get("posterior"):
            print(out["posterior"])
        for line in out.get("warnings", []):
            print(f"warning: {line}", file=sys.stderr)
        if not out.get("already_finished"):
            print(f"run written to {cfg.output_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .run.config import RunConfig
    from .run.files import RunDir
    from .run.runner import Runner

    run_dir = Path(args.run_dir)
    saved = RunDir(run_dir).config
    if not saved.is_file():
        raise ConfigError(f"{run_dir} is not a blob run (no {saved.name})")
    cfg = RunConfig.from_saved(json.loads(saved.read_text()))
    if args.limit is not None:
        cfg.eval_limit = args.limit
    cfg.output_dir = str(run_dir)  # the run may have moved since it was trained
    runner = Runner(cfg)
    runner.load_finished(samples=args.samples)
    tag = args.tag
    if args.noise:
        adapter = runner.setup.model.adapter_config
        if adapter.kind == "lora":
            raise ConfigError(
                f"--noise needs weight samples, and {run_dir} ({cfg.method}) has none; "
                "use it on a blob, bbb or tfb run"
            )
        if args.noise == "head" and adapter.kind != "blob":
            raise ConfigError(
                f"--noise head needs a Gaussian A and a point-estimate B (a blob or tfb run); "
                f"{run_dir} ({cfg.method}) has kind {adapter.kind!r}: use sequence or flipout"
            )
        adapter.predict_sample_mode = args.noise
        tag = f"eval-{args.noise}" if tag == "eval" else tag
    rows = runner.evaluate(samples=args.samples, datasets=args.datasets, tag=tag)
    if runner.acc.is_main_process:
        _print_rows(rows)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .atomic import write_text_atomic
    from .errors import ConfigError
    from .report.table import METRICS, load_rows, markdown_table

    rows = load_rows(args.paths)
    if args.metrics:
        present = {k for row in rows for k, v in row.items() if isinstance(v, int | float)}
        missing = [m for m in args.metrics if m not in present]
        if missing:
            raise ConfigError(
                f"--metrics {missing} in none of the results rows; they have "
                f"{sorted(present - {'n_samples', 'seed', 'steps'})}"
            )
    from .report.generation import generation_table, split_rows

    gen_rows, rows = split_rows(rows)
    table = markdown_table(rows, metrics=args.metrics or METRICS) if rows else ""
    if gen_rows:
        table += ("\n" if table else "") + generation_table(gen_rows, args.metrics)
        _plot_generation(
            gen_rows, args.plot or (args.output and Path(args.output).with_suffix(".png"))
        )
    if args.output:
        try:
            write_text_atomic(Path(args.output), table)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise ConfigError(
                f"cannot write the table to {args.output}: {reason}; choose a writable file path"
            ) from err
        print(f"table written to {args.output}")
    else:
        print(table)
    return 0


def _plot_generation(rows: list[dict], path: str | Path | None) -> None:
    if path:
        from .report.generation_plot import plot_generation

        print(f"plot written to {plot_generation(rows, path)}")


def cmd_generate(args: argparse.Namespace) -> int:
    from .generation.cli import run_generate

    return run_generate(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .run.demo import run_demo

    start = time.time()
    run_demo(Path(args.output_dir), dataset=args.dataset, max_steps=args.max_steps, seed=args.seed)
    print(f"demo wall time: {time.time() - start:.0f} s")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    width = max(len(name) for name in METHODS)
    for method in METHODS.values():
        samples = ", ".join(map(str, method.default_eval_samples))
        print(f"{method.name:<{width}} N={samples:<6} {method.cost}")
    return 0


def _print_rows(rows: list[dict]) -> None:
    if not rows:
        return
    if "rougeL" in rows[0]:
        from .report.generation import print_lines

        print("\n".join(print_lines(rows)))
        return
    print(
        f"{'dataset':<12} {'method':<8} {'N':>3} {'ACC%':>7} {'ECE%':>7} {'NLL':>7} "
        f"{'Brier':>7} {'majority%':>9}"
    )
    for r in rows:
        head = f"{r['dataset']:<12} {r['method']:<8} {r['n_samples']:>3}"
        if "acc" not in r:  # a set with another task's labels
            print(f"{head}   predictions only (its labels are another task's)")
            continue
        majority = f"{r['majority_acc']:>9.2f}" if "majority_acc" in r else f"{'':>9}"
        print(
            f"{head} {r['acc']:>7.2f} {r['ece']:>7.2f} {r['nll']:>7.3f} {r['brier']:>7.3f} "
            f"{majority}"
        )


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "generate": cmd_generate,
    "report": cmd_report,
    "demo": cmd_demo,
    "methods": cmd_methods,
    "config": cmd_config,
}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    if args.command in ("train", "eval", "demo", "generate"):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # load reports of fresh heads are expected here
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # `blob config | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BlobLoraError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr
        )
        return 130
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Close the process group `accelerate launch` opened, while the interpreter is whole:
    left to exit, gloo's threads can abort a rank that has finished its work."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
