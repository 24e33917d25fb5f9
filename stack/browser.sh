#!/usr/bin/env bash
# The browser the dashboard's page is tested in: Debian's Chromium, never a test tool's own
# download (playwright's `install` fetches builds from a CDN this machine cannot reach, and a
# browser nobody pinned is a browser nobody can reproduce).
#
#   stack/browser.sh        print the path of the chromium binary; as root, install Debian's
#                           `chromium` package first when it is missing. Exit 1 (with the
#                           reason on stderr) when it is missing and cannot be installed.
#
# tests/integration/test_dashboard.py calls this and skips, saying why, only when it fails.
# Chromium needs these flags here (no network but the registries, no GPU, root):
#   --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
#   --disable-background-networking --disable-component-update --disable-sync
# and a new empty --user-data-dir per run (playwright gives it one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGS="$ROOT/.cache/logs"

find_chromium() {
  local candidate
  for candidate in "${GUARDIANS_CHROMIUM:-}" /usr/bin/chromium; do
    [[ -n $candidate && -x $candidate ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

if find_chromium; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "chromium is not installed; as root: apt-get install -y --no-install-recommends chromium" >&2
  exit 1
fi
mkdir -p "$LOGS"
echo "browser.sh: installing Debian's chromium (log: .cache/logs/apt.log)" >&2
apt=(apt-get install -y --no-install-recommends chromium)
# 9>&-: nothing a postinst starts may inherit a lock fd of a caller.
if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$LOGS/apt.log" 2>&1 9>&-; then
  echo "browser.sh: apt-get install failed; apt-get update, then again" >&2
  apt-get update >>"$LOGS/apt.log" 2>&1 9>&- || true
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$LOGS/apt.log" 2>&1 9>&-; then
    tail -n 20 "$LOGS/apt.log" >&2
    echo "browser.sh: apt-get install chromium failed, see .cache/logs/apt.log" >&2
    exit 1
  fi
fi
find_chromium || { echo "browser.sh: chromium installed but /usr/bin/chromium is missing" >&2; exit 1; }
