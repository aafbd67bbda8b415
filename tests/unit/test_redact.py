"""Secret scrubbing: every canary kind in every encoding is removed; ordinary snapshot strings are not touched."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envsnap.capture import load_probes, run_probes, target
from envsnap.capture.base import CaptureContext, CaptureOptions
from envsnap.core.redact import is_secret_name, scrub_argv, scrub_data, scrub_text, scrub_url
from envsnap.snapshot import canonical
from tests.canaries import CanaryFactory

_FACTORY = CanaryFactory(20240611)
_rand = _FACTORY.rand

#: Realistic fake credentials: the real prefixes, lengths and alphabets of each kind.
CANARIES: dict[str, str] = {
    **_FACTORY.battery(),
    "url-userinfo": f"https://deploy:{_rand(12)}P4ss@git.example.com/org/repo.git",
}

ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "in-text": lambda s: f"the value is {s} (do not share)",
    "json-escaped": json.dumps,
    "url-quoted": lambda s: quote(s, safe=""),
    "form-quoted": quote_plus,
    "percent-every-byte": lambda s: "".join(f"%{b:02X}" for b in s.encode()),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64-urlsafe": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "base64-wrapped": lambda s: base64.encodebytes(s.encode()).decode(),
    "base64-glued": lambda s: "config_" + base64.urlsafe_b64encode(s.encode()).decode(),
    "base64-of-url-quoted": lambda s: base64.b64encode(quote(s, safe="").encode()).decode(),
    "hex": lambda s: s.encode().hex(),
    "assigned": lambda s: f"MY_SETTING={s}",
}


def needles(secret: str) -> list[str]:
    """Fragments of ``secret`` that must not survive: each line of it and each line of its Base64 forms."""
    raw = secret.encode()
    found = [line for line in secret.splitlines() if len(line) >= 12]
    if "://" in secret:
        found.append(secret.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1])  # the password alone
    found += [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    found += [line for line in base64.encodebytes(raw).decode().splitlines() if len(line) >= 16]
    return found


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("kind", list(CANARIES))
def test_every_canary_kind_is_scrubbed_in_every_encoding(kind: str, encoding: str) -> None:
    text = ENCODINGS[encoding](CANARIES[kind])
    out = scrub_text(text)
    assert "<redacted" in out
    assert [n for n in needles(CANARIES[kind]) if n in out] == []
    assert scrub_text(out) == out  # idempotent: a second scan finds nothing more


@pytest.mark.parametrize("marker", ["+", "-", " "])
@pytest.mark.parametrize("kind", list(CANARIES))
def test_every_canary_is_scrubbed_inside_a_diff(kind: str, marker: str) -> None:
    """A dirty patch prefixes each line with a marker, which shifts Base64 and bounds bare keys."""
    hunk = "\n".join(marker + line for encode in ENCODINGS.values() for line in encode(CANARIES[kind]).splitlines())
    patch = f"diff --git a/s.txt b/s.txt\n@@ -1,2 +1,90 @@\n context line\n{hunk}\n-old line\n"
    out = scrub_text(patch)
    assert [n for n in needles(CANARIES[kind]) if n in out] == []
    assert out.startswith("diff --git a/s.txt b/s.txt\n@@ -1,2 +1,90 @@\n context line\n")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pa55word@example.com/x", "https://<redacted-url-userinfo>@example.com/x"),
        ("https://ghp_x@github.com/o/r.git", "https://<redacted-url-userinfo>@github.com/o/r.git"),
        # an unencoded @ or / in the password does not leak its tail
        ("https://u:S3cr3t!P@ss/w0rd@github.com/o/r", "https://<redacted-url-userinfo>@github.com/o/r"),
        ("postgres://app:hunter22@db.internal:5432/x", "postgres://<redacted-url-userinfo>@db.internal:5432/x"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("ssh://deploy:pw123@host/r", "ssh://<redacted-url-userinfo>@host/r"),
        ("git+https://github.com/o/r.git@v1.0", "git+https://github.com/o/r.git@v1.0"),
        ("git+https://host:8443/o/r.git@v1", "git+https://host:8443/o/r.git@v1"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("user:pw@github.com:o/r.git", "<redacted-url-userinfo>@github.com:o/r.git"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&X-Amz-Signature=abc123&v=2",
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&v=2",
        ),
        (
            "https://api.example.com/v1?access_token=abcdef123&page=2",
            "https://api.example.com/v1?access_token=<redacted>&page=2",
        ),
    ],
)
def test_urls_lose_credentials_and_keep_the_rest(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DB_PASSWORD=hunter2", "DB_PASSWORD=<redacted:assignment>"),
        ('{"api_key": "abc123def"}', '{"api_key": "<redacted:assignment>"}'),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = <redacted:assignment>"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: <redacted:assignment>"),
        ("curl -H 'X-Api-Key: 0123456789abcdef' url", "curl -H 'X-Api-Key: <redacted:assignment>' url"),
        ("header bearer abcdefghij1234567890", "header bearer <redacted:auth-header>"),
        ("docker run -e HF_TOKEN=hf_abc x", "docker run -e HF_TOKEN=<redacted:assignment> x"),
        # code references, pins and ordinary knobs are not secrets
        ("token = args.token", "token = args.token"),
        ("password = get_password()", "password = get_password()"),
        ("token=$HF_TOKEN", "token=$HF_TOKEN"),
        ("tokenizers==0.19.1", "tokenizers==0.19.1"),
        ("secretstorage==3.3.3", "secretstorage==3.3.3"),
        ("TOKENIZERS_PARALLELISM=false", "TOKENIZERS_PARALLELISM=false"),
        ("max_tokens: 4096", "max_tokens: 4096"),
        ("the basic idea is a token limit of 4096", "the basic idea is a token limit of 4096"),
    ],
)
def test_assignments_lose_their_value(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


ORDINARY = [
    "/work/main/.venv/lib/python3.11/site-packages/numpy/core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
    "C:\\Users\\me\\AppData\\Local\\Programs\\Python\\Python311\\python.exe",
    "1.26.4",
    "2.2.0.dev0+git20240101.abcdef1",
    "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall",
    "avx512f avx512dq avx512_bf16 avx512_vnni amx_bf16 amx_tile sha_ni",
    "pkg:pypi/scikit-learn@1.4.2",
    "pkg:pypi/nvidia-cuda-runtime-cu12@12.1.105",
    "pkg:generic/libopenblas64_p-r0-0cf96a72.3.23.dev.so",
    "123e4567-e89b-12d3-a456-426614174000",
    "openblas64__info: libraries = ['openblas64_', 'openblas64_'], library_dirs = ['/usr/local/lib']",
    "Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz",
    "requests==2.32.3 --hash=sha256:70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6",
    "git+https://github.com/psf/requests.git@0e322af87745eff34caffe4df68456ebc20d9068",
    "file:///work/main",
    "nvidia_cublas_cu12-12.1.3.1-py3-none-manylinux1_x86_64.whl",
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "Operating System :: POSIX :: Linux",
    "2024-05-01T12:00:00Z",
    "v1.2.3-14-g2414721",
    "keyring passlib secretstorage tokenizers sk-video scikit-learn",
    "AKIAxyz is not a key",
    "MIIT and MIIS are universities",
    base64.b64encode(b"hello world, nothing secret in here").decode(),
    "libcudnn.so.8 libnccl.so.2 libcublasLt.so.12",
    "Linux-6.1.0-18-cloud-amd64-x86_64-with-glibc2.36",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_snapshot_strings_are_untouched(text: str) -> None:
    assert scrub_text(text) == text


def test_a_real_capture_of_this_venv_is_not_changed_by_scrubbing() -> None:
    """No false positive on real data: the probes' own results equal what is stored after scrubbing."""
    ctx = CaptureContext(CaptureOptions(argv=("envsnap", "capture"), environ={"PATH": "/usr/bin"}), target.in_process)
    members, statuses = run_probes(ctx, load_probes())
    compared = 0
    for cls in load_probes():
        if statuses[cls.name].status != "ok":
            continue
        result = ctx.results[cls.name]
        raw = result.encode() if isinstance(result, str) else canonical.dumps(result)
        assert raw == members[cls.member], f"scrubbing changed {cls.member}"
        compared += 1
    assert compared >= 10
    packages = ctx.results["packages"]
    assert scrub_data(packages) == json.loads(json.dumps(packages))


