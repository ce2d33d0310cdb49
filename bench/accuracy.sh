#!/usr/bin/env bash
# NF4's effect on a real model's output: all-MiniLM-L6-v2's sentence embeddings with F32 weights against
# the same model after qnat's NF4 round trip (blocks 32, 64 and 128, with and without double quantization)
# and against langchain4j's int8 model, on 256 sentences; prints the Markdown table for BENCHMARKS.md.
# Usage: bench/accuracy.sh [--sentences N] [--threads N (1)] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
./mvnw -B -q package -DskipTests -pl bench -am
java_home=$(sh .mvn/find-jdk.sh)
"$java_home/bin/java" @bench/target/qnat.jvmargs -cp "bench/target/classes:$(cat bench/target/accuracy.classpath)" \
  dev.qnat.bench.accuracy.EmbeddingAccuracy "$@"
