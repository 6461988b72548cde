"""What a section of the run report (`benchsmith report`) holds, independent of how it is
drawn: tables, charts described as data, and collapsible text blocks.

Shared layers and recipes (`Recipe.report_sections`) build these; `benchsmith.report` turns
them into HTML and Plotly charts. Text is plain: the page escapes every string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Cell = Union[str, int, float, None]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    y: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """`bar` (grouped, or `stacked`) or `line` over the same `x` for every series; x values
    are labels, numbers, or ISO times (a time axis). `hline`: a labelled level (a budget)."""

    title: str
    kind: str
    x: tuple[Union[str, float], ...]
    series: tuple[Series, ...]
    stacked: bool = False
    x_title: str = ""
    y_title: str = ""
    hline: tuple[str, float] | None = None


@dataclass(frozen=True)
class Block:
    """A collapsible example: a one-line summary and its text (shown preformatted)."""

    summary: str
    body: str


@dataclass(frozen=True)
class Section:
    title: str
    text: str = ""
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = ()
    blocks: tuple[Block, ...] = field(default=())