def test_scrub_data_copies_and_scrubs_keys_values_and_nested_lists() -> None:
    token = CANARIES["github-classic"]
    data = {"a": [token, ("x", 1)], token: {"n": 2.5, "b": None, 3: True}}
    out = scrub_data(data)
    hidden = "<redacted:github-token>"
    assert out == {"a": [hidden, ["x", 1]], hidden: {"n": 2.5, "b": None, 3: True}}
    assert data["a"][0] == token  # the input is left alone
    clean = {"k": ["v", {"w": "x"}]}
    copied = scrub_data(clean)
    assert copied == clean and copied is not clean and copied["k"] is not clean["k"]


def test_scrub_data_finds_a_secret_among_many_clean_strings() -> None:
    data = {"items": [f"pkg-{i}" for i in range(2000)], "deep": [{"x": ["ok", CANARIES["huggingface"]]}]}
    out = scrub_data(data)
    assert out["deep"][0]["x"] == ["ok", "<redacted:huggingface-token>"]
    assert out["items"] == data["items"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True),
        ("GITHUB_PAT", True),
        ("db_password", True),
        ("clientSecret", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("--api-key", True),
        ("SENTRY_DSN", True),
        ("SSH_AUTH_SOCK", True),
        ("TOKENIZERS_PARALLELISM", True),  # kept only because allowlists name it exactly
        ("PATH", False),
        ("--author", False),
        ("--bypass", False),
        ("OMP_NUM_THREADS", False),
        ("CUDA_VISIBLE_DEVICES", False),
        ("PYTHONHASHSEED", False),
        ("MONKEY_PATCH", False),
    ],
)
def test_secret_looking_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_scrub_argv_hides_flag_values_assignments_and_shapes() -> None:
    hf = CANARIES["huggingface"]
    argv = [
        "train.py",
        "--token",
        "plain-looking-value",
        "--password=hunter2",
        "API_KEY=abc",
        "--token-file",
        "/run/secrets/token",
        "--url=https://u:pw12345@example.com/x",
        hf,
        "--epochs",
        "3",
    ]
    assert scrub_argv(argv) == [
        "train.py",
        "--token",
        "<redacted:argument>",
        "--password=<redacted:argument>",
        "API_KEY=<redacted:argument>",
        "--token-file",
        "/run/secrets/token",
        "--url=https://<redacted-url-userinfo>@example.com/x",
        "<redacted:huggingface-token>",
        "--epochs",
        "3",
    ]


_TEXT = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), max_size=200)


@settings(max_examples=300, deadline=None)
@given(prefix=_TEXT, suffix=_TEXT, kind=st.sampled_from(sorted(CANARIES)))
def test_a_canary_anywhere_in_arbitrary_text_never_survives(prefix: str, suffix: str, kind: str) -> None:
    secret = CANARIES[kind]
    out = scrub_text(f"{prefix} {secret} {suffix}")
    assert [n for n in needles(secret) if n in out] == []


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_scrubbing_is_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


def test_a_url_in_one_string_never_reaches_the_at_sign_of_a_later_one() -> None:
    # scrub_data scans the strings joined by NUL: an SBOM's metadata URL followed by a purl's "@" once
    # matched as userinfo across the join, which sent every capture down the per-string slow path.
    from envsnap.core import redact

    data = {"url": "https://tzdata.python.org", "purl": "pkg:pypi/uri-template@1.3.0"}
    strings: list[str] = []
    redact._copy(data, strings)
    joined = redact._JOIN.join(strings)
    assert scrub_text(joined) == joined
    assert scrub_data(data) == data
    assert scrub_text("https://user:s3cr3t-pass@example.org/x") == "https://<redacted-url-userinfo>@example.org/x"
