#!/usr/bin/env bash
# Zero-shot combinations (issue 15, item 5): hold five content-style combinations out of the generator's
# training, then generate them from prompts that name both and ask the evaluator which content and which
# style (among that content's styles in the real data) each motion shows.
#   recipes/heldout_combos.sh TOKENS DATASET TOKENIZER OUT
# TOKENS: `tokenizer encode` output of DATASET (recipes/default_model.sh stage 4); TOKENIZER: the tokenizer
# folder they were encoded with. Held out (every clip labelled with the pair, mirrored ones included):
# run/elderly, walk/feminine, wave-right-hand/exhausted, raise-up-both-hands/youthful, walk-turn-left/masculine.
# The prompts are src/motionmillion/assets/eval/heldout_combos.jsonl (4 wordings per combination).
# The generator below is the session-4 recipe (cpu-tiny, 1,000 steps, lowest val loss: 59% / 56%). The
# session-5 bundle's recipe (6 x 256, 6,000 steps, memorised) takes hours on a CPU: its held-out figure
# (43% / 52%) came from recipes/generator_sweep.py's "heldout" run on a GPU, on OUT/tokens made here with
# SPLITS_ONLY=1 and evaluated with the eval prompts command at the end of this script.
# SPLITS_ONLY=1 stops after writing OUT/tokens (the held-out splits), e.g. for recipes/generator_sweep.py's
# "heldout" run on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TOKENS=$1; DATASET=$2; TOKENIZER=$3; OUT=$4
MM=${MM:-.venv/bin/motionmillion}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
rm -rf "$OUT/tokens" && cp -r "$TOKENS" "$OUT/tokens"
.venv/bin/python - "$OUT/tokens" "$DATASET" <<'PY'
import json, sys
from pathlib import Path
from motionmillion.data.records import clip_labels
HELD_OUT = {("run", "elderly"), ("walk", "feminine"), ("wave-right-hand", "exhausted"),
            ("raise-up-both-hands", "youthful"), ("walk-turn-left", "masculine")}
tokens, labels = Path(sys.argv[1]), clip_labels(sys.argv[2])
splits = json.loads((tokens / "splits.json").read_text())
held = {n for n, l in labels.items() if (l.content, l.style) in HELD_OUT}
for split in ("train", "val"):
    before = len(splits[split])
    splits[split] = [n for n in splits[split] if n not in held]
    print(f"{split}: {before} -> {len(splits[split])} clips ({before - len(splits[split])} held out)")
(tokens / "splits.json").write_text(json.dumps(splits))
PY
[ "${SPLITS_ONLY:-0}" = 1 ] && exit 0
$MM generator train --config cpu-tiny --tokens "$OUT/tokens" --out "$OUT/generator" --threads 1 \
  --set steps=1000 --set batch_size=32 --set lr=8e-4 --set warmup_steps=100 --set save_every=200 \
  --set stratum_alpha=0.5 --set eval_every=200 --set eval_batches=17 \
  --set length_condition=true --set length_drop_prob=0.5 --set context_prob=0.3 --set max_context_tokens=8
A=src/motionmillion/assets/default_model
rm -rf "$OUT/pipeline"
$MM export-pipeline --tokenizer "$TOKENIZER" --run "$OUT/generator/generator_best" --normalization "$DATASET" \
  --evaluator "$A/evaluator" --out "$OUT/pipeline"
for model in "$OUT/pipeline" "$A"; do
  name=$([ "$model" = "$A" ] && echo bundled || echo heldout)
  $MM eval prompts --model "$model" --prompts src/motionmillion/assets/eval/heldout_combos.jsonl --data "$DATASET" \
    --samples 5 --json "$OUT/$name.json"
done
