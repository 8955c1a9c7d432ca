"""What every chart module shares: matplotlib on the Agg backend, the Chart record, NoData and PNG encoding."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

TASK_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# One colour per backend/dtype series, in the order the run lists them.
SERIES_COLOURS = matplotlib.colormaps["tab10"].colors


@dataclass
class Chart:
    name: str
    title: str
    png: bytes


class NoData(Exception):
    """Raised by a chart function when the run's data cannot support the chart; the message says why."""


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def series_colour(index: int) -> str:
    return SERIES_COLOURS[index % len(SERIES_COLOURS)]


def config_label(backend: str, dtype: str) -> str:
    return f"{backend} {dtype}"
