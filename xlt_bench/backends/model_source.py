"""Where a model comes from, checked without building it (and without importing torch, so a mistyped --model
fails in about a second): the offline presets, model directories, Hugging Face ids, and the position table.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from xlt_bench.core.errors import InputError

# Published architectures. Sources: the config.json files of FacebookAI/xlm-roberta-base, FacebookAI/xlm-roberta-large
# and google-bert/bert-base-multilingual-cased on the Hugging Face hub.
PRESETS: dict[str, dict[str, Any]] = {
    "xlmr-base": dict(family="xlm-roberta", vocab_size=250002, hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514,
                      type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2),
    "xlmr-large": dict(family="xlm-roberta", vocab_size=250002, hidden_size=1024, num_hidden_layers=24,
                       num_attention_heads=16, intermediate_size=4096, max_position_embeddings=514,
                       type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2),
    "mbert-base": dict(family="bert", vocab_size=119547, hidden_size=768, num_hidden_layers=12,
                       num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                       type_vocab_size=2, pad_token_id=0),
    # Tiny 2-layer variants for tests: same vocabularies and embedding layout, small hidden size.
    "tiny-xlmr": dict(family="xlm-roberta", vocab_size=250002, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=514,
                      type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2),
    "tiny-mbert": dict(family="bert", vocab_size=119547, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                       type_vocab_size=2, pad_token_id=0),
    # Quick CI benchmark (benchmarks/ci.toml): XLM-R vocabulary and layout scaled to 4 layers x 256 hidden, so a
    # forward pass is compute-bound like xlmr-base (not overhead-bound like tiny) at ~1/27 of its FLOPs per token.
    "mini-xlmr": dict(family="xlm-roberta", vocab_size=250002, hidden_size=256, num_hidden_layers=4,
                      num_attention_heads=4, intermediate_size=1024, max_position_embeddings=514,
                      type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2),
}


def position_limit(name: str) -> tuple[int, int, int] | None:
    """(usable positions, position table size, offset) of a model, read without building it; None when its config
    cannot be read. RoBERTa-style tables start after the padding index, so XLM-R's 514 rows hold 512 tokens."""
    spec = PRESETS.get(name)
    if spec:
        table, family, pad = spec["max_position_embeddings"], spec["family"], spec.get("pad_token_id") or 0
    else:
        try:
            config = auto_config(name)
        except (OSError, ValueError, KeyError):
            return None
        table, family = getattr(config, "max_position_embeddings", None), config.model_type
        pad = getattr(config, "pad_token_id", None) or 0
        if not isinstance(table, int):
            return None
    offset = pad + 1 if family in ("xlm-roberta", "roberta") else 0
    return table - offset, table, offset


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_source(name: str) -> None:
    """Fail in seconds, before any measuring, on a model the Auto classes could not load: a mistyped preset (with a
    did-you-mean), a directory without a config or weights, an unknown model_type, a name that cannot be a hub id,
    or a hub id that is not in the cache while the hub is unreachable (no minute of network retries)."""
    if name in PRESETS:
        return
    path = Path(name).expanduser()
    if path.exists():
        _check_model_dir(name, path)
    elif not _HUB_ID.fullmatch(name) or "--" in name or ".." in name:
        raise InputError(f"'{name}' is not a preset, an existing model directory or a Hugging Face id"
                         f"{_did_you_mean(name)}; presets: {', '.join(PRESETS)}", field="model")
    if not path.exists() and not hub_online() and not _in_hub_cache(name):
        raise InputError(f"'{name}' is not a preset{_did_you_mean(name)}, nor a model directory, and the Hugging "
                         "Face hub is unreachable (offline, or HF_HUB_OFFLINE set) with no cached copy of it; "
                         f"presets: {', '.join(PRESETS)}", field="model")
    try:
        auto_config(name)
    except (OSError, ValueError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"cannot load model '{name}': not a preset{_did_you_mean(name)} ({', '.join(PRESETS)}), nor "
                         f"a loadable local directory or reachable Hugging Face id: {first_line}",
                         field="model") from None


# A Hugging Face repository id: NAME or OWNER/NAME of letters, digits, '-', '_', '.' (at most 96 characters each).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, list(PRESETS), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds the id's config (its documented layout, read without importing
    the hub client: this check must take milliseconds)."""
    import os
    cache = (os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
             or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub")
    snapshots = Path(cache) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.glob("*/config.json"))


def _check_model_dir(name: str, path) -> None:
    if not path.is_dir():
        raise InputError("is a file; expected a preset, a model directory or a Hugging Face id",
                         file=name, field="model")
    if not (path / "config.json").is_file():
        raise InputError("model directory has no config.json", file=name, field="model")
    if not any((path / w).is_file() for w in WEIGHT_FILES):
        raise InputError(f"model directory has no weights (one of {', '.join(WEIGHT_FILES)})",
                         file=name, field="model")


@lru_cache(maxsize=1)
def hub_online() -> bool:
    """Whether the Hugging Face hub answers (one quick probe per process)."""
    from xlt_bench.data.dataset import hub_reachable
    return hub_reachable(timeout_s=1.5)


def auto_config(name: str):
    """A model's transformers config: from its directory, the hub, or (when the hub is unreachable) the cache
    only, so an offline machine does not spend a minute in retries."""
    from transformers import AutoConfig
    local_only = not Path(name).expanduser().exists() and not hub_online()
    return AutoConfig.from_pretrained(name, trust_remote_code=False, local_files_only=local_only)
