"""The student stages in the pipeline: Ray job specs for golden/distill/train/compare, and the compiled KFP DAG
(golden set and distillation after the index, fine-tuning after distillation, comparison after both)."""

from __future__ import annotations

import yaml

from codesense_ray.config import load_config
from codesense_ray.config.orchestration import PipelineConfig
from codesense_ray.orchestration.submission import stage_spec
from kfp_wrappers.compile import compile_pipeline
from tests.conftest import write_config


def test_stage_specs_point_at_the_job_entrypoints(tmp_path):
    """Each stage submits its jobs/*.py entrypoint with --config and --json, arguments passed through."""
    cfg_path = write_config(tmp_path, [])
    cfg = load_config(cfg_path)
    for stage, script in {"golden": "jobs/golden.py", "distill": "jobs/distill.py", "train": "jobs/train.py", "compare": "jobs/compare_models.py"}.items():
        spec = stage_spec(stage, cfg, cfg_path, "ray-jobs", args=["--limit", "3"] if stage == "distill" else [])
        assert spec.entrypoint.startswith(f"python {script} --config ") and "--json" in spec.entrypoint
        assert spec.metadata["codesense_stage"] == stage
    assert stage_spec("distill", cfg, cfg_path, "ray-jobs", args=["--limit", "3"]).entrypoint.endswith("--json --limit 3")


def test_pipeline_trains_the_student_after_indexing(tmp_path):
    """Under `train_student`, golden and distill follow the index, finetune follows distill, compare follows both."""
    ir = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", PipelineConfig()).read_text())
    spec = next(ir)
    cond = spec["root"]["dag"]["tasks"]["condition-2"]
    assert "train_student" in cond["triggerPolicy"]["condition"]
    inner = spec["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"build-golden-set", "distill-dataset", "finetune", "compare-models"}
    assert inner["finetune"]["dependentTasks"] == ["distill-dataset"]
    assert sorted(inner["compare-models"]["dependentTasks"]) == ["build-golden-set", "finetune"]
    assert spec["root"]["inputDefinitions"]["parameters"]["train_student"]["defaultValue"] is False


def test_components_submit_to_ray_and_fail_cleanly_when_unreachable(tmp_path, capsys):
    """Each student component submits its stage to the Ray Job API; a dead head exits 5 with one line, no traceback."""
    import pytest

    from codesense_ray.orchestration.local_ray import free_port
    from kfp_wrappers.components import build_golden_set, compare_models, distill_dataset, finetune

    cfg = write_config(tmp_path, [])
    dead = f"http://127.0.0.1:{free_port()}"
    for component, extra in ((build_golden_set, {}), (distill_dataset, {"limit": 5}), (finetune, {"max_steps": 3}), (compare_models, {"limit": 2})):
        with pytest.raises(SystemExit) as exit_info:
            component.python_func(config=str(cfg), backend="ray-jobs", ray_address=dead, **extra)
        assert exit_info.value.code == 5
        err = capsys.readouterr().err.strip()
        assert err.startswith("codesense: error:") and "\n" not in err and "Traceback" not in err
