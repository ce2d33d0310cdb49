#!/usr/bin/env bash
# Kernels of two revisions in one JVM, alternated round by round (dev.qnat.bench.KernelAB): the median
# per-round ratio B/A, for changes that separate JMH forks on this shared machine cannot tell apart.
# REV is a git revision, or "." for the working tree. Each revision's qnat-core is built in a git
# worktree under bench/target/kernel-ab (nothing is installed).
# Usage: bench/kernel-ab.sh REV_A REV_B quantize|measured|measured-dq|mse|dequantize|matvec [F32|BF16] [ELEMENTS] [ROUNDS]
# Example: bench/kernel-ab.sh HEAD~1 . matvec
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  sed -n 's/^# Usage: //p' "$0" >&2
  exit 2
fi
rev_a=$1; rev_b=$2; shift 2
./mvnw -B -q package -DskipTests -Dmaven.javadoc.skip=true -Dmaven.source.skip=true -pl core,bench -am
java_home=$(sh .mvn/find-jdk.sh)
jackson=$(tr ':' '\n' < bench/target/accuracy.classpath | grep '/jackson-core-' | head -n 1)
work=bench/target/kernel-ab
mkdir -p "$work"
trees=()
cleanup() { for tree in "${trees[@]}"; do git worktree remove --force "$tree" 2>/dev/null || true; done; }
trap cleanup EXIT

built_jar() { # the qnat-core jar under a tree
  ls "$1"/core/target/qnat-core-*-SNAPSHOT.jar | grep -v -e sources -e javadoc | head -n 1
}
build_core() { # revision, name: sets jar to that revision's qnat-core jar
  local rev=$1 name=$2
  if [ "$rev" = "." ]; then
    jar=$(built_jar .)
    return
  fi
  local tree="$work/$name"
  git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
  git worktree add --detach --quiet "$tree" "$rev"
  trees+=("$tree")
  (cd "$tree" && ./mvnw -B -q package -DskipTests -Dmaven.javadoc.skip=true -Dmaven.source.skip=true -pl core -am)
  jar=$(built_jar "$tree")
}
build_core "$rev_a" a; jar_a=$jar
build_core "$rev_b" b; jar_b=$jar
"$java_home/bin/java" @bench/target/qnat.jvmargs -XX:+UseParallelGC -cp bench/target/classes dev.qnat.bench.KernelAB \
  "$jar_a:$jackson" "$jar_b:$jackson" "$@"
