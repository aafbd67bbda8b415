"""The replay's platform decision and base-image fallback, from recorded inputs (tests/fixtures_platforms)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envsnap.replay.platforms import (
    EngineSupport,
    base_image_candidates,
    captured_arch,
    choose_base,
    decide_platform,
    emulation_from_binfmt,
    emulation_from_docker_info,
    local_support,
    missing_wheels,
    normalize_arch,
    wheel_arches,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_platforms"
PICKS = json.loads((FIXTURES / "wheels.json").read_text(encoding="utf-8"))["picks"]
PINS = [tuple(pin.split("==")) for pin in PICKS]


def _files(arch: str) -> dict[str, list[str]]:
    """What the index offered per distribution, for ``arch`` (the recorded picks, errors as no file)."""
    out: dict[str, list[str]] = {}
    for pin, by_arch in PICKS.items():
        name = pin.split("==")[0]
        out[name] = [by_arch[arch]["file"]] if "file" in by_arch[arch] else []
    return out


def _binfmt(*names: str) -> dict[str, str]:
    return {n: (FIXTURES / "binfmt_misc" / n).read_text(encoding="utf-8") for n in names}


def test_arch_spellings() -> None:
    assert normalize_arch("arm64") == normalize_arch("aarch64") == normalize_arch("linux/arm64") == "aarch64"
    assert normalize_arch("amd64") == normalize_arch("x86_64") == "x86_64"
    assert normalize_arch("sparc") is None and normalize_arch(None) is None
    assert captured_arch("linux-x86_64") == "x86_64"
    assert captured_arch("macosx-11.0-arm64") == "aarch64"
    assert captured_arch("linux-aarch64") == "aarch64"


def test_wheel_arches_of_recorded_file_names() -> None:
    for pin, by_arch in PICKS.items():
        for arch, pick in by_arch.items():
            if "file" in pick:
                arches = wheel_arches(pick["file"])
                assert arches is None or arch in arches, (pin, arch, pick)
    assert wheel_arches("requests-2.32.3-py3-none-any.whl") is None
    assert wheel_arches("mkl-2024.0.0-py2.py3-none-manylinux1_x86_64.whl") == {"x86_64"}
    assert wheel_arches("numpy-1.26.4-cp311-cp311-macosx_11_0_arm64.whl") == frozenset()
    assert wheel_arches("numpy-1.26.4-cp311-cp311-musllinux_1_1_aarch64.whl") == frozenset()


def test_missing_arm64_wheels_are_named() -> None:
    # aarch64 is offered numpy..requests but only the x86_64 wheels of mkl and intel-openmp exist.
    offered = {name: _files("aarch64")[name] + _files("x86_64")[name] for name in _files("aarch64")}
    assert missing_wheels(PINS, offered, "aarch64") == ("intel-openmp==2024.0.2", "mkl==2024.0.0")
    assert missing_wheels(PINS, offered, "x86_64") == ()
    # Another version's wheel does not count; an unknown distribution is not reported missing.
    assert missing_wheels([("numpy", "2.0.0"), ("torch", "2.3.0")], offered, "aarch64") == ("numpy==2.0.0",)
    assert missing_wheels(PINS, {}, "aarch64") is None


def test_binfmt_entries() -> None:
    emulated, source = emulation_from_binfmt(_binfmt("qemu-x86_64", "qemu-aarch64", "python3.11", "status"))
    assert emulated == {"x86_64"}  # qemu-aarch64 is disabled, python3.11 is no ELF handler
    assert "qemu-x86_64" in source and "/usr/libexec/qemu-binfmt/x86_64-binfmt-P" in source
    assert emulation_from_binfmt(_binfmt("rosetta"))[0] == {"x86_64"}
    assert emulation_from_binfmt(_binfmt("python3.11")) == (frozenset(), "no binfmt_misc handler")


def test_local_support_reads_a_binfmt_directory() -> None:
    support = local_support("docker", binfmt_dir=str(FIXTURES / "binfmt_misc"))
    assert "x86_64" not in support.emulated  # the host's own architecture is never "emulated"
    assert local_support("venv").emulated == frozenset()
    assert local_support("docker", binfmt_dir="/nonexistent").source == "no binfmt_misc handler"


def test_docker_info() -> None:
    info = json.loads((FIXTURES / "docker-info-linux-x86_64.json").read_text(encoding="utf-8"))
    assert emulation_from_docker_info(info) == ("x86_64", frozenset())
    desktop = {**info, "Architecture": "aarch64", "OperatingSystem": "Docker Desktop"}
    assert emulation_from_docker_info(desktop) == ("aarch64", frozenset({"x86_64"}))


def test_same_architecture_is_native() -> None:
    choice = decide_platform("x86_64", EngineSupport("x86_64"))
    assert (choice.mode, choice.platform) == ("native", "linux/amd64")
    assert decide_platform(None, EngineSupport("aarch64")).mode == "native"


def test_arm64_laptop_with_emulation_runs_the_amd64_image() -> None:
    emulated, source = emulation_from_binfmt(_binfmt("qemu-x86_64"))
    choice = decide_platform("x86_64", EngineSupport("aarch64", emulated, source), pins=PINS)
    assert (choice.mode, choice.platform, choice.missing) == ("emulated", "linux/amd64", None)
    assert "under emulation on this aarch64 host" in choice.line() and "qemu-x86_64" in choice.line()


def test_arm64_laptop_without_emulation_rebuilds_from_arm64_wheels() -> None:
    support = EngineSupport("aarch64", frozenset(), "no binfmt_misc handler")
    choice = decide_platform("x86_64", support, pins=PINS, wheel_files=_files("aarch64"))
    assert (choice.mode, choice.platform) == ("rebuilt", "linux/arm64")
    assert choice.missing == ("intel-openmp==2024.0.2", "mkl==2024.0.0")
    assert "no aarch64 wheel for: intel-openmp==2024.0.2, mkl==2024.0.0" in choice.line()
    unchecked = decide_platform("x86_64", support, pins=PINS)
    assert unchecked.missing is None and "known once the wheels are gathered" in unchecked.line()
    # Every pin has an aarch64 wheel: said so.
    complete = [p for p in PINS if p[0] not in ("mkl", "intel-openmp")]
    assert decide_platform("x86_64", support, pins=complete, wheel_files=_files("aarch64")).missing == ()


def test_base_image_candidates_and_fallback() -> None:
    candidates = base_image_candidates("3.11.7", "bookworm")
    assert candidates == ("python:3.11.7-slim-bookworm", "python:3.11.7-slim", "python:3.11-slim-bookworm")
    taken = choose_base(candidates, lambda ref: None)
    assert (taken.image, taken.fell_back, taken.note()) == ("python:3.11.7-slim-bookworm", False, "")
    missing = {"python:3.11.7-slim-bookworm": "manifest unknown", "python:3.11.7-slim": "no linux/arm64 manifest"}
    fell = choose_base(candidates, missing.get)
    assert fell.image == "python:3.11-slim-bookworm"
    assert fell.note() == (
        "fell back to python:3.11-slim-bookworm: python:3.11.7-slim-bookworm cannot be pulled (manifest unknown); "
        "python:3.11.7-slim cannot be pulled (no linux/arm64 manifest)"
    )
    none = choose_base(candidates, lambda ref: "registry unreachable")
    assert none.image is None and none.note().startswith("no candidate can be pulled")


@pytest.mark.parametrize("version", ["3.12.4", "3.9.19"])
def test_candidates_are_distinct(version: str) -> None:
    candidates = base_image_candidates(version, "bookworm")
    assert len(set(candidates)) == 3 and all(c.startswith("python:3.") for c in candidates)


# --- wired into the plan, the dry run and the fidelity report ----------------------------------------------


@pytest.fixture(scope="module")
def snap() -> Any:
    """A snapshot of this (x86_64) interpreter."""
    from envsnap.capture import capture

    return capture(git=False)


ARM64_QEMU = EngineSupport("aarch64", frozenset({"x86_64"}), "binfmt_misc qemu-x86_64: /usr/bin/qemu-x86_64-static")
ARM64_BARE = EngineSupport("aarch64", frozenset(), "no binfmt_misc handler")


def test_the_plan_says_how_an_arm64_host_runs_an_x86_64_capture(snap: Any) -> None:
    from envsnap.replay.fidelity import platform_differences
    from envsnap.replay.plan import build_plan
    from envsnap.replay.render import plan_json, render_plan

    native = build_plan(snap, support=EngineSupport("x86_64"))
    emulated = build_plan(snap, support=ARM64_QEMU)
    rebuilt = build_plan(snap, support=ARM64_BARE)
    assert native.platform_choice is not None and native.platform_choice.mode == "native"
    assert emulated.platform_choice is not None and emulated.platform_choice.mode == "emulated"
    assert rebuilt.platform_choice is not None and rebuilt.platform_choice.mode == "rebuilt"
    # The emulated replay runs the very amd64 image; wheels for another architecture make another image.
    assert emulated.image_key("uv") == native.image_key("uv") != rebuilt.image_key("uv")
    assert "  platform     native linux/amd64\n" in render_plan(native)
    assert "  platform     linux/amd64 under emulation on this aarch64 host (binfmt_misc qemu-x86_64" in render_plan(
        emulated
    )
    assert "  platform     linux/arm64: wheels of the same versions built for aarch64" in render_plan(rebuilt)
    assert json.loads(plan_json(emulated))["platform_choice"]["mode"] == "emulated"
    assert platform_differences(native) == []
    [arch] = platform_differences(emulated)
    assert (arch.layer, arch.what, arch.recorded, arch.replayed) == (
        "platform",
        "architecture",
        "x86_64",
        "x86_64 (emulated)",
    )
    assert platform_differences(rebuilt)[0].replayed == "aarch64"


def test_the_plan_falls_back_from_the_exact_python_image_and_says_why(snap: Any) -> None:
    from envsnap.replay.fidelity import platform_differences
    from envsnap.replay.plan import build_plan, resolve_base
    from envsnap.replay.render import render_plan

    plan = build_plan(snap, support=EngineSupport("x86_64"))
    exact, plain, minor = plan.base_candidates
    assert plan.base_image == exact and exact.endswith("-slim-bookworm")
    assert f"if it cannot be pulled: {plain}, then {minor}" in render_plan(plan)
    assert resolve_base(plan, lambda ref: None) is plan
    fell = resolve_base(plan, {exact: "manifest unknown"}.get)
    assert fell.base_image == plain
    assert fell.base_fallback == f"fell back to {plain}: {exact} cannot be pulled (manifest unknown)"
    assert f"    fell back to {plain}" in render_plan(fell)
    [base] = platform_differences(fell)
    assert (base.what, base.recorded, base.replayed) == ("base image", exact, plain)
    # --base-image is taken as given: no candidates, nothing to fall back from.
    given = build_plan(snap, base_image="debian:bookworm", support=EngineSupport("x86_64"))
    assert given.base_candidates == () and resolve_base(given, lambda ref: "absent") is given


def test_the_fidelity_report_names_each_version_without_an_arm64_wheel(snap: Any) -> None:
    import dataclasses

    from envsnap.replay.fidelity import platform_differences
    from envsnap.replay.plan import build_plan

    plan = build_plan(snap, support=ARM64_BARE)
    choice = decide_platform("x86_64", ARM64_BARE, pins=PINS, wheel_files=_files("aarch64"))
    arch, *pins = platform_differences(dataclasses.replace(plan, platform_choice=choice))
    assert arch.note == (
        "linux/arm64: wheels of the same versions built for aarch64 "
        "(the engine cannot run x86_64: no binfmt_misc handler)"
    )
    assert [(d.what, d.recorded, d.replayed, d.note) for d in pins] == [
        ("intel-openmp==2024.0.2", "installed", "(absent)", "no aarch64 wheel of this version"),
        ("mkl==2024.0.0", "installed", "(absent)", "no aarch64 wheel of this version"),
    ]


def test_the_engine_is_told_the_platform_and_the_wheelhouse_the_host(snap: Any) -> None:
    from envsnap.replay.engines.docker import hardened_options, run_platform
    from envsnap.replay.plan import build_plan
    from envsnap.replay.wheelhouse import Target

    native = build_plan(snap, support=EngineSupport("x86_64"))
    emulated = build_plan(snap, support=ARM64_QEMU)
    rebuilt = build_plan(snap, support=ARM64_BARE)
    assert run_platform(native) is None and "platform" not in hardened_options(native)
    assert run_platform(emulated) == hardened_options(emulated)["platform"] == "linux/amd64"
    assert run_platform(rebuilt) is None  # the host's own images, with the host's wheels:
    assert Target.of(rebuilt).machine == "aarch64"
    assert Target.of(emulated).machine == Target.of(native).machine == "x86_64"
