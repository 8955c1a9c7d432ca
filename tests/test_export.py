"""github-action-benchmark export on a hand-made result document."""

from __future__ import annotations

import json

import pytest

from xlt_bench.errors import InputError
from xlt_bench.export import github_action_benchmark
from xlt_bench.schema import ROW_FIELDS, SCHEMA_VERSION


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
    from xlt_bench.schema import write_results
    write_results(tmp_path / "results.json", doc["run"], doc["rows"])
    assert main(["export", str(tmp_path)]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert len(parsed) == 4 and all(isinstance(e["value"], float) for e in parsed)
    with pytest.raises(SystemExit) as done:
        main(["export", "--format", "csv", str(tmp_path)])
    assert done.value.code == 2 and "xlt-bench: error: argument --format" in capsys.readouterr().err
