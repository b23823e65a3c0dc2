"""Query drift: are today's questions still the questions the index and the model were built and evaluated for?

Configuration drift for data: `terraform plan` compares the live state with the declared one; this compares the
recent window of user questions with a reference window before it. Signals and why these tests:

- **Embedding MMD with a permutation p-value** (the verdict). Maximum Mean Discrepancy with an RBF kernel compares
  the two *whole distributions* of query embeddings — not one feature at a time — and the permutation test gives
  an exact, assumption-free p-value: shuffle the window labels many times and count how often a random split
  looks at least as different as the real one. A random split of one set is exchangeable by construction, so the
  false-alarm rate is exactly `max_p_value`. (Evidently's embedding drift offers the same family of methods; it
  does not import with the pandas 3 this project installs, and MMD is 30 lines of numpy.)
- **Domain-classifier AUC** (the effect size). A logistic regression tries to tell recent from reference
  questions, cross-validated: AUC 0.5 means indistinguishable, 1.0 means a new population. With many queries
  MMD flags even small shifts; the AUC says how big the shift is, in a number a person can read.
- **Top retrieval score** (queries vs the corpus): the best hit's score is how close the nearest indexed code is.
  A KS test on the two windows' top scores catches questions drifting away from what the index holds.
- **Repositories asked** (total-variation distance between the repo mixes) and the **no-answer rate** (share of
  answers without a verified source).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from codesense_ray.config.monitoring import DriftConfig

ALL_REPOS = "(all)"


# --- statistics (pure numpy) -------------------------------------------------------------------------
def _sq_dists(z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", z, z)
    d = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    return np.maximum(d, 0.0)


def mmd_permutation_test(x: np.ndarray, y: np.ndarray, permutations: int = 500, seed: int = 0) -> dict[str, Any]:
    """RBF-kernel MMD² between samples `x` (n×d) and `y` (m×d) with a permutation p-value.

    Bandwidth: the median pairwise distance of the pooled sample (the usual heuristic). The statistic is the
    biased V-statistic `wᵀKw` with `w = 1/n` on x and `-1/m` on y, so all permutations are one matrix product.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    z = np.vstack([x, y])
    d2 = _sq_dists(z)
    off = d2[~np.eye(len(z), dtype=bool)]
    med = float(np.median(off)) if off.size else 1.0
    gamma = 1.0 / (2.0 * med) if med > 0 else 1.0
    k = np.exp(-gamma * d2)

    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, dtype=bool), np.zeros(m, dtype=bool)]
    w = np.empty((n + m, permutations + 1))
    w[:, 0] = np.where(labels, 1.0 / n, -1.0 / m)
    for j in range(1, permutations + 1):
        perm = rng.permutation(labels)
        w[:, j] = np.where(perm, 1.0 / n, -1.0 / m)
    stats = np.einsum("ij,ij->j", w, k @ w)
    observed, null = float(stats[0]), stats[1:]
    p_value = (1.0 + float(np.sum(null >= observed - 1e-12))) / (permutations + 1.0)
    return {"mmd2": observed, "p_value": p_value, "bandwidth": math.sqrt(med) if med > 0 else 1.0, "null": null.tolist()}


