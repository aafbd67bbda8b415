"""The system probe: os-release, CPU, memory, cgroup v1/v2/hybrid limits, locale and timezone."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envsnap._target.host import cgroup_limits
from envsnap._target.system import (
    cgroup_version,
    format_cpu_list,
    locale_facts,
    parse_cpu_list,
    parse_cpu_max,
    parse_cpuinfo,
    parse_meminfo_total,
    parse_memory_limit,
    parse_mountinfo_cgroups,
    parse_os_release,
    parse_proc_cgroup,
    parse_v1_cpu_quota,
    zone_from_localtime_target,
)
from envsnap.capture import target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.capture.system import SystemProbe
from envsnap.snapshot.schema import validate_member

UBUNTU_OS_RELEASE = """\
# a comment
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL='https://www.ubuntu.com/'
BROKEN LINE WITHOUT EQUALS
"""

# Two sockets, two cores each, two threads per core: 8 logical, 4 physical.
X86_CPUINFO = "\n".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
    f"model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nstepping\t: 4\n"
    f"physical id\t: {n // 4}\ncore id\t\t: {(n // 2) % 2}\ncpu cores\t: 2\n"
    f"flags\t\t: fpu sse2 avx2 avx512f sse2\n"
    for n in range(8)
)

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0c
CPU revision\t: 1
"""


def test_os_release_is_parsed_with_quotes_comments_and_junk() -> None:
    release = parse_os_release(UBUNTU_OS_RELEASE)
    assert release["id"] == "ubuntu"
    assert release["version_id"] == "22.04"
    assert release["pretty_name"] == "Ubuntu 22.04.4 LTS"
    assert release["version_codename"] == "jammy"
    assert release["home_url"] == "https://www.ubuntu.com/"
    assert "broken line without equals" not in release


def test_x86_cpuinfo_counts_sockets_cores_threads_and_sorts_flags() -> None:
    cpu = parse_cpuinfo(X86_CPUINFO)
    assert cpu["logical_cores"] == 8
    assert cpu["physical_cores"] == 4
    assert cpu["sockets"] == 2
    assert cpu["vendor"] == "GenuineIntel"
    assert cpu["model"] == "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"
    assert cpu["flags"] == ["avx2", "avx512f", "fpu", "sse2"]


def test_arm_cpuinfo_uses_features_and_leaves_topology_unknown() -> None:
    cpu = parse_cpuinfo(ARM_CPUINFO)
    assert cpu["logical_cores"] == 2
    assert cpu["physical_cores"] is None  # the probe falls back to sysfs
    assert cpu["vendor"] == "0x41"
    assert cpu["model_number"] == "0xd0c"
    assert "asimd" in cpu["flags"]
    assert cpu["flags"] == sorted(cpu["flags"])


def test_meminfo_total_in_bytes() -> None:
    assert parse_meminfo_total("MemTotal:       24684092 kB\nMemFree:  1 kB\n") == 24684092 * 1024
    assert parse_meminfo_total("MemFree: 1 kB\n") is None


@given(st.sets(st.integers(min_value=0, max_value=300)))
def test_cpu_lists_round_trip(cpus: set[int]) -> None:
    assert parse_cpu_list(format_cpu_list(cpus)) == sorted(cpus)


def test_cpu_list_examples() -> None:
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("garbage,2") == [2]


def test_cgroup_value_parsers() -> None:
    assert parse_cpu_max("max 100000\n") == (None, 100000)
    assert parse_cpu_max("150000 100000") == (150000, 100000)
    assert parse_v1_cpu_quota("-1\n", "100000\n") == (None, 100000)
    assert parse_v1_cpu_quota("50000", "100000") == (50000, 100000)
    assert parse_memory_limit("max\n") is None
    assert parse_memory_limit("9223372036854771712") is None  # v1's "unlimited"
    assert parse_memory_limit("536870912\n") == 512 * 1024 * 1024


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limits_take_the_strictest_ancestor(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    job = root / "user.slice" / "job.scope"
    _write(root / "user.slice" / "cpu.max", "max 100000\n")
    _write(root / "user.slice" / "memory.max", "268435456\n")  # the parent is stricter
    _write(job / "cpu.max", "150000 100000\n")
    _write(job / "memory.max", "536870912\n")
    _write(job / "cpuset.cpus.effective", "0-3\n")
    mountinfo = f"35 24 0:30 / {root} rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
    limits = cgroup_limits(mountinfo, "0::/user.slice/job.scope\n")
    assert limits["version"] == "v2"
    assert limits["cpu"] == {"quota_us": 150000, "period_us": 100000, "effective_cpus": 1.5, "source": "v2"}
    assert limits["memory"] == {"limit_bytes": 268435456, "source": "v2"}
    assert limits["cpuset_cpus"] == "0-3"
    assert limits["cpuset_count"] == 4


def test_cgroup_v1_limits(tmp_path: Path) -> None:
    cid = "a" * 64
    cpu_dir = tmp_path / "cpu,cpuacct"
    mem_dir = tmp_path / "memory"
    _write(cpu_dir / "docker" / cid / "cpu.cfs_quota_us", "200000\n")
    _write(cpu_dir / "docker" / cid / "cpu.cfs_period_us", "100000\n")
    _write(mem_dir / "docker" / cid / "memory.limit_in_bytes", "1073741824\n")
    _write(mem_dir / "memory.limit_in_bytes", "9223372036854771712\n")
    _write(tmp_path / "cpuset" / "cpuset.effective_cpus", "0-7\n")
    mountinfo = (
        f"32 31 0:29 / {cpu_dir} rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        f"35 31 0:32 / {mem_dir} rw,relatime - cgroup cgroup rw,memory\n"
        f"34 31 0:31 / {tmp_path / 'cpuset'} rw,relatime - cgroup cgroup rw,cpuset\n"
        "36 31 0:33 / /elsewhere rw,relatime - tmpfs tmpfs rw\n"
    )
    proc_cgroup = f"5:memory:/docker/{cid}\n4:cpu,cpuacct:/docker/{cid}\n3:cpuset:/\n"
    limits = cgroup_limits(mountinfo, proc_cgroup)
    assert limits["version"] == "v1"
    assert limits["cpu"]["effective_cpus"] == 2.0
    assert limits["cpu"]["source"] == "v1"
    assert limits["memory"] == {"limit_bytes": 1073741824, "source": "v1"}
    assert limits["cpuset_cpus"] == "0-7"


def test_cgroup_hybrid_reads_v1_controllers_and_a_namespaced_root(tmp_path: Path) -> None:
    # Under a cgroup namespace the mount root is the container's own cgroup: the limit file is at the
    # mount point itself, although /proc/self/cgroup names the full path.
    cid = "b" * 64
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "50000\n")
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    (tmp_path / "unified").mkdir()
    mountinfo = (
        f"32 31 0:29 /docker/{cid} {tmp_path / 'cpu'} rw - cgroup cgroup rw,cpu\n"
        f"41 31 0:38 / {tmp_path / 'unified'} rw - cgroup2 cgroup2 rw\n"
    )
    limits = cgroup_limits(mountinfo, f"1:cpu:/docker/{cid}\n0::/\n")
    assert limits["version"] == "hybrid"
    assert limits["cpu"]["effective_cpus"] == 0.5
    assert limits["memory"]["limit_bytes"] is None


