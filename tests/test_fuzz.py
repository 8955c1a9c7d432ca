"""Fuzz the three readers of user files — the JSONL loader, the TOML config, the results loader — with thousands of
seeded mutations of valid inputs. The only outcomes allowed: success, or an InputError that names the file (and for
line-oriented input, the line). Anything else (a traceback, a hang) is a bug."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlt_bench.core.config import build_config
from xlt_bench.data.dataset import load_local
from xlt_bench.core.errors import InputError
from xlt_bench.core.schema import load_results
from xlt_bench.data.tasks import get_task

VALID_JSONL = (b'{"text_a": "the cat", "text_b": "a dog", "label": "neutral"}\n'
               b'{"text_a": "\xc3\xa9t\xc3\xa9", "text_b": "x", "label": 2}\n')
VALID_TOML = b'[run]\nmodel = "tiny-xlmr"\ntasks = ["xnli"]\nbatch_size = 8\nmax_tokens = "auto"\ncost_model = true\n'
ALPHABET = b'{}[]":,=\n\\ \x00\xff\xc3tf01-.#ab'


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        op = rng.integers(0, 4)
        pos = int(rng.integers(0, len(out) + 1))
        if op == 0 and out:                                  # flip a byte
            out[min(pos, len(out) - 1)] = int(rng.integers(0, 256))
        elif op == 1:                                        # insert a structural character
            out[pos:pos] = bytes([ALPHABET[int(rng.integers(0, len(ALPHABET)))]])
        elif op == 2 and out:                                # delete a span
            del out[pos:pos + int(rng.integers(1, 8))]
        else:                                                # duplicate a span
            out[pos:pos] = out[max(0, pos - 8):pos]
    return bytes(out)


def _allowed(exc: InputError, path) -> None:
    assert exc.file is not None and str(path) in str(exc.file) or str(path) in str(exc), exc


@pytest.mark.parametrize("seed", range(4))
def test_jsonl_loader(tmp_path, seed):
    rng = np.random.default_rng(seed)
    task = get_task("xnli")
    path = tmp_path / "xnli" / "en.jsonl"
    path.parent.mkdir(parents=True)
    for _ in range(500):
        path.write_bytes(mutate(VALID_JSONL, rng))
        try:
            examples = load_local(tmp_path, task, "en")
            assert all(isinstance(e["text_a"], str) for e in examples)
        except InputError as exc:
            _allowed(exc, path)
            assert exc.line is not None or "regular file" in exc.reason


@pytest.mark.parametrize("seed", range(4))
def test_toml_config(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    path = tmp_path / "c.toml"
    for _ in range(500):
        path.write_bytes(mutate(VALID_TOML, rng))
        try:
            build_config(str(path))
        except InputError as exc:
            assert exc.file is not None, exc


def test_results_loader(tmp_path):
    rng = np.random.default_rng(7)
    row = {k: 1.0 for k in ("n_examples", "n_batches", "real_tokens", "padded_tokens", "padding_waste", "wall_s",
                            "throughput_seq_s", "throughput_tok_s", "latency_ms_p50", "latency_ms_p90",
                            "latency_ms_p99", "flops_useful", "flops_executed", "mfu", "accuracy", "agreement")}
    row.update(task="xnli", lang="en", model="m", backend="eager", device="cpu", dtype="fp32", batching="static")
    valid = json.dumps({"schema_version": 1, "run": {"id": "x", "config": {}}, "rows": [row]}).encode()
    path = tmp_path / "results.json"
    for _ in range(1500):
        path.write_bytes(mutate(valid, rng))
        try:
            load_results(path)
        except InputError as exc:
            _allowed(exc, path)
