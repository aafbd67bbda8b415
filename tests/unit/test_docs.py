"""The documentation stays a usable map: a short README, links that resolve, no tracker or machine leftovers.

The README is the entry point (pitch, set-up, quick start, links); the details live in docs/ and
bench/README.md. A reader outside this project has no issue tracker numbers, no sibling directories and
none of our machines' paths, so none of those may appear in what we ship.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250
#: Text files a tracker reference or a path outside the repository could hide in.
SCANNED_SUFFIXES = {".md", ".py", ".sh", ".in", ".toml", ".cfg", ".yml", ".yaml"}
SCANNED_NAMES = {"Makefile"}

# "issue 7", "Issues 7 and 8", "issue #7"; and a bare "#12" where it stands as a word, as a tracker
# reference does. Markdown headings ("## Set up"), hex colours ("#1f2328", "color:#123456"), HTML
# entities ("&#123;") and labels such as "blas#1" are not references.
ISSUE_WORD = re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE)
ISSUE_HASH = re.compile(r"(?:^|(?<=[\s(\[,;]))#\d+(?![\w-])")
OUTSIDE_REPO = re.compile(r"\.\./shared\b")
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|root)/")

LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _tracked(*patterns: str) -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def _scanned_files() -> list[Path]:
    return [
        path
        for path in _tracked()
        if (path.suffix in SCANNED_SUFFIXES or path.name in SCANNED_NAMES) and path.name != Path(__file__).name
    ]


def tracker_references(text: str) -> list[str]:
    """The lines of ``text`` that cite an issue tracker ("issue 7", "#12")."""
    return [line.strip() for line in text.splitlines() if ISSUE_WORD.search(line) or ISSUE_HASH.search(line)]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = CODE_SPAN.sub(lambda m: m.group()[1:-1], heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)}


def broken_links(path: Path) -> list[str]:
    """Relative links of the Markdown file ``path`` whose file (or heading anchor) does not exist."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = CODE_SPAN.sub("", text)
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
            broken.append(target)
    return broken


@pytest.mark.parametrize(
    ("line", "is_reference"),
    [
        ("Benchmarks (issue 8): make bench", True),
        ("the speed goals of Issue 2", True),
        ("fixed in #12, see there", True),
        ("(#7)", True),
        ("issue #3", True),
        ("## Set up", False),
        ("### 2. The plan", False),
        ("color:#1f2328;background:#fff", False),
        ('<line stroke="#57606a"/>', False),
        ("label = 'blas#1'", False),
        ("&#123; an HTML entity", False),
        ("no issues here: 7 of them", False),
        ("reason: new feature column (PR 412)", False),
    ],
)
def test_the_tracker_check_tells_references_from_lookalikes(line: str, is_reference: bool) -> None:
    assert bool(tracker_references(line)) is is_reference


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move details into docs/ and link them"
    )


def test_no_tracker_references() -> None:
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in _scanned_files()
        if (found := tracker_references(path.read_text(encoding="utf-8", errors="replace")))
    }
    assert not offenders, f"tracker references (say what the code does, not which ticket asked): {offenders}"


def test_nothing_points_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _scanned_files()
        if OUTSIDE_REPO.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not offenders, f"references to ../shared, which users do not have: {offenders}"


def test_no_machine_paths_in_markdown() -> None:
    offenders = {
        str(path.relative_to(ROOT)): [line.strip() for line in text.splitlines() if MACHINE_PATH.search(line)]
        for path in _tracked("*.md")
        if MACHINE_PATH.search(text := path.read_text(encoding="utf-8", errors="replace"))
    }
    assert not offenders, f"absolute paths of our machines in the docs: {offenders}"


def test_relative_links_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    offenders = {str(page.relative_to(ROOT)): found for page in pages if (found := broken_links(page))}
    assert not offenders, f"links to files or headings that do not exist: {offenders}"


def test_the_link_check_finds_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Present heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#present-heading) [web](https://example.com/x) [self](#top)\n"
        "# Top\n[gone](missing.md) [bad anchor](there.md#absent) [both](gone.md#x)\n"
        "```\n[in code](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md", "there.md#absent", "gone.md#x"]
