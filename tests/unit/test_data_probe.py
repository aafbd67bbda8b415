"""The data probe: sampled inputs become members, tables reach ctx.samples, failures name the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envsnap.capture import capture, run_probes, target
from envsnap.capture.base import CaptureContext, CaptureOptions, InputSpec, ProbeOutput, SampleOptions
from envsnap.capture.data import DataProbe, InputsError
from envsnap.capture.sample import mask_salt, mask_token
from envsnap.snapshot import canonical
from envsnap.snapshot.schema import validate_member

KEY_ENV = {"ENVSNAP_REDACTION_KEY": "a-test-key-of-sufficient-length", "HOME": "/nonexistent"}


def context(inputs: dict[str, Any], environ: dict[str, str] | None = None, **sampling: Any) -> CaptureContext:
    options = CaptureOptions(
        inputs=tuple(InputSpec(name, source) for name, source in inputs.items()),
        sampling=SampleOptions(**sampling),
        environ=environ if environ is not None else dict(KEY_ENV),
        argv=("t",),
    )
    return CaptureContext(options, target.in_process)


def check_members(output: ProbeOutput) -> None:
    validate_member("<test>", "data/inputs.json", output.data)
    for member, data in output.extra.items():
        if member.endswith(".json"):
            validate_member("<test>", member, data)
            canonical.dumps(data)


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.parquet"
    table = pa.table({"id": list(range(5000)), "email": [f"u{i % 70}@example.org" for i in range(5000)]})
    pq.write_table(table, path, row_group_size=1000)
    return path


def test_enabled_only_with_inputs() -> None:
    assert not DataProbe().enabled(context({}))
    assert DataProbe().enabled(context({"t": pa.table({"a": [1]})}))


def test_inputs_become_members_and_samples(events_file: Path) -> None:
    frame = pa.table({"k": list(range(50)), "v": [float(i) for i in range(50)]})
    ctx = context({"events": str(events_file), "frame": frame}, rows=200, seed=1)
    output = DataProbe().collect(ctx)
    check_members(output)
    assert output.data == {
        "inputs": {
            "events": {
                "parquet": "data/inputs/events.parquet",
                "record": "data/inputs/events.json",
                "rows": 200,
                "source": str(events_file),
            },
            "frame": {
                "parquet": "data/inputs/frame.parquet",
                "record": "data/inputs/frame.json",
                "rows": 50,
                "source": "<Table>",
            },
        }
    }
    assert set(output.extra) == {f"data/inputs/{n}.{e}" for n in ("events", "frame") for e in ("parquet", "json")}
    stored = pq.read_table(pa.BufferReader(output.extra["data/inputs/events.parquet"]))
    assert stored.equals(ctx.samples["events"]) and stored.num_rows == 200
    assert ctx.samples["frame"].equals(frame)
    assert output.extra["data/inputs/events.json"]["rows"] == 200


def test_a_bad_input_is_recorded_and_raised_with_the_good_ones_kept(events_file: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.csv.txt"
    bogus.write_text("a,b\n1,2\n")
    ctx = context({"events": str(events_file), "bogus": str(bogus), "missing": str(tmp_path / "nope.parquet")})
    with pytest.raises(InputsError) as info:
        DataProbe().collect(ctx)
    message = str(info.value)
    assert "input 'bogus'" in message and "neither a parquet file" in message
    assert "input 'missing'" in message and "no such file" in message
    partial = info.value.partial
    check_members(partial)
    assert partial.data["inputs"]["bogus"]["error"].startswith("input 'bogus'")
    assert partial.data["inputs"]["events"]["rows"] == 1000
    assert set(partial.extra) == {"data/inputs/events.parquet", "data/inputs/events.json"}
    assert list(ctx.samples) == ["events"]


def test_input_names_must_be_member_safe() -> None:
    with pytest.raises(InputsError, match="an input name must be"):
        DataProbe().collect(context({"../escape": pa.table({"a": [1]})}))


def test_masking_uses_the_users_key_and_is_consistent_across_inputs(events_file: Path) -> None:
    users = pa.table({"email": [f"u{i}@example.org" for i in range(70)], "plan": ["free"] * 70})
    ctx = context({"events": str(events_file), "users": users}, rows=300, mask=("email",))
    output = DataProbe().collect(ctx)
    check_members(output)
    salt = mask_salt(KEY_ENV)
    tokens = set(ctx.samples["events"].column("email").to_pylist())
    assert tokens <= {mask_token(f"u{i}@example.org", salt) for i in range(70)}
    assert tokens <= set(ctx.samples["users"].column("email").to_pylist())  # joins on the token still work
    for member, data in output.extra.items():
        raw = data if isinstance(data, bytes) else canonical.dumps(data)
        assert b"example.org" not in raw, member


def test_an_unknown_mask_column_names_the_input_and_column(events_file: Path) -> None:
    with pytest.raises(InputsError, match=r"input 'events' .*no column 'ssn' \(--mask\)"):
        DataProbe().collect(context({"events": str(events_file)}, mask=("ssn",)))


def test_run_probes_records_the_failure_by_name(events_file: Path, tmp_path: Path) -> None:
    ctx = context({"events": str(events_file), "bad": str(tmp_path / "nope.csv")})
    members, statuses = run_probes(ctx, [DataProbe])
    assert statuses["data"].status == "error"
    assert statuses["data"].error is not None and "input 'bad'" in statuses["data"].error
    assert "data/inputs.json" in members


def test_capture_writes_inputs_that_read_back_and_reproduce(events_file: Path, tmp_path: Path) -> None:
    import envsnap

    frame = pa.table({"x": [1.5, None, 3.0]})
    shots = []
    for name in ("a", "b"):
        snap = capture(
            tmp_path / f"{name}.envsnap",
            inputs={"events": str(events_file), "frame": frame},
            sampling=SampleOptions(rows=100, seed=7),
            reproducible=True,
            git=False,
        )
        assert snap.manifest.probes["data"].status == "ok"
        shots.append(envsnap.load(tmp_path / f"{name}.envsnap"))
    first, second = shots
    for member in (
        "data/inputs.json",
        "data/inputs/events.json",
        "data/inputs/events.parquet",
        "data/inputs/frame.parquet",
    ):
        assert first.read_bytes(member) == second.read_bytes(member), member
    record = first.read_json("data/inputs/events.json")  # schema-checked on read
    assert record["source"]["rows"] == 5000 and record["rows"] == 100
    table = pq.read_table(pa.BufferReader(first.read_bytes("data/inputs/events.parquet")))
    assert table.num_rows == 100
    assert first.verify().members == len(first.members())  # errors raise
