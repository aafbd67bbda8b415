"""Stage records: modules mapped to distributions, the memory meter, tables that cannot become parquet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from envsnap._target.runner.measure import MemoryMeter, top_level_modules
from envsnap._target.runner.tables import table_kind
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.packages import PackagesProbe
from envsnap.capture.target import in_process
from envsnap.pipeline import Pipeline
from envsnap.pipeline.execution import run_stages_here
from envsnap.pipeline.records import distributions_by_module, map_modules, pipeline_record, received_inputs
from envsnap.snapshot.schema import validate_member


def _install_toy_distribution(site: Path) -> None:
    """A real installed distribution on disk: a module plus its .dist-info (what pip leaves behind)."""
    (site / "envsnap_toy_dep.py").write_text("VALUE = 'dep'\n", encoding="utf-8")
    info = site / "envsnap_toy_dep-2.3.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: envsnap-toy-dep\nVersion: 2.3.4\n", encoding="utf-8")
    (info / "top_level.txt").write_text("envsnap_toy_dep\n", encoding="utf-8")
    (info / "RECORD").write_text("envsnap_toy_dep.py,,\n", encoding="utf-8")


def test_a_module_imported_by_a_stage_maps_to_its_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_toy_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = Path(__file__).resolve().parents[1] / "fixtures_pipeline"
    pipeline = Pipeline("p", pythonpath=[str(toy)])

    @pipeline.stage()
    def stage(frame: Any) -> Any:
        from envsnap_toy.stages import uses_toy_dep

        return uses_toy_dep(frame)

    run = run_stages_here(pipeline, {"x": pd.DataFrame({"a": [1, 2]})})
    monkeypatch.delitem(sys.modules, "envsnap_toy_dep")
    assert run.outcomes[0]["status"] == "ok", run.outcomes[0]["error"]
    packages = PackagesProbe().collect(CaptureContext(CaptureOptions(), in_process))
    mapping = distributions_by_module(packages)
    imports = map_modules(run.outcomes[0]["imported_modules"], mapping)
    assert {"module": "envsnap_toy_dep", "distributions": [{"name": "envsnap-toy-dep", "version": "2.3.4"}]} in imports
    assert all(entry["module"] not in ("json", "os", "sys") for entry in imports), "stdlib is not listed"


def test_map_modules_keeps_local_code_and_every_claimant() -> None:
    packages = {
        "distributions": [
            {"normalized_name": "protobuf", "version": "5.0", "top_level": ["google"]},
            {"normalized_name": "google-auth", "version": "2.0", "top_level": ["google"]},
            {"normalized_name": "six", "version": "1.16.0", "top_level": ["six"]},
        ]
    }
    mapping = distributions_by_module(packages)
    assert map_modules(["google", "six", "mycode", "json", "_envsnap_target", "__main__"], mapping) == [
        {
            "module": "google",
            "distributions": [{"name": "google-auth", "version": "2.0"}, {"name": "protobuf", "version": "5.0"}],
        },
        {"module": "mycode", "distributions": []},
        {"module": "six", "distributions": [{"name": "six", "version": "1.16.0"}]},
    ]
    assert distributions_by_module({"error": {"type": "X", "message": "failed"}}) == {}


def test_memory_meter_sees_a_large_allocation() -> None:
    meter = MemoryMeter()
    meter.start()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    result = meter.stop()
    del block
    assert result["method"] in ("vmhwm-reset", "sampled")
    assert result["peak_rss_delta_bytes"] >= 60 * 1024 * 1024
    meter.start()
    quiet = meter.stop()
    assert quiet["peak_rss_delta_bytes"] < 16 * 1024 * 1024, "the high-water mark is reset between windows"


def test_a_table_that_cannot_be_stored_as_parquet_fails_its_stage() -> None:
    pipeline = Pipeline("p")

    @pipeline.stage()
    def mixed(frame: Any) -> Any:
        return pd.DataFrame({"x": [1, "a", object()]})

    run = run_stages_here(pipeline, {"x": pd.DataFrame({"a": [1]})})
    error = run.outcomes[0]["error"]
    assert error["kind"] == "output"
    assert error["message"].startswith("stage 'mixed' returned a pandas value that cannot be recorded: ")
    assert "column x" in error["message"]


def test_table_kind() -> None:
    assert table_kind(pd.DataFrame()) == "pandas"
    assert table_kind(pa.table({"a": [1]})) == "arrow"
    assert table_kind(pa.record_batch({"a": [1]})) == "arrow"
    assert table_kind(pd.Series([1])) is None
    assert table_kind([{"a": 1}]) is None


def test_pipeline_record_of_a_run_that_did_not_start_validates() -> None:
    pipeline = Pipeline("p")
    pipeline.stage(name="a")(lambda frame: frame)
    pipeline.stage(name="b", inputs=["a", "x"])(lambda a, x: a)
    assert received_inputs(pipeline, ["x"]) == [["x"], ["a", "x"]]
    document = pipeline_record(
        pipeline,
        input_names=["x"],
        outcomes=[],
        not_run_reason="input 'x' could not be sampled, so no stage ran: boom",
        runner={"mode": "not-run", "python": None, "added_by_runner": [], "preloaded_distributions": []},
    )
    validate_member("<test>", "pipeline/pipeline.json", document)
    assert document["status"] == "not-run" and [s["status"] for s in document["stages"]] == ["not-run", "not-run"]


def test_flat_extension_names_count_as_their_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import types

    inner = tmp_path / "envsnap_pkgx" / "inner"
    inner.mkdir(parents=True)
    (inner / "_flat.py").write_text("X = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # What a compiled extension does: it lives in a package's directory but registers a top-level name.
    spec = importlib.util.spec_from_file_location("_envsnap_flat", inner / "_flat.py")
    assert spec is not None and spec.loader is not None
    flat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flat)
    monkeypatch.setitem(sys.modules, "_envsnap_flat", flat)
    made = types.ModuleType("_envsnap_made")
    made.__file__ = "<string>"
    monkeypatch.setitem(sys.modules, "_envsnap_made", made)
    monkeypatch.setitem(sys.modules, "_envsnap_nofile", types.ModuleType("_envsnap_nofile"))
    found = top_level_modules(["_envsnap_flat", "_envsnap_made", "_envsnap_nofile", "pandas.core.frame"])
    assert found == {"envsnap_pkgx", "pandas"}
