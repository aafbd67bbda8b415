"""``env/python.json``: the interpreter: implementation, version, executable, prefixes, build, tags."""

from __future__ import annotations

from typing import Any

from envsnap.capture.base import CaptureContext, Probe, register

__all__ = ["PythonProbe"]


@register
class PythonProbe(Probe):
    """Identity of the captured interpreter and its PEP 508 marker environment."""

    name = "python"
    member = "env/python.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        target = ctx.target
        data = dict(target.python)
        data["markers"] = dict(target.markers)
        data["captured_in_process"] = target.in_process
        return data
