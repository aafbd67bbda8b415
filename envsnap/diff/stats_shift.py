"""Distribution shift of one column between two tables, from streaming sketches.

Each side of a column gets a :class:`ColumnSketch` fed batch by batch: exact count and mean
(Chan's parallel combination of per-batch ``pyarrow.compute`` means), and a uniform sample of at most
:data:`SAMPLE_ROWS` values. The sampled row positions are drawn once per side, without replacement,
by ``numpy.random.default_rng(SAMPLE_SEED)`` over the side's row count (known from the parquet footer),
so two sides with the same row count sample the same positions and identical tables give identical
statistics (PSI 0, KS 0). Quantiles, PSI, KS, category frequencies and the histogram come from the
sample; the mean is exact (one pass per batch; a second pass over batches with NaN), the standard
deviation comes from the sample (relative error about 1/sqrt(2 * 20k), 0.5%); KS and PSI from 20k values
per side resolve shifts of about 0.01 (KS), far below the 0.1 that flags a shift.
Memory: at most ``SAMPLE_ROWS`` values per column per side.
"""

from __future__ import annotations

import math
from typing import Any

from envsnap.diff.model import StatsShift

__all__ = ["ColumnSketch", "column_kind", "common_temporal", "ks", "pa_is_floating", "psi", "sample_positions", "shift"]

SAMPLE_ROWS = 20_000
SAMPLE_SEED = 0
QUANTILES = {"p1": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}
PSI_BINS = 10
PSI_EPSILON = 1e-4
HIST_BINS = 20
TOP_CATEGORIES = 10
OTHER = "<other>"
NULL = "<null>"


def sample_positions(rows: int, limit: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> Any:
    """Sorted row positions of a seeded uniform sample (without replacement) of ``rows`` rows."""
    import numpy as np

    if rows <= limit:
        return np.arange(rows, dtype="int64")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=limit, replace=False)).astype("int64")


def column_kind(type_: Any) -> str:
    """numeric | temporal | categorical | other, by Arrow type."""
    import pyarrow as pa

    if pa.types.is_dictionary(type_):
        return column_kind(type_.value_type) if not pa.types.is_string(type_.value_type) else "categorical"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_) or pa.types.is_duration(type_):
        return "temporal"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_boolean(type_):
        return "categorical"
    return "other"


class ColumnSketch:
    """One side of one column: exact count and mean, and the sampled values."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.mean = 0.0
        self.nan_in_moments = False
        self.samples: list[Any] = []
        self._counts: Any = None

    def update(self, array: Any, sampled: Any) -> None:
        """Feed one batch (``array``) and its sampled rows (``sampled``, same column)."""
        import pyarrow.compute as pc

        if self.kind == "numeric":
            n = len(array) - array.null_count
            if n:
                mean = pc.mean(array).as_py()
                if mean is not None and math.isnan(mean):  # NaN cells: the mean of the other ones
                    values = pc.filter(array, pc.invert(pc.is_nan(array)))
                    n = len(values) - values.null_count
                    mean = pc.mean(values).as_py() if n else None
                if n:
                    if mean is None or not math.isfinite(mean):
                        self.nan_in_moments = True
                    else:
                        self._combine(n, float(mean))
        if self.kind != "other" and len(sampled):
            self.samples.append(sampled)

    def _combine(self, n: int, mean: float) -> None:
        total = self.count + n
        self.mean += (mean - self.mean) * n / total
        self.count = total

    def moments(self) -> tuple[float | None, float | None]:
        """The exact mean and the sample's (population) standard deviation."""
        import numpy as np

        if self.count == 0 or self.nan_in_moments:
            return None, None
        values = self.numbers()
        return self.mean, float(np.std(values)) if len(values) else None

    def numbers(self) -> Any:
        """The sampled non-null, non-NaN values as float64 (temporal: integer ticks)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.samples:
            return np.empty(0)
        values = pa.chunked_array(self.samples).combine_chunks().drop_null()
        if self.kind == "temporal":
            values = values.cast(common_temporal(values.type), safe=False)
            values = values.view(pa.int64()) if values.type.bit_width == 64 else values.cast(pa.int64())
        elif pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        # Unsafe cast: int64 ticks of a timestamp (or big integers) exceed 2**53 and lose low bits as
        # float64, which a distribution shift does not care about; a safe cast would refuse them.
        out = np.asarray(pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype="float64")
        return out[~np.isnan(out)]

    def categories(self) -> Any:
        """The sampled values as one array (dictionaries decoded)."""
        import pyarrow as pa

        values = pa.chunked_array(self.samples).combine_chunks()
        return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values

    def frequencies(self, top: int, labels: Any = None) -> dict[str, float]:
        """Share of the sampled rows of the ``top`` most frequent categories, plus those in ``labels``
        (nulls as ``<null>``). Counted in Arrow: only ``top`` + len(labels) values reach Python."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.samples:
            return {}
        values = self.categories()
        total = len(values)
        if self._counts is None:
            pairs = pc.value_counts(values)
            self._counts = pa.table({"values": pairs.field("values"), "counts": pairs.field("counts")})
        counts = self._counts
        order = pc.sort_indices(counts, sort_keys=[("counts", "descending"), ("values", "ascending")])
        chosen = counts.take(order[:top])
        if labels:
            wanted = [v for v in labels if v != NULL]
            typed = pa.array(wanted).cast(values.type) if wanted else pa.array([], values.type)
            chosen = pa.concat_tables([chosen, counts.filter(pc.is_in(counts.column("values"), typed))])
        out: dict[str, float] = {}
        for value, count in zip(chosen.column("values").to_pylist(), chosen.column("counts").to_pylist(), strict=True):
            label = NULL if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            out[label] = count / total
        nulls = values.null_count
        if nulls and (NULL in (labels or ()) or len(out) < top):
            out[NULL] = nulls / total
        return out


