"""Secret scrubbing. Every string a snapshot stores is treated as public.

Two layers:

* **by name** — environment values are kept only for an allowlist (see :mod:`envsnap.capture.envvars`);
  argv values that follow a secret-looking flag (``--token X``, ``--password=X``, ``API_KEY=X``) are
  dropped; ``name = value`` assignments inside text (``DB_PASSWORD=...``, ``"api_key": "..."``,
  ``Authorization: Bearer ...``) lose their value;
* **by value** — every stored string, whatever member it lands in, is scanned for credential shapes
  (URL userinfo and secret query parameters, cloud and SaaS tokens, JWTs, private key blocks), also inside
  URL-, Base64- and hex-encoded text, and each hit is replaced by ``<redacted:KIND>``.

A match is replaced whole, so no fragment of a secret survives, at the price of sometimes redacting a
little more than the secret (noted per shape below). Encoded runs are decoded and rescanned when they
decode to printable text, two levels deep (Base64 of a URL-encoded token is found).

Speed: every pattern starts with a literal or a character class, so the regex engine skips to candidate
positions in C; :func:`scrub_data` scans all the strings of a structure joined into one text and walks
them one by one only when that text holds a hit. A whole capture (~100 KB) costs about 2 ms, 300 KB of
package metadata about 10 ms.

No hash of a secret is stored unsalted.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

__all__ = ["TOKEN_PATTERNS", "is_secret_name", "scrub_argv", "scrub_data", "scrub_text", "scrub_url"]

_B64 = r"A-Za-z0-9+/"

#: Token shapes: (kind, pattern). Each pattern starts with a literal, its lookbehinds come after it, so the
#: regex engine finds candidates with a fast substring search (a scan costs well under a millisecond per MB).
TOKEN_PATTERNS: tuple[tuple[str, str], ...] = (
    # DER key material without its PEM armour (``MII...`` is an ASN.1 SEQUENCE; certificates too, harmless).
    ("private-key", rf"MII(?<![{_B64}]MII)[{_B64}]{{60,}}={{0,2}}"),
    ("private-key", rf"b3BlbnNzaC1rZXktdjE[{_B64}=]*"),
    ("aws-access-key", r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}(?![A-Z0-9])"),
    # STS session tokens (AWS_SESSION_TOKEN): Base64 of a binary blob whose first bytes are fixed.
    ("aws-session-token", rf"FwoGZXIvYXdz[{_B64}]{{80,}}={{0,2}}"),
    ("aws-session-token", rf"FQoGZXIvYXdz[{_B64}]{{80,}}={{0,2}}"),
    ("aws-session-token", rf"IQoJb3JpZ2lu[{_B64}]{{80,}}={{0,2}}"),
    ("github-token", r"gh[pousr]_[A-Za-z0-9]{36,255}"),
    ("github-token", r"github_pat_[A-Za-z0-9_]{22,255}"),
    ("gitlab-token", r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,}"),
    ("slack-token", r"xox[abposre]-[A-Za-z0-9\-]{10,}"),
    ("slack-token", r"xapp-\d-[A-Za-z0-9\-]{10,}"),
    ("slack-webhook", r"hooks\.slack\.com/services/[A-Za-z0-9/]+"),
    ("huggingface-token", r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{30,}"),
    ("anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    # The body must hold a digit: "sk-learn-..." style words are not keys.
    ("openai-key", r"sk-(?<![A-Za-z0-9]sk-)(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{20,}"),
    ("google-api-key", r"AIza[0-9A-Za-z_\-]{35}"),
    ("google-oauth-token", r"ya29\.[0-9A-Za-z_\-]{20,}"),
    ("npm-token", r"npm_[A-Za-z0-9]{36}"),
    ("pypi-token", r"pypi-[A-Za-z0-9_\-]{50,}"),
    ("stripe-key", r"sk_(?:live|test)_[A-Za-z0-9]{20,}"),
    ("stripe-key", r"rk_(?:live|test)_[A-Za-z0-9]{20,}"),
    ("sendgrid-key", r"SG\.[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}"),
    ("databricks-token", r"dapi(?<![A-Za-z0-9]dapi)[0-9a-f]{32}(?:-\d)?"),
    ("jwt", r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"),
)
_TOKENS = tuple((re.compile(pattern), f"<redacted:{kind}>") for kind, pattern in TOKEN_PATTERNS)
#: A bare 40-character AWS secret access key: mixed case and a digit (git SHA-1s are lowercase hex). It may
#: follow a diff's ``+``/``-`` line marker.
_AWS_SECRET_KEY = re.compile(
    rf"(?m)(?:(?<![{_B64}_\-])|(?<=^[+\-]))(?=[{_B64}]{{0,39}}[a-z])(?=[{_B64}]{{0,39}}[A-Z])(?=[{_B64}]{{0,39}}\d)"
    rf"[{_B64}]{{40}}(?![{_B64}=_\-])"
)
# A block without its END line is redacted to the end of the string: the key material follows it. A header
# cut by an earlier match (``?key=-----BEGIN RSA ...``) still starts a block at ``PRIVATE KEY-----``;
# ``+`` stands for a space in form-encoded text.
_PRIVATE_KEY = re.compile(
    r"(?:-----BEGIN[ +A-Z0-9]*PRIVATE|PRIVATE)[ +]KEY(?:[ +]BLOCK)?-----"
    r"(?:[\s\S]*?-----END[ +A-Z0-9]*PRIVATE[ +]KEY(?:[ +]BLOCK)?-----|[\s\S]*)"
)
# ``://user:password@``: the password runs to the last ``@`` of the whitespace-free word that is followed by
# a host, so an unencoded ``@`` or ``/`` in a password cannot leak its tail; ``host:8443/path`` is a port.
# A URL with credentials *and* a later ``@ref`` loses its host too (over-redaction). The scheme is read
# back from the text before the match.
# NUL ends a match: scrub_data scans a structure's strings joined by NUL, and a URL in one string must not
# reach the "@" of a later one (a purl's "pkg:pypi/x@1.0"), which sent every capture down the slow path.
_URL_USERINFO = re.compile(
    r"://(?P<user>[^\s/?#@:\"'<>\x00]*)(?P<password>:(?!\d{1,5}(?:[/?#\s\"'<>]|$))[^\s\"'<>\x00]*)?@(?=[A-Za-z0-9\[\]._\-])"
)
_SCHEME_TAIL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_URL_PARAM = re.compile(
    r"[?&;](?P<name>[A-Za-z0-9_.\-]*?(?i:token|key|secret|passw(?:or)?d|pwd|sig|signature|credential|auth)"
    r"[A-Za-z0-9_.\-]*)=[^&\s#\"'<>]+"
)
# The next two run on a lower-cased copy of the text (same length, same offsets), so that each starts with a
# literal. ``Bearer <token>`` (16+ characters) and ``Basic <base64>`` need a digit: prose like "basic idea"
# or "token limit" has none.
_AUTH_HEADERS = tuple(
    re.compile(word + r"\s+(?P<value>" + value + ")")
    for word, value in (
        ("bearer", r"(?=[a-z0-9._~+/\-]*\d)[a-z0-9._~+/\-]{16,}=*"),
        ("token", r"(?=[a-z0-9._~+/\-]*\d)[a-z0-9._~+/\-]{16,}=*"),
        ("basic", r"(?=[a-z0-9+/]*\d)[a-z0-9+/]{8,}={0,2}(?![a-z0-9._~\-])"),
    )
)
# ``NAME = value``, ``"name": "value"``, ``-e NAME=value`` where NAME *ends* in a secret word (matched from
# that word on; ``key`` only after ``api``, ``access``, ``secret``...). Code references (``args.token``,
# ``get_password()``, ``$TOKEN``) and ``==`` pins are left alone.
_KEY_OWNERS = ("api", "access", "secret", "private", "account", "signing", "encryption", "master")
_ASSIGNMENT_TAIL = (
    r"(?P<sep>[\"']?[ \t]*[:=](?!=)[ \t]*)(?P<quote>[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token|digest|negotiate)[ \t]+)?(?P<value>[^\s\"'<>,;&\x00]{4,})"
)
_ASSIGNMENTS = tuple(
    re.compile(word + _ASSIGNMENT_TAIL)
    for word in (
        r"pass(?:w(?:or)?d|phrase)",
        r"secret",
        r"token",
        r"credentials?",
        r"authorization",
        "key(?:" + "|".join(f"(?<={owner}{sep}key)" for owner in _KEY_OWNERS for sep in ("", "_", "-")) + ")",
    )
)
_CODE_REFERENCE = re.compile(r"\$.*|\{.*|%\(.*|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\(?.*|.*\(.*")
_ENCODED_URL = re.compile(r"%[0-9A-Fa-f]{2}")
#: A run of 24+ token characters, where bare AWS keys and Base64/hex-encoded secrets can hide. It starts at
#: the character before the run (a sentinel is put before the text): a class of rare characters first is
#: the engine's fast path. This is the one scan that costs (~5 ns a character).
_LONG_RUN = re.compile(r"[^A-Za-z0-9+/_\-=](?P<run>[A-Za-z0-9+/_\-=]{24,})")
#: Full lines that continue a run when Base64 is wrapped (``base64.encodebytes``, PEM).
_WRAPPED_LINES = re.compile(r"(?:[ \t]*\r?\n[ \t]*[A-Za-z0-9+/_\-]{4,}={0,2}(?=[ \t]*(?:\r?\n|\x00|\Z)))+")
_BASE64_PIECE = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}(?:\s+[A-Za-z0-9+/_\-]{4,}={0,2})*")
_HEX_PIECE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{30,}(?![0-9A-Fa-f])")
_HEX_DIGITS = "0123456789abcdefABCDEF"
#: Necessary conditions for 15 bytes of text in a row (each below 0x80), checked on the encoded form before
#: decoding: hex digit pairs ``[2-7]x``; Base64 quads whose 1st, 2nd and 3rd characters carry a zero top bit.
_HEX_TEXT = re.compile(r"(?:[2-7][0-9A-Fa-f]){15}")
_BASE64_TEXT = re.compile(r"(?:[A-Za-f][A-HQ-Xg-nw-z0-3][ABEFIJMNQRUVYZcdghklopstwx014589][A-Za-z0-9+/_\-]\s*){4}")
#: Decoded bytes worth rescanning hold printable text: random bytes (digests) almost never do.
_PRINTABLE_RUN = re.compile(rb"[\t\n\r\x20-\x7e]{15,}")
#: POSIX user names an ssh URL may keep (``ssh://git@host``): a login, not a credential.
_SSH_USER = re.compile(r"[a-z_][a-z0-9_.\-]{0,31}")
_SCP_LIKE = re.compile(r"(?P<user>[^\s@/]+)@(?P<host>[A-Za-z0-9.\-\[\]]+):(?!//)")
_DECODE_DEPTH = 2
#: No credential shape fits in fewer characters (``pwd=abcd``).
_MIN_LENGTH = 8
#: Joins the strings of a structure for one scan; no token run or wrapped line spans it (``_WRAPPED_LINES``).
_JOIN = "\x00"


def _userinfo(match: re.Match[str]) -> str:
    tail = _SCHEME_TAIL.search(match.string, max(0, match.start() - 32), match.start())
    scheme = tail.group(0).lower() if tail is not None else ""
    if match.group("password") is None and scheme in ("ssh", "git+ssh") and _SSH_USER.fullmatch(match.group("user")):
        return match.group(0)
    # No colon in the placeholder: "user:password@" is exactly what secret scanners (GitHub's, detect-secrets)
    # look for, and a snapshot attached to a CI job gets scanned.
    return "://<redacted-url-userinfo>@"


def _lower(text: str) -> str:
    """Lower-case ASCII copy with the same offsets (each non-ASCII code point becomes one ``?``)."""
    return text.encode("ascii", "replace").decode("ascii").lower()


_Replacer = Callable[[re.Match[str], str], "tuple[int, str] | None"]


def _sub_lowered(text: str, patterns: Iterable[tuple[re.Pattern[str], _Replacer]]) -> str:
    """Apply patterns found in a lower-cased copy of ``text`` to ``text``: ``replace(match, text)`` gives
    the offset from which the match is replaced and the replacement, or None to leave it."""
    lowered = _lower(text)
    for pattern, replace in patterns:
        parts: list[str] = []
        pos = 0
        for match in pattern.finditer(lowered):
            replacement = replace(match, text)
            if replacement is not None and replacement[0] >= pos:
                parts += (text[pos : replacement[0]], replacement[1])
                pos = match.end()
        if parts:
            text = "".join(parts) + text[pos:]
            lowered = _lower(text)
    return text


def _assignment(match: re.Match[str], text: str) -> tuple[int, str] | None:
    value = text[match.start("value") : match.end("value")]
    if not match.group("quote") and not match.group("scheme") and _CODE_REFERENCE.fullmatch(value):
        return None  # declined: the token pass still sees the value (``token=eyJ...`` is a dotted "name")
    return (match.start("scheme") if match.group("scheme") else match.start("value")), "<redacted:assignment>"


def _auth_header(match: re.Match[str], text: str) -> tuple[int, str] | None:
    return match.start("value"), "<redacted:auth-header>"


_LOWERED_PATTERNS: tuple[tuple[re.Pattern[str], _Replacer], ...] = (
    *((pattern, _assignment) for pattern in _ASSIGNMENTS),
    *((pattern, _auth_header) for pattern in _AUTH_HEADERS),
)


def _printable(raw: bytes) -> str | None:
    return raw.decode("latin-1") if _PRINTABLE_RUN.search(raw) else None


def _scrub_plain(text: str) -> str:
    out = text
    if "PRIVATE" in out:
        out = _PRIVATE_KEY.sub("<redacted:private-key>", out)
    if "://" in out and "@" in out:
        out = _URL_USERINFO.sub(_userinfo, out)
    if "=" in out and ("?" in out or "&" in out or ";" in out):
        out = _URL_PARAM.sub(lambda m: f"{m.group(0)[0]}{m.group('name')}=<redacted>", out)
    out = _sub_lowered(out, _LOWERED_PATTERNS if "=" in out or ":" in out else _LOWERED_PATTERNS[len(_ASSIGNMENTS) :])
    for pattern, replacement in _TOKENS:
        out = pattern.sub(replacement, out)
    return out


def _decodings(piece: str) -> Iterable[str]:
    """Printable Base64 (standard or URL-safe) decodings of ``piece``, also from offsets 1..3 when a prefix
    may be glued on (``secret_<b64>``, a diff's ``+<b64>``); Latin-1, so every byte is one character."""
    lines = piece.split()
    marker = lines[0][0] if len(lines) > 1 and lines[0][0] in "+-" else ""
    if marker:  # wrapped Base64 inside a diff: each of its lines carries the marker
        lines = list(itertools.takewhile(lambda line: line.startswith(marker), lines))
        lines = [line[1:] for line in lines]
    core = "".join(lines).partition("=")[0]  # padding ends the data; a following line is something else
    if not core.strip(_HEX_DIGITS) or _BASE64_TEXT.search(core) is None:
        return  # a digest (hex-encoded secrets are found by ``_hex_piece``), or no text inside
    for offset in range(4) if (core[0] in "+/" or "-" in core or "_" in core) else range(1):
        chunk = core[offset:]
        chunk = chunk[:-1] if len(chunk) % 4 == 1 else chunk
        chunk = chunk.replace("-", "+").replace("_", "/")
        try:
            decoded = _printable(base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True))
        except (binascii.Error, ValueError):
            continue
        if decoded is not None:
            yield decoded


