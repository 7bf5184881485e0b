#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for tests/ShareRpc.Viewer.Tests (PuppeteerSharp drives
# /usr/bin/chromium; no test tool ever downloads a browser of its own). Idempotent: does nothing
# when it is there.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
echo "chromium: installing Debian's chromium"
sudo=""; [[ "$(id -u)" != "0" ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
[[ -x /usr/bin/chromium ]] || { echo "chromium: install finished but /usr/bin/chromium is missing" >&2; exit 1; }
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
