"""Evaluation harness: datasets of questions with gold files and lines, retrieval and citation metrics, MLflow
runs, LLM-judged metrics (DeepEval) and a quality gate. See docs/evaluation.md.

Heavy dependencies (mlflow, deepeval, matplotlib, the embedding model) are imported by the functions that need
them, so importing this package stays light.
"""

from codesense_ray.evaluation.dataset import EvalDataset, EvalQuestion, GoldSpan, InvalidDataset, load_dataset
from codesense_ray.evaluation.gate import GateFailure, GateRule, InvalidGates, check_gates, load_gates
from codesense_ray.config.evaluation import EvaluationConfig, JudgeConfig

__all__ = [
    "EvalDataset",
    "EvalQuestion",
    "EvaluationConfig",
    "GateFailure",
    "GateRule",
    "GoldSpan",
    "InvalidDataset",
    "InvalidGates",
    "JudgeConfig",
    "check_gates",
    "load_dataset",
    "load_gates",
]
