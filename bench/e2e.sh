#!/usr/bin/env bash
# End to end, JVM start included, on a 4.1 GB BF16 Llama-shaped checkpoint (made once with
# `qnat demo --layers 160`): default `qnat quantize` on 1 and 2 threads, the same with --no-stats,
# `qnat dequantize` of its QNAT file back to BF16 safetensors, and `cp` of the checkpoint, each RUNS
# times (default 3), alternated, then the one-core memory probe (JMH) of the same run. Prints a table
# of medians for BENCHMARKS.md. Usage: bench/e2e.sh [DIR]   (default bench/target/e2e; needs ~15 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/target/e2e}
runs=${RUNS:-3}
./mvnw -B -q package -DskipTests
java_home=$(sh .mvn/find-jdk.sh)
mkdir -p "$dir"
model="$dir/model.safetensors"
if [ ! -f "$model" ]; then
  echo "making the 4.1 GB checkpoint in $dir (once)..." >&2
  rm -rf "$dir/demo"
  ./qnat demo --layers 160 --keep --dir "$dir/demo" > "$dir/demo.log"
  mv "$dir/demo/model.safetensors" "$model"
  rm -rf "$dir/demo"
fi
./qnat quantize "$model" -o "$dir/model.qnat" --no-stats > /dev/null

declare -A times
run() { # label, command...
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" > "$dir/last.log" 2>&1 || { cat "$dir/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  times[$label]+=" $(echo "$end - $start" | bc)"
}
for ((r = 1; r <= runs; r++)); do
  echo "round $r of $runs" >&2
  run "quantize, 1 thread" ./qnat quantize "$model" -o "$dir/out.qnat" --threads 1
  run "quantize, 2 threads" ./qnat quantize "$model" -o "$dir/out.qnat" --threads 2
  run "quantize --no-stats, 1 thread" ./qnat quantize "$model" -o "$dir/out.qnat" --threads 1 --no-stats
  run "quantize --no-stats, 2 threads" ./qnat quantize "$model" -o "$dir/out.qnat" --threads 2 --no-stats
  run "dequantize to BF16" ./qnat dequantize "$dir/model.qnat" -o "$dir/back.safetensors"
  run "cp of the checkpoint" cp "$model" "$dir/copy.safetensors"
  rm -f "$dir/copy.safetensors" "$dir/back.safetensors" "$dir/out.qnat"
done
"$java_home/bin/java" @bench/target/qnat.jvmargs -jar bench/target/benchmarks.jar MemoryProbeBenchmark -rf json -rff "$dir/probe.json" \
  > "$dir/probe.log"
probe=$(python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))[0]['primaryMetric']['score'])" \
  "$dir/probe.json")
bytes=$(stat -c %s "$model")
echo "| command | median | runs (s) | GB/s of input |"
echo "|---|---:|---|---:|"
for label in "quantize, 1 thread" "quantize, 2 threads" "quantize --no-stats, 1 thread" \
    "quantize --no-stats, 2 threads" "dequantize to BF16" "cp of the checkpoint"; do
  python3 - "$label" "$bytes" ${times[$label]} <<'PY'
import statistics, sys
label, size, runs = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3:]]
median = statistics.median(runs)
print(f"| {label} | {median:.2f} s | {', '.join(f'{x:.2f}' for x in runs)} | {size / median / 1e9:.2f} |")
PY
done
echo
echo "one-core memory probe (read 4 B, write 0.5 B per element, 64 Mi elements): $probe ns per element"
