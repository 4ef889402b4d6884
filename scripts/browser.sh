#!/usr/bin/env bash
# A real browser for the dashboard's tests: Debian's chromium, headless.
# Source this file, then:
#   ensure_chromium    install Debian's chromium unless it is on PATH; exports
#                      DRIFTGATE_TEST_BROWSER (the tests fail under CI without it)

ensure_chromium() {
  local found
  found=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$found" ]; then
    echo "installing chromium (Debian's package) for the dashboard's browser tests" >&2
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
    found=$(command -v chromium)
  fi
  export DRIFTGATE_TEST_BROWSER="$found"
}
