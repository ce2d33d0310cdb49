#!/usr/bin/env bash
# Runs the NF4 JMH benchmarks: the scalar reference once, then the vector kernels at 512, 256 and
# 128 bits (each width in its own forks), and prints the table for BENCHMARKS.md (ns per element,
# GB/s of input). Usage: bench/run.sh [extra JMH options, e.g. -p elements=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
./mvnw -B -q package -DskipTests
java_home=$(sh .mvn/find-jdk.sh)
out=bench/target/results
mkdir -p "$out"
run() { # name, extra JMH args...
  local name=$1; shift
  "$java_home/bin/java" @bench/target/qnat.jvmargs -jar bench/target/benchmarks.jar Nf4Benchmark -rf json -rff "$out/$name.json" "$@" \
    > "$out/$name.log"
}
run scalar -p impl=scalar -jvmArgsAppend "-Dqnat.vector.bits=scalar" "$@"
for bits in 512 256 128; do
  run "vector-$bits" -p impl=vector -jvmArgsAppend "-Dqnat.vector.bits=$bits" "$@"
done
python3 bench/table.py "$out"/scalar.json "$out"/vector-*.json
