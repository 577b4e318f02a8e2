#!/usr/bin/env bash
# The study (docs/study.md) on the real default model (Qwen2.5-Coder-0.5B-Instruct), on one project:
# LoRA, (IA)³, prompt tuning and full fine-tuning, each trained within the same time budget on the
# project's mined pairs, held out by focal file; then the bare model and the four compared on the
# project's whole test split, judged in a copy of the project without the split's developer tests:
# raw (one greedy test, as the study measured) and delivered (the assured pipeline), with CodeBLEU
# against the developers' tests and the time each step took; then on a sample of the project's untested
# functions (docs/study/$name-untested.*).
#
#   bash docs/study/reproduce.sh deply              # writes docs/study/deply.{txt,json,png}
#   bash docs/study/reproduce.sh uncalled-for
#   bash docs/study/reproduce.sh python-discovery
#   STUDY_MINUTES=5 STUDY_LIMIT=8 bash docs/study/reproduce.sh deply   # a shorter run: 8 functions per model
#
# The projects, each first released after the model's training data was collected, each with its real
# test suite in its sdist (pinned by version and SHA-256):
#   deply 1.3.0             a Python architecture linter (first release 2024-11), unittest classes
#   uncalled-for 0.6.2      dependency injection by annotations (first release 2026-02), pytest functions
#   python-discovery 1.9.9  finding Python interpreters (first release 2026-02; grown out of virtualenv's
#                           discovery module), pytest with fixtures and pytest-mock
#
# Settings, from the environment:
#   STUDY_WORK        where the sdists, projects, adapters and results go (default ~/.cache/unitune-study,
#                     or /var/tmp/unitune-study for root)
#   STUDY_PYTHON      the interpreter the projects' environments are made from
#   STUDY_MINUTES     each method's training budget (default 20)
#   STUDY_METHODS     the methods trained and compared (default: lora ia3 prompt-tuning full)
#   STUDY_LIMIT       judge only the first N functions of the test split (default: all)
#   STUDY_UNTESTED    judge every model on N of the project's untested functions too (default 30; 0: none)
#   STUDY_GRAD_ACCUM  examples per optimizer step (default 1, `unitune train`'s; 8 is the study's, give it a STUDY_TAG)
#   STUDY_TRAIN_ARGS  more `unitune train` flags (a recipe experiment; give it its own STUDY_TAG)
#   STUDY_PAIRS       the pairs file trained on, in the project's folder (default pairs.jsonl;
#                     self_train.sh's pairs-self.jsonl, with the same test split)
#   STUDY_TAG         a suffix for the adapters' and the results' names (default none)
#   STUDY_UNITUNE_PYTHON  the Python unitune is installed in, for the helper scripts (default python3)
#   STUDY_ENGINE      what runs the model when judging (default torch, for every method alike: llama.cpp
#                     runs LoRA but not the other methods); another engine's results are named with it
#
# Every step can be run again: the sdist, the project's virtual environment and the pairs are kept in
# STUDY_WORK, a method whose adapter exists is not trained again, a killed training resumes from its
# last checkpoint, and an evaluation goes on from its last judged function. Needs the package index once
# (the sdist, the test dependencies).
set -euo pipefail

name=${1:-deply}
case "$name" in
  deply)
    version=1.3.0
    url=https://files.pythonhosted.org/packages/3d/66/27e32e67544d401a9b6c2a5ce6cd53eda10c00a4333874c6d887147eee7d/deply-1.3.0.tar.gz
    sha256=145e0974b5abcde391575f273bf5687a68de904493e5ea355430aabfec0efaaf
    needs=(PyYAML) ;;
  uncalled-for)
    version=0.6.2
    url=https://files.pythonhosted.org/packages/a3/60/993a9757dc4a41727351828dc784e66fd467ed81d46cbec25d44cae69657/uncalled_for-0.6.2.tar.gz
    sha256=58835db667a85408c7b6d6ad8dfdd74d7713d3be669b46396ba3d2c6a889242d
    # its addopts name pytest-cov's and pytest-timeout's options, and its async tests need pytest-asyncio
    needs=(pytest-asyncio==1.5.0 pytest-cov==7.1.0 pytest-timeout==2.4.0) ;;
  python-discovery)
    version=1.9.9
    url=https://files.pythonhosted.org/packages/a7/8b/8ba2210506a25f82481d554833e475218d9d36e8bf1bb91649ba7d5ace32/python_discovery-1.9.9.tar.gz
    sha256=6dfa5a9d3bb478eaf4f4e6afe55dc8367ec4bcca61715c7f5542d3c5b2df51e8
    # its package reads its own version from its installed metadata: the released wheel gives it, while the
    # code judged is the sdist's src/, which the sandbox puts first on the path
    needs=(filelock pytest-mock==3.15.1 vermin python-discovery==1.9.9) ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "reproduce.sh: unknown project '$name'; one of: deply, uncalled-for, python-discovery" >&2; exit 2 ;;
esac

