"""The encoded inputs of one task, every selected language tokenized (or synthesised) once, before any timing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from xlt_bench.data.tasks import TaskSpec, resolve_langs

log = logging.getLogger("xlt_bench")


class ModelFacts(Protocol):
    """The four facts about the model that encoding needs (a models.ModelBundle has them)."""
    vocab_size: int          # synthetic ids are drawn below it; real ids are checked against it
    pad_id: int
    max_positions: int       # caps --max-length
    takes_token_types: bool  # whether segment ids are produced


@dataclass
class Workload:
    task: TaskSpec
    sets: list[Any]                               # EncodedSet per language
    max_length: int                               # the run's effective --max-length for this task and model
    skipped: list[dict[str, str]] = field(default_factory=list)


def load_workload(cfg, spec: TaskSpec, bundle: ModelFacts, examples: dict[str, list[dict]] | None = None,
                  tokenizer: Any = None) -> Workload:
    """Tokenize (or synthesise) every language of a task. `examples` (lang -> examples) and `tokenizer` are what the
    run's preflight already read, so data is not read twice."""
    max_length = min(spec.max_length or cfg.max_length, bundle.max_positions)
    workload = Workload(task=spec, sets=[], max_length=max_length)
    for lang in resolve_langs(spec, cfg.langs):
        if cfg.shape is not None:
            from xlt_bench.data.synthetic import fixed_shape_encoded
            workload.sets.append(fixed_shape_encoded(spec, lang, cfg.shape, vocab_size=bundle.vocab_size,
                                                     pad_id=bundle.pad_id, seed=cfg.seed,
                                                     takes_token_types=bundle.takes_token_types))
            continue
        if cfg.data == "synthetic":
            from xlt_bench.data.synthetic import available_profiles, synthetic_encoded
            if (spec.name, lang) not in available_profiles(cfg.profiles):
                workload.skipped.append({"task": spec.name, "lang": lang, "reason": "no shipped length profile"})
                continue
            workload.sets.append(synthetic_encoded(spec, lang, cfg.limit, vocab_size=bundle.vocab_size,
                                                   pad_id=bundle.pad_id, max_length=max_length, seed=cfg.seed,
                                                   takes_token_types=bundle.takes_token_types,
                                                   profile_path=cfg.profiles, tokenizer=cfg.tokenizer))
            continue
        from xlt_bench.data.dataset import load_examples, source_caveats, why_no_examples
        from xlt_bench.data.tokenization import encode, load_tokenizer
        lang_examples = (examples or {}).get(lang)
        if lang_examples is None:
            lang_examples = load_examples(cfg.data, spec, lang, cfg.limit)
        if not lang_examples:
            log.warning("%s/%s: no examples, language skipped", spec.name, lang)
            reason = why_no_examples(cfg.data, spec, lang)
            workload.skipped.append({"task": spec.name, "lang": lang, "reason": reason})
            continue
        tokenizer = tokenizer or load_tokenizer(cfg.tokenizer, cfg.model)
        encoded = encode(spec, lang, lang_examples, tokenizer, max_length=max_length, vocab_size=bundle.vocab_size,
                         takes_token_types=bundle.takes_token_types)
        encoded.caveats.extend(source_caveats(cfg.data, spec, lang))
        workload.sets.append(encoded)
    return workload
