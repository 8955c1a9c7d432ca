"""Train scenario (issue 15): timed fine-tuning steps — forward, loss, backward, AdamW step — per language, with the
same batching strategies as inference (static pad-to-max-length, static-longest, length-bucketed dynamic under a token
budget: the training-side analogue of transformers' `group_by_length`).

The backend's own inference module is left alone: the scenario trains a deep copy of the fp32 model (training changes
weights), under bf16 autocast when --dtype bf16. Every padded shape runs one untimed step first (warm-up); nothing but
the steps is inside the timed region. Labels are gold where the data has them, seeded random ones otherwise (said in
the row's notes); the cost of a step does not depend on the label values.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from typing import Any

import numpy as np

from xlt_bench.backends import BACKENDS, get_backend_class
from xlt_bench.backends.base import Backend
from xlt_bench.batching.planners import Batch, CostModel, collate, fit_cost_model
from xlt_bench.batching.budget import given_or_none, plan_budget
from xlt_bench.core.errors import InputError
from xlt_bench.core.flops import optimizer_flops, train_executed_flops, train_useful_flops
from xlt_bench.core.progress import bar
from xlt_bench.measure.passes import Measurement
from xlt_bench.data.tasks import IGNORE_LABEL
from xlt_bench.results.rows import measurement_row
from xlt_bench.core.schema import RowKey
from xlt_bench.batching.strategies import get_strategy, plan
from xlt_bench.batching.strategies.base import PlanRequest
from xlt_bench.scenarios.base import Outputs, Scenario, ScenarioContext

TRAIN_DTYPES = ("fp32", "bf16")
TRAIN_HEADS = ("sequence", "token", "span")
LEARNING_RATE = 2e-5   # a usual fine-tuning rate; the step's cost does not depend on it


class TrainScenario(Scenario):
    name = "train"
    trainable = True

    def needs_cost_model(self, cfg) -> bool:
        # An inference probe does not know a training step's costs (the optimizer update over every parameter is a
        # large fixed cost per step): the step runner probes training steps itself.
        return False

    def check(self, cfg, backend_names) -> None:
        cannot = [b for b in backend_names if not getattr(get_backend_class(b), "trainable", False)]
        if cannot:
            can = [n for n in BACKENDS.names() if _trainable(n)]
            raise InputError(f"backend(s) {', '.join(cannot)} cannot train; the train scenario runs: "
                             f"{', '.join(can)}", file=cfg.source, field="backends")
        for batching in cfg.batching:
            reason = get_strategy(batching).not_trainable_reason
            if reason:
                raise InputError(f"batching '{batching}' {reason}", file=cfg.source, field="batching")
        bad = [d for d in cfg.dtype if d not in TRAIN_DTYPES]
        if bad:
            raise InputError(f"dtype(s) {', '.join(bad)} are not trained here; use {', '.join(TRAIN_DTYPES)} "
                             "(bf16 is autocast over fp32 weights)", file=cfg.source, field="dtype")

    def run(self, ctx: ScenarioContext, backend: Backend) -> tuple[list[dict[str, Any]], Outputs]:
        if ctx.bundle.head not in TRAIN_HEADS:
            raise InputError(f"task '{ctx.workload.task.name}' has a {ctx.bundle.head} head (sentence embeddings), "
                             f"which has no training loss here; train tasks with a {', '.join(TRAIN_HEADS)} head",
                             field="tasks")
        trainer = StepRunner(ctx, backend)
        rows = []
        desc = f"train {ctx.workload.task.name} {backend.name}/{backend.dtype}"
        for encoded in bar(ctx.workload.sets, desc=desc, unit="lang", leave=True):
            for batching in ctx.cfg.batching:
                with ctx.clock("measure"):
                    rows.append(trainer.measure(encoded, batching))
                ctx.clock.seconds["warmup"] += rows[-1]["warmup_s"]
        trainer.close()
        return rows, {}

    def aggregate(self, rows):
        """ALL rows, then every row's speedup and its interval (rows.add_intervals). Training passes of a language
        run batching after batching, not interleaved: the pass-r pairing of a speedup is then by position only, and
        load that changes between batchings is not cancelled (each row's own tok/s interval is unaffected)."""
        from xlt_bench.results.rows import add_intervals, all_rows
        out = all_rows(rows)
        add_intervals([*rows, *out])
        return out


def _trainable(name: str) -> bool:
    try:
        return bool(getattr(get_backend_class(name), "trainable", False))
    except InputError:  # an optional runtime that is not installed cannot train anyway
        return False


class StepRunner:
    """One training copy of the model and its optimizer, reused across languages and batchings of a backend."""

    def __init__(self, ctx: ScenarioContext, backend: Backend):
        import torch
        self.ctx, self.backend, self.torch = ctx, backend, torch
        self.device = backend.device
        module = copy.deepcopy(ctx.bundle.module).to(self.device).train()
        self.n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        compile_for_training = getattr(backend, "compile_for_training", None)
        self.module = compile_for_training(module) if compile_for_training else module
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=LEARNING_RATE)
        self.rng = np.random.default_rng(ctx.cfg.seed)
        self.warmed: set[tuple[int, int]] = set()
        self.cost: CostModel | None = None

    def close(self) -> None:
        self.module = self.optimizer = None

    def measure(self, encoded, batching: str) -> dict[str, Any]:
        from xlt_bench.measure.trackers import MemoryTracker
        cfg = self.ctx.cfg
        lengths = encoded.lengths
        max_length = max(self.ctx.workload.max_length, int(lengths.max()))
        # Training holds activations for the backward pass: without a given budget, batch_size full-length rows
        # (the memory a static batch uses anyway); the inference probe's 'auto' budget does not cover training.
        budget = plan_budget(given_or_none(cfg.max_tokens), cfg.batch_size, max_length)
        strategy = get_strategy(batching)
        cost = (self._step_cost_model(encoded, budget, max_length)
                if strategy.needs_cost_model and cfg.cost_model else None)
        batches, _ = plan(batching, lengths, PlanRequest(batch_size=cfg.batch_size, max_length=max_length,
                                                         pad_multiple=cfg.pad_multiple, max_tokens=budget, cost=cost))
        labels, label_note = self._labels(encoded)
        steps = [self._step_inputs(encoded, b, labels) for b in batches]
        with MemoryTracker(self.device) as memory:
            start = time.perf_counter()
            warmed = sum(self._step(s) is None for b, s in zip(batches, steps) if self._first_time(b))
            self._sync()
            warmup_s = time.perf_counter() - start
            latencies, walls = [], []
            while len(walls) < cfg.min_repeats or sum(walls) < cfg.min_seconds:
                lat, wall = self._timed_pass(steps)
                latencies.extend(lat)
                walls.append(wall)
        m = Measurement(batches=list(batches), latencies_ms=latencies, pass_wall_s=walls, outputs=[],
                        warmup_shapes=warmed, warmup_s=warmup_s)
        key = RowKey(task=encoded.task, lang=encoded.lang, model=cfg.model, backend=self.backend.name,
                     device=cfg.device, dtype=self.backend.dtype, batching=batching, scenario="train")
        row = measurement_row(key=key, lengths=lengths, n_examples=encoded.n_examples, measurement=m,
                              flops_shape=self.ctx.flops_shape, attn=self.ctx.bundle.attn)
        row.update(flops_useful=train_useful_flops(self.ctx.flops_shape, lengths.tolist()),
                   flops_executed=train_executed_flops(self.ctx.flops_shape, [b.shape for b in batches]),
                   optimizer_flops=optimizer_flops(self.n_params, len(batches)),
                   n_truncated=encoded.n_truncated, tokenize_s=encoded.tokenize_s,
                   peak_rss_mb=memory.peak_rss_mb, cuda_max_allocated_mb=memory.cuda_max_allocated_mb,
                   energy_j=None, j_per_1k_tokens=None)
        row["notes"].append("train step = forward + loss + backward + AdamW step; throughput counts useful "
                            "(unpadded) tokens trained; flops are forward + backward (3x forward), optimizer apart")
        if label_note:
            row["notes"].append(label_note)
        return row

    def _step_cost_model(self, encoded, budget: int, max_length: int) -> CostModel:
        """Time training steps at a few shapes (once per runner) and fit the batch cost model the planner uses."""
        if self.cost is None:
            samples = []
            labels, _ = self._labels(encoded)
            lengths = sorted({min(16, max_length), min(64, max_length), max_length})
            for plen in lengths:
                for rows in sorted({1, max(1, budget // plen)}):
                    samples.append((rows, plen, self._time_shape(encoded, labels, rows, plen)))
            self.cost = fit_cost_model(samples, key=f"train:{self.backend.name}/{self.backend.dtype}/{self.device}")
            self.ctx.run_meta.setdefault("cost_models", {})[self.cost.key] = {
                **self.cost.to_dict(), "budget": budget, "samples": [list(x) for x in samples]}
        return self.cost

    def _time_shape(self, encoded, labels: list, rows: int, plen: int) -> float:
        """Fastest of two timed steps on `rows` copies of the first sequence cycled to `plen` tokens (after a
        warm-up): what a step costs depends on its shape, not on which tokens fill it."""
        from types import SimpleNamespace
        head = self.ctx.bundle.head
        label = labels[0]
        if head == "token":
            label = np.resize(np.asarray(label), plen)
        elif head == "span":
            label = tuple(min(int(x), plen - 1) for x in label)
        probe = SimpleNamespace(input_ids=[np.resize(encoded.input_ids[0], plen)],
                                token_type_ids=None if encoded.token_type_ids is None
                                else [np.resize(encoded.token_type_ids[0], plen)])
        step = self._step_inputs(probe, Batch(np.zeros(rows, dtype=np.int64), plen), [label])
        self._step(step)
        times = []
        for _ in range(2):
            self._sync()
            start = time.perf_counter()
            self._step(step)
            self._sync()
            times.append(time.perf_counter() - start)
        return min(times)

    def _first_time(self, batch: Batch) -> bool:
        if batch.shape in self.warmed:
            return False
        self.warmed.add(batch.shape)
        return True

    def _timed_pass(self, steps: list[dict]) -> tuple[list[float], float]:
        clock = time.perf_counter
        latencies = []
        self._sync()
        start = clock()
        for step in steps:
            t0 = clock()
            self._step(step)
            self._sync()  # a step ends when its optimizer update is done; per step, as training loops do
            latencies.append((clock() - t0) * 1000.0)
        return latencies, clock() - start

    def _step(self, step: dict) -> None:
        torch = self.torch
        autocast = (torch.autocast(device_type=self.device, dtype=torch.bfloat16)
                    if self.backend.dtype == "bf16" else nullcontext())
        self.optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = self.module(**step["inputs"])
            loss = _loss(torch, self.ctx.bundle.head, logits.float(), step["labels"])
        loss.backward()
        self.optimizer.step()

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _labels(self, encoded) -> tuple[list, str | None]:
        """Per sequence: a class (sequence head), a label per token with IGNORE_LABEL where none (token head) or a
        (start, end) pair (span head)."""
        head, n_labels = self.ctx.bundle.head, max(self.ctx.bundle.num_labels, 1)
        lengths = encoded.lengths
        if head == "sequence" and encoded.labels is not None and encoded.kind == "pair":
            return [int(encoded.labels[i]) for i in encoded.example_index], None
        if head == "token" and encoded.labels is not None:
            return list(encoded.labels), None
        note = "labels: seeded random (no gold labels for this input); step cost does not depend on them"
        if head == "sequence":
            return self.rng.integers(0, n_labels, size=len(lengths)).tolist(), note
        if head == "token":
            return [self.rng.integers(0, n_labels, size=int(n)) for n in lengths], note
        return [tuple(sorted(self.rng.integers(0, int(n), size=2))) for n in lengths], note

    def _step_inputs(self, encoded, batch: Batch, labels: list) -> dict:
        torch = self.torch
        arrays = collate(encoded.input_ids, encoded.token_type_ids, batch, self.ctx.bundle.pad_id)
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()}
        head = self.ctx.bundle.head
        if head == "sequence":
            target = torch.tensor([labels[i] for i in batch.indices], dtype=torch.long)
        elif head == "token":
            target = torch.full((batch.rows, batch.padded_len), IGNORE_LABEL, dtype=torch.long)
            for r, i in enumerate(batch.indices):
                seq = np.asarray(labels[i])[: batch.padded_len]
                target[r, : len(seq)] = torch.from_numpy(seq.astype(np.int64))
        else:
            target = torch.tensor([labels[i] for i in batch.indices], dtype=torch.long)
        return {"inputs": inputs, "labels": target.to(self.device)}


def _loss(torch, head: str, logits, labels):
    cross_entropy = torch.nn.functional.cross_entropy
    if head == "sequence":
        return cross_entropy(logits, labels)
    if head == "token":
        return cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_LABEL)
    # span: logits [B, L, 2] -> start and end classification over positions
    return (cross_entropy(logits[..., 0], labels[:, 0]) + cross_entropy(logits[..., 1], labels[:, 1])) / 2
