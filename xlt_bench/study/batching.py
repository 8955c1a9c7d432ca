"""Study `batching` (DESIGN §1 question 1): how much faster is length-bucketed dynamic batching (and padding-free
packing, where it ran) than static batching, per language?"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from xlt_bench.report.blocks import heading, num, pct, plot, table
from xlt_bench.report.study import bar_chart
from xlt_bench.study.base import DEFAULT_LIMIT, Answer, Study, base_overrides, listed, make_config, one_run, quick_model
from xlt_bench.study.frames import batching_frame, batchings, missing_batchings, primary
from xlt_bench.study.stats import Estimate, fmt, geometric_mean

COMPARED = ("dynamic", "packed")


def _runs_on_any(name: str, backends: str) -> bool:
    """Whether some backend of the run can run strategy `name` (packed needs a padding-free path: eager, compile)."""
    from xlt_bench.backends import get_backend_class
    from xlt_bench.batching.strategies import runs_on
    return any(runs_on(name, get_backend_class(b)) for b in backends.split(","))


class BatchingStudy(Study):
    name = "batching"
    question = "How much faster is dynamic (and packed) batching than static batching, per language?"
    needs = ("one run with static and dynamic rows of the same backend/dtype (any model, data and task); runs "
             "xlmr-base over the shipped length profiles (xnli) by default")

    def runs(self, args: argparse.Namespace) -> dict:
        model = quick_model((listed(args.models, ("xlmr-base",)))[0], args.quick)
        overrides = base_overrides(args, tasks="xnli", limit=DEFAULT_LIMIT, data="synthetic")
        overrides.update(model=model, tokenizer=args.tokenizer,
                         batching=",".join(b for b in ("static",) + COMPARED
                                           if _runs_on_any(b, overrides["backends"])))
        return {"batching": make_config(overrides)}

    def missing(self, docs: dict[str, dict]) -> list[str]:
        doc, lacking_run = one_run(docs)
        if doc is None:
            return lacking_run
        lacking = missing_batchings(doc, ("static",))
        if not any(b in batchings(doc) for b in COMPARED):
            lacking.append("dynamic")
        return [f"offline rows with batching '{b}'" for b in lacking]

    def analyse(self, docs: dict[str, dict], args: argparse.Namespace) -> Answer:
        doc = next(iter(docs.values()))
        frame = batching_frame(doc)
        backend, dtype = primary(frame)
        compared = [b for b in batchings(doc) if b in COMPARED]
        blocks, data, headline, charts = [], {}, [], {}
        for task, sub in frame.groupby("task", sort=False):
            head = sub[(sub.backend == backend) & (sub.dtype == dtype)]
            for b in compared:
                est = geometric_mean(_speedups(head, b).tolist(), seed=args.seed or 0)
                data[f"{task}/{b}"] = est.__dict__
                if est.value is not None:
                    headline.append((task, b, est, _extremes(head, b)))
            blocks += [heading(f"{task}: per language ({len(sub.lang.unique())} languages)"),
                       table(_display(sub, compared), f"{task}: speedup = useful tok/s ÷ the same backend/dtype's "
                                                      "static row; interval from the run's paired passes")]
            for b in compared:
                name = f"speedup_{task}_{b}"
                charts[name] = bar_chart(name, f"{task}: {b} ÷ static useful tok/s per language ({backend}/{dtype})",
                                         list(head["lang"]), _speedups(head, b).tolist(), ylabel=f"{b} ÷ static",
                                         intervals=list(head.get(f"speedup_ci95:{b}", [None] * len(head))))
                blocks.append(plot(name, charts[name].title))
        intervals = _interval_share(frame, compared)
        model = frame["model"].iloc[0]
        return Answer(title=f"Dynamic vs static batching per language ({model})",
                      answer=_answer_text(headline, model, backend, dtype, intervals), refused=not headline,
                      blocks=blocks, charts=charts,
                      limits=_limits(intervals, doc), data=data, method=[
                          "speedup of a language = its useful tok/s under the batching ÷ under static (padded to "
                          "--max-length), same backend and dtype; the run's rows carry it with a 95% interval from "
                          "paired passes where the run measured one",
                          "across languages: geometric mean of the per-language speedups, with a 95% percentile "
                          "bootstrap interval over languages (2000 resamples, seeded)"])


def _speedups(sub: pd.DataFrame, batching: str) -> pd.Series:
    if f"tok_s:{batching}" not in sub or "tok_s:static" not in sub:
        return pd.Series(dtype=float)
    measured = pd.to_numeric(sub.get(f"speedup:{batching}"), errors="coerce")
    computed = pd.to_numeric(sub[f"tok_s:{batching}"], errors="coerce") / pd.to_numeric(sub["tok_s:static"],
                                                                                         errors="coerce")
    return measured.fillna(computed) if measured is not None else computed


def _extremes(sub: pd.DataFrame, batching: str) -> tuple[str, float, str, float]:
    s = _speedups(sub, batching)
    s.index = sub["lang"]
    s = s.dropna()
    return s.idxmin(), s.min(), s.idxmax(), s.max()


def _interval_share(frame: pd.DataFrame, compared: list[str]) -> tuple[int, int]:
    cells = [frame[f"speedup_ci95:{b}"] for b in compared if f"speedup_ci95:{b}" in frame]
    have = sum(int(isinstance(v, (list, tuple))) for col in cells for v in col)
    return have, sum(len(col) for col in cells)


def _answer_text(headline, model, backend, dtype, intervals) -> str:
    if not headline:
        return "Refused: no language has both a static and a dynamic (or packed) row with a measured tok/s."
    parts = []
    for task, b, est, (lo_lang, lo, hi_lang, hi) in headline:
        parts.append(f"on {task}, {b} batching ran {fmt(est, 2, '×')} the useful tok/s of static across "
                     f"{est.n} languages (geometric mean, interval over languages; from {lo:.2f}× for {lo_lang} to "
                     f"{hi:.2f}× for {hi_lang})")
    text = f"For {model} ({backend}/{dtype}), " + "; ".join(parts) + "."
    have, total = intervals
    if have < total:
        text += (f" Per-language intervals are missing for {total - have} of {total} rows (the run measured no "
                 "paired-pass interval there), so single-language speedups are point values.")
    return text


def _cell(value, ci) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return f"{value:.2f}× [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{value:.2f}× (no interval)"


def _display(sub: pd.DataFrame, compared: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({"lang": sub["lang"], "backend": sub["backend"] + "/" + sub["dtype"],
                        "tokens/sentence": [num(v, 1) for v in sub["tokens_per_seq"]],
                        "static tok/s": [num(v) for v in sub.get("tok_s:static", [])],
                        "static waste": [pct(v) for v in sub.get("waste:static", [])]})
    for b in compared:
        speed = _speedups(sub, b)
        out[f"{b} tok/s"] = [num(v) for v in sub[f"tok_s:{b}"]]
        out[f"{b} waste"] = [pct(v) for v in sub[f"waste:{b}"]]
        out[f"{b} ÷ static"] = [_cell(v, ci) for v, ci in zip(speed, sub.get(f"speedup_ci95:{b}",
                                                                             [None] * len(sub)))]
    return out.reset_index(drop=True)


def _limits(intervals: tuple[int, int], doc: dict) -> list[str]:
    out = ["the interval of the mean over languages resamples languages: it describes how the speedup varies "
           "between languages, not each language's measurement noise (the per-language intervals do)"]
    have, total = intervals
    if have < total:
        out.append(f"{total - have} of {total} per-language speedups carry no measured interval (rows without "
                   "`speedup_ci95`); they are shown as point values, not bounds")
    data = doc["run"].get("config", {}).get("data")
    if data == "synthetic":
        out.append("synthetic data reproduces per-language token lengths (the shipped mBERT WordPiece profiles), not "
                   "real text; another tokenizer's lengths would change the speedups")
    if "packed" not in batchings(doc):
        out.append("packed batching did not run, so execution without padding is not measured here")
    return out
