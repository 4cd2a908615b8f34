//go:build tools

// Package mpioperator pins the Kubeflow MPI operator v0.6.0, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh mpi-operator OUTDIR.
package mpioperator

import (
	_ "github.com/kubeflow/mpi-operator/cmd/mpi-operator"
)
