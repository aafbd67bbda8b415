"""Hypothesis fuzzing of the lockfile and config parsers: malformed input of any shape
is a ValueError (recorded by the probe as a one-line error naming the file), never anything else."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envsnap.capture.config_parsers import parse_config
from envsnap.capture.lockfile_parsers import PARSERS, parse_lockfile

LOCK_KINDS = tuple(sorted(PARSERS))
CONFIG_FORMATS = ("yaml", "json", "toml", "ini", "dotenv")

# Text that looks like the formats (brackets, colons, quotes, anchors) finds more paths than random bytes.
_TOKENS = st.sampled_from(
    ["[", "]", "{", "}", ":", "=", '"', "'", "\n", "  ", "- ", "&a", "*a", "#", "==", "numpy", "1.2", "[[package]]",
     "name", "version", "true", "null", "<<:", "!!python/object", "\t", "\\", ",", "---", "data:", "kind: ConfigMap"]
)  # fmt: skip
TEXT = st.one_of(st.text(max_size=400), st.lists(_TOKENS, max_size=80).map("".join))


def _only_value_errors(call: object) -> None:
    with contextlib.suppress(ValueError):
        call()  # type: ignore[operator]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(LOCK_KINDS), text=TEXT)
def test_fuzz_lockfile_parsers(kind: str, text: str) -> None:
    _only_value_errors(lambda: parse_lockfile(kind, text))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(CONFIG_FORMATS), text=TEXT)
def test_fuzz_config_parsers(fmt: str, text: str) -> None:
    def parse() -> None:
        _fmt, tree, _notes = parse_config(fmt, text)
        json.dumps(tree)  # whatever parses is stored as JSON: it must be JSON-able

    _only_value_errors(parse)