out=$(cd "$(dirname "$0")" && pwd)
# the interpreter unitune is installed in, for the study's helper scripts
unitune_python=${STUDY_UNITUNE_PYTHON:-python3}
"$unitune_python" -c "import unitune" 2>/dev/null || {
  echo "$(basename "$0"): $unitune_python cannot import unitune; set STUDY_UNITUNE_PYTHON to the Python it is installed in" >&2; exit 2; }
# Run as root, the sandbox runs the tests as `nobody`, who must be able to read the project's copy and run
# its interpreter: then the work folder is under /var/tmp and the environment is made from the system's
# Python, not from one in root's home.
if [ "$(id -u)" = 0 ]; then
  work=${STUDY_WORK:-/var/tmp/unitune-study} python=${STUDY_PYTHON:-/usr/bin/python3}
else
  work=${STUDY_WORK:-$HOME/.cache/unitune-study} python=${STUDY_PYTHON:-python3}
fi
minutes=${STUDY_MINUTES:-20}
tag=${STUDY_TAG:-}
engine=${STUDY_ENGINE:-torch}
result=$name$tag  # the results' file names: docs/study/$result.{txt,json,png}
[ "$engine" = torch ] || result+="-$engine"
limit=()
[ -n "${STUDY_LIMIT:-}" ] && limit=(--limit "$STUDY_LIMIT")
read -r -a train_args <<< "${STUDY_TRAIN_ARGS:-}"
methods=(${STUDY_METHODS:-lora ia3 prompt-tuning full})
sdist="$work/$(basename "$url")"
project="$work/$(basename "$url" .tar.gz)"  # the sdist's own folder (uncalled_for-0.6.2)
mkdir -p "$work" && chmod a+rx "$work"
stamp() { echo "[$(date '+%F %T')] $*" | tee -a "$work/$name$tag-times.log" >&2; }

# The project: its sdist holds its package and its test suite.
if [ ! -f "$sdist" ]; then
  curl -fsSL "$url" -o "$sdist.part" && mv "$sdist.part" "$sdist"
fi
echo "$sha256  $sdist" | sha256sum -c --quiet
[ -d "$project" ] || tar -xzf "$sdist" -C "$work"

# Its tests (the developers' and the generated ones) run in its own environment: pytest and coverage as
# unitune pins them, and what the project and its tests import.
if [ ! -x "$project/.venv/bin/python" ]; then
  "$python" -m venv "$project/.venv.part"
  "$project/.venv.part/bin/python" -m pip install -q pytest==9.0.3 coverage==7.17.3
  mv "$project/.venv.part" "$project/.venv"
fi
# what the project and its tests import, checked on every run so that an environment made before a need
# was added gets it (pip returns at once when it is there)
[ ${#needs[@]} -eq 0 ] || "$project/.venv/bin/python" -m pip install -q "${needs[@]}"

export UNITUNE_HOME="$work/home" HF_HUB_OFFLINE=1
cd "$project"
[ -f pairs.jsonl ] || unitune mine . --out pairs.jsonl | tee "$work/mine-$name.txt"

for method in "${methods[@]}"; do
  adapter="$name-$method$tag"
  [ -d ".unitune/adapters/$adapter" ] && continue
  stamp "training $adapter within $minutes minutes ${train_args[*]}"
  # --resume continues a killed run of this name; without a checkpoint it starts afresh
  # --judge 0: the comparison below judges every method on the whole split
  unitune train "${STUDY_PAIRS:-pairs.jsonl}" --method "$method" --name "$adapter" --store project --minutes "$minutes" --resume \
    --grad-accum "${STUDY_GRAD_ACCUM:-1}" --judge 0 "${train_args[@]}" --progress json > "$work/train-$adapter.jsonl"
  stamp "trained $adapter"
done

compare=(base "${methods[@]/#/$name-}")
compare=("${compare[@]/%/$tag}")
[ -n "$tag" ] && compare[0]=base
stamp "judging ${compare[*]}"
unitune eval --compare "${compare[@]}" --dataset pairs.jsonl --repo . --engine "$engine" "${limit[@]}" \
  --chart "$out/$result.png" --json > "$out/$result.json"
# the same comparison as tables (the results are saved: nothing is generated again)
unitune eval --compare "${compare[@]}" --dataset pairs.jsonl --repo . --engine "$engine" "${limit[@]}" \
  --chart "$out/$result.png" | tee "$out/$result.txt"
stamp "judged ${compare[*]}"

# The functions a user would point the tool at: N of those no developer test covers (study_sets.py),
# judged in the project as it is. No reference test, so no CodeBLEU: served, coverage and mutants.
untested=${STUDY_UNTESTED:-30}
if [ "$untested" -gt 0 ]; then
  "$unitune_python" "$out/study_sets.py" untested . --limit "$untested" > untested.txt
  stamp "judging ${compare[*]} on $(wc -l < untested.txt) untested functions"
  unitune eval --compare "${compare[@]}" --dataset untested.txt --repo . --engine "$engine" \
    --chart "$out/$result-untested.png" --json > "$out/$result-untested.json"
  unitune eval --compare "${compare[@]}" --dataset untested.txt --repo . --engine "$engine" \
    --chart "$out/$result-untested.png" | tee "$out/$result-untested.txt"
  stamp "judged ${compare[*]} on untested functions"
fi
