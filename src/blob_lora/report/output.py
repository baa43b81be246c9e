"""Where `blob report` writes: the table (--output) and the generation plot (--plot, else
beside --output as .png), both or neither.

Every destination is checked before anything is written (a folder where a file goes, a
parent that is a file, a folder without write permission, the plot and the table on one
file, an output over one of the inputs); then both files are written to temporary siblings
and moved into place together, so a failure leaves the old files (or none), never a table
without its plot or a plot over its table.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import ConfigError


def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def plot_path(
    output: str | None, plot: str | None, generation: bool, inputs: Iterable[str | Path] = ()
) -> Path | None:
    """The plot's file: --plot, else --output's path as .png (generation rows only); one
    that is the table's own file or one of the inputs is refused."""
    if not generation:
        return None
    if plot:
        path = Path(plot)
        if output and _same(path, Path(output)):
            raise ConfigError(
                f"--plot and --output are both {output}: the table would overwrite the "
                "plot; give them different files"
            )
    elif output:
        path = Path(output).with_suffix(".png")
        if _same(path, Path(output)):
            raise ConfigError(
                f"--output {output} is where the plot goes (generation results plot beside "
                f"--output, as .png): give the table another name (e.g. "
                f"{Path(output).with_suffix('.md')}), or --plot another file"
            )
    else:
        return None
    not_an_input(path, "--plot" if plot else "the plot (beside --output)", inputs)
    return path


def not_an_input(path: Path, flag: str, inputs: Iterable[str | Path]) -> None:
    for given in map(Path, inputs):
        files = sorted(given.glob("*.json")) if given.is_dir() else [given]
        for found in files:
            if _same(path, found):
                raise ConfigError(
                    f"{flag} {path} is one of the results being read ({found}); write "
                    "to another file"
                )


def check_writable(path: Path, what: str) -> None:
    """A file can be written at `path` (its folder made where missing): else a one-line
    ConfigError naming `what` (the table, the plot) and why, before anything is written."""
    if path.is_dir():
        raise ConfigError(f"cannot write {what} to {path}: it is a folder; give a file path")
    parent = path.parent
    while not parent.exists():  # the first ancestor that exists is where folders are made
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {what} to {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} to {path}: no permission to write in {parent}")


def write_outputs(
    table: str | None, output: Path | None, plot: Path | None, rows: list[dict[str, Any]]
) -> list[str]:
    """Write the table (to `output`) and the plot of `rows` (to `plot`), all or nothing;
    the lines saying where they went."""
    for path, what in ((output, "the table"), (plot, "the plot")):
        if path is not None:
            check_writable(path, what)
    figure = None
    if plot is not None:
        from .generation_plot import generation_figure

        figure = generation_figure(rows)
    said = []
    try:
        with contextlib.ExitStack() as stack:
            if output is not None:
                tmp = stack.enter_context(atomic_path(output))
                tmp.write_text(table or "", encoding="utf-8")
                said.append(f"table written to {output}")
            if plot is not None:
                tmp = stack.enter_context(atomic_path(plot))
                try:
                    figure.savefig(tmp, format="png", dpi=110)
                except ValueError as err:  # e.g. a figure too large to draw
                    raise ConfigError(f"cannot draw the plot for {plot}: {err}") from None
                said.insert(0, f"plot written to {plot}")
    except OSError as err:
        where = err.filename or output or plot
        raise ConfigError(
            f"cannot write the report to {where}: {err.strerror or type(err).__name__}; "
            "choose a writable file path"
        ) from None
    return said
