"""Pipelines: stages declared in envsnap.toml / pyproject.toml or in Python, run with parquet intermediates.

``Pipeline``, ``Stage``, ``load_pipeline`` and ``PipelineError`` are cheap to import; ``run_pipeline``
(and what it needs: the capture probes, pyarrow) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envsnap.pipeline.config import load_pipeline
from envsnap.pipeline.model import Pipeline
from envsnap.pipeline.types import PipelineError, Stage

if TYPE_CHECKING:
    from envsnap.pipeline.runner import RunResult, StageResult, run_pipeline

__all__ = ["Pipeline", "PipelineError", "RunResult", "Stage", "StageResult", "load_pipeline", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name in ("run_pipeline", "RunResult", "StageResult"):
        from envsnap.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'envsnap.pipeline' has no attribute {name!r}")
