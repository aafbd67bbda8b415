"""Canary secrets, planted everywhere a capture looks, appear in no byte of the snapshot archive.

A battery of realistic fake credentials (the real prefixes, lengths and alphabets of AWS, GitHub, GitLab,
Slack, Hugging Face, OpenAI, Anthropic, Google, npm and PyPI tokens, a JWT, RSA/OpenSSH/EC private keys,
URL userinfo), each also URL-, Base64- and hex-encoded, is planted:

1. in environment values, under innocent names and under allowlisted names (whose values are kept, then
   value-scanned), and inside PATH as URL userinfo;
2. in argv, after ``--token``, inside ``--x=URL`` and as bare positionals;
3. in the remotes of a real git repository, and in a committed file modified so that it lands in the
   dirty patch;
4. in the label.

Then a full ``capture()`` runs, and every member of the zip (decompressed), the raw archive and the
manifest are searched for every canary, its Base64 forms (each wrapped line too) and its hex form.
A second capture runs in a subprocess under an audit hook, with ``HOME`` holding credential files full of
canaries, to show that they are never opened and that no credential helper is run.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from envsnap.capture import capture
from envsnap.snapshot.reader import open_snapshot
from tests.canaries import ALNUM, CanaryFactory
from tests.integration.s3_env import S3Server, s3_server  # noqa: F401 - fixture

_FACTORY = CanaryFactory(7)
_rand = _FACTORY.rand
_ALNUM = ALNUM
_b64url = CanaryFactory.b64url

#: Shaped credentials: found by their look wherever they land.
TOKENS: dict[str, str] = _FACTORY.battery()
#: Shapeless secrets: found only by where they sit (a URL's userinfo, the value after ``--token``, a
#: redacted environment value).
PASSWORDS: dict[str, str] = {
    "remote-password": "Rp" + _rand(18),
    "remote-username-token": _rand(40),
    "path-password": "Pp" + _rand(18),
    "url-arg-password": "Up" + _rand(18),
    "token-flag-value": "Tf" + _rand(22),
    "innocent-env-value": "Ev" + _rand(22),
}
URL_USERINFO = f"https://deploy:{PASSWORDS['path-password']}@proxy.example.com/bin"

ENCODINGS = {
    "plain": lambda s: s,
    "url-quoted": lambda s: quote(s, safe=""),
    "form-quoted": quote_plus,
    "percent-every-byte": lambda s: "".join(f"%{b:02X}" for b in s.encode()),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64-urlsafe": lambda s: _b64url(s.encode()),
    "base64-wrapped": lambda s: base64.encodebytes(s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
}


def needles() -> dict[str, str]:
    """Every byte sequence that must not appear: each canary line, its Base64 forms (whole and per wrapped
    line), its hex form and its URL-quoted form."""
    found: dict[str, str] = {}
    for name, secret in {**TOKENS, **PASSWORDS, "url-userinfo": URL_USERINFO}.items():
        raw = secret.encode()
        forms = {
            "line": [line for line in secret.splitlines() if len(line) >= 12 and "-----" not in line],
            "base64": [base64.b64encode(raw).decode(), _b64url(raw)],
            "base64-line": [line for line in base64.encodebytes(raw).decode().splitlines() if len(line) >= 16],
            "hex": [raw.hex()],
            "quoted": [quote(secret, safe="")],
        }
        for form, values in forms.items():
            for index, value in enumerate(values):
                found[f"{name}/{form}/{index}"] = value
    return found


def planted_environment(home: Path) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "OMP_NUM_THREADS": "3",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": f"{URL_USERINFO}:{os.environ.get('PATH', '/usr/bin')}",
        "MY_SETTING": PASSWORDS["innocent-env-value"],
        "CONFIG_BLOB": base64.b64encode(json.dumps(TOKENS).encode()).decode(),
        "HF_TOKEN": TOKENS["huggingface"],
    }
    for index, secret in enumerate(TOKENS[kind] for kind in sorted(TOKENS)):
        env[f"SETTING_{index}"] = secret  # an innocent name: redacted by name
        for encoding, encode in ENCODINGS.items():
            # allowlisted names: the value is kept, so value scanning alone must catch it
            env[f"OMP_CANARY_{index}_{encoding.replace('-', '_').upper()}"] = encode(secret)
            env[f"CUDA_CANARY_{index}_{encoding.replace('-', '_').upper()}"] = f"x={encode(secret)};"
    return env


def planted_argv() -> list[str]:
    argv = [
        "train.py",
        "--token",
        PASSWORDS["token-flag-value"],
        f"--x=https://ci:{PASSWORDS['url-arg-password']}@registry.example.com/v2",
    ]
    for secret in TOKENS.values():
        argv += [encode(secret) for encode in ENCODINGS.values()]
    return argv


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def planted_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "settings.py").write_text("DEBUG = False\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    lines = ["DEBUG = True"]
    for kind, secret in TOKENS.items():
        for encoding, encode in ENCODINGS.items():
            lines.append(f"# {kind} {encoding}")
            lines.extend(encode(secret).splitlines())
    (repo / "settings.py").write_text("\n".join(lines) + "\n")
    user, token = PASSWORDS["remote-password"], PASSWORDS["remote-username-token"]
    git(repo, "remote", "add", "origin", f"https://deploy:{user}@github.com/org/repo.git")
    git(repo, "remote", "add", "mirror", f"https://{token}@github.com/org/repo.git")
    git(repo, "remote", "add", "bot", f"https://x-access-token:{TOKENS['github-classic']}@github.com/org/repo.git")
    return repo


def leaks(blob: bytes, found: dict[str, str]) -> list[str]:
    """Names of the needles found in ``blob``, raw or JSON-escaped."""
    out = []
    for name, needle in found.items():
        forms = {needle.encode(), json.dumps(needle)[1:-1].encode()}
        if any(form in blob for form in forms):
            out.append(name)
    return out


def test_no_canary_survives_a_full_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for name, value in planted_environment(home).items():
        monkeypatch.setenv(name, value)
    repo = planted_repo(tmp_path)
    output = tmp_path / "s.envsnap"
    snap = capture(output, cwd=repo, argv=planted_argv(), label=f"nightly {TOKENS['huggingface']}")

    found = needles()
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        assert {"env/envvars.json", "env/git.json", "env/git.patch", "job/command.json"} <= set(names)
        for member in names:
            assert leaks(archive.read(member), found) == [], member
    assert leaks(output.read_bytes(), found) == []

    loaded = open_snapshot(output)  # verifies hashes and validates every member against its schema
    variables = loaded.read_json("env/envvars.json")["variables"]
    assert variables["OMP_NUM_THREADS"] == {"value": "3"}
    assert variables["CUDA_VISIBLE_DEVICES"] == {"value": "0,1"}
    assert variables["TOKENIZERS_PARALLELISM"] == {"value": "false"}
    assert variables["HF_TOKEN"]["redacted"] is True
    assert variables["PATH"]["value"].startswith("https://<redacted-url-userinfo>@proxy.example.com/bin:")
    assert "<redacted:" in variables["OMP_CANARY_0_BASE64"]["value"]

    # the canaries really flowed through every channel (a silently skipped channel would pass vacuously)
    gitdata = loaded.read_json("env/git.json")
    assert gitdata["dirty"] is True
    assert gitdata["remotes"] == dict.fromkeys(("bot", "mirror", "origin"), "https://github.com/org/repo.git")
    assert loaded.read_text("env/git.patch").count("<redacted:") >= len(TOKENS) * len(ENCODINGS)
    argv = loaded.read_json("job/command.json")["argv"]
    assert argv[:3] == ["train.py", "--token", "<redacted:argument>"]
    assert argv[3] == "--x=https://<redacted-url-userinfo>@registry.example.com/v2"
    assert len(argv) == 4 + len(TOKENS) * len(ENCODINGS) and all("<redacted" in a for a in argv[4:])
    assert snap.label is not None and "<redacted:huggingface-token>" in snap.label

    # A second opinion: detect-secrets over the unpacked members finds nothing. Its hex-entropy detector is
    # off because a snapshot is full of content hashes by design (sha256 of every member, git commits);
    # every other detector (keywords, Base64 entropy, AWS, GitHub, Slack, JWT, private keys ...) runs.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(output) as archive:
        archive.extractall(unpacked)
    scan = subprocess.run(
        [
            sys.executable,
            "-m",
            "detect_secrets",
            "scan",
            "--all-files",
            "--disable-plugin",
            "HexHighEntropyString",
            ".",
        ],
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(scan.stdout)["results"]
    assert results == {}, {f: [r["type"] for r in rs] for f, rs in results.items()}
    scanned = json.loads(scan.stdout)["plugins_used"]
    assert len(scanned) >= 15  # the battery really ran


_AUDITED_CAPTURE = textwrap.dedent(
    """
    import json, os, sys

    opened, listed, spawned = [], [], []

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))
        elif event in ("os.listdir", "os.scandir") and args and args[0] is not None:
            listed.append(os.fsdecode(args[0]) if not isinstance(args[0], int) else str(args[0]))
        elif event == "subprocess.Popen":
            spawned.append([os.fsdecode(a) for a in (args[1] or [])])

    sys.addaudithook(hook)
    from envsnap.capture import capture

    capture(sys.argv[1], cwd=sys.argv[2], argv=["job.py"])
    with open(sys.argv[3], "w") as fh:
        json.dump({"opened": opened, "listed": listed, "spawned": spawned}, fh)
    """
)

_DOCKER_AUTH = base64.b64encode(b"bot:" + TOKENS["github-classic"].encode()).decode()
CREDENTIAL_FILES = {
    ".netrc": f"machine github.com login bot password {PASSWORDS['innocent-env-value']}\n",
    ".docker/config.json": json.dumps({"auths": {"ghcr.io": {"auth": _DOCKER_AUTH}}}),
    ".aws/credentials": (
        f"[default]\naws_access_key_id = {TOKENS['aws-access-key-id']}\n"
        f"aws_secret_access_key = {TOKENS['aws-secret-access-key']}\n"
    ),
    ".pypirc": f"[pypi]\nusername = __token__\npassword = {TOKENS['pypi']}\n",
    ".git-credentials": f"https://bot:{TOKENS['github-classic']}@github.com\n",
    ".config/gh/hosts.yml": f"github.com:\n    oauth_token: {TOKENS['github-classic']}\n",
    ".cache/huggingface/token": TOKENS["huggingface"],
    ".kube/config": f"users:\n- name: u\n  user:\n    token: {TOKENS['jwt']}\n",
}


def test_credential_files_are_never_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for relative, content in CREDENTIAL_FILES.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    repo = planted_repo(tmp_path)
    output, report = tmp_path / "audited.envsnap", tmp_path / "audit.json"
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-c", _AUDITED_CAPTURE, str(output), str(repo), str(report)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    audit = json.loads(report.read_text())

    opened = {os.path.realpath(p) for p in audit["opened"]}
    assert opened, "the audit hook saw no file opened at all"
    credential_paths = {os.path.realpath(home / relative) for relative in CREDENTIAL_FILES}
    assert opened & credential_paths == set()
    own = os.path.realpath(home / ".config" / "envsnap")
    under_home = {p for p in opened if p.startswith(os.path.realpath(home) + os.sep)}
    assert under_home and {os.path.dirname(p) for p in under_home} == {own}  # only envsnap's own key file
    assert (home / ".config" / "envsnap" / "redaction.key").is_file()
    listed = {os.path.realpath(p) for p in audit["listed"] if os.path.isabs(p)}
    assert {p for p in listed if p.startswith(os.path.realpath(home) + os.sep)} <= {own}
    commands = [" ".join(argv) for argv in audit["spawned"]]
    assert any(c.startswith("git ") for c in commands)
    assert [c for c in commands if "credential" in c or "askpass" in c.lower()] == []

    with zipfile.ZipFile(output) as archive:
        for member in archive.namelist():
            assert leaks(archive.read(member), needles()) == [], member


def test_index_url_credentials_and_diff_never_print_a_redacted_value(tmp_path: Path) -> None:
    """pip's index URL carries credentials (planted in PIP_INDEX_URL, kept by --env-allow, and in pip.conf),
    and two captures whose secrets differ are diffed in every format: no canary in any output."""
    index_password = "Ix" + _rand(20)
    outputs = {}
    for side, token in (("a", TOKENS["github-classic"]), ("b", TOKENS["huggingface"])):
        home = tmp_path / f"home-{side}"
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(
            f"[global]\nindex-url = https://ci:{index_password}@pypi.example.com/simple\n", encoding="utf-8"
        )
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PIP_INDEX_URL": f"https://bot:{index_password}@pypi.example.com/simple",
            "PIP_EXTRA_INDEX_URL": f"https://__token__:{token}@extra.example.com/simple",
            "MY_SERVICE_TOKEN": token,  # redacted by name: only a keyed digest is stored
            "OMP_CANARY_SECRET": token,  # allowlisted by glob: the value is kept, so the scanner must catch it
        }
        out = tmp_path / f"{side}.envsnap"
        proc = subprocess.run(
            [sys.executable, "-m", "envsnap", "capture", "-o", str(out), "--no-git", "--env-allow", "PIP_*"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs[side] = out
    found = {**needles(), "index-password": index_password}
    for out in outputs.values():
        assert leaks(out.read_bytes(), found) == []
        with zipfile.ZipFile(out) as archive:
            for member in archive.namelist():
                assert leaks(archive.read(member), found) == [], member
    variables = open_snapshot(outputs["a"]).read_json("env/envvars.json")["variables"]
    assert "<redacted-url-userinfo>" in variables["PIP_INDEX_URL"]["value"]
    for fmt in ("--json", "--markdown", "--html", None):
        args = [sys.executable, "-m", "envsnap", "diff", str(outputs["a"]), str(outputs["b"])]
        if fmt == "--html":
            args += ["--html", str(tmp_path / "diff.html")]
        elif fmt is not None:
            args.append(fmt)
        proc = subprocess.run(args, capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert leaks(proc.stdout + proc.stderr, found) == [], fmt
    assert leaks((tmp_path / "diff.html").read_bytes(), found) == []
    text = subprocess.run(
        [sys.executable, "-m", "envsnap", "diff", str(outputs["a"]), str(outputs["b"])], capture_output=True, text=True
    ).stdout
    assert "MY_SERVICE_TOKEN" in text  # the change is reported, by name only


def test_mlflow_credentials_never_enter_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's tracking token, user name, password and a tracking URI with userinfo stay out, even when an
    allowlist names them exactly (they are never-keep names) or by glob."""
    username, password = "mlflow-bot-" + _rand(10), "Mp" + _rand(20)
    planted = {
        "MLFLOW_TRACKING_TOKEN": TOKENS["databricks"],
        "DATABRICKS_TOKEN": TOKENS["databricks"],
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_TRACKING_URI": f"https://{username}:{password}@mlflow.example.com/",
    }
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "m.envsnap"
    argv = ["train.py", "--tracking-uri", planted["MLFLOW_TRACKING_URI"], f"--mlflow-token={TOKENS['databricks']}"]
    capture(output, argv=argv, git=False, env_allow=("MLFLOW_*", *planted))
    secrets = {"token": TOKENS["databricks"], "username": username, "password": password}
    forms = {f"{n}/{i}": v for n, s in secrets.items() for i, v in enumerate((s, quote(s, safe=""), s.encode().hex()))}
    forms |= {f"{n}/b64": base64.b64encode(s.encode()).decode() for n, s in secrets.items()}
    with zipfile.ZipFile(output) as archive:
        for member in archive.namelist():
            blob = archive.read(member)
            assert [n for n, v in forms.items() if v.encode() in blob] == [], member
    variables = open_snapshot(output).read_json("env/envvars.json")["variables"]
    for name in ("MLFLOW_TRACKING_TOKEN", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert variables[name]["redacted"] is True, name
    assert variables["MLFLOW_TRACKING_URI"]["value"] == "https://<redacted-url-userinfo>@mlflow.example.com/"


def test_aws_credentials_never_enter_a_snapshot_written_to_s3(s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    """``envsnap capture -o s3://...`` with the temporary credentials of an assumed role (key id, secret,
    session token) in the environment, even allowlisted by name and by glob: none of the three, in any
    encoding, is in the object on the server; the names are recorded as redacted."""
    import boto3

    boot = {"endpoint_url": s3_server.endpoint, "region_name": "us-east-1"}
    keys = {"aws_access_key_id": s3_server.access_key, "aws_secret_access_key": s3_server.secret_key}
    iam = boto3.client("iam", **boot, **keys)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]}
    role = iam.create_role(RoleName="envsnap-canary", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="envsnap-canary", PolicyName="all", PolicyDocument=json.dumps(allow))
    creds = boto3.client("sts", **boot, **keys).assume_role(RoleArn=role["Arn"], RoleSessionName="canary")
    planted = {
        "AWS_ACCESS_KEY_ID": creds["Credentials"]["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["Credentials"]["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["Credentials"]["SessionToken"],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3_server.env(), **planted)
    target = f"s3://{s3_server.bucket}/secrets/aws.envsnap"
    argv = [sys.executable, "-m", "envsnap", "capture", "-o", target, "--no-git", "--env-allow", "AWS_*"]
    for name in planted:
        argv += ["--env-allow", name]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    local = tmp_path / "aws.envsnap"
    s3_server.client().download_file(s3_server.bucket, "secrets/aws.envsnap", str(local))  # type: ignore[attr-defined]
    forms = {
        f"{name}/{index}": value
        for name, secret in planted.items()
        for index, value in enumerate(
            (secret, quote(secret, safe=""), secret.encode().hex(), base64.b64encode(secret.encode()).decode())
        )
    }
    with zipfile.ZipFile(local) as archive:
        for member in archive.namelist():
            blob = archive.read(member)
            assert [n for n, v in forms.items() if v.encode() in blob] == [], member
    assert [n for n, v in forms.items() if v.encode() in local.read_bytes()] == []
    variables = open_snapshot(local).read_json("env/envvars.json")["variables"]
    for name in planted:
        assert variables[name].get("redacted") is True or "<redacted:" in variables[name]["value"], variables[name]
    assert variables["AWS_ENDPOINT_URL"] == {"value": s3_server.endpoint}  # allowlisted, not a secret
