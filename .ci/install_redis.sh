#!/usr/bin/env bash
# Installs Debian's redis-server package when redis-server is not on PATH (make redis,
# make test). The tests start their own servers; the package's service is not used.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "installing redis-server (Debian package)" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    # Not an error: the embedded SQLite store needs no server; the Redis tests skip.
    echo "install_redis.sh: redis-server missing and installing it needs root;" \
      "the Redis tests are skipped" >&2
    exit 0
  fi
  sudo="sudo -n"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >&2
# The package may start a service on 6379 where an init system runs; stop it if so.
if command -v service >/dev/null 2>&1; then $sudo service redis-server stop >/dev/null 2>&1 || true; fi
command -v redis-server >/dev/null
