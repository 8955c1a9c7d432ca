"""Run-report additions: per-backend charts and group tables, measured vs predicted speedup, table of contents,
merged caveats, the hidden quality chart. Expectations are computed by hand from the fixture's simple model
(static pads to MAX_LEN, dynamic pads 4% over the real tokens)."""

from __future__ import annotations

import re

import pytest

from fixtures_results import MAX_LEN, N_EXAMPLES, make_document
from xlt_bench.report import plots, run_report, tables
from xlt_bench.report.blocks import heading, para
from xlt_bench.report.caveats import merge_run_notes, report_notes
from xlt_bench.report.figure import NoData, plt
from xlt_bench.report.group_report import group_display, grouping_section
from xlt_bench.report.plots_configs import groupings_chart, prediction_chart, speedup_chart
from xlt_bench.report.sections import prediction_summary
from xlt_bench.report.toc import anchor_headings, with_toc

bs4 = pytest.importorskip("bs4")
languages = pytest.importorskip("xlt_bench.core.languages")

STATIC_PADDED = N_EXAMPLES * MAX_LEN                  # 64 × 128 = 8192 per language
DYNAMIC_PADDED = {"en": 2662, "de": 3195, "th": 6390}  # round(64 × mean tokens × 1.04): 40, 48, 96 tokens
ORT_DYNAMIC_FACTOR = 1.5  # the tests make onnxruntime's dynamic rows this much faster, so backends differ


def no_charts(monkeypatch) -> None:
    """Keep report tests fast: no chart is drawn (each chart function is tested on its own)."""
    monkeypatch.setattr(run_report.plots, "draw_all", lambda ctx: ({}, {}))


def two_backend_doc(langs=("en", "de", "th"), *, predicted: bool = False) -> dict:
    """xnli on eager and onnxruntime; onnxruntime's dynamic rows 1.5× faster; optionally a cost model of 1 ms per
    padded token (its prediction is then static ÷ dynamic padded tokens, exactly eager's measured speedup)."""
    doc = make_document(tasks={"xnli": langs})
    for row in doc["rows"]:
        if (row["backend"], row["batching"]) == ("onnxruntime", "dynamic"):
            row["throughput_tok_s"] *= ORT_DYNAMIC_FACTOR
        if predicted:
            row["predicted_s"] = row["padded_tokens"] * 1e-3
    return doc


def speedup_by_hand(lang: str, backend: str) -> float:
    return STATIC_PADDED / DYNAMIC_PADDED[lang] * (ORT_DYNAMIC_FACTOR if backend == "onnxruntime" else 1.0)


# ---- (d) caveats ---------------------------------------------------------------------------------------------------

FIVE = ("en", "de", "es", "fr", "zh")


def test_two_caveats_repeated_five_times_become_two_notes():
    notes = []
    for lang in FIVE:
        notes.append(f"xnli/{lang}: synthetic ids reproducing the xnli/{lang} length profile (vocab.txt)")
        notes.append(f"xnli/{lang}: fallback tokenizer used")
    merged = merge_run_notes(notes + notes[:2], {"xnli": list(FIVE)})  # an exact repeat is dropped too
    assert merged == ["synthetic ids reproducing the xnli/‹lang› length profile (vocab.txt) — all 5 xnli "
                      "languages",
                      "fallback tokenizer used — all 5 xnli languages"]


def test_caveats_differing_in_a_number_list_each_language_with_its_value():
    notes = ["xnli/el: 1 of 16 sequences truncated to 128 tokens", "xnli/th: 4 of 16 sequences truncated to 128 tokens",
             "run took longer than planned", "xnli/en and xnli/de share a cache entry"]
    merged = merge_run_notes(notes, {"xnli": ["en", "de", "el", "th"]})
    assert merged == ["‹n› of 16 sequences truncated to 128 tokens — xnli: el (1), th (4)",
                      "run took longer than planned",              # about no language: as written
                      "xnli/en and xnli/de share a cache entry"]  # about two languages at once: as written
    # Only some of the task's languages: they are named, not "all".
    some = merge_run_notes(notes[:1] + ["xnli/th: 1 of 16 sequences truncated to 128 tokens"],
                           {"xnli": ["en", "el", "th"]})
    assert some == ["1 of 16 sequences truncated to 128 tokens — xnli: el, th"]


