"""Progress bars only where someone watches: on a terminal, and not with -q (in CI logs a bar is noise)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

QUIET = False   # set by the CLI's -q


def bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    # disable=None: tqdm turns the bar off when its stream is not a terminal.
    return tqdm(iterable, disable=True if QUIET else None, **kwargs)
