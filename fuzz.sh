#!/usr/bin/env bash
# Runs every Jazzer fuzz target in fuzzing mode, one JVM each, for the duration in its @FuzzTest
# (60 s), with a 512 MiB heap and a 10-s limit per input (libFuzzer's -timeout; JUnit's own timeout is
# off here, or it would time the whole run). Crashing inputs land in core/src/test/resources/<package>/<Class>Inputs/
# <method>/, where `./mvnw verify` replays them from then on. Usage: ./fuzz.sh [Class#method ...]
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(SafetensorsFuzzTest#safetensors IndexFuzzTest#index QnatFuzzTest#qnatV2 QnatFuzzTest#qnatV1
           BitsandbytesFuzzTest#importer BitsandbytesFuzzTest#shapes CodecFuzzTest#vectorEqualsScalar
           OutputTargetFuzzTest#outputPaths)
fi
# Added to the pom's JVM flags (qnat.vector.args) for the test JVM.
args="-Xmx512m -Djunit.jupiter.execution.timeout.mode=disabled"
status=0
for target in "${targets[@]}"; do
  echo "== fuzzing $target"
  if ! JAZZER_FUZZ=1 ./mvnw -B -q verify -pl core -Dtest="$target" -Dsurefire.failIfNoSpecifiedTests=false \
      "-Dqnat.test.jvm.args=$args" > "core/target/fuzz-${target//#/-}.log" 2>&1; then
    echo "   FAILED: see core/target/fuzz-${target//#/-}.log"
    status=1
  fi
  grep -E "^Done [0-9]+ runs" "core/target/fuzz-${target//#/-}.log" | sed 's/^/   /' || true
done
exit $status
