"""``envsnap diff --json``: :meth:`SnapshotDiff.to_dict` as stable JSON (docs/diff-json.md).

The document is versioned by ``schema_version`` and validated in the tests against ``diff.schema.json``
(shipped next to this module). Keys are sorted; NaN and infinities, which JSON cannot hold, become the
strings ``"nan"``, ``"inf"`` and ``"-inf"``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsnap.diff.model import SnapshotDiff

__all__ = ["diff_document", "render_json"]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def diff_document(diff: SnapshotDiff) -> dict[str, Any]:
    """The JSON document as a dict (strict JSON values only)."""
    return _finite(diff.to_dict())  # type: ignore[no-any-return]


def render_json(diff: SnapshotDiff) -> str:
    """The JSON document, indented, keys sorted, with a trailing newline."""
    return json.dumps(diff_document(diff), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
