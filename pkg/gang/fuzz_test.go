package gang

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"muster.dev/muster/pkg/resources"
)

// The fuzzers' seeds are here and in testdata/fuzz/<FuzzName>, which also
// keeps what earlier runs found.

// checkAnnotationError: a refusal is an AnnotationError for key holding the
// value as written, whose one-line message starts with the annotation and
// stays short enough for a pod condition whatever the value's length.
func checkAnnotationError(t *testing.T, err error, key, value string) {
	t.Helper()
	var ae *AnnotationError
	if !errors.As(err, &ae) {
		t.Fatalf("error is %T, not an AnnotationError: %v", err, err)
	}
	msg := err.Error()
	if ae.Key != key || ae.Value != value || ae.Msg == "" || !strings.HasPrefix(msg, key+": ") {
		t.Fatalf("error %#v (%q) does not name %s and %q", ae, msg, key, value)
	}
	if strings.ContainsAny(msg, "\n\r") || len(msg) > 600 {
		t.Fatalf("error is not one short line (%d bytes): %q", len(msg), msg)
	}
}

func FuzzParseMinMember(f *testing.F) {
	for _, seed := range []string{"8", " 8 ", "0", "-1", "100000", "100001", "eight", "", "+3", "1e3", "99999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []struct {
			key   string
			parse func(string) (int32, error)
			least int32
		}{
			{AnnotationMinMember, ParseMinMember, 1},
			{AnnotationMinExecutors, ParseMinExecutors, 0},
		} {
			n, err := c.parse(s)
			if err != nil {
				checkAnnotationError(t, err, c.key, s)
				continue
			}
			if n < c.least || n > MaxMembers {
				t.Fatalf("%s: %q accepted as %d, out of range", c.key, s, n)
			}
			if again, err := c.parse(strconv.Itoa(int(n))); err != nil || again != n {
				t.Fatalf("%s: %q gave %d, which parses back as %d, %v", c.key, s, n, again, err)
			}
		}
	})
}

func FuzzParseTimeout(f *testing.F) {
	for _, seed := range []string{"10m", "90s", "600", " 600 ", "0", "-5m", "24h", "24h0m1s", "86401", "1.5h", "ten minutes", "", "99999999999999999999h"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseTimeout(s)
		if err != nil {
			checkAnnotationError(t, err, AnnotationTimeout, s)
			return
		}
		if d <= 0 || d > MaxTimeout {
			t.Fatalf("%q accepted as %v, out of range", s, d)
		}
		if again, err := ParseTimeout(d.String()); err != nil || again != d {
			t.Fatalf("%q gave %v, which parses back as %v, %v", s, d, again, err)
		}
	})
}

func FuzzParseExecutorResources(f *testing.F) {
	for _, seed := range []string{
		"cpu=4,memory=18Gi", " cpu = 4 , memory = 18Gi , nvidia.com/gpu = 1 ", "cpu=500m", "cpu=0.1m",
		"cpu=4,memory", "=4", "cpu=", "cpu=4,,memory=1Gi", "cpu=4,cpu=2", "Bad Name=1", "cpu=0",
		"memory=-1Gi", "cpu=1e999999999", "cpu=1e-99", "memory=9Ei", "memory=9223372036854775807", "", ",",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseExecutorResources(s)
		if err != nil {
			checkAnnotationError(t, err, AnnotationExecutorResources, s)
			if v != nil {
				t.Fatalf("%q: a vector and an error", s)
			}
			return
		}
		if len(v) == 0 {
			t.Fatalf("%q accepted as no resources", s)
		}
		entries := make([]string, 0, len(v))
		for _, name := range v.Names() {
			if msgs := validation.IsQualifiedName(string(name)); len(msgs) > 0 {
				t.Fatalf("%q: accepted resource name %q: %v", s, name, msgs)
			}
			if v[name] <= 0 {
				t.Fatalf("%q: %s=%d is not above zero", s, name, v[name])
			}
			entries = append(entries, string(name)+"="+resources.Format(name, v[name]))
		}
		// what it parsed, written back as quantities, parses to the same
		back := strings.Join(entries, ",")
		again, err := ParseExecutorResources(back)
		if err != nil || len(again) != len(v) {
			t.Fatalf("%q gave %v, written back as %q: %v, %v", s, v, back, again, err)
		}
		for name, a := range v {
			if again[name] != a {
				t.Fatalf("%q gave %s=%d, written back as %q: %d", s, name, a, back, again[name])
			}
		}
	})
}

func FuzzIdentify(f *testing.F) {
	f.Add("default", "train", "", "", "", "")
	f.Add("ml", "", "g", "spark-1", "driver", "wl")
	f.Add("etl", "", "", "spark-1", "executor", "")
	f.Add("etl", "", "", "", "driver", "wl")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, namespace, podGroup, gangName, sparkApp, sparkRole, workload string) {
		labels := map[string]string{}
		for k, v := range map[string]string{LabelPodGroup: podGroup, LabelGang: gangName, LabelSparkApp: sparkApp, LabelSparkRole: sparkRole} {
			if v != "" {
				labels[k] = v
			}
		}
		ref, role, ok := Identify(podOf(namespace, labels, workload))

		want, wantOK := Ref{Namespace: namespace}, true
		// A Spark application's pod that names a PodGroup is in its
		// application's gang (or muster's annotation gang), which reads the
		// PodGroup: the two compose.
		sparkPod := sparkApp != "" && (sparkRole == "driver" || sparkRole == "executor")
		switch {
		case podGroup != "" && !sparkPod:
			want.Kind, want.Name = KindPodGroup, podGroup
		case gangName != "":
			want.Kind, want.Name = KindAnnotation, gangName
		case sparkApp != "":
			want.Kind, want.Name = KindSpark, sparkApp
		case workload != "":
			want.Kind, want.Name = KindWorkload, workload
		default:
			want, wantOK = Ref{}, false
		}
		if ref != want || ok != wantOK {
			t.Fatalf("Identify gave %#v, %t; want %#v, %t", ref, ok, want, wantOK)
		}
		if ok && ref.String() != string(ref.Kind)+" "+namespace+"/"+ref.Name {
			t.Fatalf("Ref.String() = %q", ref.String())
		}
		// empty values and a nil map are the same as absent labels
		if len(labels) == 0 {
			if r2, _, ok2 := Identify(podOf(namespace, nil, workload)); r2 != ref || ok2 != ok {
				t.Fatalf("a nil map gave %#v, %t", r2, ok2)
			}
		}

		// Only a Spark gang's members have a role, and only a known one.
		switch {
		case ref.Kind != KindSpark || sparkRole != "driver" && sparkRole != "executor":
			if role != NoRole {
				t.Fatalf("%s: role of (app %q, role %q) = %q", ref, sparkApp, sparkRole, role)
			}
		case string(role) != sparkRole:
			t.Fatalf("%s: role of (app %q, role %q) = %q", ref, sparkApp, sparkRole, role)
		}
	})
}