def test_no_cgroupfs_is_none() -> None:
    assert cgroup_version(parse_mountinfo_cgroups("22 27 0:21 / /proc rw - proc proc rw\n")) is None
    limits = cgroup_limits("", "")
    assert limits["version"] is None
    assert limits["cpu"]["effective_cpus"] is None


def test_proc_cgroup_parsing() -> None:
    paths = parse_proc_cgroup("4:memory:/a\n3:cpu,cpuacct:/b\n1:name=systemd:/c\n0::/d\n")
    assert paths["memory"] == "/a"
    assert paths["cpu"] == paths["cpuacct"] == "/b"
    assert paths[""] == "/d"


def test_locale_follows_posix_precedence() -> None:
    facts = locale_facts({"LANG": "en_US.UTF-8", "LC_TIME": "de_DE.UTF-8", "HOME": "/root"})
    assert facts["variables"] == {"LANG": "en_US.UTF-8", "LC_TIME": "de_DE.UTF-8"}
    assert facts["effective"]["LC_TIME"] == "de_DE.UTF-8"
    assert facts["effective"]["LC_NUMERIC"] == "en_US.UTF-8"
    overridden = locale_facts({"LANG": "en_US.UTF-8", "LC_TIME": "de_DE.UTF-8", "LC_ALL": "C"})
    assert set(overridden["effective"].values()) == {"C"}


def test_zone_from_localtime_link() -> None:
    assert zone_from_localtime_target("/usr/share/zoneinfo/Europe/Paris") == "Europe/Paris"
    assert zone_from_localtime_target("../usr/share/zoneinfo/posix/Asia/Tokyo") == "Asia/Tokyo"
    assert zone_from_localtime_target("/etc/somewhere") is None


def _collect(environ: dict[str, str]) -> dict[str, Any]:
    ctx = CaptureContext(CaptureOptions(environ=environ), target.in_process)
    return SystemProbe().collect(ctx)


def _expected_cgroup_version() -> str | None:
    """The layout as /proc/self/mounts (not mountinfo, which the probe reads) shows it."""
    fstypes: dict[str, set[str]] = {}
    with open("/proc/self/mounts") as fh:
        for line in fh:
            fields = line.split()
            if fields[2] in ("cgroup", "cgroup2"):
                fstypes.setdefault(fields[2], set()).update(fields[3].split(","))
    v1 = bool(fstypes.get("cgroup", set()) & {"cpu", "memory", "cpuset", "pids", "cpuacct", "blkio", "devices"})
    v2 = "cgroup2" in fstypes
    return "hybrid" if v1 and v2 else "v2" if v2 else "v1" if v1 else None


@pytest.mark.skipif(platform.system() != "Linux", reason="the system probe reads /proc and /sys")
def test_real_machine_matches_independent_sources() -> None:
    data = _collect({"LANG": "C.UTF-8", "TZ": "Europe/Paris"})
    validate_member("<test>", "env/system.json", data)
    assert data["os"]["id"] == platform.freedesktop_os_release().get("ID")
    assert data["os"]["version_id"] == platform.freedesktop_os_release().get("VERSION_ID")
    libc, libc_version = platform.libc_ver()
    assert data["glibc"] == (libc_version if libc == "glibc" else None)
    assert data["kernel"]["release"] == platform.release()
    assert data["kernel"]["machine"] == platform.machine()
    assert data["cpu"]["logical_cores"] == os.cpu_count()
    assert data["memory"]["total_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert data["cgroup"]["version"] == _expected_cgroup_version()
    assert data["timezone"]["name"] == "Europe/Paris"  # TZ wins over /etc/localtime
    assert data["locale"]["effective"]["LC_CTYPE"] == "C.UTF-8"


def test_two_captures_are_identical() -> None:
    environ = {"LANG": "C.UTF-8"}
    assert _collect(environ) == _collect(environ)
