"""Plots of an evaluation run (PNG, matplotlib's Agg renderer: no display, no global pyplot state).

- `hit_at_k.png`: the hit@k curve, share of questions with a gold file in the top k, for k = 1..depth.
  Like a latency CDF: the higher and earlier it rises, the better.
- `rank_histogram.png`: where the first gold file landed (rank 1..depth, and "miss").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from codesense_ray.evaluation.runner import EvalReport

HIT_CURVE_FILE = "hit_at_k.png"
RANK_HISTOGRAM_FILE = "rank_histogram.png"


def _figure() -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def hit_curve_figure(curve: list[float], marked_ks: list[int], title: str) -> "Figure":
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    ks = list(range(1, len(curve) + 1))
    ax.plot(ks, curve, marker="o", markersize=3)
    for k in marked_ks:
        if k <= len(curve):
            ax.annotate(f"{curve[k - 1]:.2f}", (k, curve[k - 1]), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("k (files)")
    ax.set_ylabel("file_hit@k")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0.5, len(curve) + 0.5)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def rank_histogram_figure(first_ranks: list[int | None], depth: int, title: str) -> "Figure":
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    labels = [str(r) for r in range(1, depth + 1)] + ["miss"]
    counts = [sum(1 for x in first_ranks if x == r) for r in range(1, depth + 1)]
    counts.append(sum(1 for x in first_ranks if x is None or x > depth))
    ax.bar(range(len(labels)), counts, color=["#4c72b0"] * depth + ["#c44e52"])
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("rank of the first gold file")
    ax.set_ylabel("questions")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_plots(report: "EvalReport", out_dir: Path) -> dict[str, Path]:
    """Render both plots into `out_dir`; returns their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{report.dataset.name} ({report.mode}, {len(report.dataset)} questions)"
    paths = {"hit_curve": out_dir / HIT_CURVE_FILE, "rank_histogram": out_dir / RANK_HISTOGRAM_FILE}
    hit_curve_figure(report.hit_curve, report.ks, title).savefig(paths["hit_curve"])
    rank_histogram_figure(report.first_ranks, report.depth, title).savefig(paths["rank_histogram"])
    return paths
