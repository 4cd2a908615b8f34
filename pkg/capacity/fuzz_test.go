package capacity

import (
	"strings"
	"testing"
)

// The fuzzers' seeds are here and in testdata/fuzz/<FuzzName>, which also
// keeps what earlier runs found. `make fuzz` runs each for a bounded time.

// checkPolicyError: a refusal is one short line that names what was wrong
// and lists the valid policies, whatever the value's length (it becomes a
// pod's PodScheduled condition and an Event).
func checkPolicyError(t *testing.T, err error, prefix string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("error %q does not start with %q", msg, prefix)
	}
	for _, p := range Policies {
		if !strings.Contains(msg, string(p)) {
			t.Fatalf("error %q does not list the policy %s", msg, p)
		}
	}
	if strings.ContainsAny(msg, "\n\r") || len(msg) > 400 {
		t.Fatalf("error is not one short line (%d bytes): %.300q...", len(msg), msg)
	}
}

func isPolicy(p Policy) bool {
	for _, known := range Policies {
		if p == known {
			return true
		}
	}
	return false
}

// FuzzParsePolicy: the annotation muster.dev/capacity-policy (and a queue's
// capacityPolicy) either names one of the five policies, which reads back as
// itself, or is refused with an error naming the annotation. A refusal is
// never a silent "any". The pod's role and its queue's policy never
// override an annotation.
func FuzzParsePolicy(f *testing.F) {
	for _, seed := range []string{
		"require-spot", "prefer-spot", "prefer-on-demand", "require-on-demand", "any",
		" require-on-demand\n", "", " ", "Require-Spot", "spot", "require-on-demand,any", "any\x00", "\u00a0any",
		strings.Repeat("x", 5000),
	} {
		f.Add(seed, "driver", "prefer-spot")
	}
	f.Add("any", "executor", "")
	f.Add("nope", "other", "require-spot")
	f.Fuzz(func(t *testing.T, value, role, queuePolicy string) {
		p, err := ParsePolicy(value)
		if err != nil {
			checkPolicyError(t, err, "")
			if p != "" {
				t.Fatalf("%q: a policy and an error", value)
			}
		} else if !isPolicy(p) || string(p) != value {
			t.Fatalf("%q parsed as %q", value, p)
		}

		r := RoleOf(map[string]string{LabelSparkRole: role})
		switch {
		case role == "driver" && r != RoleDriver, role == "executor" && r != RoleExecutor,
			role != "driver" && role != "executor" && r != RoleOther:
			t.Fatalf("spark-role %q is role %q", role, r)
		}

		// With the annotation: it decides alone, or is an error naming it.
		got, src, err := PolicyFor(map[string]string{AnnotationPolicy: value}, r, Policy(queuePolicy))
		if src != SourceAnnotation {
			t.Fatalf("%q: source %q, not the annotation", value, src)
		}
		if want, perr := ParsePolicy(strings.TrimSpace(value)); perr != nil {
			if err == nil {
				t.Fatalf("annotation %q accepted as %q", value, got)
			}
			checkPolicyError(t, err, "annotation "+AnnotationPolicy+": ")
			if got != "" {
				t.Fatalf("annotation %q: a policy and an error", value)
			}
		} else if err != nil || got != want {
			t.Fatalf("annotation %q gave %q, %v; want %q", value, got, err, want)
		}

		// Without it: Spark's defaults, then the queue's, then any.
		got, src, err = PolicyFor(nil, r, Policy(queuePolicy))
		switch {
		case r == RoleDriver:
			if got != PreferOnDemand || src != SourceDriverDefault || err != nil {
				t.Fatalf("driver without annotation: %q %q %v", got, src, err)
			}
		case r == RoleExecutor:
			if got != PreferSpot || src != SourceExecutorDefault || err != nil {
				t.Fatalf("executor without annotation: %q %q %v", got, src, err)
			}
		case queuePolicy == "":
			if got != Any || src != SourceDefault || err != nil {
				t.Fatalf("no policy anywhere: %q %q %v", got, src, err)
			}
		case err != nil:
			checkPolicyError(t, err, "queue capacityPolicy: ")
		case string(got) != queuePolicy || src != SourceQueue:
			t.Fatalf("queue policy %q gave %q from %q", queuePolicy, got, src)
		}
		if err == nil && !isPolicy(got) {
			t.Fatalf("PolicyFor returned %q", got)
		}
	})
}

// FuzzTypeOf: a node's capacity-type labels always give spot or on-demand,
// and the first known label present decides (an explicit muster label wins
// over a cloud's).
func FuzzTypeOf(f *testing.F) {
	f.Add("spot", "", "", false)
	f.Add("on-demand", "spot", "", true)
	f.Add("", "reserved", "SPOT", true)
	f.Add("", "", "true", false)
	f.Add(" spot ", "", "", false)
	f.Add("", "", "", false)
	f.Fuzz(func(t *testing.T, muster, karpenter, other string, gke bool) {
		labels := map[string]string{}
		if muster != "" {
			labels[LabelMuster] = muster
		}
		if karpenter != "" {
			labels[LabelKarpenter] = karpenter
		}
		if other != "" {
			if gke {
				labels[LabelGKESpot] = other
			} else {
				labels[LabelEKS] = other
			}
		}
		typ := TypeOf(labels)
		if typ != Spot && typ != OnDemand {
			t.Fatalf("%v: type %q", labels, typ)
		}
		var want Type
		switch {
		case muster != "":
			want = map[bool]Type{true: Spot, false: OnDemand}[strings.TrimSpace(muster) == "spot"]
		case karpenter != "":
			want = map[bool]Type{true: Spot, false: OnDemand}[strings.TrimSpace(karpenter) == "spot"]
		case other != "" && gke:
			want = map[bool]Type{true: Spot, false: OnDemand}[strings.TrimSpace(other) == "true"]
		case other != "":
			want = map[bool]Type{true: Spot, false: OnDemand}[strings.TrimSpace(other) == "SPOT"]
		default:
			want = OnDemand
		}
		if typ != want {
			t.Fatalf("%v: type %q, want %q", labels, typ, want)
		}
	})
}

// A huge annotation value is cut short in the refusal (found by
// FuzzParsePolicy: the whole value used to be quoted into the pod's
// condition and Event).
func TestPolicyErrorLongValue(t *testing.T) {
	_, _, err := PolicyFor(map[string]string{AnnotationPolicy: strings.Repeat("spot", 64<<10)}, RoleOther, "")
	if err == nil {
		t.Fatal("a 256 KiB policy was accepted")
	}
	checkPolicyError(t, err, "annotation "+AnnotationPolicy+`: "spotspot`)
	if !strings.Contains(err.Error(), "(262144 bytes)") {
		t.Fatalf("error %q does not give the value's length", err)
	}
}
