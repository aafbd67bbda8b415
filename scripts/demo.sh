#!/usr/bin/env bash
# `make demo`: "a small change broke my pipeline" on the bundled churn example, end to end.
#
#   scripts/demo.sh            # from the repository root; `make demo` builds the venvs first
#
# 1. installs what it needs (envsnap's venv .venv and the job's pinned venv .cache/demo-venv);
# 2. runs the churn pipeline under envsnap and captures the good snapshot;
# 3. commits a one-line change to its preprocessing and captures the bad snapshot
#    (fixtures/scenarios/normalization-change, in a scratch git repository under out/demo/work);
# 4. diffs them, in the terminal and as HTML;
# 5. replays the bad one: in Docker when scripts/docker-setup.sh gets an engine, else in the venv engine;
# 6. prints where to look.
# Everything lands in out/demo/ (and out/demo.envsnap, the good run); rerunning replaces it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
OUT=${OUT:-out}
DEMO=$OUT/demo
ENVSNAP="$VENV/bin/envsnap"
step=0
bold=; plain=
if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); fi
say() { step=$((step + 1)); printf '\n%s== demo step %d: %s%s\n' "$bold" "$step" "$*" "$plain"; }

say "install what the demo needs"
if [ ! -x "$ENVSNAP" ] || [ ! -f .cache/demo-venv/.installed ]; then
  echo "building $VENV (envsnap) and .cache/demo-venv (the job's pinned environment)"
  make --no-print-directory "$VENV/.envsnap-installed" .cache/demo-venv/.installed
else
  echo "envsnap in $VENV and the job's venv .cache/demo-venv are ready ($(.cache/demo-venv/bin/python -c 'import pandas, sklearn; print(f"pandas {pandas.__version__}, scikit-learn {sklearn.__version__}")'))"
fi
mkdir -p "$DEMO"

say "run the churn pipeline under envsnap (good), commit a one-line change to preprocessing, run it again (bad)"
echo "the change: churn/preprocess.py scales by the batch's std (ddof=1) instead of the training scaler"
"$VENV/bin/python" fixtures/scenarios/normalization-change/scenario.py --out "$DEMO" >/dev/null
cp "$DEMO/good.envsnap" "$OUT/demo.envsnap"
"$ENVSNAP" show "$DEMO/good.envsnap"
"$ENVSNAP" verify "$DEMO/bad.envsnap"
"$ENVSNAP" export "$DEMO/good.envsnap" --requirements "$DEMO/good-requirements.lock"
"$ENVSNAP" export "$DEMO/good.envsnap" --sbom "$DEMO/good-sbom.cdx.json"

say "diff good and bad: what changed, where the outputs first diverge, ranked suspects"
"$ENVSNAP" diff "$DEMO/good.envsnap" "$DEMO/bad.envsnap" --max-rows 2 --html "$DEMO/diff.html"

say "replay the bad run: rebuild its runtime, rerun every stage, compare with the recording"
set +e
if image=$(scripts/docker-setup.sh 2>"$DEMO/docker-setup.log"); then
  echo "engine: docker (base image $image)"
  "$ENVSNAP" replay "$DEMO/bad.envsnap" --base-image "$image"
else
  echo "engine: venv (no Docker engine here: see $DEMO/docker-setup.log)"
  "$ENVSNAP" replay "$DEMO/bad.envsnap" --engine venv
fi
code=$?
set -e
if [ "$code" -gt 1 ]; then echo "demo: the replay failed (exit $code)" >&2; exit "$code"; fi

say "where to look"
cat <<TXT
  $DEMO/diff.html                  the diff as one self-contained page (open it in a browser)
  $DEMO/good.envsnap, bad.envsnap  the two snapshots (envsnap show / verify / diff them)
  $DEMO/good-requirements.lock     the good run's lock (pip install --no-deps -r reproduces it)
  $DEMO/good-sbom.cdx.json         its CycloneDX SBOM
  $DEMO/work                       the pipeline's scratch repository: git log -p shows the change
  fixtures/scenarios/               five more incidents: schema change, dependency upgrade, threads,
                                   data drift, memory limit (fixtures/scenarios/README.md)
TXT
