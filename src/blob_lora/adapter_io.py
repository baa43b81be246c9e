"""Adapters on disk: safetensors + JSON only, written atomically, never unpickled.

Native format (a directory):
    blob_adapter.json          {"format": "blob-lora-adapter", "version": 1, "config": {...},
                                "shapes": {name: [dims]}}
    adapter_model.safetensors  every trainable tensor, keyed by its path in the model

The posterior mean also exports as a plain PEFT LoRA directory, and a PEFT LoRA adapter
imports as the starting mean of a Bayesian adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.pytorch_utils import Conv1D

from .adapter_model import BlobModel
from .config import AdapterConfig
from .errors import CheckpointError
from .layers.quantized import quantization_of
from .sharding import load_into

FORMAT = "blob-lora-adapter"
VERSION = 1
CONFIG_FILE = "blob_adapter.json"
SHA256_KEY = "files_sha256"  # in each JSON of a saved folder: its tensor files' digests
WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_PREFIX = "base_model.model."


def write_dir_atomically(
    path: str | os.PathLike, files: dict[str, Any], record_sha256: bool = True
) -> Path:
    """Write {filename: dict (JSON) | tensor dict (safetensors)} into a new directory.

    Built in a sibling temp directory and renamed into place, so a crash leaves either
    the old directory or the complete new one, never half of one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it owner-only; a saved run is not private
    try:
        digests = {}
        for filename, content in files.items():
            if filename.endswith(".safetensors"):
                tensors = {k: v.detach().contiguous().cpu() for k, v in content.items()}
                save_file(tensors, str(tmp / filename), metadata={"format": "pt"})
                os.chmod(tmp / filename, 0o666 & ~umask)  # safetensors writes it owner-only
                digests[filename] = file_sha256(tmp / filename)
        for filename, content in files.items():
            if not filename.endswith(".safetensors"):
                if isinstance(content, dict) and digests and record_sha256:
                    content = {**content, SHA256_KEY: digests}
                (tmp / filename).write_text(json.dumps(content, indent=2, sort_keys=True))
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: dict[str, str] | None) -> None:
    """The tensor file's digest against the one its JSON recorded (older saves have none)."""
    want = (expected or {}).get(path.name)
    if want is not None and path.is_file() and file_sha256(path) != want:
        raise CheckpointError(
            f"{path} is corrupted: its sha256 differs from the one recorded when it was saved; "
            "restore it from a copy"
        )


