#!/bin/sh
# Regenerates the lockfiles in this folder with the real tools (see README.md for the versions used).
# Usage: sh tests/fixtures_lockfiles/regenerate.sh   (needs the PyPI index; installs the tools under /tmp)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/envsnap-lockfile-fixtures}
rm -rf "$WORK" && mkdir -p "$WORK"
python3 -m venv "$WORK/tools" && "$WORK/tools/bin/pip" install -q uv pip-tools "poetry>=2,<3" pipenv
python3 -m venv "$WORK/poetry18" && "$WORK/poetry18/bin/pip" install -q "poetry>=1.8,<1.9"
"$WORK/tools/bin/pip" list 2>/dev/null | grep -iE '^(uv|poetry|pipenv|pip-tools) ' >"$WORK/versions.txt"
"$WORK/poetry18/bin/pip" list 2>/dev/null | grep -iE '^poetry ' | sed 's/^poetry /poetry(1.8) /' >>"$WORK/versions.txt"
T="$WORK/tools/bin"

# uv: numpy forks on the Python version; tomli only below 3.11; a dev group.
mkdir -p "$WORK/uv" && cp "$HERE/projects/uv/pyproject.toml" "$WORK/uv/"
(cd "$WORK/uv" && "$T/uv" lock -q && "$T/uv" export -q --format pylock.toml -o pylock.toml --all-groups \
  && "$T/uv" export -q --format requirements-txt -o requirements.txt --all-groups)
cp "$WORK/uv/uv.lock" "$HERE/uv.lock"
cp "$WORK/uv/pylock.toml" "$HERE/pylock.toml"
cp "$WORK/uv/requirements.txt" "$HERE/requirements-uv.txt"

# Poetry 2.x and 1.8: the same project (numpy fork, tomli below 3.11, a dev group).
for v in 2 18; do
  mkdir -p "$WORK/poetry$v" && cp "$HERE/projects/poetry/pyproject.toml" "$WORK/poetry$v/"
  bin="$T/poetry"; [ "$v" = 18 ] && bin="$WORK/poetry18/bin/poetry"
  (cd "$WORK/poetry$v" && "$bin" lock -q 2>/dev/null || (cd "$WORK/poetry$v" && "$bin" lock --no-update -q))
  cp "$WORK/poetry$v/poetry.lock" "$HERE/poetry$v.lock"
done

# pipenv: six in default, tomli with a marker, iniconfig in develop.
mkdir -p "$WORK/pipenv" && cp "$HERE/projects/pipenv/Pipfile" "$WORK/pipenv/"
(cd "$WORK/pipenv" && PIPENV_VENV_IN_PROJECT=1 "$T/pipenv" lock >/dev/null 2>&1)
cp "$WORK/pipenv/Pipfile.lock" "$HERE/Pipfile.lock"

# pip-compile --generate-hashes
cp "$HERE/projects/pip-tools/requirements.in" "$WORK/requirements.in"
(cd "$WORK" && "$T/pip-compile" -q --generate-hashes --no-header --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in)
cp "$WORK/requirements.txt" "$HERE/requirements-hashes.txt"
cp "$WORK/versions.txt" "$HERE/tool-versions.txt"

# A git dependency whose commit moves: two uv.lock revisions of one project (the diff names the bump).
# The repository is local (file://), so no network beyond the index is needed.
GIT="$WORK/gitdep"
mkdir -p "$GIT/src/gitdep" && cd "$GIT"
printf '[project]\nname = "gitdep"\nversion = "0.1.0"\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n' >pyproject.toml
echo 'VALUE = 1' >src/gitdep/__init__.py
git init -q && git add -A && git -c user.name=t -c user.email=t@example.invalid commit -qm one
mkdir -p "$WORK/uvgit" && cd "$WORK/uvgit"
printf '[project]\nname = "gituser"\nversion = "0.1.0"\nrequires-python = ">=3.10"\ndependencies = ["gitdep @ git+file://%s", "six==1.17.0"]\n' "$GIT" >pyproject.toml
"$T/uv" lock -q && cp uv.lock "$HERE/uv-git-a.lock"
cd "$GIT" && echo 'VALUE = 2' >src/gitdep/__init__.py && git -c user.name=t -c user.email=t@example.invalid commit -qam two
cd "$WORK/uvgit" && "$T/uv" lock -q --upgrade-package gitdep && cp uv.lock "$HERE/uv-git-b.lock"
cd "$HERE"

# Poetry 2 with the same git dependency ([package.source] type = "git", resolved_reference = the commit).
mkdir -p "$WORK/poetrygit" && sed "s|GITDEP|$GIT|" "$HERE/projects/poetry-git/pyproject.toml" >"$WORK/poetrygit/pyproject.toml"
(cd "$WORK/poetrygit" && "$T/poetry" lock -q)
cp "$WORK/poetrygit/poetry.lock" "$HERE/poetry-git.lock"
