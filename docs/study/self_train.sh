#!/usr/bin/env bash
# Self-training, an experiment of the study (docs/study.md): LoRA trained on a project's mined pairs and on
# the tests the assured pipeline (the bare model) delivered for the project's untested functions, judged
# on the same test split as reproduce.sh's adapters. Run reproduce.sh for the project first (its sdist,
# environment and pairs).
#
#   bash docs/study/self_train.sh deply        # judged as docs/study/deply-self*.{txt,json,png}
#
# Settings, from the environment (and reproduce.sh's, which it runs with STUDY_PAIRS=pairs-self.jsonl):
#   STUDY_SELF_LIMIT  how many untested functions to generate tests for (default 40), after the
#                     STUDY_UNTESTED ones reproduce.sh judges (default 30)
#   STUDY_TAG         the adapter's suffix (default -self)
# The tests are generated in a copy of the project without the test split's developer tests
# (study_sets.py copy), so that nothing trained on has seen them; they are kept in
# STUDY_WORK/self-PROJECT/tests, and a generation that was stopped goes on from its last function.
set -euo pipefail

name=${1:-deply}
case "$name" in
  deply) folder=deply-1.3.0 ;;
  uncalled-for) folder=uncalled_for-0.6.2 ;;
  python-discovery) folder=python_discovery-1.9.9 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "self_train.sh: unknown project '$name'; one of: deply, uncalled-for, python-discovery" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then work=${STUDY_WORK:-/var/tmp/unitune-study}; else work=${STUDY_WORK:-$HOME/.cache/unitune-study}; fi
project="$work/$folder" self="$work/self-$name"
[ -f "$project/pairs.jsonl" ] || { echo "self_train.sh: run reproduce.sh $name first (no $project/pairs.jsonl)" >&2; exit 2; }
export UNITUNE_HOME="$work/home" HF_HUB_OFFLINE=1

# the interpreter unitune is installed in, for the study's helper scripts
unitune_python=${STUDY_UNITUNE_PYTHON:-python3}
"$unitune_python" -c "import unitune" 2>/dev/null || {
  echo "$(basename "$0"): $unitune_python cannot import unitune; set STUDY_UNITUNE_PYTHON to the Python it is installed in" >&2; exit 2; }
if [ ! -f "$project/pairs-self.jsonl" ]; then
  [ -d "$self/copy" ] || "$unitune_python" "$here/study_sets.py" copy "$project" "$self"
  # untested functions after the ones reproduce.sh judges
  "$unitune_python" "$here/study_sets.py" untested "$project" --skip "${STUDY_UNTESTED:-30}" \
    --limit "${STUDY_SELF_LIMIT:-40}" > "$self/untested.txt"
  # the bare model's delivered tests: each passed three runs in the sandbox and added coverage
  unitune eval --base --dataset "$self/untested.txt" --repo "$self/copy" --python "$project/.venv/bin/python" \
    --engine "${STUDY_ENGINE:-torch}" --save-tests "$self/tests" | tee "$self/generated.txt"
  "$unitune_python" "$here/study_sets.py" collect "$project" "$self"
fi
STUDY_PAIRS=pairs-self.jsonl STUDY_TAG=${STUDY_TAG:--self} STUDY_METHODS=${STUDY_METHODS:-lora} \
  bash "$here/reproduce.sh" "$name"