def classifier_auc(x: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated ROC AUC of a logistic regression telling `y` (recent) from `x` (reference)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    z = np.vstack([x, y])
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    folds = max(2, min(folds, len(x), len(y)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced")
    proba = cross_val_predict(clf, z, labels, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, proba))


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    """Two-sample Kolmogorov–Smirnov statistic and p-value (None when either side is empty)."""
    if not len(a) or not len(b):
        return None, None
    from scipy.stats import ks_2samp

    res = ks_2samp(np.asarray(a, float), np.asarray(b, float))
    return float(res.statistic), float(res.pvalue)


def repo_mix_p_value(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Chi-square test of independence between window and repository (None when there is a single repository)."""
    names = sorted(set(a) | set(b))
    if len(names) < 2 or not a or not b:
        return None
    from scipy.stats import chi2_contingency

    ca, cb = Counter(a), Counter(b)
    return float(chi2_contingency([[ca.get(n, 0) for n in names], [cb.get(n, 0) for n in names]])[1])


def proportion_p_value(a: Sequence[bool], b: Sequence[bool]) -> float | None:
    """Two-sided two-proportion z-test (None when either side is empty or both are constant and equal)."""
    if not a or not b:
        return None
    from scipy.stats import norm

    p1, p2 = float(np.mean(a)), float(np.mean(b))
    pooled = (sum(a) + sum(b)) / (len(a) + len(b))
    se = math.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * norm.sf(abs(p1 - p2) / se))


def shares(values: Sequence[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in sorted(counts.items())}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


# --- the drift check --------------------------------------------------------------------------------------
@dataclass
class Window:
    """The features of one window of questions that drift compares."""

    questions: list[str]
    top_scores: list[float] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    sourced: list[bool] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: Sequence[Any]) -> "Window":
        repos = [r for rec in records for r in (rec.repos or [ALL_REPOS])]
        return cls(
            questions=[r.question for r in records],
            top_scores=[r.top_score for r in records if r.top_score is not None],
            repos=repos,
            sourced=[bool(r.sourced) for r in records if r.answer is not None],
        )

    def subsample(self, n: int, rng: np.random.Generator) -> "Window":
        if len(self.questions) <= n:
            return self
        idx = np.sort(rng.choice(len(self.questions), size=n, replace=False))
        return Window([self.questions[i] for i in idx], self.top_scores, self.repos, self.sourced)


@dataclass
class DriftResult:
    status: str  # drift | ok | insufficient_data
    drift: bool
    counts: dict[str, int]
    checks: dict[str, dict[str, Any]]
    scores: dict[str, float | None]
    p_value: float | None
    details: dict[str, Any]
    finished_at: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["details"] = {k: v for k, v in self.details.items() if k not in ("null", "projection")}
        return d


def _check(value: float | None, threshold: float, flagged: bool, note: str) -> dict[str, Any]:
    return {"value": None if value is None else round(value, 6), "threshold": threshold, "flagged": bool(flagged), "note": note}


def detect_drift(reference: Window, recent: Window, embed: Callable[[list[str]], np.ndarray], cfg: DriftConfig) -> DriftResult:
    """Compare two windows; `embed(texts) -> (n, d)` embeds questions (the index's query embedder)."""
    counts = {"reference": len(reference.questions), "recent": len(recent.questions)}
    if min(counts.values()) < cfg.min_queries:
        checks = {"embedding_mmd": _check(None, cfg.max_p_value, False, f"fewer than {cfg.min_queries} questions in a window")}
        return DriftResult("insufficient_data", False, counts, checks, {}, None, {}, time.time())
    rng = np.random.default_rng(cfg.seed)
    reference, recent = reference.subsample(cfg.max_queries, rng), recent.subsample(cfg.max_queries, rng)
    x = np.asarray(embed(reference.questions), dtype=np.float64)
    y = np.asarray(embed(recent.questions), dtype=np.float64)
    mmd = mmd_permutation_test(x, y, cfg.permutations, cfg.seed)
    auc = classifier_auc(x, y, cfg.seed)
    ks, ks_p = ks_statistic(reference.top_scores, recent.top_scores)
    ref_repos, rec_repos = shares(reference.repos), shares(recent.repos)
    tv = total_variation(ref_repos, rec_repos) if reference.repos and recent.repos else None
    na_ref = 1 - float(np.mean(reference.sourced)) if reference.sourced else None
    na_rec = 1 - float(np.mean(recent.sourced)) if recent.sourced else None
    na_delta = None if na_ref is None or na_rec is None else na_rec - na_ref
    # Retrieval-side signals flag only a shift that is both large (threshold) and significant (p <= max_p_value):
    # on small windows a large-looking difference is often noise.
    alpha = cfg.max_p_value
    repo_p = repo_mix_p_value(reference.repos, recent.repos)
    na_p = proportion_p_value([not s for s in reference.sourced], [not s for s in recent.sourced])
    checks = {
        "embedding_mmd": _check(mmd["p_value"], cfg.max_p_value, mmd["p_value"] <= cfg.max_p_value, "permutation p-value of MMD² (flag at or below)"),
        "classifier_auc": _check(auc, cfg.max_classifier_auc, auc > cfg.max_classifier_auc, "recent vs reference separability (0.5: none)"),
        "top_score_ks": _check(
            ks, cfg.max_top_score_shift, ks is not None and ks > cfg.max_top_score_shift and ks_p <= alpha, "KS statistic of top retrieval scores (and KS p-value)"
        ),
        "repo_tv": _check(
            tv, cfg.max_repo_shift, tv is not None and tv > cfg.max_repo_shift and (repo_p is not None and repo_p <= alpha),
            "total-variation distance of repositories asked (and chi-square p-value)",
        ),
        "no_answer_delta": _check(
            na_delta, cfg.max_no_answer_increase, na_delta is not None and na_delta > cfg.max_no_answer_increase and (na_p is not None and na_p <= alpha),
            "rise of the no-source answer share (and two-proportion p-value)",
        ),
    }
    drift = any(c["flagged"] for c in checks.values())
    scores = {"embedding_mmd": mmd["mmd2"], "classifier_auc": auc, "top_score_ks": ks, "repo_tv": tv, "no_answer_delta": na_delta}
    details = {
        "mmd2": mmd["mmd2"], "bandwidth": mmd["bandwidth"], "null": mmd["null"], "top_score_ks_p_value": ks_p, "repo_p_value": repo_p, "no_answer_p_value": na_p,
        "repos": {"reference": ref_repos, "recent": rec_repos}, "no_answer_rate": {"reference": na_ref, "recent": na_rec},
        "top_scores": {"reference": reference.top_scores, "recent": recent.top_scores},
        "projection": _projection(x, y),
    }
    return DriftResult("drift" if drift else "ok", drift, counts, checks, scores, mmd["p_value"], details, time.time())


def _projection(x: np.ndarray, y: np.ndarray) -> dict[str, list]:
    """Both windows on the first two principal axes of the pooled embeddings (for the report's scatter plot)."""
    z = np.vstack([x, y])
    z = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    p = z @ vt[:2].T
    return {"reference": p[: len(x)].tolist(), "recent": p[len(x):].tolist()}


# --- the job --------------------------------------------------------------------------------------------
def run_drift_job(cfg: Any, window_s: float | None = None, reference_s: float | None = None, output: str | None = None,
                  log_mlflow: bool = True, now: float | None = None, embed: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """`codesense monitor drift`: read both windows from the traces, test, write JSON + HTML, MLflow run, gauges."""
    import json

    from codesense_ray.monitoring.metrics import drift_gauge_values
    from codesense_ray.monitoring.publish import log_monitoring_run, push_gauges
    from codesense_ray.monitoring.report import render_drift_html
    from codesense_ray.config.monitoring import monitoring_config, parse_duration
    from codesense_ray.monitoring.traces import read_records

    mcfg = monitoring_config(cfg)
    dcfg = mcfg.drift
    window_s = window_s or parse_duration(dcfg.window).total_seconds()
    reference_s = reference_s or parse_duration(dcfg.reference).total_seconds()
    now = time.time() if now is None else now
    split = now - window_s
    records = read_records(cfg, since=split - reference_s, until=now)
    reference = Window.from_records([r for r in records if r.timestamp < split])
    recent = Window.from_records([r for r in records if r.timestamp >= split])
    if embed is None:
        embed = _query_embedder(cfg)
    result = detect_drift(reference, recent, embed, dcfg)
    out_dir = Path(output) if output else _default_dir(cfg, mcfg.output_dir) / time.strftime("drift-%Y%m%d-%H%M%S", time.gmtime(now))
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = result.to_dict() | {"windows": {"recent_s": window_s, "reference_s": reference_s, "split_at": split}}
    (out_dir / "drift.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    (out_dir / "drift.html").write_text(render_drift_html(result, payload["windows"]), encoding="utf-8")
    files = {"json": str(out_dir / "drift.json"), "html": str(out_dir / "drift.html")}
    mlflow_info = None
    if log_mlflow:
        from codesense_ray.monitoring.state import DRIFT_SIGNAL_PREFIX

        metrics = {f"{DRIFT_SIGNAL_PREFIX}{k}": v for k, v in result.scores.items()}
        metrics |= {"p_value": result.p_value, "drift_detected": float(result.drift), "finished_at": result.finished_at,
                    "recent_queries": counts_or_zero(result, "recent"), "reference_queries": counts_or_zero(result, "reference")}
        params = {"window_s": window_s, "reference_s": reference_s, "status": result.status, "permutations": dcfg.permutations, "seed": dcfg.seed}
        mlflow_info = log_monitoring_run(cfg, "drift", params, metrics, [out_dir / "drift.json", out_dir / "drift.html"])
    pushed = push_gauges(cfg, "codesense-drift", drift_gauge_values(result.to_dict()))
    return {"result": payload, "files": files, "mlflow": mlflow_info, "pushed_to": pushed}


def counts_or_zero(result: DriftResult, key: str) -> float:
    return float(result.counts.get(key, 0))


def _default_dir(cfg: Any, configured: str | None) -> Path:
    return cfg.resolve_path(configured) if configured else cfg.home / "monitoring"


def _query_embedder(cfg: Any) -> Callable[[list[str]], np.ndarray]:
    """The index's own query embedder: drift is measured in the space retrieval searches in."""
    from codesense_ray.index.embedding import SentenceTransformerEmbedder

    loaded: list = []

    def embed(texts: list[str]) -> np.ndarray:
        if not loaded:  # loaded on first use: a window too small to test never loads the model
            loaded.append(SentenceTransformerEmbedder(cfg.embedding, for_queries=True))
        return loaded[0].embed_queries(texts)

    return embed
