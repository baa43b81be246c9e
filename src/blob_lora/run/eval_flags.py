"""`blob eval`'s flags, defined once (argparse's flags and help come from `EvalFlags` through
`schema.add_flags`, their checks through `schema.read_flags`), and what an evaluation is
allowed to do to a finished run, checked before any model or data is loaded: it writes
under a tag of its own inside the run folder, never over the training run's files, never
over an earlier evaluation unless told to, and only on sets of the run's kind."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator

from ..config import PREDICT_MODES
from ..errors import ConfigError
from ..schema import settings
from ..schema.types import Bool, Count, Name, PlainName, Positive
from .config import RunConfig
from .files import FINAL_TAG, RunDir, dataset_label, training_tag

T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    """Each value once, in the order first given: `--datasets rte rte` is one set."""
    return list(dict.fromkeys(values))


# a list flag whose repeats are dropped (order kept): each set or N evaluated once
Datasets = Annotated[list[Name], AfterValidator(_unique)]
Samples = Annotated[list[Count], AfterValidator(_unique)]


@settings
class EvalFlags:
    run_dir: Name = field(
        metadata={"positional": True, "help": "a directory written by `blob train`"}
    )
    datasets: Datasets | None = field(
        default=None,
        metadata={"help": "datasets to evaluate on (default: the run's); repeats count once"},
    )
    samples: Samples | None = field(
        default=None,
        metadata={"help": "N values, 0 = posterior mean (default: the run's); repeats count once"},
    )
    limit: Positive | None = field(
        default=None,
        metadata={"help": "evaluate only K examples of each set (a seeded subset)"},
    )
    tag: PlainName | None = field(
        default=None,
        metadata={
            "help": "name of the results file: results-TAG.json, predictions/TAG-*, plots/TAG-* "
            "(default: eval; with --noise: eval-NOISE). A plain name: the training run's "
            "own (final, stepK) are refused, an existing results file needs --overwrite"
        },
    )
    noise: Literal[PREDICT_MODES] | None = field(
        default=None,
        metadata={
            "help": "the noise of the N samples for this evaluation (weight-sampling runs: "
            "blob, bbb, tfb): flipout, sequence (one weight sample per input), or head (one "
            "pass: the trunk at its mean and the head adapter's exact Gaussian logits, blob "
            "and tfb runs with an adapter on the output layer), or linear (one forward and "
            "C-1 backward passes: every adapter's noise pushed to the logits to first order, "
            "blob and tfb runs); default: the run's"
        },
    )
    overwrite: Bool = field(
        default=False,
        metadata={"help": "replace this tag's earlier results (never the training run's)"},
    )
    model: Name | None = field(
        default=None,
        metadata={
            "help": "the base model to load instead of the one the run stored (short name, "
            "hub id or folder): e.g. a run trained with a relative --model path, evaluated "
            "from another directory"
        },
    )


@dataclass(frozen=True)
class EvalPlan:
    """What `blob eval` will do, all checked: the run's config (with the model, limit and
    folder of this evaluation), the tag it writes under, and the run's task kind."""

    cfg: RunConfig
    tag: str
    kind: str


def plan_eval(flags: EvalFlags) -> EvalPlan:
    """Check an evaluation before anything heavy is loaded: the folder is a run, the tag is
    this evaluation's own, the sets are distinct and of the run's kind, the model exists."""
    run_dir = Path(flags.run_dir)
    files = RunDir(run_dir)
    if not files.config.is_file():
        raise ConfigError(f"{run_dir} is not a blob run (no {files.config.name})")
    try:
        saved = json.loads(files.config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{files.config} is not JSON ({err}); it is not a blob run") from None
    cfg = RunConfig.from_saved(saved)
    if flags.model is not None:
        cfg.model = flags.model
    if flags.limit is not None:
        cfg.eval_limit = flags.limit
    cfg.output_dir = str(run_dir)  # the run may have moved since it was trained
    tag = eval_tag(flags)
    check_tag(files, tag, flags.overwrite)
    check_distinct_sets(flags.datasets or [])
    kind = run_kind(cfg, run_dir, given_model=flags.model is not None)
    check_set_kinds(kind, flags.datasets or [], run_dir)
    return EvalPlan(cfg, tag, kind)


def eval_tag(flags: EvalFlags) -> str:
    """The tag given, else `eval` (`eval-NOISE` under another noise)."""
    if flags.tag is not None:
        return flags.tag
    return f"eval-{flags.noise}" if flags.noise else "eval"


def check_tag(files: RunDir, tag: str, overwrite: bool) -> None:
    """The training run's files (results-final.json, predictions/final-*) are never
    replaced; an earlier evaluation's only with --overwrite."""
    if training_tag(tag):
        if tag.lower().startswith("step"):
            raise ConfigError(
                f"--tag {tag} is the name of the training run's step evaluations (stepK), "
                "which `blob eval` never takes; choose another tag"
            )
        raise ConfigError(
            f"--tag {tag} would write over the training run's own results "
            f"({files.results(FINAL_TAG).name}, predictions/{FINAL_TAG}-*, plots/"
            f"{FINAL_TAG}-*), which `blob eval` never replaces; choose another tag"
        )
    results = files.results(tag)
    if results.exists() and not overwrite:
        raise ConfigError(
            f"{results} exists (an earlier `blob eval --tag {tag}`); pass --overwrite to "
            "replace it, or another --tag to keep both"
        )


def check_distinct_sets(datasets: list[str]) -> None:
    """Two different sets written under one label would share results rows and
    prediction files (`rte` and `{"name": "rte"}`, two JSON files both named `custom`)."""
    seen: dict[str, str] = {}
    for name in datasets:
        label = dataset_label(name)
        if label in seen:
            raise ConfigError(
                f"--datasets {seen[label]!r} and {name!r} are both written as {label!r}; give "
                'the set once (a JSON spec: a distinct "name")'
            )
        seen[label] = name


def run_kind(cfg: RunConfig, run_dir: Path, given_model: bool) -> str:
    """The run's task kind; its model must be found from here (a run trained with a
    relative model path and evaluated from another folder: --model)."""
    from ..models import ModelNotAvailableError, resolve_model
    from .checks import resolve_task_kind

    try:
        resolve_model(cfg.model)
        return resolve_task_kind(cfg)
    except ModelNotAvailableError as err:
        if given_model:
            raise
        raise ConfigError(
            f"{err}; {run_dir} was trained with model {cfg.model!r}: pass --model with that "
            "model's folder (or hub id) as seen from here"
        ) from None


# what a run of each kind evaluates
_EVALUATES = {
    "generate": ("generation", "generation sets (source/target texts)"),
    "classification": ("classification", "texts with labels (or fixed answer words)"),
    "choice": ("multiple-choice", "multiple-choice questions"),
}


def check_set_kinds(kind: str, datasets: list[str], run_dir: Path) -> None:
    """Every set given is of the run's kind (the rule training applies to eval_datasets):
    a generation run evaluates generation sets only, a classifier no generation set."""
    from ..data.specs import parse_spec
    from ..generation.checks import DATASET_KINDS

    run_name, evaluates = _EVALUATES[kind]
    for name in datasets:
        spec, _ = parse_spec(name, "--datasets")
        words = getattr(spec.fields, "choice_words", None) is not None
        if spec.kind != kind and not (kind == "classification" and words):
            holds = DATASET_KINDS[spec.kind][0]
            raise ConfigError(
                f"dataset {dataset_label(name)!r} holds {holds} and {run_dir} is a {run_name} "
                f"run, which evaluates {evaluates} only; give --datasets of that kind"
            )
