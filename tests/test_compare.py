"""compare: run labels, row matching on the intersection, ratios, and the list of rows left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures_results import XNLI_LANGS, make_document
from xlt_bench.report import render_compare
from xlt_bench.report.compare import build_compare, match_rows, run_labels

bs4 = pytest.importorskip("bs4")


def write_doc(run_dir: Path, doc: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    return run_dir


def small(**kwargs) -> dict:
    kwargs.setdefault("tasks", {"xnli": ("en", "th", "zh")})
    kwargs.setdefault("backends", ("eager",))
    return make_document(**kwargs)


def test_labels_name_what_differs():
    assert run_labels(small(model="xlmr-base"), small(model="mbert-base")) == ("xlmr-base", "mbert-base")
    assert run_labels(small(device="cpu"), small(device="cuda")) == ("cpu", "cuda")
    assert run_labels(small(git_sha="aaa"), small(git_sha="bbb")) == ("baseline", "candidate")
    a, b = small(), small()
    b["run"]["config"]["max_tokens"] = 2048
    assert run_labels(a, b) == ("max_tokens=4096", "max_tokens=2048")


def test_ratios_on_matched_rows_by_hand():
    a, b = small(model="xlmr-base"), small(model="mbert-base")
    for row in b["rows"]:
        if row["lang"] == "th":
            row["throughput_tok_s"] *= 1.5
            row["latency_ms_p50"] *= 2.0
    matched, left_out = match_rows(a, b)
    assert left_out.empty
    assert len(matched) == 2 * 4  # 2 batchings × (3 languages + ALL)
    th = matched[matched["lang"] == "th"]
    assert th["tok_s_ratio"].tolist() == pytest.approx([1.5, 1.5])
    assert th["p50_ratio"].tolist() == pytest.approx([2.0, 2.0])
    assert matched[matched["lang"] == "en"]["tok_s_ratio"].tolist() == pytest.approx([1.0, 1.0])
    # Languages keep run A's order.
    assert matched["lang"].tolist()[:4] == ["en", "th", "zh", "ALL"]


def test_left_out_rows_are_listed():
    a = make_document(model="xlmr-base", tasks={"xnli": XNLI_LANGS, "pawsx": ("en", "de")})
    b = make_document(model="mbert-base", tasks={"xnli": XNLI_LANGS[:-2]}, backends=("eager",))
    matched, left_out = match_rows(a, b)
    assert set(left_out["only_in"]) == {"A"}
    eager_xnli = left_out[(left_out["task"] == "xnli") & (left_out["backend"] == "eager")]
    assert sorted(eager_xnli["lang"]) == ["vi", "vi", "zh", "zh"]
    assert set(left_out[left_out["task"] == "pawsx"]["lang"]) == {"en", "de", "ALL"}
    # ALL rows cover different language sets: flagged, not silently compared.
    all_rows = matched[matched["lang"] == "ALL"]
    assert all_rows["all_differs"].all()
    md = build_compare(a, b).markdown
    left = md.split("## Left out", 1)[1]
    assert "| A (xlmr-base) | xnli | eager | fp32 | static | vi, zh |" in left
    assert "| A (xlmr-base) | pawsx | onnxruntime | fp32 | dynamic | en, de, ALL |" in left
    assert "**ALL** (different languages)" in md


@pytest.mark.slow
def test_render_compare_writes_md_and_html_with_plot(tmp_path):
    a = write_doc(tmp_path / "a", small(model="xlmr-base", with_accuracy=True))
    b = write_doc(tmp_path / "b", small(model="mbert-base", with_accuracy=True))
    written = render_compare(a, b, tmp_path / "out")
    assert {p.name for p in written} == {"compare.md", "compare.html", "compare_throughput_ratio.png"}
    soup = bs4.BeautifulSoup((tmp_path / "out" / "compare.html").read_text(encoding="utf-8"), "html.parser")
    fig = soup.find("figure", attrs={"data-plot": "compare_throughput_ratio"})
    assert fig is not None and fig.find("img")["src"].startswith("data:image/png;base64,")
    md = (tmp_path / "out" / "compare.md").read_text(encoding="utf-8")
    assert md.startswith("# xlt-bench compare — xlmr-base vs mbert-base")
    assert "accuracy xlmr-base" in md and "Nothing: both runs have the same rows." in md


def test_disjoint_runs_compare_nothing_but_say_so():
    a = small(tasks={"xnli": ("en",)})
    b = small(tasks={"pawsx": ("en",)})
    rendered = build_compare(a, b)
    assert "No rows in common." in rendered.markdown
    assert "Ratio chart not drawn" in rendered.markdown
    assert set(rendered.left_out["only_in"]) == {"A", "B"}