def pa_is_floating(type_: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(type_))


def psi(a: Any, b: Any, bins: int = PSI_BINS) -> float | None:
    """Population stability index of ``b`` against ``a``: ``bins`` quantile bins of ``a``; empty bins get
    :data:`PSI_EPSILON`."""
    import numpy as np

    if len(a) == 0 or len(b) == 0:
        return None
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    pa_ = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    pb_ = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1) / len(b)
    return _psi_from_shares(pa_, pb_)


def _psi_from_shares(pa_: Any, pb_: Any) -> float:
    import numpy as np

    pa_ = np.maximum(np.asarray(pa_, dtype="float64"), PSI_EPSILON)
    pb_ = np.maximum(np.asarray(pb_, dtype="float64"), PSI_EPSILON)
    return float(np.sum((pb_ - pa_) * np.log(pb_ / pa_)))


def ks(a: Any, b: Any, *, sorted_: bool = False) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    import numpy as np

    if len(a) == 0 or len(b) == 0:
        return None
    sa, sb = (x if sorted_ else np.sort(x) for x in (a, b))
    grid = np.concatenate([sa, sb])
    fa = np.searchsorted(sa, grid, side="right") / len(sa)
    fb = np.searchsorted(sb, grid, side="right") / len(sb)
    return float(np.max(np.abs(fa - fb)))


def common_temporal(type_: Any) -> Any:
    """One tick size per temporal family, so that ``timestamp[ns]`` and ``timestamp[us]`` columns (pandas 2
    vs pandas 3 writes) compare as the same instants rather than as integers 1000x apart."""
    import pyarrow as pa

    if pa.types.is_timestamp(type_):
        return pa.timestamp("us", tz=type_.tz)
    if pa.types.is_duration(type_):
        return pa.duration("us")
    if pa.types.is_date(type_):
        return pa.date32()
    return type_


def _quantile_value(value: float, kind: str, type_: Any) -> Any:
    if kind != "temporal":
        return value
    import pyarrow as pa

    scalar = pa.scalar(round(value), pa.int64()).cast(common_temporal(type_)) if type_ is not None else None
    item = scalar.as_py() if scalar is not None else value
    return item.isoformat() if hasattr(item, "isoformat") else str(item)


def shift(column: str, kind: str, a: ColumnSketch, b: ColumnSketch, type_: Any = None) -> StatsShift:
    """The :class:`StatsShift` of ``column`` from the two sides' sketches."""
    import numpy as np

    if kind in ("numeric", "temporal"):
        xa, xb = np.sort(a.numbers()), np.sort(b.numbers())
        qs = list(QUANTILES.values())
        qa = [_quantile_value(float(v), kind, type_) for v in np.quantile(xa, qs)] if len(xa) else [None] * len(qs)
        qb = [_quantile_value(float(v), kind, type_) for v in np.quantile(xb, qs)] if len(xb) else [None] * len(qs)
        quantiles: dict[str, tuple[Any, Any]] = dict(zip(QUANTILES, zip(qa, qb, strict=True), strict=True))
        histogram = None
        if len(xa) or len(xb):
            both = np.concatenate([xa, xb])
            lo, hi = float(both.min()), float(both.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, HIST_BINS + 1)
            ha = np.histogram(xa, edges)[0] / max(len(xa), 1)
            hb = np.histogram(xb, edges)[0] / max(len(xb), 1)
            histogram = {"edges": edges.tolist(), "a": ha.tolist(), "b": hb.tolist()}
        ma, sa = a.moments() if kind == "numeric" else (None, None)
        mb, sb = b.moments() if kind == "numeric" else (None, None)
        return StatsShift(
            column=column,
            kind=kind,
            mean=(ma, mb) if kind == "numeric" else None,
            std=(sa, sb) if kind == "numeric" else None,
            quantiles=quantiles,
            psi=psi(xa, xb),
            ks=ks(xa, xb, sorted_=True),
            histogram=histogram,
        )
    if kind == "categorical":
        top_a, top_b = a.frequencies(2 * TOP_CATEGORIES), b.frequencies(2 * TOP_CATEGORIES)
        fa = a.frequencies(2 * TOP_CATEGORIES, sorted(set(top_b) - set(top_a))) if top_b else top_a
        fb = b.frequencies(2 * TOP_CATEGORIES, sorted(set(top_a) - set(top_b))) if top_a else top_b
        ranked = sorted(set(fa) | set(fb), key=lambda c: (-max(fa.get(c, 0.0), fb.get(c, 0.0)), c))
        top = ranked[:TOP_CATEGORIES]
        shares = {c: (fa.get(c, 0.0), fb.get(c, 0.0)) for c in top}
        psi_value = None
        if fa and fb:
            bins = ranked[: 2 * TOP_CATEGORIES]
            rest_a = max(0.0, 1.0 - sum(fa.get(c, 0.0) for c in bins))
            rest_b = max(0.0, 1.0 - sum(fb.get(c, 0.0) for c in bins))
            psi_value = _psi_from_shares(
                [fa.get(c, 0.0) for c in bins] + [rest_a], [fb.get(c, 0.0) for c in bins] + [rest_b]
            )
        histogram = {"labels": top, "a": [shares[c][0] for c in top], "b": [shares[c][1] for c in top]}
        return StatsShift(column=column, kind=kind, psi=psi_value, frequency_shift=shares, histogram=histogram)
    return StatsShift(column=column, kind=kind)
