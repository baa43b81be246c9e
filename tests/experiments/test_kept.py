"""Dev-split runs kept in the repository: what is copied, and when a run is trained again."""

import json
import sys
from pathlib import Path

import pytest

from experiments import dev_runs, kept


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(kept, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(kept, "KEPT", tmp_path / "kept")
    return tmp_path


def _finished_run(out: Path, steps: int = 1000) -> None:
    (out / "predictions").mkdir(parents=True)
    (out / "adapter").mkdir()
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"x" * 100)
    (out / "results-final.json").write_text('[{"acc": 80.0}]')
    (out / "metrics.jsonl").write_text("".join(f'{{"step": {i}}}\n' for i in range(1, steps + 1)))
    (out / "predictions" / "final-x-N5.jsonl").write_text('{"text": "a"}\n')
    (out / "predictions" / "final-x-N5.safetensors").write_bytes(b"big")


def test_keep_copies_the_report_files_thins_the_log_and_leaves_adapters(dirs):
    out = dirs / "runs" / "study" / "a"
    _finished_run(out)
    assert kept.where(out) == out  # finished here: read here, and kept on the way
    copy = dirs / "kept" / "study" / "a"
    assert json.loads((copy / "results-final.json").read_text()) == [{"acc": 80.0}]
    steps = [json.loads(x)["step"] for x in (copy / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == kept.MAX_LINES and steps[0] == 1 and steps[-1] == 1000
    assert steps == sorted(set(steps))
    assert (copy / "predictions" / "final-x-N5.jsonl").is_file()
    assert not (copy / "predictions" / "final-x-N5.safetensors").exists()
    assert not (copy / "adapter").exists()
    import shutil

    shutil.rmtree(dirs / "runs")  # a new session
    assert kept.finished(out) and not kept.finished_here(out) and kept.where(out) == copy


def test_run_once_skips_a_kept_run_unless_its_adapter_is_needed(dirs, monkeypatch):
    monkeypatch.setattr(dev_runs, "ROOT", dirs)
    out = dirs / "runs" / "study" / "b"
    (dirs / "kept" / "study" / "b").mkdir(parents=True)
    (dirs / "kept" / "study" / "b" / "results-final.json").write_text("[]")
    fails = [sys.executable, "-c", "raise SystemExit(1)"]
    assert dev_runs.run_once("b", fails, out)  # kept: not run again
    trains = [sys.executable, "-c", f"import pathlib; p = pathlib.Path({str(out)!r}); "
              "p.mkdir(parents=True, exist_ok=True); "
              "(p / 'results-final.json').write_text('[{\"acc\": 1}]')"]  # fmt: skip
    assert dev_runs.run_once("b", trains, out, need_adapter=True)
    assert kept.finished_here(out)
    assert (dirs / "kept" / "study" / "b" / "results-final.json").read_text() == '[{"acc": 1}]'


def test_a_run_outside_runs_is_never_kept(dirs):
    out = dirs / "elsewhere" / "c"
    _finished_run(out, steps=3)
    assert kept.kept_dir(out) is None and kept.where(out) == out
    assert not (dirs / "kept").exists()


def test_run_once_times_every_start_and_the_kept_copy_keeps_the_machine_time(dirs):
    """A start that fails is machine time too: the finished run's cost counts both starts,
    as wall x threads / cores, and survives in the kept copy for a later session."""
    out = dirs / "runs" / "study" / "t"
    fails = [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(1)"]
    assert not dev_runs.run_once("t", fails, out, threads=2)
    assert json.loads((dirs / "runs" / "study" / "t.wall.json").read_text())["wall_s"] >= 0.3
    assert dev_runs.machine_hours(out) is None  # not finished: nothing to read
    trains = [sys.executable, "-c", f"import pathlib, time; time.sleep(0.3); "
              f"p = pathlib.Path({str(out)!r}); p.mkdir(parents=True, exist_ok=True); "
              "(p / 'results-final.json').write_text('[]')"]  # fmt: skip
    assert dev_runs.run_once("t", trains, out, threads=2)
    cost = json.loads((dirs / "kept" / "study" / "t" / kept.MACHINE_TIME).read_text())
    assert cost["threads"] == 2 and cost["wall_s"] >= 0.6  # both starts
    assert not (dirs / "runs" / "study" / "t.wall.json").exists()
    import shutil

    shutil.rmtree(dirs / "runs")  # a new session reads the kept copy
    hours = dev_runs.machine_hours(out)
    assert hours == pytest.approx(cost["wall_s"] * 2 / cost["cores"] / 3600)
