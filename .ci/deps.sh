#!/usr/bin/env bash
# Installs what building resellgate needs when it is missing: cmake (pingora's zlib-ng
# build runs it) and a C compiler. Safe to run again: it only acts on what is absent.
set -euo pipefail

if ! command -v cmake >/dev/null 2>&1; then
  echo "deps: installing cmake" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
  else
    python3 -m pip install --user --quiet cmake
    export PATH="$HOME/.local/bin:$PATH"
  fi
fi
command -v cc >/dev/null 2>&1 || { echo "deps: a C compiler (cc) is required" >&2; exit 1; }
cmake --version | head -n 1 >&2

# The console's browser tests (tests/it/webdriver.rs) drive Debian's chromium
# through chromedriver (WebDriver). With CI=true a missing browser fails those tests.
if ! command -v chromedriver >/dev/null 2>&1; then
  echo "deps: installing chromium and chromium-driver" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "deps: cannot install chromium (no apt-get as root or sudo): browser tests need it" >&2
  fi
fi
