#!/usr/bin/env bash
# The study in miniature (docs/study.md), on the real default model (Qwen2.5-Coder-0.5B-Instruct):
# LoRA, (IA)³, prompt tuning and full fine-tuning, each trained within the same time budget on the
# pairs of a project the model is unlikely to have seen (deply 1.3.0 from PyPI: a Python architecture
# linter first released in November 2024, after the model's data was collected), held out by focal
# file; then the bare model and the four compared on the project's test split: raw (one greedy test,
# as the study measured) and delivered (the assured pipeline), with CodeBLEU against the developer's
# tests.
#
#   bash docs/study/reproduce.sh                               # writes docs/study/deply.{txt,json,png}
#   STUDY_WORK=/tmp/study STUDY_MINUTES=20 bash docs/study/reproduce.sh
#   STUDY_MINUTES=5 STUDY_LIMIT=8 bash docs/study/reproduce.sh  # a shorter run: 8 test pairs per model
#   STUDY_MINUTES=6 STUDY_LIMIT=6 STUDY_GRAD_ACCUM=1 bash docs/study/reproduce.sh   # what docs/study.md shows
#
# STUDY_MINUTES is each method's training budget (default 20); STUDY_LIMIT judges only the first N
# pairs of the test split (default: all); STUDY_GRAD_ACCUM is the examples per optimizer step (default
# 8, the study's; 1 gives a short CPU budget several steps instead of one or two). Every step can be run again: the sdist
# and the pairs are kept in STUDY_WORK, a method whose adapter exists is not trained again, a killed
# training resumes from its last checkpoint, and an evaluation goes on from its last judged problem.
# Needs the package index once (for the sdist), unless STUDY_SDIST names a downloaded copy.
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
work=${STUDY_WORK:-$HOME/.cache/unitune-study}
minutes=${STUDY_MINUTES:-20}
limit=()
[ -n "${STUDY_LIMIT:-}" ] && limit=(--limit "$STUDY_LIMIT")
version=1.3.0
project="$work/deply-$version"
methods=(lora ia3 prompt-tuning full)
mkdir -p "$work"

# The project: deply's sdist holds its package and its unittest suite.
sdist=${STUDY_SDIST:-$work/deply-$version.tar.gz}
[ -f "$sdist" ] || python3 -m pip download -q --no-deps --no-binary :all: "deply==$version" -d "$work"
[ -d "$project" ] || tar -xzf "$sdist" -C "$work"

export UNITUNE_HOME="$work/home" HF_HUB_OFFLINE=1
cd "$project"
[ -f pairs.jsonl ] || unitune mine . --out pairs.jsonl | tee "$work/mine.txt"

for method in "${methods[@]}"; do
  name="deply-$method"
  [ -d ".unitune/adapters/$name" ] && continue
  echo "training $name within $minutes minutes" >&2
  # --resume continues a killed run of this name; without a checkpoint it starts afresh
  unitune train pairs.jsonl --method "$method" --name "$name" --store project --minutes "$minutes" --resume \
    --grad-accum "${STUDY_GRAD_ACCUM:-8}" \
    --progress json > "$work/train-$name.jsonl"
done

adapters=("${methods[@]/#/deply-}")
unitune eval --compare base "${adapters[@]}" --dataset pairs.jsonl --repo . "${limit[@]}" \
  --chart "$out/deply.png" --json > "$out/deply.json"
# the same comparison as tables (the results are saved: nothing is generated again)
unitune eval --compare base "${adapters[@]}" --dataset pairs.jsonl --repo . "${limit[@]}" \
  --chart "$out/deply.png" | tee "$out/deply.txt"
