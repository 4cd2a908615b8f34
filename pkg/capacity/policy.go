package capacity

import (
	"fmt"
	"strconv"
	"strings"
)

// Policy is where a pod may or would rather run (annotation
// muster.dev/capacity-policy, or its queue's capacityPolicy).
type Policy string

// Policies. require-* filter nodes, prefer-* score them.
const (
	RequireSpot     Policy = "require-spot"
	PreferSpot      Policy = "prefer-spot"
	PreferOnDemand  Policy = "prefer-on-demand"
	RequireOnDemand Policy = "require-on-demand"
	Any             Policy = "any"
)

// rule is what a policy asks of a node's capacity type: the type it
// requires ("" none: both types are allowed) and the type it prefers (""
// none: every allowed node scores alike).
type rule struct {
	policy              Policy
	required, preferred Type
}

// rules is the one definition of the policies, in the order the
// documentation gives them: the filter (Allows), the score (Preference), the
// gang planner (Eligible, MaySpot) and the notes in messages all derive from
// it, as kube-scheduler's noderesources scoring strategies derive from
// nodeResourceStrategyTypeMap. A policy is added here and nowhere else.
var rules = [...]rule{
	{policy: RequireSpot, required: Spot},
	{policy: PreferSpot, preferred: Spot},
	{policy: PreferOnDemand, preferred: OnDemand},
	{policy: RequireOnDemand, required: OnDemand},
	{policy: Any},
}

// Policies lists every policy, in the order the documentation gives them.
var Policies = func() []Policy {
	out := make([]Policy, len(rules))
	for i, r := range rules {
		out[i] = r.policy
	}
	return out
}()

// ruleOf returns the policy's rule; a policy that is not one (a caller that
// skipped ParsePolicy) asks nothing, like any.
func ruleOf(p Policy) rule {
	for _, r := range rules {
		if r.policy == p {
			return r
		}
	}
	return rule{policy: p}
}

// Required is the capacity type the policy requires, "" when it allows both.
func (p Policy) Required() Type { return ruleOf(p).required }

// Preferred is the capacity type the policy prefers, "" when it prefers none.
func (p Policy) Preferred() Type { return ruleOf(p).preferred }

// ParsePolicy returns the policy s names, or an error that lists the valid ones.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = string(p)
	}
	return "", fmt.Errorf("%s is not a capacity policy; use one of %s", quoteShort(s), strings.Join(names, ", "))
}

// quoteShort quotes a value for an error message, cut to a few dozen bytes:
// an annotation may hold up to 256 KiB, and the message becomes a pod's
// condition and an Event.
func quoteShort(s string) string {
	const most = 40
	q := strconv.Quote(s)
	if len(q) <= most+2 {
		return q
	}
	r := []rune(s)
	if len(r) > most {
		r = r[:most]
	}
	for len(r) > 0 && len(strconv.Quote(string(r))) > most+2 {
		r = r[:len(r)*3/4]
	}
	return strings.TrimSuffix(strconv.Quote(string(r)), `"`) + fmt.Sprintf(`..." (%d bytes)`, len(s))
}

// AnnotationPolicy is the pod annotation that names its capacity policy.
const AnnotationPolicy = "muster.dev/capacity-policy"

// LabelSparkRole is the label Spark on Kubernetes puts on its pods.
const LabelSparkRole = "spark-role"

// Role is what a pod is to its application, as far as placement cares. The
// values are metric label values: keep them few and stable.
type Role string

// Roles.
const (
	RoleDriver   Role = "driver"
	RoleExecutor Role = "executor"
	RoleOther    Role = "other"
)

// RoleOf returns a pod's role from its labels (RoleLabels): a Spark driver
// or executor, or the coordinator or a worker of another operator's job,
// which place as a driver and an executor do; RoleOther for anything else.
func RoleOf(labels map[string]string) Role {
	role, _ := classify(labels)
	return role
}

// RoleLabel is a label an operator puts on its pods that gives them a
// role: the values that make a pod its application's coordinator (placed
// like a Spark driver) and those that make it a worker (placed like an
// executor).
type RoleLabel struct {
	Key      string
	Driver   []string
	Executor []string
}

// RoleLabels are the labels that give a pod a role, in order: the first
// one present with a known value decides. Spark's own; KubeRay's head and
// workers; the Kubeflow training-operator's and MPI operator's masters,
// chiefs, parameter servers and launchers against their workers; a JobSet's
// replicated jobs named for a coordinator or for workers (the names Kubeflow
// Trainer's runtimes and JobSet's examples use).
func RoleLabels() []RoleLabel {
	return []RoleLabel{
		{Key: LabelSparkRole, Driver: []string{"driver"}, Executor: []string{"executor"}},
		{Key: "ray.io/node-type", Driver: []string{"head"}, Executor: []string{"worker"}},
		{Key: "training.kubeflow.org/job-role", Driver: []string{"master", "launcher"}, Executor: []string{"worker"}},
		{Key: "training.kubeflow.org/replica-type", Driver: []string{"master", "chief", "ps", "launcher"}, Executor: []string{"worker"}},
		{Key: "jobset.sigs.k8s.io/replicatedjob-name", Driver: []string{"driver", "launcher", "head", "master", "coordinator"},
			Executor: []string{"worker", "workers", "node", "nodes", "executor", "executors"}},
	}
}

