"""The report's Notes: each distinct caveat once, with the rows or languages it applies to listed compactly.

Run notes often repeat one caveat per language ("xnli/ar: synthetic ids reproducing the xnli/ar length profile",
then the same for bg, de, ...), sometimes with a number that differs ("xnli/el: 1 of 16 sequences truncated",
"xnli/th: 4 of 16 ..."). Notes that differ only in their task/language and such numbers become one line.
"""

from __future__ import annotations

import re
from typing import Iterable

import pandas as pd

from xlt_bench.core.schema import ALL_LANGS
from xlt_bench.report.tables import languages, ordered

# What tokenization and the synthetic reader note per language; the report's truncation line says the same.
TRUNCATION_NOTE = re.compile(r"^[\w-]+/[\w-]+: \d+ of \d+ sequences truncated to \d+ tokens$")
LANG_SLOT = "‹lang›"
VALUE_SLOT = "‹n›"
# A standalone number: not part of a word (fp32), a version (2.13.0 is one token) or an id.
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def report_notes(df: pd.DataFrame, run_notes: Iterable[str]) -> list[str]:
    """Every note of the report, each caveat once: the run's notes (merged), the rows' notes, then truncation."""
    truncation = truncation_note(df)
    if truncation:  # the per-language truncation notes are all in this one line
        run_notes = [note for note in run_notes if not TRUNCATION_NOTE.match(note)]
    languages_of = {task: languages(df[df["task"] == task]) for task in ordered(df["task"])}
    notes = merge_run_notes(run_notes, languages_of) + row_notes(df)
    return notes + ([truncation] if truncation else [])


def truncation_note(df: pd.DataFrame) -> str | None:
    """'5 sequences over max_length were truncated (n_truncated per row): xnli el 1 of 16, th 4 of 16'."""
    # Each (task, language) was tokenized once; every configuration repeats its count, so take the max.
    per_lang = df[df["lang"] != ALL_LANGS].groupby(["task", "lang"], sort=False)
    truncated = per_lang["n_truncated"].max().fillna(0)
    count = int(truncated.sum())
    if count <= 0:
        return None
    sequences = per_lang["n_sequences"].max()
    where = {}
    for (task, lang), n in truncated[truncated > 0].items():
        of = f" of {int(sequences[(task, lang)])}" if pd.notna(sequences[(task, lang)]) else ""
        where.setdefault(task, []).append(f"{lang} {int(n)}{of}")
    places = "; ".join(f"{task} {', '.join(langs)}" for task, langs in where.items())
    return (f"{count} sequence{'s' if count != 1 else ''} over max_length {'were' if count != 1 else 'was'} "
            f"truncated (n_truncated per row): {places}.")


def merge_run_notes(notes: Iterable[str], languages_of: dict[str, list[str]]) -> list[str]:
    """Run notes with exact repeats dropped and notes about one task/language each merged by their wording;
    languages_of maps each task of the run to its languages (to say "all 15 xnli languages")."""
    place = _place_pattern(languages_of)
    groups: dict[str, list[tuple[tuple[str, str], list[str], str]]] = {}
    for note in dict.fromkeys(notes):
        places = list(dict.fromkeys(place.findall(note))) if place else []
        if len(places) != 1:  # about no single language: kept as written
            groups.setdefault(note, []).append((("", ""), [], note))
            continue
        shape = place.sub("\0", note)
        groups.setdefault(NUMBER.sub("#", shape), []).append((places[0], NUMBER.findall(shape), shape))
    return [members[0][2] if members[0][0] == ("", "") else _merged(members, languages_of)
            for members in groups.values()]


def _place_pattern(languages_of: dict[str, list[str]]) -> re.Pattern | None:
    if not languages_of:
        return None
    tasks = "|".join(re.escape(t) for t in sorted(languages_of, key=len, reverse=True))
    return re.compile(rf"(?<![\w/])({tasks})/([A-Za-z]{{2,3}}(?:[-_][A-Za-z0-9]+)?)(?![\w])")


def _merged(members: list[tuple[tuple[str, str], list[str], str]], languages_of: dict[str, list[str]]) -> str:
    """One line for notes of the same wording: their text with the language (and any number that differs) as a
    slot, then where each applies."""
    if len(members) == 1:
        (task, lang), _, shape = members[0]
        return shape.replace("\0", f"{task}/{lang}")
    tasks = list(dict.fromkeys(task for (task, _), _, _ in members))
    varying = [i for i, values in enumerate(zip(*(numbers for _, numbers, _ in members))) if len(set(values)) > 1]
    slots = iter(range(len(members[0][1])))
    text = NUMBER.sub(lambda m: VALUE_SLOT if next(slots) in varying else m.group(0), members[0][2])
    text = re.sub(r"^\0:\s*", "", text)  # the note's leading "xnli/ar: " names the place, listed at the end
    text = text.replace("\0", f"{tasks[0]}/{LANG_SLOT}" if len(tasks) == 1 else f"‹task›/{LANG_SLOT}")
    return f"{text} — {_where(members, varying, languages_of)}"


def _where(members, varying: list[int], languages_of: dict[str, list[str]]) -> str:
    """'all 15 xnli languages' or 'xnli: el (1), th (4)': per task, its languages with their differing values."""
    parts = []
    for task in dict.fromkeys(task for (task, _), _, _ in members):
        mine = [(lang, numbers) for (t, lang), numbers, _ in members if t == task]
        langs = [lang for lang, _ in mine]
        if not varying and set(langs) >= set(languages_of.get(task, [])) and len(langs) > 1:
            parts.append(f"all {len(langs)} {task} languages")
            continue
        shown = [f"{lang} ({', '.join(numbers[i] for i in varying)})" if varying else lang for lang, numbers in mine]
        parts.append(f"{task}: {', '.join(shown)}")
    return "; ".join(parts)


def row_notes(df: pd.DataFrame) -> list[str]:
    """Each distinct row note once, with where it applies: the configurations of a task that share one set of
    languages named together ('xnli eager fp32 static/dynamic, onnxruntime fp32 static: 15 languages')."""
    by_note: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    for r in df.itertuples():
        for note in r.notes if isinstance(r.notes, list) else []:
            where = by_note.setdefault(note, {}).setdefault((r.task, f"{r.backend} {r.dtype}", r.batching), [])
            if r.lang != ALL_LANGS:
                where.append(r.lang)
    return [f"{note} ({_row_places(where)})" for note, where in by_note.items()]


def _row_places(where: dict[tuple[str, str, str], list[str]]) -> str:
    # (task, languages) -> backend/dtype -> batchings: configurations with the same languages share one entry
    shared: dict[tuple[str, tuple[str, ...]], dict[str, list[str]]] = {}
    for (task, config, batching), langs in where.items():
        shared.setdefault((task, tuple(langs)), {}).setdefault(config, []).append(batching)
    places = []
    for (task, langs), configs in shared.items():
        names = ", ".join(f"{config} {'/'.join(batchings)}" for config, batchings in configs.items())
        count = ", ".join(langs) if len(langs) <= 5 else f"{len(langs)} languages"
        places.append(f"{task} {names}: {count}" if langs else f"{task} {names}")
    return "; ".join(places)
