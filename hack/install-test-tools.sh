#!/usr/bin/env bash
# Installs, from Debian's packages, the programs some tests run, if missing:
#   prometheus (promtool: the alert rule tests, make test-alerts; prometheus:
#               the sandbox's real Prometheus, muster sandbox --prometheus)
#   chromium   (the screenshot test of the sandbox's HTML report)
# Idempotent and quiet: nothing is done when they are all there.
set -euo pipefail
need=()
for tool in promtool:prometheus prometheus:prometheus chromium:chromium; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to apt-get install ${need[*]}" >&2; exit 1; }
	sudo=(sudo)
fi
echo "Installing ${need[*]} (Debian packages) for the tests..."
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
