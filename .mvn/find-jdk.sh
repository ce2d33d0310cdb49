#!/bin/sh
# Prints the home of a JDK whose feature version is at least $1 (default 25), or says in one
# sentence what to install and exits 1. Used by ./mvnw and ./qnat so that neither needs JAVA_HOME.
# Order: JAVA_HOME, the java on PATH, then the usual install folders (newest version first).
need="${1:-25}"

feature_of() { # JDK home -> feature version, from its release file or from java -version
  if [ -r "$1/release" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release")
  else
    v=$("$1/bin/java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
  fi
  [ "$v" = 1 ] && v=8
  echo "${v:-0}"
}

usable() { [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] && [ "$(feature_of "$1")" -ge "$need" ] 2>/dev/null; }

if [ -n "${JAVA_HOME:-}" ] && usable "$JAVA_HOME"; then echo "$JAVA_HOME"; exit 0; fi

if command -v java >/dev/null 2>&1; then
  home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
  if usable "$home"; then echo "$home"; exit 0; fi
fi

best=""; best_v=0
for home in /usr/lib/jvm/* /usr/java/* /opt/java/* /opt/jdk* /opt/*jdk* \
            "$HOME"/.sdkman/candidates/java/* "$HOME"/.jdks/* "$HOME"/.asdf/installs/java/* \
            /Library/Java/JavaVirtualMachines/*/Contents/Home; do
  [ -d "$home" ] && [ ! -L "$home" ] || continue
  if usable "$home"; then
    v=$(feature_of "$home")
    if [ "$v" -gt "$best_v" ]; then best="$home"; best_v=$v; fi
  fi
done
if [ -n "$best" ]; then echo "$best"; exit 0; fi

echo "qnat needs a JDK $need or newer and found none (JAVA_HOME, PATH, /usr/lib/jvm, ~/.sdkman, ~/.jdks): install one, e.g. Eclipse Temurin $need (apt install temurin-$need-jdk or https://adoptium.net), or set JAVA_HOME to it." >&2
exit 1
