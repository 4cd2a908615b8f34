//go:build tools

// Package sparkoperator pins the Kubeflow Spark operator v2.3.0, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh spark-operator OUTDIR.
package sparkoperator

import (
	_ "github.com/kubeflow/spark-operator/v2/cmd/operator"
)
