"""Self-contained HTML pages: the drift report and `codesense monitor report` (the last N days at a glance).

One file, no external assets: plots are inline SVG (matplotlib's Agg/SVG backend, no display), styles inline, no
scripts — it opens from an artifact store, a mail attachment or a CI job page alike.
"""

from __future__ import annotations

import html
import io
import time
from pathlib import Path
from typing import Any, Sequence

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1f2328;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
th{background:#f6f8fa}.flag{color:#cf222e;font-weight:600}.ok{color:#1a7f37;font-weight:600}.muted{color:#656d76}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plot svg{max-width:520px;height:auto}
"""


def _figure(width: float = 5.2, height: float = 3.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _svg(fig, title: str) -> str:
    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and doctype: inline SVG in HTML
    return f'<figure class="plot" data-plot="{html.escape(title)}">{svg}<figcaption>{html.escape(title)}</figcaption></figure>'


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Raw(str):
    """Already-escaped HTML in a table cell."""


def _page(title: str, sections: list[tuple[str, str, str]]) -> str:
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f'<p class="muted">generated {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}</p>']
    for sid, heading, content in sections:
        parts.append(f'<section id="{sid}"><h2>{html.escape(heading)}</h2>{content}</section>')
    parts.append("</body></html>")
    return "".join(parts)


# --- drift ---------------------------------------------------------------------------------------------
def drift_plots(result: Any) -> list[str]:
    d = result.details
    plots = []
    proj = d.get("projection") or {}
    if proj.get("reference"):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        for name, color in (("reference", "#0969da"), ("recent", "#cf222e")):
            pts = proj[name]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.6, label=name, color=color)
        ax.set_title("query embeddings, first two principal axes")
        ax.legend()
        plots.append(_svg(fig, "Query embeddings (PCA)"))
    if d.get("null"):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        ax.hist(d["null"], bins=30, color="#8c959f")
        ax.axvline(d["mmd2"], color="#cf222e", label=f"observed MMD² (p={result.p_value:.3g})")
        ax.set_xlabel("MMD² under random relabelling")
        ax.legend()
        plots.append(_svg(fig, "MMD permutation test"))
    ts = d.get("top_scores") or {}
    if ts.get("reference") or ts.get("recent"):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        for name, color in (("reference", "#0969da"), ("recent", "#cf222e")):
            if ts.get(name):
                ax.hist(ts[name], bins=20, alpha=0.5, label=name, color=color, density=True)
        ax.set_xlabel("top retrieval score")
        ax.legend()
        plots.append(_svg(fig, "Top retrieval scores"))
    repos = d.get("repos") or {}
    if repos.get("reference") or repos.get("recent"):
        names = sorted(set(repos.get("reference", {})) | set(repos.get("recent", {})))
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        xs = range(len(names))
        ax.bar([i - 0.2 for i in xs], [repos.get("reference", {}).get(n, 0) for n in names], width=0.4, label="reference", color="#0969da")
        ax.bar([i + 0.2 for i in xs], [repos.get("recent", {}).get(n, 0) for n in names], width=0.4, label="recent", color="#cf222e")
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylabel("share of questions")
        ax.legend()
        plots.append(_svg(fig, "Repositories asked"))
    return plots


def _drift_section(result: Any) -> str:
    verdict = {"drift": '<span class="flag">DRIFT</span>', "ok": '<span class="ok">no drift</span>'}.get(result.status, "not enough questions")
    rows = [
        (name, c["value"], c["threshold"], _Raw('<span class="flag">flagged</span>' if c["flagged"] else '<span class="ok">ok</span>'), c["note"])
        for name, c in result.checks.items()
    ]
    plots = drift_plots(result)
    return (
        f"<p>Verdict: {verdict} — {result.counts.get('recent', 0)} recent vs {result.counts.get('reference', 0)} reference question(s).</p>"
        + _table(("signal", "value", "threshold", "status", "meaning"), rows)
        + (f'<div class="plots">{"".join(plots)}</div>' if plots else "")
    )


def render_drift_html(result: Any, windows: dict[str, float]) -> str:
    intro = (
        f"<p>Recent window: the last {windows['recent_s'] / 86400:.2f} day(s); reference: the {windows['reference_s'] / 86400:.2f} day(s) before. "
        "MMD compares the two distributions of query embeddings; its p-value comes from a permutation test.</p>"
    )
    return _page("codesense — query drift", [("drift", "Drift", intro + _drift_section(result))])


# --- the monitoring report ---------------------------------------------------------------------------
def _daily(records: Sequence[Any], days: int, now: float) -> list[tuple[str, list[Any]]]:
    start = now - days * 86400
    buckets: list[tuple[str, list[Any]]] = []
    for i in range(days):
        lo = start + i * 86400
        label = time.strftime("%m-%d", time.gmtime(lo))
        buckets.append((label, [r for r in records if lo <= r.timestamp < lo + 86400]))
    return buckets


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


def monitoring_sections(records: Sequence[Any], days: int, now: float, drift: dict | None, freshness: list[dict]) -> list[tuple[str, str, str]]:
    days_ = _daily(records, days, now)
    labels = [d for d, _ in days_]
    lat = [r.latency_s for r in records if r.latency_s is not None]
    # Latency
    fig = _figure(6.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(labels, [_percentile([r.latency_s for r in rs if r.latency_s is not None], 50) or 0 for _, rs in days_], marker="o", label="p50")
    ax.plot(labels, [_percentile([r.latency_s for r in rs if r.latency_s is not None], 95) or 0 for _, rs in days_], marker="o", label="p95")
    ax.set_ylabel("answer latency (s)")
    ax.legend()
    latency = (
        _table(("questions", "p50 (s)", "p95 (s)", "errors", "answers without a source"),
               [(len(records), _percentile(lat, 50), _percentile(lat, 95), sum(1 for r in records if r.error),
                 sum(1 for r in records if r.answer is not None and not r.sourced))])
        + f'<div class="plots">{_svg(fig, "Answer latency per day")}</div>'
    )
    # Feedback
    ups = [sum(1 for r in rs for f in r.feedback if f.get("rating") == 1) for _, rs in days_]
    downs = [sum(1 for r in rs for f in r.feedback if f.get("rating") == -1) for _, rs in days_]
    fig = _figure(6.4, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(labels, ups, color="#1a7f37", label="up")
    ax.bar(labels, downs, bottom=ups, color="#cf222e", label="down")
    ax.set_ylabel("ratings")
    ax.legend()
    worst = [r for r in records if any(f.get("rating") == -1 for f in r.feedback)][-10:]
    feedback = (
        _table(("thumbs up", "thumbs down", "share positive"), [(sum(ups), sum(downs), (sum(ups) / (sum(ups) + sum(downs))) if ups or downs and (sum(ups) + sum(downs)) else None)])
        + f'<div class="plots">{_svg(fig, "Feedback per day")}</div>'
        + ("<h3>Latest thumbs-down</h3>" + _table(("question", "comment", "trace"),
           [(r.question[:120], next((f.get("comment") for f in r.feedback if f.get("rating") == -1), None), r.trace_id) for r in worst]) if worst else "")
    )
    # Judge
    metrics = sorted({m for r in records for m in r.judge})
    judge_rows = [(m, sum(r.judge[m] for r in records if m in r.judge) / max(1, sum(1 for r in records if m in r.judge)),
                   sum(1 for r in records if m in r.judge)) for m in metrics]
    if metrics:
        fig = _figure(6.4, 3.2)
        ax = fig.add_subplot(1, 1, 1)
        for m in metrics:
            ys = [(sum(r.judge[m] for r in rs if m in r.judge) / n) if (n := sum(1 for r in rs if m in r.judge)) else float("nan") for _, rs in days_]
            ax.plot(labels, ys, marker="o", label=m)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("mean judge score")
        ax.legend()
        judge = _table(("metric", "mean", "judged answers"), judge_rows) + f'<div class="plots">{_svg(fig, "Judge scores per day")}</div>'
    else:
        judge = "<p>No judged answers in this period (monitoring.judge_sample_rate, `codesense monitor judge`).</p>"
    # Drift
    if drift:
        drift_html = _table(("last run", "verdict", "MMD p-value", "signals"),
                            [(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(drift.get("finished_at") or 0)), "DRIFT" if drift.get("drift") else "ok",
                              drift.get("p_value"), ", ".join(f"{k}={v:.3g}" for k, v in sorted((drift.get("scores") or {}).items())))])
    else:
        drift_html = "<p>No drift run recorded yet: schedule `codesense monitor drift`.</p>"
    # Freshness
    fresh = _table(("repository", "indexed ref", "indexed", "age (h)", "behind the last converge"),
                   [(f["repo"], f.get("ref"), f.get("indexed_at"), f.get("age_h"), f.get("behind")) for f in freshness]) if freshness else "<p>No index yet.</p>"
    return [("latency", "Latency", latency), ("feedback", "Feedback", feedback), ("judge", "Judge scores", judge),
            ("drift", "Drift", drift_html), ("freshness", "Index freshness", fresh)]


def _freshness(cfg: Any) -> list[dict]:
    """Per repository from the live index (read-only; needs the store, so best effort when Serve holds embedded Qdrant)."""
    from codesense_ray.monitoring.metrics import commits_behind
    from codesense_ray.monitoring.state import converged_histories, current_refs

    try:
        from codesense_ray.app.compose import open_store

        store = open_store(cfg)
        try:
            live = store.live_collection()
            metas = store.repo_metas(live) if live else {}
        finally:
            store.client.close()
    except Exception as exc:  # noqa: BLE001 - e.g. embedded Qdrant locked by a running server
        return [{"repo": "(unavailable)", "ref": None, "indexed_at": None, "age_h": None, "behind": str(exc)[:80]}]
    refs, histories = current_refs(cfg), converged_histories(cfg)
    now = time.time()
    out = []
    for repo, meta in sorted(metas.items()):
        at = meta.get("indexed_at")
        count = commits_behind(meta.get("ref"), histories.get(repo, []))
        if count is not None:
            behind = f"{count} commit(s)" if count else "no"
        else:
            behind = None if not refs.get(repo) else ("no" if str(refs[repo]) == str(meta.get("ref")) else "yes")
        out.append({"repo": repo, "ref": meta.get("ref"), "indexed_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) if at else None,
                    "age_h": round((now - at) / 3600, 1) if at else None, "behind": behind})
    return out


def write_monitoring_report(cfg: Any, days: int | None = None, output: str | None = None, now: float | None = None) -> dict[str, Any]:
    from codesense_ray.monitoring.publish import monitoring_tracking_uri
    from codesense_ray.config.monitoring import monitoring_config
    from codesense_ray.monitoring.state import latest_drift_metrics
    from codesense_ray.monitoring.traces import read_records

    mcfg = monitoring_config(cfg)
    days = days or mcfg.report_days
    now = time.time() if now is None else now
    records = read_records(cfg, since=now - days * 86400, until=now)
    drift = latest_drift_metrics(monitoring_tracking_uri(cfg), mcfg.experiment)
    sections = monitoring_sections(records, days, now, drift, _freshness(cfg))
    page = _page(f"codesense — monitoring, last {days} day(s)", sections)
    path = Path(output) if output else (cfg.resolve_path(mcfg.output_dir) if mcfg.output_dir else cfg.home / "monitoring") / time.strftime(
        "report-%Y%m%d-%H%M%S.html", time.gmtime(now))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return {"html": str(path), "days": days, "questions": len(records), "sections": [s for s, _, _ in sections]}