def test_report_notes_one_line_per_caveat_and_truncation_once():
    doc = make_document(tasks={"xnli": FIVE + ("th",)})
    for row in doc["rows"]:
        row["notes"] = ["accuracy null: no gold labels"]
    doc["run"]["notes"] = [f"xnli/{lang}: synthetic ids for xnli/{lang}" for lang in FIVE + ("th",)] * 2
    doc["run"]["notes"].append("xnli/th: 1 of 64 sequences truncated to 128 tokens")
    notes = report_notes(tables.rows_frame(doc), doc["run"]["notes"])
    assert notes == [
        "synthetic ids for xnli/‹lang› — all 6 xnli languages",
        "accuracy null: no gold labels (xnli eager fp32 static/dynamic, onnxruntime fp32 static/dynamic: 6 languages)",
        # the fixture truncates one th sequence; the run's own note on it is this line's, so it is not repeated
        "1 sequence over max_length was truncated (n_truncated per row): xnli th 1 of 64.",
    ]


def test_report_notes_section_has_the_merged_lines(monkeypatch):
    no_charts(monkeypatch)
    doc = make_document(tasks={"xnli": FIVE})
    doc["run"]["notes"] = [f"xnli/{lang}: profile of xnli/{lang}" for lang in FIVE] * 5
    md = run_report.build_run_report(doc).markdown
    notes = md.split("## Notes", 1)[1].strip().splitlines()
    assert notes == ["- profile of xnli/‹lang› — all 5 xnli languages"]


# ---- (e) quality chart ---------------------------------------------------------------------------------------------

def all_agree(doc: dict) -> dict:
    for row in doc["rows"]:
        row["agreement"] = 1.0
    return doc


def test_quality_chart_hidden_when_every_point_is_full_agreement_of_random_weights(monkeypatch):
    df = tables.rows_frame(all_agree(make_document()))
    with pytest.raises(NoData, match="random weights .* agrees 100%"):
        plots.quality_chart(df, random_weights=True)
    with pytest.raises(NoData, match="the run has no accuracy and every configuration agrees 100%"):
        plots.quality_chart(df, random_weights=False)
    plt.close(plots.quality_chart(tables.rows_frame(make_document()), random_weights=True))  # 99%: drawn
    plt.close(plots.quality_chart(tables.rows_frame(all_agree(make_document(with_accuracy=True))), True))

    def quality_only(ctx):
        try:
            return {"quality_vs_throughput": plots.Chart("q", "q", plots.to_png(
                plots.CHARTS["quality_vs_throughput"][1](ctx)))}, {}
        except NoData as why:
            return {}, {"quality_vs_throughput": str(why)}

    monkeypatch.setattr(run_report.plots, "draw_all", quality_only)
    md = run_report.build_run_report(all_agree(make_document())).markdown  # xlmr-base: a random-weight preset
    line = next(ln for ln in md.splitlines() if "Accuracy/agreement vs throughput" in ln)
    assert line.startswith("_Chart") and "not drawn: the model has random weights (no accuracy)" in line
    assert "plots/quality_vs_throughput.png" not in md


def test_random_weights_come_from_the_model_name():
    assert run_report.has_random_weights(make_document(model="xlmr-base"))
    assert not run_report.has_random_weights(make_document(model="someone/xlmr-finetuned-xnli"))


# ---- (a) per-backend charts ----------------------------------------------------------------------------------------

