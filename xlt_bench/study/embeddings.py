"""Sentence embeddings of parallel text from one hidden layer, for the alignment study.

The embedding of a sentence is the mean of one layer's hidden states over its real tokens (special tokens
included), as XTREME's retrieval baselines compute it; no head is involved, so the measure is the encoder's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlt_bench.core.errors import InputError


def default_layer(num_layers: int) -> int:
    """The middle of the encoder: ⌊layers/2⌋ + 1 (7 of 12 for base models). XTREME's Tatoeba and BUCC baselines pool
    layer 7 of the 12-layer mBERT: middle layers align languages better than the last, which specialise toward the
    pretraining objective."""
    return num_layers // 2 + 1


def load_encoder(model: str) -> Any:
    """The bare encoder of a checkpoint (a local directory or HF id), with every layer's hidden states."""
    from transformers import AutoModel
    try:
        encoder = AutoModel.from_pretrained(model, output_hidden_states=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load model '{model}' for embeddings: {str(exc).splitlines()[0][:160]}",
                         field="models") from None
    return encoder.eval()


def embed(encoder: Any, tokenizer: Any, texts: list[str], layer: int, max_length: int = 128,
          batch_size: int = 32) -> np.ndarray:
    """[len(texts), hidden] mean-pooled states of `layer` (0 = the embedding layer's output)."""
    import torch
    layers = int(encoder.config.num_hidden_layers)
    if not 0 <= layer <= layers:
        raise InputError(f"layer {layer} does not exist: the model has layers 0 (embeddings) to {layers}",
                         field="layer")
    takes_types = int(getattr(encoder.config, "type_vocab_size", 1) or 1) > 1
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            if not takes_types:
                batch.pop("token_type_ids", None)
            states = encoder(**batch).hidden_states[layer]
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            out.append(((states * mask).sum(1) / mask.sum(1).clamp(min=1.0)).numpy())
    return np.concatenate(out) if out else np.zeros((0, int(encoder.config.hidden_size)))
