//go:build tools

// Package trainingoperator pins the Kubeflow training-operator v1.8.1, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh training-operator OUTDIR.
package trainingoperator

import (
	_ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
)
