"""Reliability diagram: a readable PNG, written atomically, with the same ECE as metrics.ece."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from blob_lora.metrics import ece
from blob_lora.report.reliability import plot_reliability, reliability_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _case(n: int = 400, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(n, c, generator=g) * 2, -1)
    return probs, torch.randint(0, c, (n,), generator=g)


def test_writes_a_valid_png_and_no_temp_file(tmp_path) -> None:
    probs, labels = _case()
    out = plot_reliability(probs, labels, tmp_path / "plots" / "rel.png", title="RTE / BLoB")
    assert out == tmp_path / "plots" / "rel.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something was drawn
    assert [p.name for p in out.parent.iterdir()] == ["rel.png"]


def test_overwrites_an_existing_file(tmp_path) -> None:
    path = tmp_path / "rel.png"
    path.write_bytes(b"old")
    plot_reliability(*_case(), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["rel.png"]


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    path = tmp_path / "rel.png"
    path.write_bytes(b"previous plot")

    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_reliability(*_case(), path)
    assert path.read_bytes() == b"previous plot"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["rel.png"]


def test_title_reports_the_same_ece_as_metrics() -> None:
    probs, labels = _case()
    fig = reliability_figure(probs, labels, title="demo", n_bins=10)
    title = fig.axes[0].get_title()
    assert title.startswith("demo\n")
    assert f"ECE = {100 * ece(probs, labels, n_bins=10):.2f}%" in title
    assert "n=400" in title and "10 bins" in title


def test_bad_input_raises_before_writing(tmp_path) -> None:
    probs, labels = _case()
    with pytest.raises(ValueError, match="labels"):
        plot_reliability(probs, labels[:-1], tmp_path / "rel.png")
    assert list(tmp_path.iterdir()) == []


def test_handles_single_class_confidence_and_empty_bins(tmp_path) -> None:
    # Every example in one bin: the other 14 bins are empty and must not break the plot.
    probs = np.tile([[1.0, 0.0]], (5, 1))
    path = plot_reliability(probs, np.array([0, 0, 0, 1, 1]), tmp_path / "one.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
