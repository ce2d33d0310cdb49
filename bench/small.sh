#!/usr/bin/env bash
# A small real model through the launcher, JVM start included: all-MiniLM-L6-v2's F32 weights (90 MB of
# safetensors, written once from langchain4j's ONNX file), `qnat quantize` with default options against
# `qnat inspect` of its output, alternated RUNS times (default 5); prints the medians and their ratio
# (issue 12's target: quantize within 2.5x of inspect). Usage: bench/small.sh [DIR]  (default
# bench/target/small; the script writes minilm.safetensors, minilm.qnat and last.log there)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/target/small}
runs=${RUNS:-5}
./mvnw -B -q package -DskipTests -pl bench,cli -am
java_home=$(sh .mvn/find-jdk.sh)
mkdir -p "$dir"
model="$dir/minilm.safetensors"
if [ ! -f "$model" ]; then
  "$java_home/bin/java" @bench/target/qnat.jvmargs -cp "bench/target/classes:$(cat bench/target/accuracy.classpath)" \
    dev.qnat.bench.accuracy.MiniLmCheckpoint "$model" >&2
fi
seconds() { # command... -> wall seconds; on failure its stderr, and the script stops
  local start end
  start=$(date +%s.%N)
  "$@" > /dev/null 2> "$dir/last.log" || { cat "$dir/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
seconds ./qnat quantize "$model" -o "$dir/minilm.qnat" > /dev/null # once, so that inspect has its file
quantize=()
inspect=()
for ((r = 1; r <= runs; r++)); do
  quantize+=("$(seconds ./qnat quantize "$model" -o "$dir/minilm.qnat")")
  inspect+=("$(seconds ./qnat inspect "$dir/minilm.qnat")")
done
python3 - "${quantize[*]}" "${inspect[*]}" <<'PY'
import statistics, sys
q = [float(x) for x in sys.argv[1].split()]
i = [float(x) for x in sys.argv[2].split()]
print(f"all-MiniLM-L6-v2 (F32, 90 MB), {len(q)} alternated runs each, wall seconds:")
print(f"  qnat quantize: median {statistics.median(q):.2f} s ({', '.join(f'{x:.2f}' for x in q)})")
print(f"  qnat inspect:  median {statistics.median(i):.2f} s ({', '.join(f'{x:.2f}' for x in i)})")
print(f"  quantize / inspect: {statistics.median(q) / statistics.median(i):.2f}x")
PY
