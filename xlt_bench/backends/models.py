"""Models: offline presets (published architectures, seeded random weights) or any HF id / local directory.

Every model is wrapped in `BenchEncoder`, whose forward takes (input_ids, attention_mask[, token_type_ids]) and
returns one tensor, so every backend (eager, TorchScript, ONNX) runs exactly the same graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from xlt_bench.core.errors import InputError
# What can be known about a model without building it lives in model_source (no torch import: fast CLI checks).
from xlt_bench.backends.model_source import (PRESETS, WEIGHT_FILES, auto_config, check_model_source, hub_online,  # noqa: F401
                           position_limit)


# --attn: what `from_pretrained` gives XLM-R and BERT in transformers 4.57 is "sdpa" (torch's fused
# scaled_dot_product_attention); "eager" is the explicit softmax(QK^T)V of the original implementation.
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
DEFAULT_ATTN = "sdpa"


# Our dtype names (config.DTYPES) -> torch dtypes; int8 is a quantisation, not a tensor dtype.
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# What the model's output means, by task kind (see tasks.py).
HEAD_FOR_KIND = {"pair": "sequence", "multiple_choice": "sequence", "tagging": "token",
                 "qa": "span", "retrieval": "pooled"}


@dataclass
class ModelBundle:
    """A loaded model and the facts the rest of the pipeline needs about it."""

    name: str                 # preset name, HF id or directory, as the user gave it
    module: nn.Module         # a BenchEncoder
    config: Any               # the transformers config
    head: str                 # sequence | token | span | pooled
    num_labels: int
    trained_head: bool        # False for random-weight presets: accuracy is then null
    is_preset: bool
    notes: list[str] = field(default_factory=list)
    attn: str = DEFAULT_ATTN  # attention implementation the module runs (sdpa | eager)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def pad_id(self) -> int:
        return int(self.config.pad_token_id if self.config.pad_token_id is not None else 0)

    @property
    def type_vocab_size(self) -> int:
        return int(getattr(self.config, "type_vocab_size", 1) or 1)

    @property
    def max_positions(self) -> int:
        # RoBERTa-style models offset positions by pad_id + 1 (see position_limit).
        offset = self.pad_id + 1 if self.config.model_type in ("xlm-roberta", "roberta") else 0
        return int(self.config.max_position_embeddings) - offset

    @property
    def takes_token_types(self) -> bool:
        return self.type_vocab_size > 1

    @property
    def input_names(self) -> list[str]:
        """The inputs the model takes, in the order every backend feeds them."""
        return ["input_ids", "attention_mask"] + (["token_type_ids"] if self.takes_token_types else [])


class BenchEncoder(nn.Module):
    """Wraps a transformers model so every backend sees the same single-tensor output."""

    def __init__(self, model: nn.Module, head: str):
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.model(**kwargs, return_dict=False)
        if self.head == "pooled":
            # Mean over real tokens: the sentence embedding used for retrieval and alignment.
            hidden = out[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.head == "span":
            return torch.stack((out[0], out[1]), dim=-1)  # [B, L, 2]: start and end logits
        return out[0]


def _auto_class(head: str):
    import transformers as tf
    return {"sequence": tf.AutoModelForSequenceClassification, "token": tf.AutoModelForTokenClassification,
            "span": tf.AutoModelForQuestionAnswering, "pooled": tf.AutoModel}[head]


def ffn_sizes(name: str) -> tuple[int, int] | None:
    """(hidden, intermediate) of a model, read without building it (a preset's table entry, else its config): the
    k and n of its feed-forward up-projection, the GEMM the MFU peak is timed on. None when the config cannot be
    read or lacks them."""
    spec = PRESETS.get(name)
    if spec:
        return spec["hidden_size"], spec["intermediate_size"]
    try:
        config = auto_config(name)
    except (OSError, ValueError, KeyError):
        return None
    sizes = getattr(config, "hidden_size", None), getattr(config, "intermediate_size", None)
    return sizes if all(isinstance(v, int) and v > 0 for v in sizes) else None


def preset_config(name: str, num_labels: int = 2, attn: str = DEFAULT_ATTN):
    from transformers import BertConfig, XLMRobertaConfig
    spec = dict(PRESETS[name])
    family = spec.pop("family")
    cls = XLMRobertaConfig if family == "xlm-roberta" else BertConfig
    return cls(**spec, num_labels=num_labels, attn_implementation=attn)


def build_model(name: str, kind: str, num_labels: int, seed: int = 0, attn: str | None = None) -> ModelBundle:
    """Build a preset with seeded random weights, or load an HF id / local directory with the Auto classes.
    `attn` None means what from_pretrained gives (sdpa for the encoders here)."""
    if attn is not None and attn not in ATTN_IMPLEMENTATIONS:
        raise InputError(f"'{attn}' is not an attention implementation this harness runs; supported: "
                         f"{', '.join(ATTN_IMPLEMENTATIONS)}", field="attn")
    head = HEAD_FOR_KIND[kind]
    if head == "pooled":
        num_labels = 0
    elif head == "span":
        num_labels = 2  # start and end logits, whatever the caller passed
    if name in PRESETS:
        cfg = preset_config(name, max(num_labels, 1), attn or DEFAULT_ATTN)
        model = _random_model(_auto_class(head), cfg, seed)
        return ModelBundle(name=name, module=BenchEncoder(model, head).eval(), config=cfg, head=head,
                           num_labels=num_labels, trained_head=False, is_preset=True, attn=attn or DEFAULT_ATTN,
                           notes=[f"{name}: published architecture with seeded random weights (seed {seed}); "
                                  "accuracy is not meaningful and is reported as null"])
    return load_pretrained(name, head, num_labels, attn)


def _random_model(auto_class, cfg, seed: int) -> nn.Module:
    """The architecture with seeded random weights, drawn as BERT initialises them (normal(0, initializer_range)
    weights, zero biases, unit LayerNorm). Skipping transformers' own init and drawing every tensor in one place is
    ~8x faster for XLM-R's 250k-row embedding and gives the same weights for the same seed on every machine."""
    from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        model = auto_class.from_config(cfg, attn_implementation=cfg._attn_implementation)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, param in model.named_parameters():
            if "LayerNorm" in pname or "layer_norm" in pname:
                param.fill_(1.0 if pname.endswith("weight") else 0.0)
            elif pname.endswith("bias"):
                param.zero_()
            else:
                param.normal_(0.0, cfg.initializer_range, generator=generator)
        embeddings = model.get_input_embeddings()
        if cfg.pad_token_id is not None:
            embeddings.weight[cfg.pad_token_id].zero_()
    return model.eval()


def load_pretrained(name: str, head: str, num_labels: int, attn: str | None = None) -> ModelBundle:
    from pathlib import Path
    try:
        cfg = auto_config(name)
    except OSError as exc:
        raise InputError(f"cannot load model '{name}': not a preset ({', '.join(PRESETS)}), "
                         f"nor a local directory or reachable Hugging Face id ({exc.__class__.__name__})",
                         field="model") from None
    kwargs: dict[str, Any] = {"trust_remote_code": False,
                              "local_files_only": not Path(name).expanduser().exists() and not hub_online()}
    if attn is not None:
        kwargs["attn_implementation"] = attn
    if head in ("sequence", "token") and num_labels and getattr(cfg, "num_labels", None) != num_labels:
        kwargs.update(num_labels=num_labels, ignore_mismatched_sizes=True)
    try:
        model, info = _auto_class(head).from_pretrained(name, output_loading_info=True, **kwargs)
    except ValueError as exc:
        if "attn" not in str(exc).lower() and "attention" not in str(exc).lower():
            raise
        raise InputError(f"model '{name}' does not support --attn {attn}: {str(exc).splitlines()[0]}; supported "
                         f"here: {', '.join(ATTN_IMPLEMENTATIONS)}", field="attn") from None
    model.eval()
    fresh = [k for k in info.get("missing_keys", []) + [m[0] for m in info.get("mismatched_keys", [])]]
    head_fresh = any(k.split(".")[0] in ("classifier", "qa_outputs", "score") for k in fresh)
    trained = head == "pooled" or not head_fresh
    notes = [] if trained else [f"{name}: the task head was not in the checkpoint (randomly initialised); accuracy is null"]
    return ModelBundle(name=name, module=BenchEncoder(model, head).eval(), config=model.config, head=head,
                       num_labels=num_labels, trained_head=trained, is_preset=False, notes=notes,
                       attn=getattr(model.config, "_attn_implementation", None) or attn or DEFAULT_ATTN)
