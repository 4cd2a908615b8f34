//go:build tools

// Package jobset pins JobSet v0.11.0, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh jobset OUTDIR.
package jobset

import (
	_ "sigs.k8s.io/jobset"
)
