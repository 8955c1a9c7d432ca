"""Language metadata for the XTREME-R languages, used to group report rows.

One record per language: the ISO 639-1 code as XTREME/XTREME-R spell it (``he`` for Hebrew, ``jv`` for Javanese,
``tl`` for Tagalog), English name, family, genus, script and resource class.

Sources:
- Language set: XTREME-R (Ruder et al. 2021, "XTREME-R: Towards More Challenging and Nuanced Multilingual
  Evaluation"), 50 languages: the 40 of XTREME (Hu et al. 2020) plus az, gu, lt, pa, pl, ro, uk (PAN-X, UD-POS,
  Tatoeba, Mewsli-X), ht, qu (XCOPA) and wo (UD-POS).
- Resource class: Joshi et al. 2020, "The State and Fate of Linguistic Diversity and Inclusion in the NLP World"
  (ACL 2020), classes 0 (left-behind) to 5 (winners), from their list
  https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt (one "name,class" line per language). The list
  is keyed by language name; the mapping to codes was done by hand and all 50 classes were checked against a copy
  of the list (github.com/MaLA-LM/LangResourceAtlas, Joshi-et-al/Joshi-et-al-6-classes.json: lang2tax's names and
  classes, grouped by class). Names used there: Mandarin for zh, Eastern Punjabi for pa. The list has two entries
  for ht: "Haitian" (class 2) and "Haitian Creole" (class 0); we take "Haitian", the ISO 639-3 reference name of
  `hat`, as the list does for every other language.
- Family: top-level family as in Glottolog, with two conventional exceptions also used by XTREME's language table:
  Atlantic-Congo languages are labelled by the wider Niger-Congo grouping, and Haitian is labelled "Creole"
  (Glottolog and WALS do not put creoles inside their lexifier's family).
- Genus: WALS (Dryer & Haspelmath, eds., The World Atlas of Language Structures Online) genus names.
- Script: ISO 15924 script name (``script``) and code (``script_code``) of the script the XTREME data is written in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    family: str
    genus: str
    script: str
    resource_class: int
    in_xtreme_r: bool = True
    script_code: str = ""


# ISO 15924 codes -> names. Japanese is "Jpan" (Han + Hiragana + Katakana); Chinese data is simplified Han.
_SCRIPTS = {
    "Latn": "Latin", "Arab": "Arabic", "Cyrl": "Cyrillic", "Deva": "Devanagari", "Beng": "Bengali",
    "Gujr": "Gujarati", "Guru": "Gurmukhi", "Taml": "Tamil", "Telu": "Telugu", "Mlym": "Malayalam",
    "Thai": "Thai", "Mymr": "Myanmar", "Geor": "Georgian", "Grek": "Greek", "Hebr": "Hebrew",
    "Hang": "Hangul", "Hans": "Han (Simplified)", "Jpan": "Japanese",
}

# code, name, family, genus (WALS), ISO 15924 script code, Joshi class
_XTREME_R_TABLE: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("af", "Afrikaans", "Indo-European", "Germanic", "Latn", 3),
    ("ar", "Arabic", "Afro-Asiatic", "Semitic", "Arab", 5),
    ("az", "Azerbaijani", "Turkic", "Turkic", "Latn", 1),
    ("bg", "Bulgarian", "Indo-European", "Slavic", "Cyrl", 3),
    ("bn", "Bengali", "Indo-European", "Indic", "Beng", 3),
    ("de", "German", "Indo-European", "Germanic", "Latn", 5),
    ("el", "Greek", "Indo-European", "Greek", "Grek", 3),
    ("en", "English", "Indo-European", "Germanic", "Latn", 5),
    ("es", "Spanish", "Indo-European", "Romance", "Latn", 5),
    ("et", "Estonian", "Uralic", "Finnic", "Latn", 3),
    ("eu", "Basque", "Basque", "Basque", "Latn", 4),
    ("fa", "Persian", "Indo-European", "Iranian", "Arab", 4),
    ("fi", "Finnish", "Uralic", "Finnic", "Latn", 4),
    ("fr", "French", "Indo-European", "Romance", "Latn", 5),
    ("gu", "Gujarati", "Indo-European", "Indic", "Gujr", 1),
    ("he", "Hebrew", "Afro-Asiatic", "Semitic", "Hebr", 3),
    ("hi", "Hindi", "Indo-European", "Indic", "Deva", 4),
    ("ht", "Haitian Creole", "Creole", "French-based creole", "Latn", 2),  # lang2tax "Haitian"; see above
    ("hu", "Hungarian", "Uralic", "Ugric", "Latn", 4),
    ("id", "Indonesian", "Austronesian", "Malayo-Sumbawan", "Latn", 3),
    ("it", "Italian", "Indo-European", "Romance", "Latn", 4),
    ("ja", "Japanese", "Japonic", "Japanese", "Jpan", 5),
    ("jv", "Javanese", "Austronesian", "Javanese", "Latn", 1),
    ("ka", "Georgian", "Kartvelian", "Kartvelian", "Geor", 3),
    ("kk", "Kazakh", "Turkic", "Turkic", "Cyrl", 3),
    ("ko", "Korean", "Koreanic", "Korean", "Hang", 4),
    ("lt", "Lithuanian", "Indo-European", "Baltic", "Latn", 3),
    ("ml", "Malayalam", "Dravidian", "Southern Dravidian", "Mlym", 1),
    ("mr", "Marathi", "Indo-European", "Indic", "Deva", 2),
    ("ms", "Malay", "Austronesian", "Malayo-Sumbawan", "Latn", 3),
    ("my", "Burmese", "Sino-Tibetan", "Burmese-Lolo", "Mymr", 1),
    ("nl", "Dutch", "Indo-European", "Germanic", "Latn", 4),
    ("pa", "Punjabi", "Indo-European", "Indic", "Guru", 2),
    ("pl", "Polish", "Indo-European", "Slavic", "Latn", 4),
    ("pt", "Portuguese", "Indo-European", "Romance", "Latn", 4),
    ("qu", "Quechua", "Quechuan", "Quechuan", "Latn", 1),
    ("ro", "Romanian", "Indo-European", "Romance", "Latn", 3),
    ("ru", "Russian", "Indo-European", "Slavic", "Cyrl", 4),
    ("sw", "Swahili", "Niger-Congo", "Bantoid", "Latn", 2),
    ("ta", "Tamil", "Dravidian", "Southern Dravidian", "Taml", 3),
    ("te", "Telugu", "Dravidian", "South-Central Dravidian", "Telu", 1),
    ("th", "Thai", "Tai-Kadai", "Kam-Tai", "Thai", 3),
    ("tl", "Tagalog", "Austronesian", "Greater Central Philippine", "Latn", 3),
    ("tr", "Turkish", "Turkic", "Turkic", "Latn", 4),
    ("uk", "Ukrainian", "Indo-European", "Slavic", "Cyrl", 3),
    ("ur", "Urdu", "Indo-European", "Indic", "Arab", 3),
    ("vi", "Vietnamese", "Austroasiatic", "Viet-Muong", "Latn", 4),
    ("wo", "Wolof", "Niger-Congo", "Northern Atlantic", "Latn", 2),
    ("yo", "Yoruba", "Niger-Congo", "Defoid", "Latn", 2),
    ("zh", "Chinese", "Sino-Tibetan", "Chinese", "Hans", 5),
)

# Languages we hold data for outside XTREME-R. Every language in ../shared/data/xtreme is currently one of the 50,
# so this is empty; add rows here (same layout) when a dataset brings a new language, so reports keep metadata.
_EXTRA_TABLE: tuple[tuple[str, str, str, str, str, int], ...] = ()

GROUP_KEYS = ("family", "genus", "script", "resource_class")
UNKNOWN = "unknown"


def _build(table: tuple[tuple[str, str, str, str, str, int], ...], in_xtreme_r: bool) -> dict[str, Language]:
    return {
        code: Language(code, name, family, genus, _SCRIPTS[script], cls, in_xtreme_r, script)
        for code, name, family, genus, script, cls in table
    }


LANGUAGES: dict[str, Language] = {**_build(_XTREME_R_TABLE, True), **_build(_EXTRA_TABLE, False)}
XTREME_R_LANGUAGES: tuple[str, ...] = tuple(row[0] for row in _XTREME_R_TABLE)


def get_language(code: str) -> Language | None:
    """Metadata for an ISO 639-1 code (case-insensitive; a region suffix like ``zh-CN`` is ignored)."""
    key = code.strip().lower().replace("_", "-").split("-")[0]
    return LANGUAGES.get(key)


def metadata_frame() -> pd.DataFrame:
    """One row per known language: lang, name, family, genus, script, resource_class, script_code, in_xtreme_r."""
    rows = [asdict(lang) for lang in LANGUAGES.values()]
    frame = pd.DataFrame(rows).rename(columns={"code": "lang"})
    columns = ["lang", "name", "family", "genus", "script", "resource_class", "script_code", "in_xtreme_r"]
    return frame[columns].sort_values("lang", ignore_index=True)


def group_of(code: str, by: str) -> str:
    """The group a language falls in for a report grouping; "unknown" for a language we have no record of."""
    if by not in GROUP_KEYS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_KEYS)}")
    lang = get_language(code)
    if lang is None:
        return UNKNOWN
    return str(getattr(lang, by))
