"""``env/system.json``: OS release, kernel, glibc, CPU, memory size, cgroup limits, locale and timezone.

The facts are read by :func:`envsnap._target.host.read_host_facts` and turned into the section by
:func:`envsnap._target.system.system_section`, the same two functions a fleet worker and a replay's
fidelity probe use, so the machine under every snapshot is described by one parser.
"""

from __future__ import annotations

from typing import Any

from envsnap._target.host import read_host_facts
from envsnap._target.system import system_section
from envsnap.capture.base import CaptureContext, Probe, register

__all__ = ["SystemProbe"]


@register
class SystemProbe(Probe):
    """The machine and OS under the interpreter (the same for ``--python`` targets on this host)."""

    name = "system"
    member = "env/system.json"

    def collect(self, ctx: CaptureContext) -> dict[str, Any]:
        return system_section(read_host_facts(), ctx.options.environ)
