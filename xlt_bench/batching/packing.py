"""Packed batching (DESIGN §3 "packed"): padding-free execution by concatenating sequences into rows.

Sequences are laid end to end in rows of at most `row_len` tokens (a row never splits a sequence), by first-fit
decreasing over their lengths; rows are then grouped into forward calls with rows x row length <= the token budget.
Attention is confined to each sequence by a block-diagonal mask [rows, T, T] and position ids restart per sequence,
so every real token computes what it would compute alone. The only tokens executed beyond the real ones are the
tails of rows shorter than the longest row of their call (counted in `padded_tokens`).

A `PackedBatch` answers what the measuring code asks of a padded `Batch` (indices in output order, rows, shape,
padded_len, padded_tokens) and builds its own inputs (`collate`); the backend's packed forward returns one output per
sequence in `indices` order, shaped as a padded batch of the same sequences would give it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xlt_bench.core.errors import InputError


@dataclass(frozen=True, eq=False)
class PackedBatch:
    """One forward call of packed rows. Per sequence k (in output order): `indices[k]` is its position in the
    input order, it lies in row `row_of[k]` from token `start[k]` on, `lengths[k]` tokens long."""

    indices: np.ndarray
    row_of: np.ndarray
    start: np.ndarray
    lengths: np.ndarray
    n_rows: int
    padded_len: int       # row length executed: the longest row of this call

    @property
    def rows(self) -> int:
        return self.n_rows

    @property
    def n_sequences(self) -> int:
        return int(len(self.indices))

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.padded_len

    @property
    def padded_tokens(self) -> int:
        return self.n_rows * self.padded_len

    @property
    def warm_key(self) -> tuple[str, int, int]:
        """Warm-up is per shape and per forward path: a packed call of a padded batch's shape is not yet warm."""
        return ("packed", *self.shape)

    @property
    def flops_dims(self) -> tuple[int, int, int]:
        """(rows, row length, sequences): the encoder runs on every row, a sequence head once per sequence."""
        return self.n_rows, self.padded_len, self.n_sequences

    def row_layout(self) -> list[list[int]]:
        """The input positions of the sequences of each row, in the order they lie in it."""
        layout: list[list[int]] = [[] for _ in range(self.n_rows)]
        for idx, row in zip(self.indices.tolist(), self.row_of.tolist()):
            layout[row].append(idx)
        return layout

    def collate(self, input_ids: Sequence[np.ndarray], token_type_ids: Sequence[np.ndarray] | None,
                pad_id: int) -> dict[str, np.ndarray]:
        """The int64 (and bool mask) arrays of this call, built before timing.

        input_ids/token_type_ids [rows, T]: sequences concatenated, row tails padded; position_ids [rows, T]: 0
        onward per sequence (the model adds its own offset, e.g. XLM-R's padding_idx + 1); attention_mask [rows, T, T]
        bool, block-diagonal (a row's tail is one block of its own, read by nobody); seq_first [n]: flat index
        (row * T + position) of each sequence's first token; seq_tokens [n, Lmax]: flat index of its tokens (past its
        length: its first token again, never read back); seq_token_mask [n, Lmax]: 1 on its real tokens."""
        rows, width = self.shape
        ids = np.full((rows, width), pad_id, dtype=np.int64)
        positions = np.zeros((rows, width), dtype=np.int64)
        segment = np.full((rows, width), -1, dtype=np.int64)
        types = np.zeros((rows, width), dtype=np.int64) if token_type_ids is not None else None
        longest = int(self.lengths.max())
        seq_tokens = np.zeros((self.n_sequences, longest), dtype=np.int64)
        seq_mask = np.zeros((self.n_sequences, longest), dtype=np.int64)
        for k, (idx, row, start, length) in enumerate(zip(self.indices, self.row_of, self.start, self.lengths)):
            seq = np.asarray(input_ids[idx])
            if len(seq) != length:
                raise ValueError(f"sequence {idx} has {len(seq)} tokens; the plan was made for {length}")
            span = slice(int(start), int(start + length))
            ids[row, span] = seq
            positions[row, span] = np.arange(length)
            segment[row, span] = k
            if types is not None:
                types[row, span] = token_type_ids[idx]
            seq_tokens[k] = row * width + start
            seq_tokens[k, :length] += np.arange(length)
            seq_mask[k, :length] = 1
        mask = segment[:, :, None] == segment[:, None, :]
        out = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
               "seq_first": (self.row_of * width + self.start).astype(np.int64),
               "seq_tokens": seq_tokens, "seq_token_mask": seq_mask}
        if types is not None:
            out["token_type_ids"] = types
        return out


def pack_rows(lengths: np.ndarray, row_len: int) -> list[list[int]]:
    """First-fit decreasing: each sequence, longest first (ties in input order), goes into the first row it fits.
    Returns the input positions in each row, rows in the order they were opened."""
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        need = int(lengths[i])
        for r, space in enumerate(free):
            if need <= space:
                rows[r].append(i)
                free[r] -= need
                break
        else:
            rows.append([i])
            free.append(row_len - need)
    return rows


def plan_packed(lengths: Sequence[int] | np.ndarray, *, max_tokens: int, row_len: int) -> list[PackedBatch]:
    """Packed calls for these sequences: rows of at most `row_len` tokens (capped at the budget), grouped fullest
    first into calls of rows x longest row <= `max_tokens`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return []
    budget, row_len = int(max_tokens), min(int(row_len), int(max_tokens))
    longest = int(np.argmax(lengths))
    if lengths[longest] > budget:
        raise InputError(f"sequence {longest} has {int(lengths[longest])} tokens, more than the token budget "
                         f"--max-tokens {budget}: packed batching cannot run it", field="max_tokens")
    if lengths[longest] > row_len:
        raise InputError(f"sequence {longest} has {int(lengths[longest])} tokens, more than the packed row length "
                         f"{row_len}", field="max_length")
    rows = pack_rows(lengths, row_len)
    fill = [int(lengths[r].sum()) for r in rows]
    by_fill = sorted(range(len(rows)), key=lambda r: (-fill[r], r))
    batches, at = [], 0
    while at < len(by_fill):
        width = fill[by_fill[at]]
        members = by_fill[at:at + max(1, budget // width)]
        batches.append(_packed_batch([rows[r] for r in members], lengths, width))
        at += len(members)
    return batches


def _packed_batch(rows: list[list[int]], lengths: np.ndarray, width: int) -> PackedBatch:
    indices, row_of, start = [], [], []
    for r, members in enumerate(rows):
        offset = 0
        for i in members:
            indices.append(i)
            row_of.append(r)
            start.append(offset)
            offset += int(lengths[i])
    idx = np.asarray(indices, dtype=np.int64)
    return PackedBatch(indices=idx, row_of=np.asarray(row_of, dtype=np.int64),
                       start=np.asarray(start, dtype=np.int64), lengths=lengths[idx].copy(),
                       n_rows=len(rows), padded_len=int(width))
