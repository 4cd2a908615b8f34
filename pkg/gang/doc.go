// Package gang is the pure core of gang admission: who is in a gang, and
// whether a gang fits the cluster node by node.
//
// A gang is bound all together or not at all (docs/design/gangs.md), so the
// scheduler must know, before it binds the first member, that every member can
// actually be placed. Summing free capacity is not enough: 32 free CPUs spread
// as 2 per node cannot run a single 4-CPU pod. Pack answers the node-by-node
// question with a deterministic best-fit-decreasing placement and, when the
// answer is no, says why in a sentence fit for a pod condition; NeverFits asks
// the same of an empty cluster, so that a gang that can never run is told so
// at once instead of waiting silently.
//
// A Source is one way a pod names its gang (scheduler-plugins PodGroup,
// muster's own annotation gangs, Spark applications, the upstream Workload
// API, KubeRay's RayClusters, JobSets), one file each (source_*.go) and one line in the table of sources:
// which gang a pod is in, what the gang needs (quorum, timeout, minimum
// resources, a Spark driver's executor reservation, its queue label) and who
// its members are. The Parse functions read the annotations that size and
// time a gang; their errors name the annotation and the bad value, because
// they reach users as pod conditions and Events.
//
// Like the rest of the core, the package has no client-go, no metrics and no
// clock: sources read the cluster through the small Objects interface, which
// the plugin in pkg/plugins/mustergang implements over its informers and
// `muster explain` (pkg/cli) over the apiserver; the plugin maps the answers
// to framework statuses.
package gang
