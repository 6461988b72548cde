"""Charts as Plotly figures: a `Chart` (recipes.report_section) to the figure JSON that
plotly.js draws, and the plotly.js bundle the `plotly` package ships (inlined once per page,
so the report needs no network)."""

from __future__ import annotations

import html
from typing import Any

from benchsmith.recipes.report_section import Chart

HEIGHT = 360


def figure(chart: Chart) -> dict[str, Any]:
    """The figure (data, layout) of one chart."""
    data: list[dict[str, Any]] = []
    for s in chart.series:
        trace: dict[str, Any] = {"name": _text(s.name), "x": [_text(v) for v in chart.x],
                                 "y": list(s.y)}
        if chart.kind == "line":
            trace.update(type="scatter", mode="lines+markers" if len(chart.x) < 30 else "lines")
        else:
            trace["type"] = "bar"
        data.append(trace)
    xaxis: dict[str, Any] = {"title": {"text": _text(chart.x_title)}, "automargin": True}
    if chart.kind == "bar" and all(isinstance(v, str) for v in chart.x):
        xaxis["type"] = "category"  # labels such as "1" or task ids stay labels
    layout: dict[str, Any] = {
        "title": {"text": _text(chart.title)}, "height": HEIGHT,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 60},
        "xaxis": xaxis, "yaxis": {"title": {"text": _text(chart.y_title)}, "rangemode": "tozero"},
        "legend": {"orientation": "h"}, "showlegend": len(chart.series) > 1,
    }
    if chart.kind == "bar":
        layout["barmode"] = "stack" if chart.stacked else "group"
        if all(isinstance(v, (int, float)) for v in chart.x):
            layout["bargap"] = 0.05  # a histogram
    if chart.hline is not None:
        label, level = chart.hline
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                             "y0": level, "y1": level, "line": {"color": "#c0392b", "dash": "dash"}}]
        layout["annotations"] = [{"xref": "paper", "x": 1, "xanchor": "right", "yref": "y",
                                  "y": level, "yanchor": "bottom", "showarrow": False,
                                  "text": _text(f"{label}: {level:g}"), "font": {"color": "#c0392b"}}]
        layout["yaxis"]["range"] = [0, level * 1.08 if level > 0 else 1]
        top = max((max(s.y) for s in chart.series if s.y), default=0.0)
        if top > level:
            layout["yaxis"]["range"] = [0, top * 1.08]
    return {"data": data, "layout": layout}


def _text(v: Any) -> Any:
    """Plotly reads its strings as a small subset of HTML: escaped, they show as written."""
    return html.escape(v, quote=False) if isinstance(v, str) else v


CONFIG = {"displaylogo": False, "responsive": True}


def plotly_js() -> str:
    """plotly.js (minified) as the installed `plotly` package ships it."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
