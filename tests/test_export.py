"""github-action-benchmark export on a hand-made result document."""

from __future__ import annotations

import json

import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.ci.export import github_action_benchmark
from xlt_bench.core.schema import ROW_FIELDS, SCHEMA_VERSION


def row(lang: str, batching: str, tok_s: float, mfu: float | None) -> dict:
    r = {f: None for f in ROW_FIELDS}
    r.update(task="xnli", lang=lang, model="tiny-xlmr", backend="eager", device="cpu", dtype="fp32",
             batching=batching, throughput_tok_s=tok_s, mfu=mfu, real_tokens=1000, padding_waste=0.25)
    return r


@pytest.fixture
def doc() -> dict:
    rows = [row("ALL", "static", 1000.0, 0.02), row("ALL", "dynamic", 2500.0, None),
            row("en", "static", 900.0, 0.02), row("en", "dynamic", 2000.0, 0.05)]
    return {"schema_version": SCHEMA_VERSION,
            "run": {"id": "r", "git_sha": "0123456789abcdef", "git_dirty": True, "env": {"cpu_model": "Test CPU"}},
            "rows": rows}


def test_entries_cover_aggregate_rows_only(doc):
    entries = github_action_benchmark(doc)
    values = {e["name"]: (e["value"], e["unit"]) for e in entries}
    assert values == {
        "xnli/eager/fp32/static throughput": (1000.0, "tokens/s"),
        "xnli/eager/fp32/static MFU": (2.0, "% of GEMM peak"),           # 0.02 as percent
        "xnli/eager/fp32/dynamic throughput": (2500.0, "tokens/s"),
        "xnli/eager/fp32/dynamic speedup vs static": (2.5, "x"),          # 2500 / 1000
        # dynamic MFU is null: left out, not exported as 0
    }
    assert all(set(e) == {"name", "unit", "value", "extra"} for e in entries)
    assert "git 0123456789ab+dirty" in entries[0]["extra"] and "cpu Test CPU" in entries[0]["extra"]


def test_cli_export_is_valid_json_and_rejects_unknown_format(doc, tmp_path, capsys):
    from xlt_bench.cli import main
    from xlt_bench.core.schema import write_results
    write_results(tmp_path / "results.json", doc["run"], doc["rows"])
    assert main(["export", str(tmp_path)]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert len(parsed) == 4 and all(isinstance(e["value"], float) for e in parsed)
    with pytest.raises(SystemExit) as done:
        main(["export", "--format", "csv", str(tmp_path)])
    assert done.value.code == 2 and "xlt-bench: error: argument --format" in capsys.readouterr().err


def test_sweep_export_gives_each_shard_its_own_speedup_under_unique_names():
    """Two shards (two models) merged into one document: before, each shard's dynamic row got both shards' ratios
    under one name shared across models."""
    def shard_row(shard: str, model: str, lang: str, batching: str, tok_s: float) -> dict:
        r = row(lang, batching, tok_s, None)
        r.update(shard=shard, model=model)
        return r
    rows = [shard_row("aaaa", "tiny-xlmr", "ALL", "static", 1000.0),
            shard_row("aaaa", "tiny-xlmr", "ALL", "dynamic", 3000.0),
            shard_row("bbbb", "tiny-mbert", "ALL", "static", 400.0),
            shard_row("bbbb", "tiny-mbert", "ALL", "dynamic", 500.0),
            shard_row("aaaa", "tiny-xlmr", "en", "dynamic", 9999.0)]   # a language row: not exported
    doc = {"schema_version": SCHEMA_VERSION, "run": {"id": "sweep", "shards": []}, "rows": rows}
    entries = github_action_benchmark(doc)
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)) == 6          # 4 throughputs + 2 speedups, each name once
    speedup = {e["name"]: e["value"] for e in entries if e["unit"] == "x"}
    assert speedup == {"tiny-xlmr/xnli/eager/fp32/dynamic [shard aaaa] speedup vs static": 3.0,    # 3000 / 1000
                       "tiny-mbert/xnli/eager/fp32/dynamic [shard bbbb] speedup vs static": 1.25}  # 500 / 400
    assert "model tiny-mbert" in next(e["extra"] for e in entries if "shard bbbb] speedup" in e["name"])


def test_rows_that_cannot_be_told_apart_are_refused_not_exported_twice(doc):
    doc["rows"].append(dict(doc["rows"][0]))
    with pytest.raises(InputError, match="same name"):
        github_action_benchmark(doc)


def test_exported_metrics_are_bigger_is_better_with_the_catalogues_units():
    from xlt_bench.ci.export import EXPORTED, chart_unit
    from xlt_bench.core.catalogue import METRICS
    assert all(METRICS[m].higher_is_better for m in EXPORTED)      # customBiggerIsBetter holds for every entry
    assert chart_unit("throughput_tok_s") == ("tokens/s", 1.0)     # catalogue: tok/s
    assert chart_unit("speedup") == ("x", 1.0)
    assert chart_unit("mfu") == ("% of GEMM peak", 100.0)          # catalogue: a fraction
