"""The diff renderers on a hand-built SnapshotDiff: golden files for text, Markdown and JSON; HTML checks.

Regenerate the golden files after an intended change with ``ENVSNAP_REGEN_GOLDEN=1 pytest tests/unit/
test_render.py`` and review the diff of tests/golden/ like code.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest

from envsnap._version import __version__
from envsnap.diff.model import DataDiff, EnvDiff, SectionDiff, SnapshotDiff, StatsShift
from envsnap.diff.render import render
from envsnap.diff.render.html import CSP, render_html
from envsnap.diff.render.json import diff_document
from envsnap.diff.render.text import render_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SCHEMA = Path(__file__).resolve().parents[2] / "envsnap" / "diff" / "render" / "diff.schema.json"


def _load_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envsnap_golden_sample_diff", GOLDEN / "sample_diff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sample = _load_sample()


def normalise(text: str) -> str:
    """Versions, temporary paths and dates vary between machines and days: replace them by placeholders."""
    text = text.replace(f"envsnap {__version__}", "envsnap <VERSION>")
    text = re.sub(r"(/tmp|/var/folders)/[^\s\"'()|<]*", "<PATH>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", "<DATE>", text)
    return text


def check_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/NAME, or write it when ENVSNAP_REGEN_GOLDEN=1."""
    path = GOLDEN / name
    actual = normalise(actual)
    if os.environ.get("ENVSNAP_REGEN_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with ENVSNAP_REGEN_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def diff() -> SnapshotDiff:
    return sample.sample_diff()


def test_normalise_placeholders() -> None:
    text = normalise(f"envsnap {__version__} /tmp/pytest-1/a.envsnap 2026-01-02T03:04:05Z")
    assert text == "envsnap <VERSION> <PATH> <DATE>"


def test_text_golden(diff: SnapshotDiff) -> None:
    check_golden("diff.txt", render_text(diff, width=100))


def test_markdown_golden(diff: SnapshotDiff) -> None:
    check_golden("diff.md", render(diff, "markdown"))


def test_json_golden(diff: SnapshotDiff) -> None:
    check_golden("diff.json", render(diff, "json"))


def test_text_leads_with_verdict_and_top_three(diff: SnapshotDiff) -> None:
    lines = render_text(diff).splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("Verdict:"))
    assert verdict < 6
    assert "stage ratio" in lines[verdict]
    assert lines[verdict + 1] == "Top suspects:"
    assert lines[verdict + 2].startswith("  1. numpy — numpy 1.26.4 → 2.2.6: major")
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("Environment:"))]
    ranked = [line[:5] for line in head if re.match(r"  \d\. ", line)]
    assert ranked == ["  1. ", "  2. ", "  3. "]


def test_text_plain_without_color_and_ansi_with(diff: SnapshotDiff) -> None:
    assert "\x1b[" not in render_text(diff, color=False)
    assert "\x1b[" in render_text(diff, color=True)


def test_text_unchanged_sections_are_counted_not_listed(diff: SnapshotDiff) -> None:
    text = render_text(diff)
    assert "Environment: 6 of 14 sections changed" in text
    assert "unchanged: python, native, gpu, container, artifacts, lockfiles, configs, job" in text
    assert "\ngpu (" not in text


def test_redacted_value_never_rendered() -> None:
    from envsnap.diff.model import Change

    secret = "s3cr3t-value"
    change = Change("envvars", "API_TOKEN", "changed", secret, secret + "2", redacted=True, value_changed=True)
    env = sample.env_diff(packages=(), changes=(change,))
    result = dataclasses.replace(sample.sample_diff(), env=env, suspects=())
    for fmt in ("text", "markdown", "html"):
        out = render(result, fmt)
        assert "API_TOKEN" in out
        assert secret not in out, fmt


def test_json_matches_schema_and_roundtrips(diff: SnapshotDiff) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads(render(diff, "json"))
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["schema_version"] == 1
    assert document["data"]["first_diverging_stage"] == "ratio"
    assert document["suspects"][0]["subject"] == "numpy"


def test_json_non_finite_numbers_are_strings() -> None:
    shift = StatsShift("x", "numeric", mean=(float("nan"), 1.0), psi=float("inf"))
    table = dataclasses.replace(sample.data_diff().stages[1].table, stats=(shift,))
    stage = dataclasses.replace(sample.data_diff().stages[1], table=table)
    result = dataclasses.replace(sample.sample_diff(), data=DataDiff(stages=(stage,), first_diverging_stage="ratio"))
    text = render(result, "json")
    document = json.loads(text)  # strict JSON: NaN would not even be emitted (allow_nan=False)
    stats = document["data"]["stages"][0]["table"]["stats"][0]
    assert stats["mean"] == ["nan", 1.0]
    assert stats["psi"] == "inf"
    jsonschema.validate(diff_document(result), json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_markdown_escapes_table_cells() -> None:
    from envsnap.diff.model import Change

    change = Change("envvars", "WEIRD", "changed", "a|b", "<script>")
    env = sample.env_diff(packages=(), changes=(change,))
    out = render(dataclasses.replace(sample.sample_diff(), env=env), "markdown")
    assert "a\\|b" in out
    assert "<script>" not in out


def test_html_is_self_contained(diff: SnapshotDiff) -> None:
    html = render_html(diff)
    assert html.startswith("<!DOCTYPE html>")
    assert f'content="{CSP}"' in html
    assert "default-src 'none'" in CSP
    # Nothing that loads from anywhere: no scripts, no links, no external URLs but the SVG namespace.
    assert "<script" not in html
    assert "<link" not in html
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    for element_id in (
        "verdict",
        "top-suspects",
        "suspects",
        "environment",
        "data",
        "first-diverging-stage",
        "section-packages",
        "stage-ratio",
    ):
        assert f'id="{element_id}"' in html
    assert html.count('class="suspect"') == len(diff.suspects)
    assert html.count("<details") >= 5


def test_html_plots_histograms(diff: SnapshotDiff) -> None:
    html = render_html(diff)
    assert html.count('<svg class="plot"') == 2
    # 4 numeric bins + 2 categories, a and b each.
    assert html.count('<rect class="legend-a" x=') - 2 == 4 + 2
    assert "distribution of ratio, a vs b" in html


def test_html_escapes_names() -> None:
    from envsnap.diff.model import Change

    change = Change("envvars", "<img src=x>", "added", None, "\"'><b>")
    env = sample.env_diff(packages=(), changes=(change,))
    html = render_html(dataclasses.replace(sample.sample_diff(), env=env))
    assert "<img src=x>" not in html
    assert "&lt;img src=x&gt;" in html


def test_empty_diff_renders_everywhere() -> None:
    empty = SnapshotDiff(
        a=sample.sample_diff().a,
        b=sample.sample_diff().b,
        env=EnvDiff(sections=tuple(SectionDiff(n) for n in sample.SECTIONS)),
        data=DataDiff(),
    )
    assert "Verdict: no difference" in render_text(empty)
    assert "✅ no difference" in render(empty, "markdown")
    assert "No difference" in render(empty, "html")
    assert json.loads(render(empty, "json"))["verdict"] == "no environment difference"


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown diff format"):
        render(sample.sample_diff(), "pdf")
