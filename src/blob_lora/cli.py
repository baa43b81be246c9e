"""The `blob` command line: train, eval, report, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
import typing
from pathlib import Path

from .errors import BlobLoraError


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from .run.eval_flags import EvalFlags
    from .schema import add_flags

    p = sub.add_parser(
        "eval",
        help="evaluate a trained run on other datasets (OOD protocol)",
        description="Evaluate a finished run again: its results go to results-TAG.json, "
        "predictions/TAG-* and plots/TAG-* inside the run folder, never over the training "
        "run's own (final) files.",
    )
    add_flags(p, EvalFlags)


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
    from .generation.flags import GenerateFlags
    from .schema import add_flags

    p = sub.add_parser(
        "generate",
        help="outputs of a trained generation run for new inputs",
        description="For every input: the N=0 output, S sampled outputs and an uncertainty "
        'score (disagreement among the samples). Inputs (UTF-8): JSON lines ({"source": ..., '
        '"id": ...}; a .jsonl file, or one whose first line is a JSON object) or plain text, '
        "one input per blank-line-separated block.",
    )
    add_flags(p, GenerateFlags)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: MiniLM on TREC, LoRA vs BLoB, in minutes")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--dataset", default="trec", help="trec (the default), mrpc or rte")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)


def _add_methods(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("methods", help="list the methods, their cost and default N")


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .run.train_cli import add_train_parser

    add_train_parser(sub)


def _add_config(sub: argparse._SubParsersAction) -> None:
    from .run.train_cli import add_config_parser

    add_config_parser(sub)


def cmd_config(args: argparse.Namespace) -> int:
    from .run.train_cli import cmd_config as list_keys

    return list_keys(args)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other refusal of the CLI."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="blob", description="Uncertainty-aware LoRA fine-tuning with BLoB.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train, _add_eval, _add_generate, _add_report, _add_demo, _add_methods, _add_config,
    ):  # fmt: skip
        add(sub)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from .run.train_cli import run_train

    runner, out, cfg = run_train(args)
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
    from .run.eval_flags import EvalFlags, plan_eval
    from .run.files import RunDir, is_write_failure, write_failure_reason
    from .run.runner import Runner
    from .schema import read_flags

    flags = read_flags(EvalFlags, args)
    plan = plan_eval(flags)  # every check that needs no model, before loading one
    run_dir, cfg = flags.run_dir, plan.cfg
    runner = Runner(cfg)
    runner.load_finished(samples=flags.samples)
    if flags.noise:
        adapter = runner.setup.model.adapter_config
        if adapter.kind == "lora":
            raise ConfigError(
                f"--noise needs weight samples, and {run_dir} ({cfg.method}) has none; "
                "use it on a blob, bbb or tfb run"
            )
        if flags.noise in ("head", "linear") and adapter.kind != "blob":
            raise ConfigError(
                f"--noise {flags.noise} needs a Gaussian A and a point-estimate B (a blob or "
                "tfb run); "
                f"{run_dir} ({cfg.method}) has kind {adapter.kind!r}: use sequence or flipout"
            )
        adapter.predict_sample_mode = flags.noise
    try:
        rows = runner.evaluate(samples=flags.samples, datasets=flags.datasets, tag=plan.tag)
    except Exception as err:
        if not is_write_failure(err):
            raise
        raise BlobLoraError(
            f"cannot write in {run_dir}: {write_failure_reason(err)}; free space or fix "
            f"permissions and run again ({RunDir(Path(run_dir)).results(plan.tag).name}, "
            "written last, is as it was)"
        ) from err
    if runner.acc.is_main_process:
        _print_rows(rows)
        print(f"results written to {RunDir(Path(run_dir)).results(plan.tag)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .report.table import METRICS, load_rows, markdown_table

    rows = load_rows(args.paths, metrics=args.metrics or ())
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
    plot = _plot_generation(gen_rows, args)
    if args.output or plot:
        from .report.output import write_outputs

        output = Path(args.output) if args.output else None
        for line in write_outputs(table if output else None, output, plot, gen_rows):
            print(line)
    if not args.output:
        print(table)
    return 0


def _plot_generation(rows: list[dict], args: argparse.Namespace) -> Path | None:
    """Where the plot of generation `rows` goes (None: no plot); an --output or --plot over
    the other, or over an input, is a one-line error before anything is written."""
    from .report.output import not_an_input, plot_path

    plot = plot_path(args.output, args.plot, bool(rows), args.paths)
    if args.output:
        not_an_input(Path(args.output), "--output", args.paths)
    return plot


def cmd_generate(args: argparse.Namespace) -> int:
    from .generation.cli import run_generate
    from .generation.flags import GenerateFlags
    from .schema import read_flags

    return run_generate(read_flags(GenerateFlags, args))


def cmd_demo(args: argparse.Namespace) -> int:
    from .run.demo import run_demo

    start = time.time()
    run_demo(Path(args.output_dir), dataset=args.dataset, max_steps=args.max_steps, seed=args.seed)
    print(f"demo wall time: {time.time() - start:.0f} s")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS
    from .methods.measured import costs_note, measured_costs

    width = max(len(name) for name in METHODS)
    measured = measured_costs()
    for method in METHODS.values():
        samples = ", ".join(map(str, method.default_eval_samples))
        print(f"{method.name:<{width}} N={samples:<6} {method.cost}")
        for line in measured.get(method.name, []):
            print(f"{'':<{width}}   measured: {line}")
    if measured:
        print(f"\n(measured: {costs_note()})")
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
        if "acc" not in r:  # a set with another task's labels: why, as the row says
            why = r.get("labels", "another task's: predictions only")
            print(f"{head}   its labels are {why}")
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
    code = _main(argv)
    if _in_process_group():
        _leave_process_group_and_exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    if args.command in ("train", "eval", "demo", "generate"):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # load reports of fresh heads are expected here
        hf_logging.disable_progress_bar()  # a refusal after loading stays one line on stderr
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
    except BaseException:
        if _in_process_group():  # the traceback follows; close the group while we still can
            sys.modules["torch.distributed"].destroy_process_group()
        raise


def _in_process_group() -> bool:
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def _leave_process_group_and_exit(code: int) -> None:
    """End a process of `accelerate launch` without the interpreter's teardown.

    Gloo's worker threads can still hold work (sharded tensors, FSDP's hooks) that the
    interpreter frees at exit, after the group is gone: a rank that finished its work then
    aborts (CI, stops 21 and 35). So: free what can be freed, close the group, flush, and
    leave at once. Everything the command writes is closed by the time it returns."""
    import gc
    import logging

    gc.collect()
    sys.modules["torch.distributed"].destroy_process_group()
    gc.collect()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
