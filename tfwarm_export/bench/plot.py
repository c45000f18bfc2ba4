"""The bar chart of ``tfwarm bench --plot``: cold first, warmed first and steady, log scale.

matplotlib is an optional extra (``tfwarm_export[plot]``), imported only here.
"""
from __future__ import annotations

import os
from typing import Sequence

from tfwarm_export.bench.statistics import BenchReport, BenchRow


def require_matplotlib():
    """matplotlib is an optional extra; say how to get it instead of a bare ImportError."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from tfwarm_export.errors import TfwarmError

        raise TfwarmError("--plot needs matplotlib, an optional extra: pip install 'tfwarm_export[plot]' "
                          "(or pip install matplotlib).") from None
    return plt


def plot(reports: BenchReport | Sequence[BenchReport], path: str | os.PathLike,
         titles: Sequence[str] | None = None) -> str:
    """Bar chart, log scale: cold first / warmed first / steady per row, one panel per report."""
    plt = require_matplotlib()
    if isinstance(reports, BenchReport):
        reports = [reports]
    titles = list(titles) if titles else [r.export_dir for r in reports]
    n = len(reports)
    widths = [max(2, len(r.rows)) for r in reports]
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 1.1 * sum(widths) + 1.5 * n), 5.2), squeeze=False,
                             sharey=True, gridspec_kw={"width_ratios": widths})
    series = (("cold first", "cold_first_ms", "#d62728"), ("warmed first", "warmed_first_ms", "#2ca02c"),
              ("steady (median)", "steady_ms", "#1f77b4"))
    for ax, report, title in zip(axes[0], reports, titles):
        xs = list(range(len(report.rows)))
        w = 0.27
        for k, (name, attr, color) in enumerate(series):
            vals = [getattr(r, attr) or float("nan") for r in report.rows]
            bars = ax.bar([x + (k - 1) * w for x in xs], vals, w, label=name, color=color)
            for bar, v in zip(bars, vals):
                if v == v:  # not NaN
                    ax.annotate(f"{v:.3g}", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                                va="bottom", fontsize=6, xytext=(0, 1), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        many = len({r.signature for r in report.rows}) > 1
        ax.set_xticklabels([_short_label(r, many) for r in report.rows], rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="both", alpha=0.3)
    from matplotlib.ticker import FuncFormatter

    axes[0][0].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0][0].set_ylabel("latency (ms, log scale)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = os.fspath(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short_label(row: BenchRow, with_signature: bool = True) -> str:
    dims = [v for _, v in sorted(row.shapes.items())]
    extra = ""
    if dims and len(dims[0]) > 1:
        extra = "x" + "x".join(str(d) for d in dims[0][1:])
    head = f"{row.signature[:16]} " if with_signature else ""
    return f"{head}b{row.batch_size}{extra}"

