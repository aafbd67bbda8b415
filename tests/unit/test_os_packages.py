"""OS packages: dpkg status and apk installed parsed as text, and their SBOM components (pkg:deb, pkg:apk)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_sbom import assert_valid, sbom_of  # tests/unit is on sys.path

from envsnap.capture import target as target_mod
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.os_packages import (
    OsPackagesProbe,
    os_components,
    os_packages,
    parse_apk_installed,
    parse_dpkg_status,
)
from envsnap.capture.sbom import spdx_ids

# Stanzas of this Debian 12 image's /var/lib/dpkg/status, long descriptions cut; then a removed package.
DPKG_STATUS = """\
Package: bsdutils
Essential: yes
Status: install ok installed
Priority: required
Section: utils
Installed-Size: 355
Maintainer: util-linux packagers <util-linux@packages.debian.org>
Architecture: amd64
Multi-Arch: foreign
Source: util-linux (2.38.1-5+deb12u3)
Version: 1:2.38.1-5+deb12u3
Pre-Depends: libc6 (>= 2.34), libsystemd0
Recommends: bsdextrautils
Description: basic utilities from 4.4BSD-Lite
 This package contains the bare minimum of BSD utilities needed for a Debian
 system: logger, renice, script, scriptlive, scriptreplay and wall. The
 remaining standard BSD utilities are provided by bsdextrautils.
Homepage: https://www.kernel.org/pub/linux/utils/util-linux/

Package: ca-certificates
Status: install ok installed
Priority: standard
Section: misc
Installed-Size: 387
Maintainer: Julien Cristau <jcristau@debian.org>
Architecture: all
Multi-Arch: foreign
Version: 20230311+deb12u1
Depends: openssl (>= 1.1.1), debconf (>= 0.5) | debconf-2.0
Breaks: ca-certificates-java (<< 20121112+nmu1)
Enhances: openssl
Description: Common CA certificates
 Contains the certificate authorities shipped with Mozilla's browser to allow
 SSL-based applications to check for the authenticity of SSL connections.

Package: libstdc++6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 2686
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: gcc-12
Version: 12.2.0-14+deb12u1
Replaces: libstdc++6-12-dbg (<< 4.9.0-3)
Depends: gcc-12-base (= 12.2.0-14+deb12u1), libc6 (>= 2.36), libgcc-s1 (>= 4.2)
Description: GNU Standard C++ Library v3
 This package contains an additional runtime library for C++ programs built
 with the GNU compiler.
 Package: this continuation line is part of the description, not a stanza
Homepage: http://gcc.gnu.org/

Package: oldtool
Status: deinstall ok config-files
Priority: optional
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/oldtool.conf 0123456789abcdef0123456789abcdef
"""

# An apk database as Alpine writes /lib/apk/db/installed (checksums and file lists shortened).
APK_INSTALLED = """\
C:Q1sSNCes5RhRakr8nE3SKz4R4t8lA=
P:musl
V:1.2.4-r2
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1698066453
c:b5d9e1c6e3d11e4b6c1c9b1fa0bd4d5b08d5c1a1
F:lib
R:ld-musl-x86_64.so.1