def test_per_language_charts_have_a_panel_per_backend():
    doc = two_backend_doc()
    fig = plots.throughput_chart(tables.rows_frame(doc))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["XNLI — eager fp32", "XNLI — onnxruntime fp32"]
    ort = fig.axes[1]
    dynamic_bars = [c for c in ort.containers if getattr(c, "get_label", lambda: "")() == "dynamic"][0]
    expected_en = N_EXAMPLES * 40 / (DYNAMIC_PADDED["en"] / 26000.0 * 1.05) * ORT_DYNAMIC_FACTOR
    assert dynamic_bars.patches[0].get_height() == pytest.approx(expected_en)
    plt.close(fig)
    fig = plots.waste_chart(tables.rows_frame(doc))
    assert len(fig.axes) == 2
    plt.close(fig)


def test_speedup_chart_has_a_series_per_backend():
    frames = tables.per_language_frames(tables.rows_frame(two_backend_doc()))
    assert list(frames) == [("eager", "fp32"), ("onnxruntime", "fp32")]
    assert frames[("onnxruntime", "fp32")]["speedup"].tolist() == pytest.approx(
        [speedup_by_hand(lang, "onnxruntime") for lang in ("en", "de", "th")])
    fig = speedup_chart(frames)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["XNLI — eager fp32", "XNLI — onnxruntime fp32"]
    plotted = sorted(round(float(y), 6) for c in ax.collections if c.get_offsets().size for y in c.get_offsets()[:, 1])
    assert plotted == sorted(round(speedup_by_hand(lang, b), 6) for lang in ("en", "de", "th")
                             for b in ("eager", "onnxruntime"))
    plt.close(fig)


def test_groupings_chart_has_bars_per_backend():
    frames = tables.per_language_frames(tables.rows_frame(two_backend_doc()))
    fig = groupings_chart(frames, languages.group_of)
    bottom = [ax for ax in fig.axes if ax.get_ylabel() == "speedup (×)"]
    assert bottom and all([t.get_text() for t in ax.get_legend().get_texts()] == ["eager fp32", "onnxruntime fp32"]
                          for ax in bottom)
    plt.close(fig)


# ---- (f) group tables: n and spread --------------------------------------------------------------------------------

def test_group_table_n_spread_and_single_language_flag():
    frames = tables.per_language_frames(tables.rows_frame(two_backend_doc()))
    t = group_display(frames, "family", languages.group_of).set_index("language family")
    eager = [speedup_by_hand(lang, "eager") for lang in ("en", "de")]   # 8192/2662 and 8192/3195
    ort = [speedup_by_hand(lang, "onnxruntime") for lang in ("en", "de")]
    assert t.loc["Indo-European", "n"] == "2" and t.loc["Indo-European", "languages"] == "en, de"
    assert t.loc["Indo-European", "tokens/seq (min–max)"] == "44.0 (40.0–48.0)"
    assert t.loc["Indo-European", "speedup dynamic÷static, eager fp32 (min–max)"] == (
        f"{sum(eager) / 2:.2f}× ({min(eager):.2f}–{max(eager):.2f})")
    assert t.loc["Indo-European", "speedup dynamic÷static, onnxruntime fp32 (min–max)"] == (
        f"{sum(ort) / 2:.2f}× ({min(ort):.2f}–{max(ort):.2f})")
    assert t.loc["Tai-Kadai", "n"] == "1 †" and t.loc["Tai-Kadai", "tokens/seq (min–max)"] == "96.0"
    assert t.loc["Tai-Kadai", "speedup dynamic÷static, eager fp32 (min–max)"] == f"{8192 / 6390:.2f}×"
    assert "accuracy" not in t.columns  # no accuracy in the run: no empty column
    text = " ".join(b.text for b in grouping_section(frames, languages.group_of) if b.kind == "para")
    assert "† A group of one language" in text


