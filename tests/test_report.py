"""Report rendering: table numbers against hand computation, plots embedded in report.html, atomic writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_results import BACKEND_RATE, DYNAMIC_OVERHEAD, MAX_LEN, MEAN_TOKENS, N_EXAMPLES, PAWSX_LANGS, XNLI_LANGS
from fixtures_results import make_document
from xlt_bench.core.errors import InputError
from xlt_bench.report import console_summary, render_run, run_report, tables
from xlt_bench.report.blocks import markdown_table
from xlt_bench.core.schema import ROW_FIELDS

bs4 = pytest.importorskip("bs4")

ALL_CHARTS = ("throughput_per_language", "padding_waste_per_language", "speedup_vs_length", "latency_distribution",
              "quality_vs_throughput", "groupings", "alignment_vs_accuracy")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def dynamic_padded(lang: str) -> int:
    return int(round(N_EXAMPLES * MEAN_TOKENS[lang] * DYNAMIC_OVERHEAD))


def write_doc(run_dir: Path, doc: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="module")
def rich_run(tmp_path_factory) -> Path:
    """A run with accuracy, alignment and a configuration that fails parity: every chart is supported."""
    doc = make_document(with_accuracy=True, with_alignment=True, parity_fail=("onnxruntime", "fp32", "dynamic"))
    run_dir = write_doc(tmp_path_factory.mktemp("rich"), doc)
    render_run(run_dir)
    return run_dir


# ---- numbers -----------------------------------------------------------------------------------------------------

def test_language_table_speedup_and_waste_by_hand():
    df = tables.rows_frame(make_document())
    t = tables.language_table(df, "xnli", "eager", "fp32")
    # Same backend rate and overhead factor for both batchings, so speedup = static padded / dynamic padded tokens.
    static_padded = N_EXAMPLES * MAX_LEN  # 8192
    assert dynamic_padded("en") == 2662
    assert t.loc["en", "speedup:dynamic"] == pytest.approx(8192 / 2662)
    assert t.loc["en", "waste:static"] == pytest.approx(1 - 40 / 128)
    assert t.loc["en", "waste:dynamic"] == pytest.approx(1 - 2560 / 2662)
    assert t.loc["en", "tok_s:static"] == pytest.approx(2560 / (static_padded / BACKEND_RATE["eager"] * 1.05))
    assert t.loc["th", "mean_tokens"] == 96
    assert list(t.index) == [*XNLI_LANGS, "ALL"]


def test_task_summary_line_by_hand():
    df = tables.rows_frame(make_document())
    s = tables.task_summary(tables.language_table(df, "pawsx", "eager", "fp32"))
    static_total = N_EXAMPLES * MAX_LEN * len(PAWSX_LANGS)
    dynamic_total = sum(dynamic_padded(lang) for lang in PAWSX_LANGS)
    per_lang = [N_EXAMPLES * MAX_LEN / dynamic_padded(lang) for lang in PAWSX_LANGS]
    assert s["overall"] == pytest.approx(static_total / dynamic_total)
    assert (s["low"], s["high"]) == pytest.approx((min(per_lang), max(per_lang)))
    assert s["n_langs"] == 7
    real_total = N_EXAMPLES * sum(MEAN_TOKENS[lang] for lang in PAWSX_LANGS)
    assert s["waste_base"] == pytest.approx(1 - real_total / static_total)
    md = run_report.build_run_report(make_document()).markdown
    expected = (f"**PAWSX, eager fp32**: dynamic {static_total / dynamic_total:.2f}× static overall "
                f"(range {min(per_lang):.2f}–{max(per_lang):.2f}× across 7 languages)")
    assert expected in md


def test_config_table_ranks_and_never_ranks_failed_parity():
    doc = make_document(parity_fail=("onnxruntime", "fp32", "dynamic"))
    t = tables.config_table(tables.rows_frame(doc), "xnli")
    failed = t[t["parity_ok"] == False]  # noqa: E712
    assert len(failed) == 1 and np.isnan(failed["rank"].iloc[0])
    # The failed config is the fastest, yet the ranked list starts with eager dynamic.
    assert failed["throughput_tok_s"].iloc[0] == t["throughput_tok_s"].max()
    ranked = t.dropna(subset=["rank"])
    assert list(ranked["rank"]) == [1, 2, 3]
    assert (ranked.iloc[0]["backend"], ranked.iloc[0]["batching"]) == ("eager", "dynamic")
    ort_static = t[(t["backend"] == "onnxruntime") & (t["batching"] == "static")].iloc[0]
    assert ort_static["speedup_vs_reference"] == pytest.approx(BACKEND_RATE["onnxruntime"] / BACKEND_RATE["eager"])
    md = run_report.build_run_report(doc).markdown
    assert "| — | onnxruntime | fp32 | dynamic |" in md and "✗ FAILED" in md
    assert "**Parity failed** for:" in md


def test_pareto_mask_by_hand():
    x = np.array([1.0, 2.0, 3.0, 2.5])
    y = np.array([0.9, 0.95, 0.8, 0.7])
    # (2.5, 0.7) is beaten by (3.0, 0.8); (1.0, 0.9) by (2.0, 0.95).
    assert tables.pareto_mask(x, y).tolist() == [False, True, True, False]


def test_grouping_by_family_by_hand():
    languages = pytest.importorskip("xlt_bench.core.languages")
    doc = make_document(tasks={"xnli": ("en", "de", "th")})
    per_lang = tables.per_language_frame(tables.rows_frame(doc))
    t = tables.grouping_table(per_lang, "family", languages.group_of)
    assert t.loc["Indo-European", "mean_tokens"] == pytest.approx((40 + 48) / 2)
    assert t.loc["Tai-Kadai", "mean_tokens"] == 96
    assert t.loc["Tai-Kadai", "speedup"] == pytest.approx(8192 / dynamic_padded("th"))
    classes = tables.grouping_table(per_lang, "resource_class", languages.group_of)
    assert classes.index[0].startswith("5")  # best-resourced class first


def test_alignment_accuracy_correlation_by_hand():
    # One task: accuracy and alignment both fall linearly with the language index -> r = rho = 1.
    doc = make_document(tasks={"xnli": ("en", "de", "th", "zh")}, with_accuracy=True, with_alignment=True)
    pairs = tables.alignment_pairs(tables.per_language_frame(tables.rows_frame(doc)))
    assert list(pairs) == ["xnli"] and pairs["xnli"]["lang"].tolist() == ["en", "de", "th", "zh"]
    r = run_report.correlate(pairs["xnli"]["alignment_cosine"].tolist(), pairs["xnli"]["accuracy"].tolist())
    assert (r["pearson"], r["spearman"], r["n"]) == (pytest.approx(1.0), pytest.approx(1.0), 4)
    assert tables.alignment_pairs(tables.per_language_frame(tables.rows_frame(make_document()))) == {}


def test_markdown_table_escapes_and_aligns():
    import pandas as pd
    text = markdown_table(pd.DataFrame({"name": ["a|b"], "tok/s": ["1,234"]}))
    assert text.splitlines() == ["| name | tok/s |", "| :--- | ---: |", "| a\\|b | 1,234 |"]


def test_console_summary_lists_all_rows():
    doc = make_document(parity_fail=("onnxruntime", "fp32", "dynamic"))
    text = console_summary(doc)
    lines = text.splitlines()
    assert lines[0].split() == ["task", "backend", "dtype", "batching", "ALL", "tok/s", "speedup", "waste", "mfu",
                                "parity"]
    body = [ln for ln in lines[2:] if ln.startswith(("xnli", "pawsx"))]
    assert len(body) == 8  # 2 tasks × 2 backends × 2 batchings
    xnli_dyn = next(ln for ln in body if ln.startswith("xnli") and "eager" in ln and "dynamic" in ln)
    overall = N_EXAMPLES * MAX_LEN * len(XNLI_LANGS) / sum(dynamic_padded(lang) for lang in XNLI_LANGS)
    assert f"{overall:.2f}×" in xnli_dyn
    assert sum("FAILED" in ln for ln in body) == 2


# ---- report files ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_report_html_embeds_every_supported_plot(rich_run):
    soup = bs4.BeautifulSoup((rich_run / "report.html").read_text(encoding="utf-8"), "html.parser")
    figures = {fig["data-plot"]: fig for fig in soup.find_all("figure")}
    assert set(figures) == set(ALL_CHARTS)
    for name, fig in figures.items():
        src = fig.find("img")["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
        assert (rich_run / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        assert fig.find("img")["alt"]
    # Self-contained: nothing fetched from elsewhere.
    assert not soup.find_all("link") and not soup.find_all("script", src=True)
    assert all(img["src"].startswith("data:") for img in soup.find_all("img"))


@pytest.mark.slow
def test_report_md_sections_and_notes(rich_run):
    md = (rich_run / "report.md").read_text(encoding="utf-8")
    for chart in ALL_CHARTS:
        assert f"(plots/{chart}.png)" in md
    assert "| xnli | my | empty file |" in md  # skipped language named
    assert "Accuracy is empty" not in md  # accuracy present here
    assert "accuracy (reference)" in md
    assert "Pearson r" in md and "| XNLI | mean cosine | 15 |" in md
    assert "Energy: not measured" in md and "peak resident set size" in md
    assert "1 sequence over max_length was truncated" in md  # th, counted once per (task, language)
    assert "(xnli onnxruntime fp32 dynamic: 15 languages; pawsx onnxruntime fp32 dynamic: 7 languages)" in md


@pytest.mark.slow
def test_unsupported_plots_are_skipped_with_a_reason(tmp_path):
    doc = make_document(tasks={"xnli": ("en", "th")}, backends=("eager",), batchings=("static",))
    for row in doc["rows"]:
        row["latencies_ms"] = None
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "speedup_vs_length.png").write_bytes(b"stale")  # from an earlier render
    render_run(write_doc(tmp_path, doc))
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    soup = bs4.BeautifulSoup(html, "html.parser")
    drawn = {fig["data-plot"] for fig in soup.find_all("figure")}
    assert drawn == {"throughput_per_language", "padding_waste_per_language", "groupings"}
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(f"{n}.png" for n in drawn)
    text = soup.get_text()
    assert "not drawn: no per-batch latencies" in text
    assert "not drawn: needs two batchings" in text
    assert "Accuracy is empty: xlmr-base has no trained head" in text


@pytest.mark.slow
def test_minimal_rows_without_extras_still_render(tmp_path):
    doc = make_document(tasks={"pawsx": ("en", "ja")}, backends=("eager",))
    doc["rows"] = [{k: row[k] for k in ROW_FIELDS} for row in doc["rows"]]
    written = render_run(write_doc(tmp_path, doc))
    assert tmp_path / "report.html" in written
    assert "| ja | 90.0 |" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_failed_render_writes_nothing(tmp_path, monkeypatch):
    write_doc(tmp_path, make_document(tasks={"xnli": ("en",)}, backends=("eager",)))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(run_report, "render_html", broken)
    monkeypatch.setattr(run_report.plots, "draw_all", lambda ctx: ({}, {}))  # keep the test fast
    with pytest.raises(RuntimeError):
        render_run(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["results.json"]


def test_incomplete_or_missing_results_raise_input_error(tmp_path):
    with pytest.raises(InputError):
        render_run(tmp_path)
    doc = make_document(tasks={"xnli": ("en",)})
    doc["run"]["incomplete"] = True
    with pytest.raises(InputError):
        render_run(write_doc(tmp_path, doc))
    assert not (tmp_path / "report.md").exists()


def test_cost_model_prediction_beside_the_measured_speedup():
    doc = make_document()
    for row in doc["rows"]:   # a cost model linear in padded tokens: 1 ms each
        row["predicted_s"] = row["padded_tokens"] * 1e-3
    t = tables.language_table(tables.rows_frame(doc), "pawsx", "eager", "fp32")
    assert t.loc["en", "predicted:dynamic"] == pytest.approx(N_EXAMPLES * MAX_LEN / dynamic_padded("en"))
    md = run_report.build_run_report(doc).markdown
    static_total = N_EXAMPLES * MAX_LEN * len(PAWSX_LANGS)
    dynamic_total = sum(dynamic_padded(lang) for lang in PAWSX_LANGS)
    assert f"the backend's cost model predicts {static_total / dynamic_total:.2f}× for these batches" in md
    assert "cost model predicts dynamic÷static" in md
    assert "cost model predicts" not in run_report.build_run_report(make_document()).markdown
    assert "perfect packing" not in md   # no floor in these rows


def test_perfect_packing_bound_beside_the_prediction():
    doc = make_document()
    for row in doc["rows"]:   # 1 ms per padded token; a floor of 1 ms per real token (no padding, no call cost)
        row["predicted_s"] = row["padded_tokens"] * 1e-3
        row["packing_bound_s"] = row["real_tokens"] * 1e-3
    t = tables.language_table(tables.rows_frame(doc), "pawsx", "eager", "fp32")
    static = {r["lang"]: r for r in doc["rows"]
              if (r["task"], r["backend"], r["batching"]) == ("pawsx", "eager", "static")}
    assert t.loc["en", "bound"] == pytest.approx(N_EXAMPLES * MAX_LEN / static["en"]["real_tokens"])
    md = run_report.build_run_report(doc).markdown
    static_total = N_EXAMPLES * MAX_LEN * len(PAWSX_LANGS)
    real_total = sum(static[lang]["real_tokens"] for lang in PAWSX_LANGS)
    assert f", {static_total / real_total:.2f}× for perfect packing)" in md
    assert "cost model predicts perfect packing÷static" in md