// classify returns the role the pod's labels give it and the source of the
// policy that comes with that role ("" for RoleOther).
func classify(labels map[string]string) (Role, Source) {
	if len(labels) == 0 {
		return RoleOther, ""
	}
	for _, rl := range RoleLabels() {
		v, ok := labels[rl.Key]
		if !ok {
			continue
		}
		for _, c := range []struct {
			role   Role
			values []string
		}{{RoleDriver, rl.Driver}, {RoleExecutor, rl.Executor}} {
			for _, want := range c.values {
				if v != want {
					continue
				}
				if rl.Key == LabelSparkRole {
					return c.role, sparkSource(c.role)
				}
				return c.role, Source(rl.Key + "=" + v + " default")
			}
		}
	}
	return RoleOther, ""
}

// Source says where a pod's policy came from, for events and explain output.
type Source string

// Sources. SourceQueue is refined to "queue <name>" by Source.WithQueue.
const (
	SourceAnnotation      Source = "annotation"
	SourceDriverDefault   Source = "spark-driver default"
	SourceExecutorDefault Source = "spark-executor default"
	SourceQueue           Source = "queue"
	SourceDefault         Source = "default"
)

// WithQueue names the queue in a SourceQueue ("queue root.x"); any other
// source is returned as is. PolicyFor is not given the queue's name, only its
// policy, so the caller that knows the name adds it.
func (s Source) WithQueue(name string) Source {
	if s != SourceQueue || name == "" {
		return s
	}
	return SourceQueue + Source(" "+name)
}

// PolicyOf returns a pod's capacity policy and where it came from
// (docs/reference.md, "Capacity policies"): its annotation wins; else the
// default of the role its labels give it (RoleLabels): a driver or an
// application's coordinator prefers on-demand (one reclaimed driver fails
// the whole application), an executor or worker prefers spot (they are
// cheap to lose and many); else its queue's capacityPolicy ("" when the
// queue has none); else any.
//
// An annotation that names no policy is an error, never a silent any: a
// typo in require-on-demand must not put a pod on spot. Surrounding space is
// forgiven, an empty value is not.
func PolicyOf(annotations, labels map[string]string, queuePolicy Policy) (Policy, Source, error) {
	role, src := classify(labels)
	return policyFor(annotations, role, src, queuePolicy)
}

// PolicyFor is PolicyOf for a pod known only by its role (a Spark driver's
// executors, before they exist).
func PolicyFor(annotations map[string]string, role Role, queuePolicy Policy) (Policy, Source, error) {
	return policyFor(annotations, role, sparkSource(role), queuePolicy)
}

// sparkSource names the default of a Spark role.
func sparkSource(r Role) Source {
	if r == RoleDriver {
		return SourceDriverDefault
	}
	return SourceExecutorDefault
}

func policyFor(annotations map[string]string, role Role, roleSource Source, queuePolicy Policy) (Policy, Source, error) {
	if v, ok := annotations[AnnotationPolicy]; ok {
		p, err := ParsePolicy(strings.TrimSpace(v))
		if err != nil {
			return "", SourceAnnotation, fmt.Errorf("annotation %s: %w", AnnotationPolicy, err)
		}
		return p, SourceAnnotation, nil
	}
	switch role {
	case RoleDriver:
		return PreferOnDemand, roleSource, nil
	case RoleExecutor:
		return PreferSpot, roleSource, nil
	}
	if queuePolicy != "" {
		// The queue tree validates its policies; this guards a caller that
		// builds one by hand.
		p, err := ParsePolicy(string(queuePolicy))
		if err != nil {
			return "", SourceQueue, fmt.Errorf("queue capacityPolicy: %w", err)
		}
		return p, SourceQueue, nil
	}
	return Any, SourceDefault, nil
}

// Allows says whether policy p lets a pod run on a node of capacity type t:
// a policy that requires a type allows that type only, any other policy
// allows both.
func Allows(p Policy, t Type) bool {
	req := p.Required()
	return req == "" || req == t
}

// Refusal is the filter's reason for a node of type t that policy p does not
// allow. It names the type and the policy, nothing of the pod or the node,
// so that kube-scheduler's summary of a pod's failed nodes groups it (the
// policy's source is in muster explain and the log).
func Refusal(p Policy, t Type) string {
	return "node is " + string(t) + "; the pod's capacity policy is " + string(p)
}

// Preference is how well a node of type t suits policy p, 0..100: a policy
// that prefers a type gives that type 100 and the other 0.
//
// A policy that prefers nothing (require-* and any) gives every node a flat
// 100. For require-* the filter has already removed the other type, so every
// node left matches and there is nothing to rank; for any there is no
// preference. A flat score leaves the ranking to the other concerns, and 100
// rather than 0 scores a node that satisfies the policy like a prefer-*
// match, so the totals read the same.
func Preference(p Policy, t Type) int64 {
	pref := p.Preferred()
	if pref == "" || pref == t {
		return MaxScore
	}
	return 0
}
