"""The pipeline users build: :class:`Pipeline`, a :class:`~envsnap.pipeline.types.PipelineSpec` that runs itself.

The definition (stages, inputs, validation) lives in :mod:`envsnap.pipeline.types`, which every module of
the package reads; only this class reaches up to the runner.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from envsnap.pipeline.types import PipelineError, PipelineSpec, Stage

if TYPE_CHECKING:
    from envsnap.pipeline.runner import RunResult

__all__ = ["Pipeline", "PipelineError", "Stage"]


class Pipeline(PipelineSpec):
    """An ordered list of stages under a name, with default inputs (name -> path or in-memory table).

    Inputs read from files reach the first stage as pandas DataFrames (``accepts="arrow"``: as pyarrow
    Tables); in-memory inputs keep their kind; after that each stage gets what the previous one returned.

    Declared in ``envsnap.toml`` / ``[tool.envsnap.pipeline]`` (see :func:`envsnap.pipeline.load_pipeline`)
    or in Python::

        pipeline = envsnap.Pipeline("churn", inputs={"events": "data/events.parquet"})

        @pipeline.stage()
        def clean(df):
            return df.dropna()

        result = pipeline.run(output="run.envsnap")
    """

    def run(self, output: str | os.PathLike[str] | None = None, **kwargs: Any) -> RunResult:
        """Shorthand for :func:`envsnap.pipeline.run_pipeline` (same keyword arguments)."""
        # Imported here, not at the top: the runner loads the capture probes and pyarrow, and declaring a
        # pipeline must stay cheap (``import envsnap`` does not pay for running one).
        from envsnap.pipeline.runner import run_pipeline

        return run_pipeline(self, output=output, **kwargs)
