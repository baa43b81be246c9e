"""`blob generate RUN_DIR`: outputs of a trained generation run for new inputs.

Inputs come from ``--input FILE`` or stdin, both read as UTF-8 (bytes that are not UTF-8
are a one-line error naming the line). They are JSON lines when the file ends in ``.jsonl``
or its first non-empty line is a JSON object: every non-empty line then is an object with
the source text under ``source``, ``text``, ``input`` or the run's own source field and an
optional ``id`` (text or a whole number), or a JSON string; a line that does not parse is
an error naming its number. Anything else is plain text, one input per blank-line-separated
block. Text that is not valid Unicode (a JSON ``"\\ud83d"``: a lone surrogate) is refused
with its line named. For every input: the N=0 output, S sampled outputs and the per-input
uncertainty (disagreement among the samples: 1 - mean pairwise ROUGE-L F1), as JSON lines
or readable text.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import ConfigError

SOURCE_KEYS = ("source", "text", "input")


def decode_input(data: bytes, where: str) -> str:
    """UTF-8 text (a leading byte-order mark dropped), or a one-line error naming the line
    and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigError(
            f"{where} is not UTF-8 text: byte {data[err.start]:#04x} on line {line} (column "
            f"{column}) is {err.reason}; save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def read_input_text(path: str | None, stdin: Any = None) -> tuple[str, str, bool]:
    """(text, where it came from, whether its name says JSON lines) of --input or stdin."""
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise ConfigError(f"input file {file} does not exist")
        if file.is_dir():
            raise ConfigError(f"input file {file} is a folder; give a file of inputs")
        try:
            data = file.read_bytes()
        except OSError as err:
            raise ConfigError(
                f"cannot read input file {file}: {err.strerror or type(err).__name__}"
            ) from None
        return decode_input(data, str(file)), str(file), file.suffix.lower() == ".jsonl"
    stdin = sys.stdin if stdin is None else stdin
    if stdin is None or stdin.isatty():
        raise ConfigError("no input: pass --input FILE, or pipe the inputs on stdin")
    buffer = getattr(stdin, "buffer", None)  # the bytes, decoded by the rule files follow
    text = decode_input(buffer.read(), "stdin") if buffer is not None else stdin.read()
    return text, "stdin", False


def read_inputs(
    text: str, where: str, source_field: str | None = None, jsonl: bool = False
) -> list[tuple[str, str]]:
    """(id, source) of every input in ``text`` (see the module doc); errors name the line.
    ``jsonl``: JSON lines whatever the first line holds (a .jsonl file)."""
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ConfigError(
            f'no input: {where} is empty; give one JSON object per line ({{"source": '
            '"..."}) or plain text, one input per blank-line-separated block'
        )
    if jsonl or isinstance(_json_object(lines[0][1]), dict):
        keys = ((source_field,) if source_field else ()) + SOURCE_KEYS
        out = []
        for number, line in lines:
            place = f"{where} line {number}"
            out.append(_json_input(_json_line(line, place), keys, place, len(out)))
        return out
    blocks = [b.strip() for b in re.split(r"\n[ \t]*\n", "\n".join(text.splitlines()))]
    out = [(str(i), b) for i, b in enumerate(b for b in blocks if b)]
    for i, (_, source) in enumerate(out):
        _unicode(source, f"{where} input {i + 1}")
    return out


def _json_object(line: str) -> Any:
    """The line's JSON value where it is an object, else None (plain text)."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def _json_line(line: str, where: str) -> Any:
    """A line of JSON lines, or a one-line error naming it."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        reason = f"{err.msg}, column {err.colno}"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as err:  # e.g. an integer of more digits than Python reads
        reason = str(err).split(";")[0]
    raise ConfigError(
        f"{where} is not JSON ({reason}); in JSON lines every non-empty line is one object "
        '({"source": "...", "id": ...}) or a JSON string'
    )


def _unicode(text: str, where: str) -> str:
    """Text a tokenizer and a UTF-8 output can take: a lone surrogate is refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = text[err.start : err.end].encode("utf-8", "backslashreplace").decode("ascii")
        raise ConfigError(
            f"{where}: the text holds a lone surrogate {bad} at character {err.start + 1} "
            "(not valid Unicode: half of a UTF-16 pair); fix its encoding"
        ) from None
    return text


def _json_input(value: Any, keys: tuple[str, ...], where: str, index: int) -> tuple[str, str]:
    if isinstance(value, str):
        source, ident = value, str(index)
    elif isinstance(value, dict):
        key = next((k for k in keys if k in value), None)
        if key is None:
            raise ConfigError(f"{where}: no source text; give it under one of {list(keys)}")
        source, ident = value[key], value.get("id", index)
        if isinstance(ident, bool) or not isinstance(ident, str | int):
            raise ConfigError(
                f"{where}: the id is {json.dumps(ident)} ({type(ident).__name__}); give text "
                "or a whole number"
            )
        ident = _unicode(str(ident), f"{where} (id)")
    else:
        raise ConfigError(f"{where}: an input is a JSON object or string")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{where}: the input text is empty")
    return ident, _unicode(source, where)


def run_generate(flags: Any, out: TextIO | None = None) -> int:
    """Generate for the inputs `flags` (a `GenerateFlags`, or the parsed namespace) name."""
    from ..data.examples import GenerationExample
    from ..data.specs import parse_spec
    from .flags import GenerateFlags

    if not isinstance(flags, GenerateFlags):
        from ..schema import read_flags

        flags = read_flags(GenerateFlags, flags)
    run_dir = Path(flags.run_dir)
    cfg = saved_generation_config(run_dir)
    fields = parse_spec(cfg.dataset)[0].fields
    text, where, jsonl = read_input_text(flags.input)
    inputs = read_inputs(text, where, fields.source, jsonl=jsonl)
    samples = cfg.gen_samples if flags.samples is None else flags.samples
    if samples == 1:
        raise ConfigError("gen_samples 1 cannot measure disagreement; pass --samples 0 or >= 2")
    examples = [GenerationExample(src, (), ident, fields.template) for ident, src in inputs]
    cfg.output_dir = str(run_dir)
    runner = load_runner(cfg)
    task = runner.setup.task
    lengths = _prompt_lengths(task, examples, flags.truncate)
    from .evaluate import GenerationEvaluator

    settings = GenerationEvaluator(runner.ctx).decode_settings(flags.max_new_tokens)
    if flags.prompt is not None:
        settings = dataclasses.replace(settings, prompt=flags.prompt)
    from ..tasks.lm_scoring import unwrap_lm
    from .checks import check_positions

    check_positions(
        unwrap_lm(runner.setup.model).config,
        [
            (n, f"input {i + 1} (id {ex.id})")
            for i, (n, ex) in enumerate(zip(lengths, examples, strict=True))
        ],
        settings.max_new_tokens,
        encoder_decoder=task.encoder_decoder,
        flag="--max-new-tokens" if flags.max_new_tokens is not None else None,
    )
    from .predict import generate_outputs

    runner.setup.model.eval()
    with runner.ctx.autocast():
        res = generate_outputs(
            runner.setup.model,
            runner.setup.tokenizer,
            lambda exs: task.prompts(exs, truncate_source=flags.truncate),
            examples,
            samples,
            cfg.seed if flags.seed is None else flags.seed,
            settings,
            progress=len(examples) > 1 and not flags.quiet,
        )
    _write_records(out or sys.stdout, inputs, res, flags.format)
    return 0


def saved_generation_config(run_dir: Path) -> Any:
    """The saved settings of a generation run, or a one-line error saying what it is not."""
    from ..run.config import RunConfig
    from ..run.files import RunDir
    from ..run.setup import resolve_task_kind

    saved = RunDir(run_dir).config
    if not saved.is_file():
        raise ConfigError(f"{run_dir} is not a blob run (no {saved.name})")
    try:
        data = json.loads(saved.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:
        raise ConfigError(f"{saved} is damaged (not JSON: {err}); retrain the run") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{saved} is damaged (not a JSON object of settings); retrain the run")
    cfg = RunConfig.from_saved(data)
    kind = resolve_task_kind(cfg)
    if kind != "generate":
        raise ConfigError(
            f"{run_dir} is not a generation run (its task is {kind}); `blob generate` needs a "
            "run trained with task=generate (e.g. dataset=dialogsum)"
        )
    return cfg


def load_runner(cfg: Any) -> Any:
    """The finished run loaded, without the loading bars (stderr keeps errors and ours)."""
    from transformers.utils import logging as hf_logging

    from ..run.runner import Runner

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # stderr keeps the errors and our own bar only
    try:
        runner = Runner(cfg)
        runner.load_finished(with_eval=False)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return runner


def _write_records(out: TextIO, inputs: list, res: Any, fmt: str) -> None:
    for i, (ident, source) in enumerate(inputs):
        record = {
            "id": ident,
            "input": source,
            "output": res.mean[i],
            "samples": res.samples[i] if res.samples else [],
            "uncertainty": res.disagreement[i] if res.disagreement else None,
        }
        out.write(_text_block(record, i) if fmt == "text" else json.dumps(record) + "\n")
    out.flush()


def _prompt_lengths(task: Any, examples: list, truncate: bool) -> list[int]:
    """The prompt length of every input as it will be generated from. An input whose prompt
    does not fit the run's max_length is an error naming it (unless --truncate, which cuts
    the end of its source)."""
    from .encoding import prompt_ids

    limit = task.encoding.max_length
    lengths = []
    for i, ex in enumerate(examples):
        budget = limit if truncate else 1 << 30
        ids, _ = prompt_ids(ex, task.tokenizer, budget, causal=not task.encoder_decoder)
        n = len(ids)
        if n > limit:
            raise ConfigError(
                f"input {i + 1} (id {ex.id}) is too long: its prompt is {n} tokens and the "
                f"run's max_length is {limit}; shorten it, or pass --truncate to cut the end "
                "of its source"
            )
        lengths.append(n)
    return lengths


def _text_block(record: dict[str, Any], index: int) -> str:
    unc = record["uncertainty"]
    head = f"=== input {index + 1} (id {record['id']})"
    head += f", uncertainty {unc:.3f} ===" if unc is not None else " ==="
    source = record["input"]
    shown = source if len(source) <= 300 else source[:297] + "..."
    lines = [head, "input:", *("  " + ln for ln in shown.splitlines()), f"N=0: {record['output']}"]
    lines += [f"sample {s + 1}: {text}" for s, text in enumerate(record["samples"])]
    return "\n".join(lines) + "\n\n"