def _scrub_run(run: str, depth: int) -> str:
    """Scrub one long token run: bare AWS secret keys, then (``depth`` > 0) Base64 and hex encodings."""
    hex_only = not run.strip(_HEX_DIGITS)
    if len(run) >= 40 and not hex_only:
        run = _AWS_SECRET_KEY.sub("<redacted:aws-secret-key>", run)
    if depth <= 0:
        return run
    if hex_only and _HEX_TEXT.search(run) is None:
        # A digest (a lockfile holds thousands): no hex-encoded text inside, and the Base64 pass cannot change
        # hex-only text (``_decodings`` yields nothing for it), so nothing below would.
        return run

    def _base64_piece(match: re.Match[str]) -> str:
        for decoded in _decodings(match.group(0)):
            if _scrub(decoded, depth - 1) != decoded:
                return "<redacted:base64-secret>"
        return match.group(0)

    def _hex_piece(match: re.Match[str]) -> str:
        piece = match.group(0)
        for offset in (0, 1):
            decoded = _printable(bytes.fromhex(piece[offset : offset + (len(piece) - offset) // 2 * 2]))
            if decoded is not None and _scrub(decoded, depth - 1) != decoded:
                return "<redacted:hex-secret>"
        return piece

    if _BASE64_TEXT.search(run) is not None:
        run = _BASE64_PIECE.sub(_base64_piece, run)
    return _HEX_PIECE.sub(_hex_piece, run) if _HEX_TEXT.search(run) is not None else run


def _scrub_runs(text: str, depth: int) -> str:
    padded = _JOIN + text
    parts: list[str] = []
    pos = 1
    for match in _LONG_RUN.finditer(padded):
        start, end = match.span("run")
        if start < pos:
            continue
        if depth > 0 and padded.startswith(("\n", "\r\n", " ", "\t"), end):
            wrapped = _WRAPPED_LINES.match(padded, end)
            end = wrapped.end() if wrapped is not None else end
        run = padded[start:end]
        scrubbed = _scrub_run(run, depth)
        if scrubbed != run:
            parts += (padded[pos:start], scrubbed)
            pos = end
    return "".join(parts) + padded[pos:] if parts else text


def _scrub(text: str, depth: int) -> str:
    if len(text) < _MIN_LENGTH:
        return text
    out = _scrub_plain(text)
    if depth > 0 and "%" in out and _ENCODED_URL.search(out):
        decoded = unquote(out)
        scrubbed = _scrub(decoded, depth - 1)
        if scrubbed != decoded:
            # Re-encoding would be guesswork: the decoded, scrubbed text replaces the encoded one.
            out = scrubbed
    return _scrub_runs(out, depth) if len(out) >= 24 else out


def scrub_text(text: str) -> str:
    """Replace every credential-shaped substring of ``text`` (plain, URL-, Base64- or hex-encoded)."""
    return _scrub(text, _DECODE_DEPTH) if text else text


def scrub_url(url: str) -> str:
    """A URL with its userinfo and secret query parameters removed (git remotes, index URLs).

    Besides ``scheme://user:pass@host`` this handles git's scp-like form ``user@host:path``, whose user is
    kept only when it is a plain login such as ``git``.
    """
    out = scrub_text(url)
    if "://" not in out:
        match = _SCP_LIKE.match(out)
        if match is not None and not _SSH_USER.fullmatch(match.group("user")):
            out = "<redacted-url-userinfo>@" + out[match.start("host") :]
    return out


def _copy(value: Any, strings: list[str]) -> Any:
    """A copy of a JSON-able structure (tuples become lists), collecting its strings, keys included."""
    if isinstance(value, str):
        strings.append(value)
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                strings.append(key)
            out[key] = _copy(item, strings)
        return out
    if isinstance(value, (list, tuple)):
        return [_copy(item, strings) for item in value]
    return value


def _scrub_each(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(k) if isinstance(k, str) else k: _scrub_each(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_each(v) for v in value]
    return value


def scrub_data(value: Any) -> Any:
    """Scrub every string (keys included) in a JSON-able structure; returns a new structure."""
    strings: list[str] = []
    copied = _copy(value, strings)
    joined = _JOIN.join(strings)
    if _scrub(joined, _DECODE_DEPTH) == joined:
        return copied  # the common case: one scan of the joined strings found nothing
    return _scrub_each(copied)


_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
#: Substrings that make any name secret-looking (``HFTOKEN``, ``db_password``, ``clientSecret``).
_SECRET_SUBSTRINGS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key", "accesskey",
    "access_key", "privatekey", "private_key", "credential", "authorization", "cookie",
)  # fmt: skip
#: Whole words that make a name secret-looking (``--key``, ``GITHUB_PAT``, ``SENTRY_DSN``); as words only,
#: so ``--author``, ``PATH`` and ``--bypass`` are not.
_SECRET_WORDS = frozenset(
    {"pass", "pwd", "key", "auth", "sig", "signature", "session", "dsn", "sas", "pat", "jwt", "cred", "creds", "otp"}
)
#: A flag naming *where* a secret is (``--token-file PATH``) takes a path, not a secret.
_LOCATOR_WORDS = frozenset({"file", "path", "dir", "directory", "env", "var", "name", "url", "id"})


def _name_words(name: str) -> list[str]:
    return [word.lower() for word in _NAME_WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a variable, flag or key name looks like it holds a secret.

    ``TOKENIZERS_PARALLELISM`` is secret-looking by this test (it contains ``token``); allowlists name it
    exactly to keep its value.
    """
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_SUBSTRINGS):
        return True
    return any(word in _SECRET_WORDS for word in _name_words(name))


def _flag_takes_secret(flag: str) -> bool:
    words = _name_words(flag)
    return is_secret_name(flag) and not (words and words[-1] in _LOCATOR_WORDS)


def scrub_argv(argv: Iterable[str]) -> list[str]:
    """argv with the values of secret-looking flags and ``NAME=value`` pairs dropped, then value-scanned.

    ``--token X`` hides ``X`` (whatever it looks like), ``--password=X`` and ``API_KEY=X`` keep only the
    name; ``--token-file PATH`` keeps its path. Every other argument goes through :func:`scrub_text`.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("<redacted:argument>")
            hide_next = False
            continue
        if arg.startswith("-") and "=" in arg:
            flag, _, _value = arg.partition("=")
            if _flag_takes_secret(flag):
                out.append(f"{flag}=<redacted:argument>")
                continue
        elif arg.startswith("-") and len(arg) > 1 and _flag_takes_secret(arg):
            out.append(scrub_text(arg))
            hide_next = True
            continue
        elif "=" in arg:
            name, _, _value = arg.partition("=")
            if name.replace("_", "").replace("-", "").replace(".", "").isalnum() and _flag_takes_secret(name):
                out.append(f"{name}=<redacted:argument>")
                continue
        out.append(scrub_text(arg))
    return out
