"""``data/inputs.json``: sampled input batches, each with its record and its column stats.

For every input (``--input NAME=PATH``, or ``inputs=`` of :func:`envsnap.capture`), the probe samples it
(:func:`envsnap.capture.sample.sample_input`), stores ``data/inputs/NAME.parquet`` (the sample, masked
columns already tokenised) and ``data/inputs/NAME.json`` (source, fingerprint, schema, method, seed, column
stats from :mod:`envsnap.core.column_stats`), and hands the table to the pipeline runner through
``ctx.samples``. The index member lists each input with its member paths, or the error that kept it out.

An input that cannot be sampled is the user's problem to see, not a footnote: the others are still
recorded, the index says what went wrong, and the probe then raises :class:`InputsError` (its ``partial``
output holds everything recorded), so the probe's status is "error" with a message naming the inputs.

This module is imported on every capture: pyarrow is imported only when there are inputs.
"""

from __future__ import annotations

import re
from typing import Any

from envsnap.capture.base import CaptureContext, Probe, ProbeOutput, register
from envsnap.errors import EnvsnapError, InputError

__all__ = ["DataProbe", "InputsError"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class InputsError(EnvsnapError, ValueError):
    """Some inputs could not be sampled; ``partial`` is the probe output with everything that was recorded."""

    def __init__(self, errors: list[InputError], partial: ProbeOutput) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
        self.partial = partial


@register
class DataProbe(Probe):
    """Sampled input batches: ``data/inputs/NAME.parquet`` + ``NAME.json``, indexed in ``data/inputs.json``."""

    name = "data"
    member = "data/inputs.json"

    def enabled(self, ctx: CaptureContext) -> bool:
        return bool(ctx.options.inputs)

    def collect(self, ctx: CaptureContext) -> ProbeOutput:
        import pyarrow as pa

        from envsnap.capture.sample import describe_source, mask_salt, parquet_bytes, sample_input

        sampling = ctx.options.sampling
        salt = mask_salt(ctx.options.environ) if sampling.mask else None
        index: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        errors: list[InputError] = []
        for spec in ctx.options.inputs:
            shown = describe_source(spec.source)
            try:
                if not _NAME.match(spec.name):
                    raise InputError(spec.name, shown, "an input name must be 1-100 letters, digits, '-' or '_'")
                if spec.name in index:
                    raise InputError(spec.name, shown, "the input name is given twice")
                sampled = sample_input(spec, sampling, salt=salt)
            except InputError as exc:
                errors.append(exc)
                index.setdefault(spec.name, {"error": str(exc), "source": shown})
                continue
            except (pa.ArrowException, OSError) as exc:  # a reader failure the sampler did not foresee
                error = InputError(spec.name, shown, f"{type(exc).__name__}: {exc}")
                errors.append(error)
                index[spec.name] = {"error": str(error), "source": shown}
                continue
            base = f"data/inputs/{spec.name}"
            extra[f"{base}.parquet"] = parquet_bytes(sampled.table)
            extra[f"{base}.json"] = sampled.record
            ctx.samples[spec.name] = sampled.table
            index[spec.name] = {
                "parquet": f"{base}.parquet",
                "record": f"{base}.json",
                "rows": sampled.table.num_rows,
                "source": shown,
            }
        output = ProbeOutput({"inputs": index}, extra)
        if errors:
            raise InputsError(errors, output)
        return output
