#!/usr/bin/env bash
# Builds one of the real operators muster is tested with, from its Go module at
# the version hack/ecosystem/NAME/go.mod pins, and says where its binary and
# its CRDs are.
#
#   hack/ecosystem/build.sh [-n] NAME OUTDIR
#
# -n builds nothing: it prints the same lines for a binary already in OUTDIR
# (built earlier, e.g. by `make ecosystem`), and fails if it is not there.
#
# NAME is one of: kuberay training-operator trainer jobset mpi-operator
# spark-operator. Each has a module of its own (hack/ecosystem/NAME): their
# Kubernetes libraries (k8s.io v0.29 to v0.35, controller-runtime v0.17 to
# v0.22) cannot share one build list, nor meet muster's. Each module selects
# exactly the versions the operator's own go.mod requires (the Spark operator's
# replace directives are repeated, since a dependency's do not apply).
#
# Offline-safe: with the module cache filled nothing is fetched. Idempotent:
# go build leaves an up-to-date binary alone.
#
# Output on stdout, one key=value a line, for scripts and tests:
#   bin=OUTDIR/BINARY            the operator's binary (absolute)
#   module=MODULE@VERSION        what was built
#   dir=DIR                      the module's source in the module cache (read-only)
#   crd=FILE                     one line per CRD file the operator needs
#   runtimes=DIR                 (trainer only) its ClusterTrainingRuntime manifests
# The go command's own output goes to stderr.
set -euo pipefail

usage() {
	echo "usage: $0 [-n] NAME OUTDIR (NAME: kuberay training-operator trainer jobset mpi-operator spark-operator)" >&2
	exit 2
}
build=1
if [ "${1:-}" = "-n" ]; then
	build=0
	shift
fi
[ $# -eq 2 ] || usage
name=$1
outdir=$2
here=$(cd "$(dirname "$0")" && pwd)

runtimes=""
case "$name" in
kuberay)
	module=github.com/ray-project/kuberay/ray-operator
	pkg=$module
	bin=ray-operator
	crds="config/crd/bases/ray.io_*.yaml"
	;;
training-operator)
	module=github.com/kubeflow/training-operator
	pkg=$module/cmd/training-operator.v1
	bin=training-operator
	crds="manifests/base/crds/kubeflow.org_*.yaml"
	;;
trainer)
	module=github.com/kubeflow/trainer/v2
	pkg=$module/cmd/trainer-controller-manager
	bin=trainer-controller-manager
	crds="manifests/base/crds/trainer.kubeflow.org_*.yaml"
	runtimes=manifests/base/runtimes
	;;
jobset)
	module=sigs.k8s.io/jobset
	pkg=$module
	bin=jobset-controller
	crds="config/components/crd/bases/jobset.x-k8s.io_*.yaml"
	;;
mpi-operator)
	module=github.com/kubeflow/mpi-operator
	pkg=$module/cmd/mpi-operator
	bin=mpi-operator
	crds="manifests/base/kubeflow.org_mpijobs.yaml"
	;;
spark-operator)
	module=github.com/kubeflow/spark-operator/v2
	pkg=$module/cmd/operator
	bin=spark-operator
	crds="config/crd/bases/sparkoperator.k8s.io_*.yaml"
	;;
*) usage ;;
esac

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cd "$here/$name"
export GOWORK=off

# -mod=mod: the module's go.mod and go.sum are tidy and committed, so this
# changes nothing; it only lets a go command with -mod=vendor or readonly in
# GOFLAGS build here too.
if [ $build = 1 ]; then
	go build -mod=mod -o "$outdir/$bin" "$pkg" >&2
elif [ ! -x "$outdir/$bin" ]; then
	echo "$0: $outdir/$bin does not exist (build it: $0 $name $outdir)" >&2
	exit 1
fi

version=$(go list -mod=mod -m -f '{{.Version}}' "$module")
dir=$(go list -mod=mod -m -f '{{.Dir}}' "$module")
echo "bin=$outdir/$bin"
echo "module=$module@$version"
echo "dir=$dir"
for f in $dir/$crds; do
	[ -f "$f" ] || { echo "$0: no CRD file matches $dir/$crds" >&2; exit 1; }
	echo "crd=$f"
done
if [ -n "$runtimes" ]; then
	echo "runtimes=$dir/$runtimes"
fi
