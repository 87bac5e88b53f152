#!/usr/bin/env bash
# Installs a Java runtime (Debian's default JDK, 17 on bookworm) when `java` is not on
# PATH (make java, make test): the Spark engine of `sasrec data prepare` runs on the JVM.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  exit 0
fi
echo "installing a Java runtime (Debian package default-jdk-headless)" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    # Not an error: the pandas engine needs no JVM; the Spark tests skip.
    echo "java.sh: java missing and installing it needs root; the Spark tests are skipped" >&2
    exit 0
  fi
  sudo="sudo -n"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  default-jdk-headless >&2
command -v java >/dev/null
