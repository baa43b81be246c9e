"""The tiny MiniLM run the end-to-end tests start from: RTE, a few steps on a few rows."""

from blob_lora.run.config import RunConfig


def tiny_run_config(tmp_path, name="run", **kw):
    base = {
        "model": "minilm",
        "dataset": "rte",
        "method": "blob",
        "output_dir": str(tmp_path / name),
        "max_steps": 6,
        "batch_size": 4,
        "train_limit": 24,
        "eval_limit": 10,
        "eval_batch_size": 16,
        "save_every": 3,
        "max_length": 64,
        "eval_samples": [0, 2],
        "lr": 5e-3,
    }
    base.update(kw)
    return RunConfig.from_dict(base)
