#!/usr/bin/env bash
# Structured, contextual logging only (ARCHITECTURE.md): no printf-style klog
# calls and no global klog loggers in muster's code, and time only through an
# injected clock outside main packages.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
files=$(git ls-files '*.go' | grep -v '_test.go$' || true)
[ -n "$files" ] || exit 0

if bad=$(grep -nE 'klog\.(Infof|Warningf|Errorf|Fatalf|Info\(|Warning\(|Error\(|InfoS|ErrorS)|\.V\([0-9]+\)\.Infof' $files); then
  echo "printf-style or global klog calls (use klog.FromContext(ctx) and structured key/value pairs):"
  echo "$bad"
  fail=1
fi
# Test harnesses under test/ (benchmarks time wall clocks) are exempt.
if bad=$(grep -nE 'time\.Now\(\)|time\.Since\(' $(echo "$files" | grep -v -e '^cmd/' -e '^test/') ); then
  echo "time.Now/time.Since outside main (inject a k8s.io/utils/clock.Clock):"
  echo "$bad"
  fail=1
fi
exit $fail
