//go:build tools

// Package trainer pins Kubeflow Trainer v2.0.0, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh trainer OUTDIR.
package trainer

import (
	_ "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager"
)