C:Q1JkQ+hdYtVkUbCg9BbTnwuaTpeWE=
P:libcrypto3
V:3.1.4-r5
A:x86_64
S:1721238
I:4407296
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
t:1706021014
"""


def test_dpkg_status_rows() -> None:
    assert parse_dpkg_status(DPKG_STATUS) == [
        ["bsdutils", "1:2.38.1-5+deb12u3", "amd64", "util-linux", None],
        ["ca-certificates", "20230311+deb12u1", "all", None, None],
        ["libstdc++6", "12.2.0-14+deb12u1", "amd64", "gcc-12", None],
    ]  # oldtool left only its configuration behind: not installed


def test_apk_installed_rows() -> None:
    assert parse_apk_installed(APK_INSTALLED) == [
        ["musl", "1.2.4-r2", "x86_64", None, "MIT"],
        ["libcrypto3", "3.1.4-r5", "x86_64", "openssl", "Apache-2.0"],
    ]
    assert parse_apk_installed(APK_INSTALLED.replace("\n", "\r\n"))[1][0] == "libcrypto3"


@pytest.mark.parametrize("text", ["", "\n\n", "garbage without fields", "Package:\nStatus: install ok installed\n"])
def test_odd_databases_give_no_rows(text: str) -> None:
    assert parse_dpkg_status(text) == []
    assert parse_apk_installed(text) == []


def test_this_machines_dpkg_status_is_read_whole() -> None:
    status = Path("/var/lib/dpkg/status")
    if not status.is_file():
        pytest.skip("not a dpkg system")
    text = status.read_text(encoding="utf-8", errors="replace")
    installed = len(re.findall(r"^Status: \S+ \S+ installed$", text, re.M))
    rows = parse_dpkg_status(text)
    assert len(rows) == installed > 0
    assert all(row[0] and row[1] and row[2] for row in rows)


def _root_with(tmp_path: Path, path: str, text: str) -> Path:
    database = tmp_path / path.lstrip("/")
    database.parent.mkdir(parents=True)
    database.write_text(text, encoding="utf-8")
    return tmp_path


def test_os_packages_document(tmp_path: Path) -> None:
    root = _root_with(tmp_path, "/var/lib/dpkg/status", DPKG_STATUS)
    (root / "var/lib/rpm").mkdir()
    (root / "var/lib/rpm" / "Packages").write_bytes(b"\0" * 64)  # a Berkeley DB: not readable here
    data = os_packages(str(root))
    assert data["columns"] == ["name", "version", "arch", "source", "license"]
    (dpkg,) = data["managers"]
    assert dpkg["manager"] == "dpkg"
    assert dpkg["path"] == "/var/lib/dpkg/status"
    assert [row[0] for row in dpkg["packages"]] == ["bsdutils", "ca-certificates", "libstdc++6"]
    assert data["unsupported"] == ["rpm (/var/lib/rpm): a Berkeley DB or NDB database needs rpm's own reader"]
    assert os_packages(str(tmp_path / "empty")) == {"columns": data["columns"], "managers": [], "unsupported": []}


DEBIAN = {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"}


def test_os_components_have_purls_as_the_purl_spec_writes_them(tmp_path: Path) -> None:
    data = os_packages(str(_root_with(tmp_path, "/var/lib/dpkg/status", DPKG_STATUS)))
    system, *packages = os_components(data, DEBIAN, spdx_ids())
    assert system == {
        "bom-ref": "os:debian@12",
        "type": "operating-system",
        "name": "debian",
        "version": "12",
        "description": "Debian GNU/Linux 12 (bookworm)",
    }
    assert [p["purl"] for p in packages] == [
        "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12",
        "pkg:deb/debian/ca-certificates@20230311%2Bdeb12u1?arch=all&distro=debian-12",
        "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12",
    ]
    assert packages[2]["name"] == "libstdc++6"
    assert packages[2]["version"] == "12.2.0-14+deb12u1"
    from packageurl import PackageURL

    # packageurl-python reads them back to the same fields.
    parsed = PackageURL.from_string(packages[0]["purl"])
    assert (parsed.type, parsed.namespace, parsed.name, parsed.version) == (
        "deb",
        "debian",
        "bsdutils",
        "1:2.38.1-5+deb12u3",
    )
    assert parsed.qualifiers == {"arch": "amd64", "distro": "debian-12"}


def test_apk_packages_carry_their_license(tmp_path: Path) -> None:
    data = os_packages(str(_root_with(tmp_path, "/lib/apk/db/installed", APK_INSTALLED)))
    _, libcrypto, musl = os_components(data, {"id": "alpine", "version_id": "3.19.1"}, spdx_ids())
    assert musl["purl"] == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"
    assert musl["licenses"] == [{"license": {"acknowledgement": "declared", "id": "MIT"}}]
    assert libcrypto["licenses"] == [{"license": {"acknowledgement": "declared", "id": "Apache-2.0"}}]


def _context(**options: Any) -> CaptureContext:
    return CaptureContext(CaptureOptions(**options), target_mod.in_process)


def test_the_probe_runs_only_when_asked() -> None:
    assert not OsPackagesProbe().enabled(_context())
    assert OsPackagesProbe().enabled(_context(os_packages=True))


def test_the_sbom_lists_the_os_and_its_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_probe_packages import target_of, write_dist

    write_dist(tmp_path / "site", "app")
    data = os_packages(str(_root_with(tmp_path / "root", "/var/lib/dpkg/status", DPKG_STATUS)))
    target = target_of(tmp_path / "site")
    plain = sbom_of(target, {"libraries": []})
    assert not any(c["type"] == "operating-system" for c in plain["components"])

    from envsnap.capture import sbom

    monkeypatch.setattr(sbom, "_os_release", lambda ctx: DEBIAN)
    ctx = CaptureContext(CaptureOptions(os_packages=True), lambda: target)
    from envsnap.capture.packages import PackagesProbe

    ctx.results["packages"] = PackagesProbe().collect(ctx)
    ctx.results["native"] = {"libraries": []}
    ctx.results["os_packages"] = data
    document = sbom.SbomProbe().collect(ctx)
    assert_valid(document)
    refs = {c["bom-ref"] for c in document["components"]}
    assert "os:debian@12" in refs
    assert "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12" in refs
    root = next(d for d in document["dependencies"] if d["ref"] == sbom.ROOT_REF)
    assert "os:debian@12" in root["dependsOn"]


def _rpm_header(fields: list[tuple[int, int, bytes]]) -> bytes:
    """An rpm header blob as rpm exports it: il, dl, (tag, type, offset, count) entries, then the data."""
    import struct

    entries, data = b"", b""
    for tag, kind, value in fields:
        if kind == 4:
            data += b"\0" * (-len(data) % 4)  # int32 data is aligned
        entries += struct.pack(">iIiI", tag, kind, len(data), 1)
        data += value
    return struct.pack(">ii", len(fields), len(data)) + entries + data


def _rpmdb(path: Path, headers: list[bytes]) -> None:
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(h,) for h in headers])
    connection.close()


def test_rpm_sqlite_database(tmp_path: Path) -> None:
    import struct

    def text(value: str) -> bytes:
        return value.encode() + b"\0"

    bash = _rpm_header(
        [
            (63, 7, b"\0" * 16),  # the immutable region marker every installed header starts with
            (1000, 6, text("bash")),
            (1001, 6, text("5.2.26")),
            (1002, 6, text("3.fc40")),
            (1014, 6, text("GPL-3.0-or-later")),
            (1022, 6, text("x86_64")),
            (1044, 6, text("bash-5.2.26-3.fc40.src.rpm")),
        ]
    )
    openssl = _rpm_header(
        [
            (1000, 6, text("openssl-libs")),
            (1003, 4, struct.pack(">i", 1)),
            (1001, 6, text("3.2.2")),
            (1002, 6, text("3.fc40")),
            (1014, 6, text("Apache-2.0")),
            (1022, 6, text("x86_64")),
            (1044, 6, text("openssl-3.2.2-3.fc40.src.rpm")),
        ]
    )
    key = _rpm_header([(1000, 6, text("gpg-pubkey")), (1001, 6, text("a15b79cc"))])
    _rpmdb(tmp_path / "usr/lib/sysimage/rpm/rpmdb.sqlite", [bash, openssl, key, b"\0\0\0\5garbage"])
    (tmp_path / "var/lib").mkdir(parents=True)
    (tmp_path / "var/lib/rpm").symlink_to(tmp_path / "usr/lib/sysimage/rpm")  # as Fedora links it
    data = os_packages(str(tmp_path))
    assert data["unsupported"] == []
    (rpm,) = data["managers"]
    assert rpm["path"] == "/var/lib/rpm/rpmdb.sqlite"
    assert rpm["packages"] == [
        ["bash", "5.2.26-3.fc40", "x86_64", None, "GPL-3.0-or-later"],
        ["openssl-libs", "1:3.2.2-3.fc40", "x86_64", "openssl", "Apache-2.0"],
    ]
    _, bash_component, openssl_component = os_components(data, {"id": "fedora", "version_id": "40"}, spdx_ids())
    assert bash_component["purl"] == "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40"
    assert openssl_component["purl"] == "pkg:rpm/fedora/openssl-libs@3.2.2-3.fc40?arch=x86_64&distro=fedora-40&epoch=1"
    assert bash_component["licenses"] == [{"license": {"acknowledgement": "declared", "id": "GPL-3.0-or-later"}}]


def test_an_unreadable_rpm_database_is_named(tmp_path: Path) -> None:
    database = tmp_path / "var/lib/rpm/rpmdb.sqlite"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"not a database at all" * 10)
    data = os_packages(str(tmp_path))
    assert data["managers"] == []
    (line,) = data["unsupported"]
    assert line.startswith("rpm (/var/lib/rpm/rpmdb.sqlite): unreadable (DatabaseError")
