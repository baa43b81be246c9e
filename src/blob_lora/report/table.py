"""Runs x seeds -> Markdown tables laid out like the paper's (mean +- std per cell)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..run.files import RunDir
from .keys import DIGITS, LABELS, METRICS, OPTIONAL, PER_RUN  # noqa: F401 (the table's names)

REQUIRED = ("dataset", "method")


IGNORED_KEYS = ("seed", "output_dir")  # what may differ between seeds of one setting


def load_rows(paths: Iterable[str | Path], metrics: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Result rows from run directories or JSON/JSONL row files; a path that holds none, or a
    row that lacks a field or holds null or text where a number goes (`report.rows`, with
    `metrics` read as numbers too), is a one-line error naming the file, row and field.

    A run directory gives every results file in it: `results-final.json` and those `blob
    eval` wrote (`results-TAG.json`, their rows tagged). Each row is keyed by its run's
    setting (run_config.json less the seed and folder), so the table averages seeds of
    one setting only; the same setting and seed twice is an error."""
    from ..errors import BlobLoraError

    metrics = tuple(metrics)
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, Path] = {}
    for given in map(Path, paths):
        if not given.exists():
            raise BlobLoraError(f"{given} does not exist: give run directories or results files")
        files = sorted(given.glob("results-*.json")) if given.is_dir() else [given]
        if not files:
            raise BlobLoraError(
                f"{given} holds no results: give run directories (with results-final.json) "
                "or results JSON files"
            )
        setting = _setting(given if given.is_dir() else given.parent)
        final_rows = [
            row
            for path in files
            if path.name == "results-final.json"
            for row in _read_rows(path, metrics)
        ]
        for path in files:
            tag = path.stem.removeprefix("results-") if given.is_dir() else None
            for row in _read_rows(path, metrics):
                if tag and tag != "final":
                    if row in final_rows:
                        continue  # `blob eval` of the same set and N: the final row, again
                    row = {**row, "tag": tag}
                row = {**row, "setting": setting} if setting else row
                key = tuple(
                    row.get(k) for k in ("setting", "seed", "dataset", "method", "n_samples", "tag")
                )
                if setting and key in seen:
                    raise BlobLoraError(
                        f"{path} and {seen[key]} hold the same setting, seed and evaluation; "
                        "pass one of them"
                    )
                seen[key] = path
                rows.append(row)
    _name_settings(rows)
    return rows


