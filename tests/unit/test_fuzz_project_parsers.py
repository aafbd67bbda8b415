"""Hypothesis fuzzing of the lockfile and config parsers: malformed input of any shape
is a ValueError (recorded by the probe as a one-line error naming the file), never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envsnap.capture.config_parsers import parse_config
from envsnap.capture.lockfile_parsers import PARSERS, parse_lockfile, sniff_kind
from envsnap.capture.lockfiles import disagreements

ENVIRONMENT = {"python_full_version": "3.11.7", "python_version": "3.11", "sys_platform": "linux"}

LOCK_KINDS = tuple(sorted(PARSERS))
CONFIG_FORMATS = ("yaml", "json", "toml", "ini", "dotenv")

# Text that looks like the formats (brackets, colons, quotes, anchors) finds more paths than random bytes.
_TOKENS = st.sampled_from(
    ["[", "]", "{", "}", ":", "=", '"', "'", "\n", "  ", "- ", "&a", "*a", "#", "==", "numpy", "1.2", "[[package]]",
     "name", "version", "true", "null", "<<:", "!!python/object", "\t", "\\", ",", "---", "data:", "kind: ConfigMap",
     "markers", "marker", "resolution-markers", "python_full_version < '3.11'", " and ", " or ", "extra ==",
     "source", "git", "#abc", "@", "[metadata]", "dependencies", "platform: linux-64", "manager: conda"]
)  # fmt: skip
TEXT = st.one_of(st.text(max_size=400), st.lists(_TOKENS, max_size=80).map("".join))


def _only_value_errors(call: object) -> None:
    with contextlib.suppress(ValueError):
        call()  # type: ignore[operator]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(LOCK_KINDS), text=TEXT)
def test_fuzz_lockfile_parsers(kind: str, text: str) -> None:
    _only_value_errors(lambda: parse_lockfile(kind, text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(LOCK_KINDS), text=TEXT, version=st.sampled_from(["1.2", "2.0+cu1", "x", "2024a"]))
def test_fuzz_sniffing_and_marker_aware_drift(kind: str, text: str, version: str) -> None:
    """Whatever parses can be checked against an environment (any marker, any version), and sniffing a
    kind never raises."""
    assert sniff_kind(text) in (None, *LOCK_KINDS)
    try:
        parsed = parse_lockfile(kind, text)
    except ValueError:
        return
    installed = dict.fromkeys([*parsed.pins, *parsed.requirements], version)
    for row in disagreements("f", parsed, installed, ENVIRONMENT):
        assert row["message"] and row["pinned"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(CONFIG_FORMATS), text=TEXT)
def test_fuzz_config_parsers(fmt: str, text: str) -> None:
    def parse() -> None:
        _fmt, tree, _notes = parse_config(fmt, text)
        json.dumps(tree)  # whatever parses is stored as JSON: it must be JSON-able

    _only_value_errors(parse)
