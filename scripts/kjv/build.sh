#!/usr/bin/env bash
# Rebuilds the embedded KJV model models/kjv-tiny/ from Debian's bible-kjv, from scratch.
# Needs the Debian packages bible-kjv, sentencepiece, python3-torch and python3-sentencepiece, and
# apt access to fetch OpenBLAS. Intermediate files go to out/kjv/ (git-ignored). Takes about
# 20 minutes on 2 cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
scripts="$root/scripts/kjv"
out="$root/out/kjv"
model="$root/models/kjv-tiny"
heldout="$root/testdata/kjv/heldout.txt"
python=/usr/bin/python3
mkdir -p "$out" "$model" "$(dirname "$heldout")"

echo "== text"
"$python" "$scripts/prepare_text.py" "$out/train.txt" "$heldout"

echo "== tokenizer"
# Llama-2-like BPE: identity normalization, dummy prefix, whitespace kept as is, digits split,
# byte fallback so that any UTF-8 text encodes; unk=0, bos=1, eos=2, no pad.
# Relative paths, run from out/kjv: the model file records them, and must not depend on the checkout.
(cd "$out" && spm_train --input=train.txt --model_prefix=tokenizer --model_type=bpe \
  --vocab_size=1024 --character_coverage=1.0 --byte_fallback=true \
  --normalization_rule_name=identity --add_dummy_prefix=true --remove_extra_whitespaces=false \
  --split_digits=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
  --num_threads=2 --minloglevel=1)
cp "$out/tokenizer.model" "$model/tokenizer.model"

echo "== OpenBLAS"
# Debian's PyTorch links libblas.so.3, which is the reference BLAS unless OpenBLAS is installed
# (5 GFLOP/s against 70 here). Unpacking the OpenBLAS package under out/ and putting it first on
# the library path speeds training up about tenfold without touching the system.
blas="$out/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread"
if [[ ! -f "$blas/libblas.so.3" ]]; then
  (cd "$out" && apt-get download libopenblas0-pthread)
  dpkg-deb -x "$out"/libopenblas0-pthread_*.deb "$out/openblas"
fi
export LD_LIBRARY_PATH="$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS=1

echo "== model (log: $out/train.log)"
"$python" "$scripts/train.py" "$out/train.txt" "$model/tokenizer.model" "$model" \
  "$out/train_stats.json" 2>&1 | tee "$out/train.log"

echo "== evaluation"
"$python" "$scripts/evaluate.py" "$heldout" "$model" "$out/train_stats.json" "$model/training.json"
