#!/usr/bin/env bash
# The study in miniature (docs/study.md): unitune-mini as the base model; LoRA, (IA)³, prompt tuning
# and full fine-tuning trained on the pairs of a project the model has never seen (the standard
# library's `email` package and its tests, held out of unitune-mini's training); then the bare model
# and the four compared on that project's test split and on the first 20 HumanEval problems.
#
#   bash docs/study/reproduce.sh            # writes docs/study/{email,humaneval}.{txt,png}, ~20 minutes on 2 cores
#   STUDY_WORK=/tmp/study bash docs/study/reproduce.sh   # keep the project, adapters and results there
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
work=${STUDY_WORK:-$(mktemp -d)}
stdlib=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['stdlib'])")
project="$work/email-project"
adapters=(email-lora email-ia3 email-prompt-tuning email-full)

# The project: the package and its tests, laid out as in the standard library.
rm -rf "$project"
mkdir -p "$project/test"
cp -r "$stdlib/email" "$project/"
cp -r "$stdlib/test/test_email" "$project/test/"
touch "$project/test/__init__.py"
find "$project" -name __pycache__ -prune -exec rm -rf {} +

export UNITUNE_HOME="$work/home" HF_HUB_OFFLINE=1
cd "$project"
unitune mine . --out pairs.jsonl
for name in "${adapters[@]}"; do
  unitune train pairs.jsonl --method "${name#email-}" --name "$name" --store project --progress none
done
unitune eval --compare base "${adapters[@]}" --dataset pairs.jsonl --repo . --chart "$out/email.png" | tee "$out/email.txt"
unitune eval --compare base "${adapters[@]}" --dataset humaneval --limit 20 --chart "$out/humaneval.png" | tee "$out/humaneval.txt"
