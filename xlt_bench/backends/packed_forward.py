"""The forward of a packed batch (xlt_bench/batching/packing.py) through the model's own transformers modules.

The stock embeddings, encoder and head modules run; only the glue differs from the padded forward: explicit position
ids (restarting per sequence, plus the model's offset), a 3-D attention mask made broadcastable by the model's own
`get_extended_attention_mask` (for a 3-D mask, BERT and XLM-R take this path under both `eager` and `sdpa`
attention: the additive mask is passed to softmax or to scaled_dot_product_attention), and the head applied to each
sequence's own tokens. The output is shaped as a padded batch of the same sequences gives it: [n, labels] for a
sequence head, [n, Lmax, C] for token and span heads, [n, hidden] for the mean-pooled embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from xlt_bench.core.errors import InputError

# Model types whose embeddings take explicit position_ids and whose encoders take an extended 3-D mask.
PACKED_MODEL_TYPES = ("bert", "xlm-roberta", "roberta")


def position_offset(config) -> int:
    """First position id of a sequence: RoBERTa-style models count from padding_idx + 1, BERT from 0."""
    if config.model_type in ("xlm-roberta", "roberta"):
        return int(config.pad_token_id) + 1
    return 0


def check_packable(config) -> None:
    if config.model_type not in PACKED_MODEL_TYPES:
        raise InputError(f"packed batching runs models of type {', '.join(PACKED_MODEL_TYPES)}; this model is "
                         f"'{config.model_type}'", field="batching")


class PackedEncoder(nn.Module):
    """Wraps a BenchEncoder's model (sharing its weights) to run packed batches."""

    def __init__(self, bench_encoder: nn.Module):
        super().__init__()
        self.model = bench_encoder.model
        self.head = bench_encoder.head
        config = self.model.config
        check_packable(config)
        self.offset = position_offset(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                seq_first: torch.Tensor, seq_tokens: torch.Tensor, seq_token_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        base = self.model.base_model
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        embedded = base.embeddings(input_ids=input_ids, position_ids=position_ids + self.offset,
                                   token_type_ids=token_type_ids)
        extended = base.get_extended_attention_mask(attention_mask, input_ids.shape)
        hidden = base.encoder(embedded, attention_mask=extended, return_dict=False)[0]
        flat = hidden.reshape(-1, hidden.shape[-1])
        if self.head == "sequence":
            return self._sequence_head(flat[seq_first])
        if self.head == "pooled":
            mask = seq_token_mask.unsqueeze(-1).to(hidden.dtype)
            return (flat[seq_tokens] * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        per_token = (self.model.classifier(self.model.dropout(hidden)) if self.head == "token"
                     else self.model.qa_outputs(hidden))
        return per_token.reshape(-1, per_token.shape[-1])[seq_tokens]

    def _sequence_head(self, first: torch.Tensor) -> torch.Tensor:
        """The classification head on each sequence's first token: BERT's pooler + classifier, or XLM-R's
        classification head (which reads position 0 of the [n, 1, hidden] it is given)."""
        pooler = getattr(self.model.base_model, "pooler", None)
        if pooler is not None:
            return self.model.classifier(self.model.dropout(pooler(first[:, None, :])))
        return self.model.classifier(first[:, None, :])
