"""Language metadata: the XTREME-R set, completeness, hand-checked facts and coverage of the shared data."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import pytest

from xlt_bench.core.languages import (
    LANGUAGES,
    XTREME_R_LANGUAGES,
    Language,
    get_language,
    group_of,
    metadata_frame,
)


def _shared_dir() -> Path:
    env = os.environ.get("XLT_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def test_exactly_fifty_xtreme_r_languages():
    assert len(XTREME_R_LANGUAGES) == 50
    assert len(set(XTREME_R_LANGUAGES)) == 50
    assert all(LANGUAGES[code].in_xtreme_r for code in XTREME_R_LANGUAGES)
    # The ten XTREME-R added to XTREME's forty.
    assert {"az", "gu", "ht", "lt", "pa", "pl", "qu", "ro", "uk", "wo"} <= set(XTREME_R_LANGUAGES)


def test_same_fifty_as_the_task_registry():
    from xlt_bench.data.tasks import all_languages

    assert sorted(XTREME_R_LANGUAGES) == all_languages()


def test_every_field_filled():
    for lang in LANGUAGES.values():
        for field in fields(Language):
            value = getattr(lang, field.name)
            assert value is not None and value != "", (lang.code, field.name)
        assert lang.resource_class in range(6), lang.code
        assert len(lang.code) == 2 and lang.code.islower(), lang.code


@pytest.mark.parametrize(
    ("code", "attr", "expected"),
    [
        ("en", "resource_class", 5),
        ("zh", "resource_class", 5),
        ("hi", "resource_class", 4),
        ("sw", "resource_class", 2),
        ("sw", "family", "Niger-Congo"),
        ("yo", "family", "Niger-Congo"),
        ("fi", "family", "Uralic"),
        ("hu", "family", "Uralic"),
        ("eu", "family", "Basque"),
        ("ta", "family", "Dravidian"),
        ("tr", "family", "Turkic"),
        ("ka", "family", "Kartvelian"),
        ("he", "family", "Afro-Asiatic"),
        ("es", "genus", "Romance"),
        ("ru", "genus", "Slavic"),
        ("th", "script", "Thai"),
        ("ja", "script", "Japanese"),
        ("ko", "script", "Hangul"),
        ("ru", "script", "Cyrillic"),
        ("ur", "script", "Arabic"),
        ("hi", "script", "Devanagari"),
        ("pa", "script", "Gurmukhi"),
        ("my", "script", "Myanmar"),
        ("el", "script_code", "Grek"),
    ],
)
def test_spot_checks(code, attr, expected):
    assert getattr(LANGUAGES[code], attr) == expected


def test_get_language_normalises_and_misses():
    assert get_language("EN").name == "English"
    assert get_language("zh-CN").code == "zh"
    assert get_language("pt_BR").code == "pt"
    assert get_language("xx") is None


def test_group_of():
    assert group_of("sw", "family") == "Niger-Congo"
    assert group_of("en", "resource_class") == "5"
    assert group_of("te", "genus") == "South-Central Dravidian"
    assert group_of("xx", "script") == "unknown"
    with pytest.raises(ValueError, match="cannot group by"):
        group_of("en", "continent")


def test_metadata_frame_shape():
    frame = metadata_frame()
    assert list(frame.columns[:6]) == ["lang", "name", "family", "genus", "script", "resource_class"]
    assert len(frame) == len(LANGUAGES)
    assert frame["lang"].is_unique
    assert not frame.isna().any().any()
    # Grouping works as reports will use it: the seven class-5 languages.
    by_class = frame.groupby("resource_class")["lang"].apply(set)
    assert by_class[5] == {"ar", "de", "en", "es", "fr", "ja", "zh"}


def test_every_language_in_shared_data_has_metadata():
    data = _shared_dir() / "data" / "xtreme"
    if not data.is_dir():
        pytest.skip(f"shared data not found at {data}")
    langs = {path.stem for path in data.glob("*/*.jsonl")}
    assert langs, "no jsonl files found"
    missing = sorted(code for code in langs if get_language(code) is None)
    assert missing == []


# Checked by hand against Joshi et al. 2020's lang2tax list (names as the list spells them): the three classes the
# issue doubted (gu, ml, ht), and neighbours that are easy to mistype.
@pytest.mark.parametrize(("code", "lang2tax_name", "cls"), [
    ("gu", "Gujarati", 1), ("ml", "Malayalam", 1), ("ht", "Haitian", 2), ("pa", "Eastern Punjabi", 2),
    ("te", "Telugu", 1), ("my", "Burmese", 1), ("wo", "Wolof", 2), ("eu", "Basque", 4), ("zh", "Mandarin", 5),
])
def test_resource_classes_match_lang2tax(code, lang2tax_name, cls):
    assert LANGUAGES[code].resource_class == cls, lang2tax_name


def test_no_class_left_unchecked():
    import xlt_bench.core.languages as module
    assert "unsure" not in Path(module.__file__).read_text(encoding="utf-8")
