"""Scaffolding until issue 3 lands this probe (replaced by the real module)."""

from __future__ import annotations

from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register


@register
class DataProbe(Probe):
    """Not yet implemented: enabled only when the user asks for it, and then fails loudly."""

    name = "data"
    member = "data/inputs.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return bool(ctx.options.inputs)

    def collect(self, ctx: CaptureContext) -> Any:
        raise NotImplementedError("data capture is not implemented yet")
