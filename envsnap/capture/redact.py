"""Secret scrubbing. Every string a snapshot stores is treated as public.

Two layers:

* **by name** — environment values are kept only for an allowlist (see ``envvars``); argv values that
  follow a secret-looking flag (``--token X``, ``--password=X``, ``API_KEY=X``) are dropped;
* **by value** — every stored string, whatever member it lands in, is scanned for credential shapes
  (URL userinfo, cloud and SaaS tokens, JWTs, private key blocks), also inside URL- and Base64-encoded
  text, and each hit is replaced by ``<redacted:KIND>``.

No hash of a secret is stored unsalted.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

#: (kind, pattern). Order matters only for the label of a match.
CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private-key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|[\s\S]*)")),
    ("aws-access-key", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])")),
    ("aws-secret-key", re.compile(r"(?i)(aws_?secret_?(?:access_?)?key[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{40}")),
    ("github-token", re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})")),
    ("gitlab-token", re.compile(r"gl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_\-]{20,}")),
    ("slack-token", re.compile(r"xox[abposre]-[A-Za-z0-9\-]{10,}")),
    ("slack-webhook", re.compile(r"hooks\.slack\.com/services/[A-Za-z0-9/]+")),
    ("huggingface-token", re.compile(r"hf_[A-Za-z0-9]{30,}")),
    ("anthropic-key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}")),
    ("openai-key", re.compile(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("google-api-key", re.compile(r"AIza[0-9A-Za-z_\-]{35}")),
    ("npm-token", re.compile(r"npm_[A-Za-z0-9]{36}")),
    ("pypi-token", re.compile(r"pypi-[A-Za-z0-9_\-]{50,}")),
    ("stripe-key", re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}")),
    ("url-userinfo", re.compile(r"(?i)(?<=://)[^/\s:@?#]+(?::[^/\s@?#]*)?@")),
    ("url-secret-param", re.compile(r"(?i)(?<=[?&])(?:access_token|token|api_?key|key|password|passwd|secret|sig|signature|auth)=[^&\s#]+")),
)

#: A cheap pre-filter: a string with none of these substrings cannot match any pattern above.
_TRIGGERS = re.compile(
    r"PRIVATE KEY|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|secret|SECRET|gh[pousr]_|github_pat_|gl[a-z]{1,3}-|xox|hooks\.slack|hf_|sk-|AIza|npm_|pypi-|_live_|_test_|eyJ|://|[?&]|%|[A-Za-z0-9+/]{24}"
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}")
_SECRET_NAME = re.compile(
    r"(?i)(pass(word|wd|phrase)?|secret|token|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|credential|auth|session|cookie|signature|dsn|sas)"
)


def _scrub_plain(text: str) -> str:
    for kind, pattern in CREDENTIAL_PATTERNS:
        if kind == "aws-secret-key":
            text = pattern.sub(lambda m: m.group(1) + "<redacted:aws-secret-key>", text)
        elif kind == "url-userinfo":
            text = pattern.sub("<redacted:url-userinfo>@", text)
        elif kind == "url-secret-param":
            text = pattern.sub(lambda m: m.group(0).split("=", 1)[0] + "=<redacted>", text)
        else:
            text = pattern.sub(f"<redacted:{kind}>", text)
    return text


def _decoded_base64(run: str) -> str | None:
    padded = run + "=" * (-len(run) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(padded.replace("-", "+").replace("_", "/") if decode is base64.b64decode else padded)
        except (binascii.Error, ValueError):
            continue
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def scrub_text(text: str) -> str:
    """Replace every credential-shaped substring of ``text`` (plain, URL- or Base64-encoded)."""
    if not text or _TRIGGERS.search(text) is None:
        return text
    out = _scrub_plain(text)
    if "%" in out:
        decoded = unquote(out)
        if decoded != out and _scrub_plain(decoded) != decoded:
            out = _scrub_plain(decoded)
    if _BASE64_RUN.search(out):

        def _b64(match: re.Match[str]) -> str:
            run = match.group(0)
            if run.startswith("<redacted"):
                return run
            decoded = _decoded_base64(run)
            if decoded is not None and _scrub_plain(decoded) != decoded:
                return "<redacted:base64-secret>"
            return run

        out = _BASE64_RUN.sub(_b64, out)
    return out


def scrub_url(url: str) -> str:
    """A URL with its userinfo and secret query parameters removed (for git remotes, index URLs)."""
    return scrub_text(url)


def scrub_data(value: Any) -> Any:
    """Scrub every string (keys included) in a JSON-able structure; returns a new structure."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(k) if isinstance(k, str) else k: scrub_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_data(v) for v in value]
    return value


def is_secret_name(name: str) -> bool:
    """Whether a variable, flag or key name looks like it holds a secret."""
    return _SECRET_NAME.search(name) is not None


def scrub_argv(argv: Iterable[str]) -> list[str]:
    """argv with the values of secret-looking flags and ``NAME=value`` pairs dropped, then value-scanned."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("<redacted:argument>")
            hide_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            flag, _, _value = arg.partition("=")
            if is_secret_name(flag):
                out.append(f"{flag}=<redacted:argument>")
                continue
        elif arg.startswith("-") and is_secret_name(arg):
            out.append(arg)
            hide_next = True
            continue
        elif "=" in arg and not arg.startswith("-"):
            name, _, _value = arg.partition("=")
            if name.replace("_", "").isalnum() and is_secret_name(name):
                out.append(f"{name}=<redacted:argument>")
                continue
        out.append(scrub_text(arg))
    return out
