"""Analytic forward FLOPs of a BERT-style encoder (DESIGN §3: flops_useful, flops_executed).

Counting convention (the one `torch.utils.flop_counter.FlopCounterMode` uses, so the two can be cross-checked):
- 2 FLOPs per multiply-add of every matrix product: the Q/K/V/output projections, the attention scores QK^T and the
  context AV (the L^2 terms, summed over heads: heads x head_dim = hidden), the two feed-forward projections, the head.
- Not counted: embedding lookups, bias additions, layer norms, softmax, GELU/tanh, residual adds, the attention mask and
  the pooled head's mean over tokens. FlopCounterMode does not count them either (it counts mm/addmm/bmm/baddbmm/sdpa
  and their kin); together they are well under 1% of an encoder's forward at any length the presets accept.
- The count is the same whatever the dtype: an int8 backend performs the same multiply-adds (as integer ops).

The head is counted as the Hugging Face classes run it:
- "sequence": one hidden x hidden dense on the first token (BERT's pooler, or XLM-R's classification-head dense; both
  run for every row), then hidden x num_labels.
- "token": hidden x num_labels on every position.
- "span": hidden x 2 (qa_outputs: start and end logits) on every position.
- "pooled": the bare encoder model, whose pooler (hidden x hidden on the first token) runs although the sentence
  embedding is the mean over tokens.

A packed batch (xlt_bench/batching/packing.py) is counted as it runs: every layer over each row's full length T, so a dense
block-diagonal masked attention counts its whole T^2 (the masked scores are computed, then discarded); a token or
span head on every position of every row; a sequence head once per sequence (on its first token); the pooled
embedding's mean only (the packed forward never runs the unused pooler).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HEADS = ("sequence", "token", "span", "pooled")


@dataclass(frozen=True)
class EncoderShape:
    """The dimensions that determine an encoder's forward FLOPs."""

    hidden: int
    layers: int
    attn_heads: int                 # attention heads per layer
    ffn: int
    head_kind: str = "sequence"     # the task head on top (HEADS)
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.head_kind not in HEADS:
            raise ValueError(f"head_kind must be one of {', '.join(HEADS)}, got {self.head_kind!r}")
        for name in ("hidden", "layers", "attn_heads", "ffn"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hidden % self.attn_heads:
            raise ValueError(f"hidden ({self.hidden}) is not a multiple of attn_heads ({self.attn_heads})")

    @classmethod
    def from_config(cls, config: Any, head_kind: str, num_labels: int) -> EncoderShape:
        """From a transformers config (BertConfig, XLMRobertaConfig, or any config with BERT's attribute names)."""
        return cls(hidden=int(config.hidden_size), layers=int(config.num_hidden_layers),
                   attn_heads=int(config.num_attention_heads), ffn=int(config.intermediate_size),
                   head_kind=head_kind, num_labels=int(num_labels))


def layer_flops(flops_shape: EncoderShape, seq_len: int) -> int:
    """One encoder layer on one sequence of `seq_len` tokens."""
    h, f, length = flops_shape.hidden, flops_shape.ffn, seq_len
    projections = 2 * length * h * h * 4      # Q, K, V and the attention output
    attention = 2 * length * length * h * 2   # scores QK^T and context AV, all heads together
    feed_forward = 2 * length * h * f * 2     # up and down projections
    return projections + attention + feed_forward


def head_flops(flops_shape: EncoderShape, seq_len: int) -> int:
    """The task head on one sequence of `seq_len` tokens (see the module docstring)."""
    h = flops_shape.hidden
    if flops_shape.head_kind == "sequence":
        return 2 * h * h + 2 * h * flops_shape.num_labels
    if flops_shape.head_kind == "token":
        return 2 * seq_len * h * flops_shape.num_labels
    if flops_shape.head_kind == "span":
        return 2 * seq_len * h * 2
    return 2 * h * h  # pooled: the unused pooler of the bare model


def forward_flops(flops_shape: EncoderShape, seq_len: int, rows: int = 1) -> int:
    """Forward FLOPs of `rows` sequences each `seq_len` tokens long (padding included: this is what runs)."""
    if seq_len < 0 or rows < 0:
        raise ValueError(f"seq_len and rows must be non-negative, got {seq_len}, {rows}")
    if seq_len == 0 or rows == 0:
        return 0
    per_row = flops_shape.layers * layer_flops(flops_shape, seq_len) + head_flops(flops_shape, seq_len)
    return rows * per_row


def useful_flops(flops_shape: EncoderShape, lengths: Sequence[int]) -> int:
    """flops_useful: every sequence at its own unpadded length (special tokens included)."""
    return sum(forward_flops(flops_shape, int(length)) for length in lengths)


def executed_flops(flops_shape: EncoderShape, batches: Sequence[tuple[int, ...]]) -> int:
    """flops_executed: every batch as run, given as (rows, padded_len), or (rows, row_len, sequences) for a packed
    batch (PackedBatch.flops_dims)."""
    total = 0
    for dims in batches:
        if len(dims) == 3:
            total += packed_flops(flops_shape, *(int(d) for d in dims))
        else:
            rows, padded_len = dims
            total += forward_flops(flops_shape, int(padded_len), int(rows))
    return total


def packed_flops(flops_shape: EncoderShape, rows: int, row_len: int, sequences: int) -> int:
    """One packed call: `rows` rows of `row_len` tokens holding `sequences` sequences (module docstring)."""
    if min(rows, row_len, sequences) < 0:
        raise ValueError(f"rows, row_len and sequences must be non-negative, got {rows}, {row_len}, {sequences}")
    encoder = rows * flops_shape.layers * layer_flops(flops_shape, row_len)
    kind = flops_shape.head_kind
    if kind == "sequence":
        return encoder + sequences * head_flops(flops_shape, 1)
    if kind in ("token", "span"):
        return encoder + rows * head_flops(flops_shape, row_len)
    return encoder


# --- training (DESIGN §3 "Training FLOPs") -------------------------------------------------------------------------
# Backward of every matrix product computes two products of the forward's size (the gradient of its input and of its
# weight, or of both operands of QK^T and AV), so forward + backward = 3x forward for every product that the loss
# reaches. The one product it does not reach: the pooler of a bare encoder ("pooled"), whose output the mean-pooled
# embedding ignores; training that head is refused (train scenario), so it is not special-cased here. Counting as
# FlopCounterMode does, the optimizer step is not a matrix product and is reported apart (optimizer_flops).
TRAIN_PASS_FACTOR = 3
# torch.optim.AdamW per parameter and step: weight decay (1 mul, 1 add), first moment (2 mul, 1 add), second moment
# (3 mul, 1 add), bias corrections folded into a step size, sqrt, add eps, divide, scale, subtract: 14 elementwise
# operations. An order-of-magnitude figure for the report, not a cross-checked one.
ADAMW_FLOPS_PER_PARAM = 14


def train_step_flops(flops_shape: EncoderShape, seq_len: int, rows: int = 1, passes: int = 1) -> int:
    """Forward + backward FLOPs of one step on `rows` x `seq_len`; `passes` > 1 for regimes that run extra forward
    and backward passes per update (K PGD steps of adversarial training -> K + 1 passes)."""
    return TRAIN_PASS_FACTOR * passes * forward_flops(flops_shape, seq_len, rows)


def train_useful_flops(flops_shape: EncoderShape, lengths: Sequence[int]) -> int:
    return TRAIN_PASS_FACTOR * useful_flops(flops_shape, lengths)


def train_executed_flops(flops_shape: EncoderShape, batches: Sequence[tuple[int, int]]) -> int:
    return TRAIN_PASS_FACTOR * executed_flops(flops_shape, batches)


def optimizer_flops(n_params: int, steps: int = 1) -> int:
    return ADAMW_FLOPS_PER_PARAM * n_params * steps