def test_group_table_without_single_language_groups_has_no_flag():
    doc = make_document(tasks={"xnli": ("en", "de")}, backends=("eager",))
    frames = tables.per_language_frames(tables.rows_frame(doc))
    blocks = grouping_section(frames, languages.group_of)
    assert not any("†" in b.text for b in blocks if b.kind == "para")
    single = group_display(frames, "family", languages.group_of)  # one backend: no backend in the headers
    assert single.columns.tolist() == ["language family", "n", "languages", "tokens/seq (min–max)", "waste static",
                                       "waste dynamic", "speedup dynamic÷static (min–max)"]


# ---- (b) measured vs predicted -------------------------------------------------------------------------------------

def test_prediction_points_and_chart():
    assert tables.prediction_points(tables.rows_frame(two_backend_doc())).empty
    with pytest.raises(NoData, match="cost-model prediction"):
        prediction_chart(tables.prediction_points(tables.rows_frame(two_backend_doc())))
    doc = two_backend_doc(("en", "de"), predicted=True)
    for row in doc["rows"]:  # a ±10% measured interval on each dynamic row
        if row["batching"] == "dynamic" and row["lang"] != "ALL":
            s = speedup_by_hand(row["lang"], row["backend"])
            row["speedup_ci95"] = [0.9 * s, 1.1 * s]
    points = tables.prediction_points(tables.rows_frame(doc))
    assert len(points) == 6  # 2 backends × (2 languages + ALL)
    en = points[(points["lang"] == "en")].set_index("backend")
    assert en.loc["eager", "predicted"] == pytest.approx(8192 / 2662)
    assert en.loc["onnxruntime", "predicted"] == pytest.approx(8192 / 2662)  # same batches, same model
    assert en.loc["onnxruntime", "measured"] == pytest.approx(1.5 * 8192 / 2662)
    assert en.loc["eager", "lo"] == pytest.approx(0.9 * 8192 / 2662)
    fig = prediction_chart(points)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("prediction (cost model)") and ax.get_ylabel().startswith("measured")
    diagonal = [line for line in ax.get_lines() if line.get_label().startswith("measured = prediction")]
    assert len(diagonal) == 1 and list(diagonal[0].get_xdata()) == list(diagonal[0].get_ydata())
    plt.close(fig)
    lines = prediction_summary(points)[0].items
    # eager: measured = prediction, inside ±10%; onnxruntime: 1.5× the prediction, outside its ±10% interval.
    assert lines == ["XNLI eager fp32 dynamic ÷ static: measured ÷ prediction (cost model) median 1.00 (range "
                     "1.00–1.00) over 2 languages; the prediction lies inside the measured 95% interval for 2 of 2.",
                     "XNLI onnxruntime fp32 dynamic ÷ static: measured ÷ prediction (cost model) median 1.50 (range "
                     "1.50–1.50) over 2 languages; the prediction lies inside the measured 95% interval for 0 of 2."]


# ---- (c) table of contents -----------------------------------------------------------------------------------------

def github_anchor(text: str, seen: dict[str, int]) -> str:
    """GitHub's rule, written out separately from toc.py: lower case, keep letters/digits/_/-/space, spaces to -."""
    base = "".join(c for c in text.lower().strip() if c.isalnum() or c in "_- ").replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def test_anchors_by_hand_with_repeats():
    blocks = [heading("Report — x", 1), para("p"), heading("Notes"), heading("XNLI", 3), heading("Notes"),
              heading("Backends, dtypes and batching")]
    anchor_headings(blocks)
    assert [b.anchor for b in blocks if b.kind == "heading"] == [
        "report--x", "notes", "xnli", "notes-1", "backends-dtypes-and-batching"]
    out = with_toc(blocks)
    assert [b.kind for b in out[:3]] == ["heading", "toc", "para"]  # right under the title
    assert [e[2] for e in out[1].entries] == ["notes", "xnli", "notes-1", "backends-dtypes-and-batching"]