def save_adapter(
    model: BlobModel,
    path: str | os.PathLike,
    extra: dict | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the adapter; `state`: its tensors already gathered (a sharded run gathers
    them on every process and writes them from one)."""
    state = model.adapter_state_dict() if state is None else state
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.adapter_config.to_dict(),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "base_model": getattr(model.config, "_name_or_path", None),
        **(extra or {}),
    }
    quantized = quantization_of(model)
    if quantized:  # informative only: the adapter loads onto any precision of the base
        meta["base_quantization"] = quantized
    return write_dir_atomically(path, {CONFIG_FILE: meta, WEIGHTS_FILE: state})


def read_adapter_config(path: str | os.PathLike) -> dict[str, Any]:
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} in {path}: not a blob-lora adapter directory")
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{config_path} is not valid JSON ({err}); re-save the adapter"
        ) from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{config_path} is not a blob-lora adapter (format={meta.get('format')!r})"
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{config_path} has adapter format version {meta.get('version')}; this blob-lora "
            f"reads version {VERSION}"
        )
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"cannot read {path}: {err}; the file is corrupted or truncated"
        ) from err


def load_adapter(model: nn.Module, path: str | os.PathLike) -> BlobModel:
    """Inject the saved adapter config into `model` and load its weights exactly."""
    meta = read_adapter_config(path)
    blob = BlobModel(model, AdapterConfig.from_saved(meta["config"]))
    load_adapter_weights(blob, path)
    return blob


def load_adapter_weights(model: BlobModel, path: str | os.PathLike) -> None:
    """Load saved weights into an already-wrapped model, checking their sha256, names
    and shapes."""
    config = Path(path) / CONFIG_FILE
    if config.is_file():
        verify_sha256(Path(path) / WEIGHTS_FILE, read_adapter_config(path).get(SHA256_KEY))
    tensors = _read_tensors(Path(path) / WEIGHTS_FILE)
    params = dict(model.named_trainable_parameters())
    _check_state_matches(tensors, params, path)
    with torch.no_grad():
        for name, param in params.items():
            load_into(param, tensors[name])


def _check_state_matches(
    tensors: dict[str, torch.Tensor], params: dict[str, nn.Parameter], path: Any
) -> None:
    missing = sorted(set(params) - set(tensors))
    unexpected = sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise CheckpointError(
            f"adapter in {path} does not match the model: missing {missing[:3]}"
            f"{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
            f"{'...' if len(unexpected) > 3 else ''}; load it into the base model it was trained on"
        )
    for name, param in params.items():
        if tuple(tensors[name].shape) != tuple(param.shape):
            raise CheckpointError(
                f"adapter in {path} does not match the model: {name} has shape "
                f"{tuple(tensors[name].shape)} in the file but {tuple(param.shape)} in the model; "
                "load it into the base model (and rank) it was trained on"
            )


# -- PEFT interop ---------------------------------------------------------------------------
def export_peft(model: BlobModel, path: str | os.PathLike) -> Path:
    """Write the posterior mean as a PEFT LoRA adapter (N=0 outputs are unchanged)."""
    from peft import LoraConfig

    cfg = model.adapter_config
    adapters = model.adapters()
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in adapters.items():
        a, b = layer.mean_weights()
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b
    for name, param in model.named_trainable_parameters():
        if ".lora_" not in name:  # modules_to_save
            tensors[f"{PEFT_PREFIX}{name}"] = param.detach()
    fan_in_fan_out = any(isinstance(layer.base, Conv1D) for layer in adapters.values())
    peft_config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=sorted(adapters),
        modules_to_save=list(cfg.modules_to_save) or None,
        fan_in_fan_out=fan_in_fan_out,
        base_model_name_or_path=getattr(model.config, "_name_or_path", None),
    )
    peft_dict = peft_config.to_dict()
    peft_dict = json.loads(json.dumps(peft_dict, default=_json_default))
    # a PEFT folder keeps PEFT's own config keys only (PEFT warns about unknown ones)
    return write_dir_atomically(
        path, {PEFT_CONFIG_FILE: peft_dict, WEIGHTS_FILE: tensors}, record_sha256=False
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def from_peft(
    model: nn.Module, path: str | os.PathLike, config: AdapterConfig | None = None, **overrides: Any
) -> BlobModel:
    """Start a Bayesian adapter from a trained PEFT LoRA: its A becomes the mean M, its B
    stays B, and the std parameters start at their usual init.

    Rank, alpha and targets come from the PEFT config; other settings (kind, prior) from
    `config`/`overrides`.
    """
    config_path = Path(path) / PEFT_CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"no {PEFT_CONFIG_FILE} in {path}: not a PEFT adapter directory")
    peft_cfg = json.loads(config_path.read_text())
    if peft_cfg.get("peft_type") != "LORA":
        raise CheckpointError(
            f"{path} holds a {peft_cfg.get('peft_type')} adapter; only LORA imports"
        )
    for flag in ("use_dora", "use_rslora"):
        if peft_cfg.get(flag):
            raise CheckpointError(f"{path} uses {flag}, which blob-lora does not support")
    tensors = _read_tensors(Path(path) / WEIGHTS_FILE)
    names = _peft_lora_names(tensors, path)
    base = (config.to_dict() if config is not None else AdapterConfig().to_dict()) | overrides
    base.update(
        r=int(peft_cfg["r"]),
        alpha=float(peft_cfg["lora_alpha"]),
        dropout=float(peft_cfg.get("lora_dropout") or 0.0),
        target_modules="|".join(_escape(n) for n in names),
        modules_to_save=list(peft_cfg.get("modules_to_save") or []),
    )
    blob = BlobModel(model, AdapterConfig.from_dict(base))
    _copy_peft_tensors(blob, tensors, names, path)
    return blob


def _peft_lora_names(tensors: dict[str, torch.Tensor], path: Any) -> list[str]:
    names = sorted(
        k[len(PEFT_PREFIX) : -len(".lora_A.weight")]
        for k in tensors
        if k.endswith(".lora_A.weight")
    )
    if not names:
        raise CheckpointError(f"{path} has no lora_A weights")
    return names


def _copy_peft_tensors(
    blob: BlobModel, tensors: dict[str, torch.Tensor], names: list[str], path: Any
) -> None:
    """PEFT's A -> our A (the mean M for BLoB), B -> B, saved modules -> trained modules."""
    adapters = blob.adapters()
    missing = [n for n in names if n not in adapters]
    if missing:
        raise CheckpointError(
            f"PEFT adapter {path} adapts {missing[:3]}, which this model's adapters do not cover"
        )
    with torch.no_grad():
        for name in names:
            a = tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"]
            b = tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"]
            layer = adapters[name]
            if a.shape != layer.lora_A.shape or b.shape != layer.lora_B.shape:
                raise CheckpointError(
                    f"PEFT adapter {path}: {name} has A {tuple(a.shape)}, B {tuple(b.shape)} but "
                    f"the model needs {tuple(layer.lora_A.shape)}, {tuple(layer.lora_B.shape)}"
                )
            layer.lora_A.copy_(a)
            layer.lora_B.copy_(b)
        params = dict(blob.named_trainable_parameters())
        for key, value in tensors.items():
            if ".lora_" in key:
                continue
            name = key[len(PEFT_PREFIX) :].replace(".modules_to_save.default", "")
            if name in params:
                params[name].copy_(value)


def load_init_weights(blob: BlobModel, path: str | os.PathLike) -> dict[str, Any]:
    """Start an already-wrapped model from a trained adapter: a blob-lora adapter folder
    (or a run directory holding one in adapter/) or a PEFT LoRA folder. Returns the
    adapter's metadata (blob-lora: its saved JSON; PEFT: its adapter_config.json)."""
    p = Path(path)
    if (p / "adapter" / CONFIG_FILE).is_file():
        p = p / "adapter"
    if (p / CONFIG_FILE).is_file():
        meta = read_adapter_config(p)
        saved_kind = (meta.get("config") or {}).get("kind", "lora")
        wanted = blob.adapter_config.kind
        if saved_kind != wanted:
            raise CheckpointError(
                f"init_from {path} holds a {saved_kind!r} adapter, and this method starts from "
                f"a {wanted!r} one (same base model, another kind of adapter); start it from "
                + ("an mle or map run" if wanted == "lora" else f"a run with {wanted!r} adapters")
            )
        load_adapter_weights(blob, p)
        return meta
    if (p / PEFT_CONFIG_FILE).is_file():
        tensors = _read_tensors(p / WEIGHTS_FILE)
        _copy_peft_tensors(blob, tensors, _peft_lora_names(tensors, p), p)
        return json.loads((p / PEFT_CONFIG_FILE).read_text())
    raise CheckpointError(
        f"init_from {path} is neither a blob-lora run/adapter ({CONFIG_FILE}) nor a PEFT "
        f"adapter ({PEFT_CONFIG_FILE}); point it at a trained adapter folder"
    )


def _escape(name: str) -> str:
    return name.replace(".", r"\.")
