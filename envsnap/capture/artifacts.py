"""Scaffolding until issue 3 lands this probe (replaced by the real module)."""

from __future__ import annotations

from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register


@register
class ArtifactsProbe(Probe):
    """Not yet implemented: enabled only when the user asks for it, and then fails loudly."""

    name = "artifacts"
    member = "artifacts/index.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return bool(ctx.options.artifacts)

    def collect(self, ctx: CaptureContext) -> Any:
        raise NotImplementedError("artifacts capture is not implemented yet")