def test_toc_links_match_headings_in_markdown_and_html(monkeypatch):
    no_charts(monkeypatch)
    rendered = run_report.build_run_report(make_document())
    md = rendered.markdown
    seen: dict[str, int] = {}
    headings = [(len(m.group(1)), github_anchor(m.group(2), seen), m.group(2))
                for m in re.finditer(r"^(#{1,6}) (.+)$", md, flags=re.M)]
    toc_part = md.split("**Contents**", 1)[1].split("\n\n", 2)[1]
    links = re.findall(r"^( *)- \[(.+)\]\(#(.+)\)$", toc_part, flags=re.M)
    assert [(text, anchor) for _, text, anchor in links] == [(t, a) for level, a, t in headings if level in (2, 3)]
    assert ("Language groups", "language-groups") in [(t, a) for _, t, a in links]
    assert [len(indent) for indent, _, _ in links][:3] == [0, 0, 2]  # Summary, Throughput per language, XNLI
    assert md.index("**Contents**") < md.index("## Summary")
    soup = bs4.BeautifulSoup(rendered.html, "html.parser")
    hrefs = [a["href"] for a in soup.find("nav").find_all("a")]
    assert hrefs == [f"#{a}" for _, _, a in links]
    by_id = {h["id"]: h.get_text() for h in soup.find_all(["h2", "h3"])}
    assert all(by_id[href[1:]] == a.get_text() for href, a in zip(hrefs, soup.find("nav").find_all("a")))


def test_server_report_gets_a_toc_too(monkeypatch):
    import xlt_bench.report.server_report as server_report
    monkeypatch.setattr(server_report, "is_server_run", lambda doc: True)
    monkeypatch.setattr(server_report, "server_blocks", lambda doc: ([heading("Max sustainable QPS"), para("x")], {}))
    md = run_report.build_run_report(make_document(tasks={"xnli": ("en",)})).markdown
    lines = md.splitlines()
    assert lines[0].startswith("# ")
    assert lines[2:5] == ["**Contents**", "", "- [Max sustainable QPS](#max-sustainable-qps)"]
    assert "## Max sustainable QPS" in lines


# ---- the whole report with every chart ----------------------------------------------------------------------------

@pytest.mark.slow
def test_two_backend_report_draws_every_config_chart(tmp_path):
    import json
    from xlt_bench.report import render_run
    (tmp_path / "results.json").write_text(json.dumps(two_backend_doc(predicted=True)), encoding="utf-8")
    render_run(tmp_path)
    soup = bs4.BeautifulSoup((tmp_path / "report.html").read_text(encoding="utf-8"), "html.parser")
    drawn = {fig["data-plot"] for fig in soup.find_all("figure")}
    assert {"throughput_per_language", "speedup_vs_length", "predicted_vs_measured", "groupings"} <= drawn
    assert (tmp_path / "plots" / "predicted_vs_measured.png").exists()


def test_group_tables_are_one_per_task_never_a_mean_across_tasks():
    doc = make_document(tasks={"xnli": ("en", "de"), "pawsx": ("en", "de")}, backends=("eager",))
    for row in doc["rows"]:  # PAWS-X sentences made twice as long as XNLI's
        if row["task"] == "pawsx" and row["lang"] != "ALL":
            row["mean_tokens_per_seq"] = 80.0
        elif row["task"] == "xnli" and row["lang"] != "ALL":
            row["mean_tokens_per_seq"] = 40.0
    frames = tables.per_language_frames(tables.rows_frame(doc))
    captions = [b.text for b in grouping_section(frames, languages.group_of) if b.kind == "table"]
    assert captions[:3] == ["XNLI: by resource class", "XNLI: by language family", "XNLI: by script"]
    assert "PAWSX: by language family" in captions
    by_task = {t: group_display({c: f[f["task"] == t] for c, f in frames.items()}, "family", languages.group_of)
               for t in ("xnli", "pawsx")}
    assert by_task["xnli"].set_index("language family").loc["Indo-European", "tokens/seq (min–max)"] == "40.0"
    assert by_task["pawsx"].set_index("language family").loc["Indo-European", "tokens/seq (min–max)"] == "80.0"
