//go:build tools

// Package kuberay pins KubeRay's ray-operator v1.5.0, the operator muster's ecosystem tests
// run as a process. Build it with: hack/ecosystem/build.sh kuberay OUTDIR.
package kuberay

import (
	_ "github.com/ray-project/kuberay/ray-operator"
)