def _read_rows(path: Path, metrics: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The checked rows of one results file (JSON: a row or a list; JSONL: a row a line)."""
    from ..errors import BlobLoraError
    from .rows import check_row

    text = _read_text(path)
    where: list[str] = []
    try:
        if path.suffix == ".jsonl":
            found = []
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    where.append(f"{path} line {number}")
                    found.append(_json(line, where[-1]))
        else:
            data = _json(text, str(path))
            found = data if isinstance(data, list) else [data]
            where = [f"{path} row {i}" for i in range(1, len(found) + 1)]
            if not isinstance(data, list):
                where = [str(path)]
    except ValueError as err:
        raise BlobLoraError(
            f"{err.args[0]} is not a results file (not JSON: {err.args[1]})"
        ) from None
    if not found or not any(isinstance(r, dict) and set(REQUIRED) & set(r) for r in found):
        raise BlobLoraError(
            f"{path} is not a results file: its rows need {', '.join(REQUIRED)} and metrics"
        )
    return [check_row(row, w, metrics) for row, w in zip(found, where, strict=True)]


def _read_text(path: Path) -> str:
    """A file's text, UTF-8; an unreadable or undecodable file is a one-line error."""
    from ..errors import BlobLoraError

    try:
        data = path.read_bytes()
    except OSError as err:
        raise BlobLoraError(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise BlobLoraError(
            f"{path} is not UTF-8 text (byte {data[err.start]:#04x} on line {line}); "
            "results files are written as UTF-8"
        ) from None


def _json(text: str, where: str) -> Any:
    """JSON text, or ValueError(where, reason): a syntax error, nesting too deep, a number
    too long to read."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(where, f"{err.msg}, line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise ValueError(where, "nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more digits than Python reads
        raise ValueError(where, str(err).split(";")[0]) from None


def _setting(run_dir: Path) -> str | None:
    """The run's configuration without what differs between seeds, as sorted JSON."""
    from ..errors import BlobLoraError

    config = RunDir(run_dir).config
    if not config.is_file():
        return None
    try:
        cfg = _json(_read_text(config), str(config))
    except ValueError as err:
        raise BlobLoraError(f"{config} is not a run config (not JSON: {err.args[1]})") from None
    if not isinstance(cfg, dict):
        raise BlobLoraError(f"{config} is not a run config (a JSON object of settings)")
    return json.dumps({k: v for k, v in cfg.items() if k not in IGNORED_KEYS}, sort_keys=True)


def _name_settings(rows: list[dict[str, Any]]) -> None:
    """Where one method on one dataset comes in several settings, label each row with the
    keys that differ (e.g. `lr=0.001`), so they never merge into one cell."""
    groups: dict[tuple, set[str]] = defaultdict(set)
    for row in rows:
        if row.get("setting"):
            groups[(row["method"], row["dataset"])].add(row["setting"])
    for row in rows:
        settings = groups.get((row["method"], row["dataset"]), set())
        if len(settings) < 2:
            continue
        parsed = [json.loads(x) for x in sorted(settings)]
        mine = json.loads(row["setting"])
        differ = sorted(k for k in mine if any(p.get(k) != mine[k] for p in parsed))
        row["variant"] = " ".join(f"{k}={json.dumps(mine[k])}" for k in differ)


def method_label(row: dict[str, Any]) -> str:
    from ..methods import sample_label  # here: the registry pulls in torch

    label = sample_label(row["method"], row.get("n_samples", 0))
    if row.get("variant"):
        label += f" [{row['variant']}]"
    if row.get("tag"):
        label += f" [{row['tag']}]"
    return label


def mean_std_cell(values: list[float], digits: int, planned: int | None = None) -> str:
    """``mean ± std`` over seeds; one seed has no std, so it shows the mean and ``(1)``.
    With ``planned`` seeds, a cell with fewer or more also shows its count."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (1)"
    std = statistics.stdev(values)
    count = "" if planned in (None, len(values)) else f" ({len(values)})"
    return f"{mean:.{digits}f} ± {std:.{digits}f}{count}"


def markdown_table(rows: list[dict[str, Any]], metrics: Iterable[str] = METRICS) -> str:
    """One block per metric; methods as rows, datasets as columns, as the paper lays it out."""
    cells: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    methods: list[str] = []
    datasets: list[str] = []
    # a run's N rows share its posterior: its per-run rows sit once, on its first row's label
    first_label: dict[tuple, str] = {}
    for row in rows:
        label = method_label(row)
        if label not in methods:
            methods.append(label)
        if row["dataset"] not in datasets:
            datasets.append(row["dataset"])
        run = (row["method"], row.get("variant"), row.get("tag"), row["dataset"], row.get("seed"))
        per_run_label = first_label.setdefault(run, label)
        for metric in metrics:
            if metric in PER_RUN and label != per_run_label:
                continue
            if metric in row:
                cells[(metric, label, row["dataset"])].append(float(row[metric]))
    lines = [
        "| metric | method | " + " | ".join(datasets) + " |",
        "|---|---|" + "---|" * len(datasets),
    ]
    # one majority class per dataset and seed: every method's rows of a seed share it
    by_seed: dict[str, dict[Any, float]] = defaultdict(dict)
    for row in rows:
        if "majority_acc" in row and row.get("n_samples", 0) == 0:
            by_seed[row["dataset"]].setdefault(row.get("seed"), float(row["majority_acc"]))
    majority = {ds: list(seeds.values()) for ds, seeds in by_seed.items()}
    for metric in metrics:
        digits = DIGITS.get(metric, 2)
        if metric == "acc" and majority:
            lines.append(
                f"| {LABELS['acc']} | majority class | "
                + " | ".join(mean_std_cell(majority.get(ds, []), 2) for ds in datasets)
                + " |"
            )
        for label in methods:
            if metric in OPTIONAL and not any((metric, label, ds) in cells for ds in datasets):
                continue  # a method with no posterior, or no samples, has no such row
            row_cells = []
            for ds in datasets:
                row_cells.append(mean_std_cell(cells.get((metric, label, ds), []), digits))
            lines.append(
                f"| {md_cell(LABELS.get(metric, metric))} | {md_cell(label)} | "
                + " | ".join(row_cells)
                + " |"
            )
    seeds = sorted({r.get("seed") for r in rows})
    lines.append("")
    lines.append(f"mean ± std over seeds {seeds}; (1): a single seed, no std.")
    return "\n".join(lines) + "\n"


def md_cell(text: str) -> str:
    """Text safe in a markdown cell: a bare | (as in σ/|μ|) would split it."""
    return text.replace("|", "\\|")
