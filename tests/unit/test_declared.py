"""Declared licenses from core metadata: SPDX ids, expressions, trove classifiers (envsnap/capture/declared.py)."""

from __future__ import annotations

import pytest

from envsnap.capture.declared import TROVE_TO_SPDX, DeclaredLicense, declared_licenses, is_spdx_expression
from envsnap.capture.sbom import spdx_ids

KNOWN = spdx_ids()


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("MIT", True),
        ("Apache-2.0 OR MIT", True),
        ("(Apache-2.0 OR BSD-3-Clause) AND MIT", True),
        ("apache-2.0 or mit", True),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", True),
        ("GPL-2.0+", True),
        ("LicenseRef-Proprietary AND MIT", True),
        ("MIT AND", False),
        ("(MIT", False),
        ("MIT)", False),
        ("Apache 2.0", False),
        ("BSD", False),
        ("MIT WITH NotAnException", False),
        ("", False),
        ("MIT OR OR Apache-2.0", False),
        ("Copyright (c) 2020 someone", False),
    ],
)
def test_spdx_expressions(text: str, valid: bool) -> None:
    assert is_spdx_expression(text, KNOWN) is valid


def test_every_mapped_classifier_names_a_known_spdx_id() -> None:
    assert all(value.lower() in KNOWN for value in TROVE_TO_SPDX.values())
    assert all(key.startswith("License :: ") for key in TROVE_TO_SPDX)


def test_declared_licenses_in_pep_639_order() -> None:
    mit = "License :: OSI Approved :: MIT License"
    assert declared_licenses("MIT", "Apache-2.0", [mit], KNOWN) == [DeclaredLicense(id="MIT")]
    assert declared_licenses("MIT OR 0BSD", None, [], KNOWN) == [DeclaredLicense(expression="MIT OR 0BSD")]
    assert declared_licenses(None, "mit", [mit, mit], KNOWN) == [DeclaredLicense(id="MIT")]
    assert declared_licenses(None, "The MIT license, see LICENSE", [], KNOWN) == []
    assert declared_licenses(None, None, ["License :: Other/Proprietary License", "Topic :: Science"], KNOWN) == [
        DeclaredLicense(name="License :: Other/Proprietary License")
    ]
