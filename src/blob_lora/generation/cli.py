"""`blob generate RUN_DIR`: outputs of a trained generation run for new inputs.

Inputs come from ``--input FILE`` or stdin: JSON lines (each an object with the source text
under ``source``, ``text``, ``input`` or the run's own source field, and an optional ``id``;
or a JSON string), else plain text with one input per blank-line-separated block. For every
input: the N=0 output, S sampled outputs and the per-input uncertainty (disagreement among
the samples: 1 - mean pairwise ROUGE-L F1), as JSON lines or readable text.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError

SOURCE_KEYS = ("source", "text", "input")


def read_inputs(text: str, where: str, source_field: str | None = None) -> list[tuple[str, str]]:
    """(id, source) of every input in ``text`` (see the module doc); errors name the line."""
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ConfigError(
            f'no input: {where} is empty; give one JSON object per line ({{"source": '
            '"..."}) or plain text, one input per blank-line-separated block'
        )
    parsed = [_json(line) for _, line in lines]
    if all(p is not None for p in parsed):
        keys = ((source_field,) if source_field else ()) + SOURCE_KEYS
        out = []
        for (number, _), value in zip(lines, parsed, strict=True):
            out.append(_json_input(value, keys, f"{where} line {number}", len(out)))
        return out
    blocks = [b.strip() for b in re.split(r"\n[ \t]*\n", "\n".join(text.splitlines()))]
    return [(str(i), b) for i, b in enumerate(b for b in blocks if b)]


def _json(line: str) -> Any:
    stripped = line.strip()
    if not stripped.startswith(("{", '"')):
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return None


def _json_input(value: Any, keys: tuple[str, ...], where: str, index: int) -> tuple[str, str]:
    if isinstance(value, str):
        source, ident = value, str(index)
    elif isinstance(value, dict):
        key = next((k for k in keys if k in value), None)
        if key is None:
            raise ConfigError(f"{where}: no source text; give it under one of {list(keys)}")
        source, ident = value[key], str(value.get("id", index))
    else:
        raise ConfigError(f"{where}: an input is a JSON object or string")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: the input text is empty")
    return ident, source


def run_generate(args: Any, out: TextIO | None = None) -> int:
    from ..data.examples import GenerationExample
    from ..data.specs import parse_spec
    from ..run.config import RunConfig
    from ..run.files import RunDir
    from ..run.runner import Runner
    from ..run.setup import resolve_task_kind

    run_dir = Path(args.run_dir)
    saved = RunDir(run_dir).config
    if not saved.is_file():
        raise ConfigError(f"{run_dir} is not a blob run (no {saved.name})")
    cfg = RunConfig.from_saved(json.loads(saved.read_text()))
    kind = resolve_task_kind(cfg)
    if kind != "generate":
        raise ConfigError(
            f"{run_dir} is not a generation run (its task is {kind}); `blob generate` needs a "
            "run trained with task=generate (e.g. dataset=dialogsum)"
        )
    fields = parse_spec(cfg.dataset)[0].fields
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise ConfigError(f"input file {path} does not exist")
        text, where = path.read_text(encoding="utf-8"), str(path)
    elif sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("no input: pass --input FILE, or pipe the inputs on stdin")
    else:
        text, where = sys.stdin.read(), "stdin"
    inputs = read_inputs(text, where, fields.source)
    samples = cfg.gen_samples if args.samples is None else args.samples
    if samples == 1:
        raise ConfigError("--samples 1 cannot measure disagreement; use 0 or >= 2")
    examples = [GenerationExample(src, (), ident, fields.template) for ident, src in inputs]
    cfg.output_dir = str(run_dir)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # stderr keeps the errors and our own bar only
    try:
        runner = Runner(cfg)
        runner.load_finished(with_eval=False)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    task = runner.setup.task
    _check_lengths(task, examples, args.truncate)
    from .evaluate import GenerationEvaluator

    settings = GenerationEvaluator(runner.ctx).decode_settings(args.max_new_tokens)
    from .predict import generate_outputs

    runner.setup.model.eval()
    with runner.ctx.autocast():
        res = generate_outputs(
            runner.setup.model,
            runner.setup.tokenizer,
            lambda exs: task.prompts(exs, truncate_source=args.truncate),
            examples,
            samples,
            cfg.seed if args.seed is None else args.seed,
            settings,
            progress=len(examples) > 1 and not args.quiet,
        )
    out = out or sys.stdout
    for i, (ident, source) in enumerate(inputs):
        record = {
            "id": ident,
            "input": source,
            "output": res.mean[i],
            "samples": res.samples[i] if res.samples else [],
            "uncertainty": res.disagreement[i] if res.disagreement else None,
        }
        out.write(_text_block(record, i) if args.format == "text" else json.dumps(record) + "\n")
    out.flush()
    return 0


def _check_lengths(task: Any, examples: list, truncate: bool) -> None:
    """An input whose prompt does not fit the run's max_length is an error naming it
    (unless --truncate, which cuts the end of its source)."""
    if truncate:
        return
    from .encoding import prompt_ids

    limit = task.encoding.max_length
    for i, ex in enumerate(examples):
        ids, _ = prompt_ids(ex, task.tokenizer, 1 << 30, causal=not task.encoder_decoder)
        n = len(ids)
        if n > limit:
            raise ConfigError(
                f"input {i + 1} (id {ex.id}) is too long: its prompt is {n} tokens and the "
                f"run's max_length is {limit}; shorten it, or pass --truncate to cut the end "
                "of its source"
            )


def _text_block(record: dict[str, Any], index: int) -> str:
    unc = record["uncertainty"]
    head = f"=== input {index + 1} (id {record['id']})"
    head += f", uncertainty {unc:.3f} ===" if unc is not None else " ==="
    source = record["input"]
    shown = source if len(source) <= 300 else source[:297] + "..."
    lines = [head, "input:", *("  " + ln for ln in shown.splitlines()), f"N=0: {record['output']}"]
    lines += [f"sample {s + 1}: {text}" for s, text in enumerate(record["samples"])]
    return "\n".join(lines) + "\n\n"
