package sandbox

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/queue"
)

// The fuzzers' seeds are here, the built-in demo files, and
// testdata/fuzz/<FuzzName>, which also keeps what earlier runs found.
// `make fuzz` runs each for a bounded time.

// problemLine is one line of a refusal: a path into the file, then what is
// wrong there.
var problemLine = regexp.MustCompile(`^  (events|pools)(\[\d+\])?(\.[A-Za-z0-9./_-]+)*: \S`)

// checkRefusal: a refusal is either the YAML decoder's (unknown field, wrong
// type, bad duration), prefixed with the file it is about, or the list of
// every problem, one per line, each with its path.
func checkRefusal(t *testing.T, err error, file string) {
	t.Helper()
	msg := err.Error()
	if strings.HasPrefix(msg, file+": ") {
		return
	}
	head := "the " + file + " is invalid, "
	lines := strings.Split(msg, "\n")
	if !strings.HasPrefix(lines[0], head) {
		t.Fatalf("refusal %q names neither the %s nor its problems", msg, file)
	}
	n, perr := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(lines[0], head), " error(s):"))
	if perr != nil || n != len(lines)-1 || n == 0 {
		t.Fatalf("refusal %q: the count in its first line does not match its %d problems", msg, len(lines)-1)
	}
	for _, l := range lines[1:] {
		if !problemLine.MatchString(l) {
			t.Fatalf("problem %q does not start with its path", l)
		}
	}
}

func checkQuantities(t *testing.T, where string, r Resources) {
	t.Helper()
	if len(r) == 0 {
		t.Fatalf("%s: no resources", where)
	}
	for name, q := range r {
		v, err := resource.ParseQuantity(q)
		if len(validation.IsQualifiedName(name)) > 0 || err != nil || v.Sign() <= 0 {
			t.Fatalf("%s: accepted %s=%q", where, name, q)
		}
	}
}

func seedFiles(f *testing.F, extra []string, demoFiles ...string) {
	for _, name := range demoFiles {
		b, err := demo.ReadFile("demo/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// FuzzParseTrace: ParseTrace never panics; it refuses with every problem
// and its path, or returns a trace whose every event is usable (one kind,
// valid names and queue labels, positive quantities and durations, counts
// the sandbox can simulate), in time order, that reads back the same after
// being written out again.
func FuzzParseTrace(f *testing.F) {
	seedFiles(f, []string{
		"",
		"events: []\n",
		"events:\n  - at: 0s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n",
		"events:\n  - at: -1s\n    batch: {name: A, namespace: b, queue: \"a b\", count: 100000000, pod: {cpu: lots}, duration: 0s}\n",
		"events:\n  - at: 2m\n    spark: {name: s, namespace: ns, driver: {cpu: \"1\"}, executor: {cpu: \"2\", memory: 4Gi}, executors: 2, minExecutors: 3, maxExecutors: 1, duration: 5m}\n",
		"events:\n  - at: 1m\n    training: {name: t, namespace: ml, queue: root.ml, workers: 4, worker: {nvidia.com/gpu: \"1\"}, duration: 1h, timeout: -1s}\n",
		"events:\n  - at: 1m\n    interrupt: {pool: p, node: n, notice: -2m}\n  - at: 0s\n",
		"events:\n  - at: 0s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m, colour: red}\n",
		"events:\n  - at: soon\n",
		"events: {}\n",
		"name: [\n",
	}, "trace.yaml", "short.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTrace(data)
		if err != nil {
			checkRefusal(t, err, "trace")
			if tr != nil {
				t.Fatalf("a trace and an error")
			}
			return
		}
		if len(tr.Events) == 0 || len(tr.Events) > maxEvents {
			t.Fatalf("accepted %d events", len(tr.Events))
		}
		for i, e := range tr.Events {
			where := "events[" + strconv.Itoa(i) + "]"
			if e.At.Duration < 0 || i > 0 && e.At.Duration < tr.Events[i-1].At.Duration {
				t.Fatalf("%s: at %v, out of order or negative", where, e.At)
			}
			app := func(name, ns, queue string, d Duration, counts ...int) {
				t.Helper()
				if len(validation.IsDNS1123Subdomain(name)) > 0 || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsValidLabelValue(queue)) > 0 {
					t.Fatalf("%s: accepted name %q, namespace %q, queue %q", where, name, ns, queue)
				}
				if d.Duration <= 0 {
					t.Fatalf("%s: accepted duration %v", where, d)
				}
				for _, n := range counts {
					if n < 1 || n > maxPodsPerApp {
						t.Fatalf("%s: accepted a count of %d", where, n)
					}
				}
			}
			switch {
			case e.Spark != nil:
				s := e.Spark
				app(s.Name, s.Namespace, s.Queue, s.Duration, s.Executors)
				checkQuantities(t, where+".spark.driver", s.Driver)
				checkQuantities(t, where+".spark.executor", s.Executor)
				if s.MinExecutors < 0 || s.MinExecutors > s.Executors || s.MaxExecutors != 0 && (s.MaxExecutors < s.Executors || s.MaxExecutors > maxPodsPerApp) {
					t.Fatalf("%s: accepted executors %d, min %d, max %d", where, s.Executors, s.MinExecutors, s.MaxExecutors)
				}
			case e.Training != nil:
				app(e.Training.Name, e.Training.Namespace, e.Training.Queue, e.Training.Duration, e.Training.Workers)
				checkQuantities(t, where+".training.worker", e.Training.Worker)
			case e.Batch != nil:
				app(e.Batch.Name, e.Batch.Namespace, e.Batch.Queue, e.Batch.Duration, e.Batch.Count)
				checkQuantities(t, where+".batch.pod", e.Batch.Pod)
			case e.Interrupt != nil:
				if (e.Interrupt.Pool == "") == (e.Interrupt.Node == "") || e.Interrupt.Notice.Duration < 0 || e.Interrupt.ReplaceAfter.Duration < 0 {
					t.Fatalf("%s: accepted interrupt %+v", where, *e.Interrupt)
				}
			default:
				t.Fatalf("%s: accepted an event of no kind", where)
			}
		}
		// Written out and read again: the same trace.
		out, err := yaml.Marshal(tr)
		if err != nil {
			t.Fatalf("writing the trace: %v", err)
		}
		again, err := ParseTrace(out)
		if err != nil {
			t.Fatalf("the trace, written out, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, tr) {
			t.Fatalf("the trace, written out and read again, differs:\n%s", out)
		}
	})
}

// FuzzParseCluster: ParseCluster never panics; it refuses with every
// problem and its path, or returns pools whose nodes the apiserver will
// accept (valid names and label values, positive capacity, a bounded
// count), that read back the same after being written out again.
func FuzzParseCluster(f *testing.F) {
	seedFiles(f, []string{
		"",
		"pools: []\n",
		"pools:\n  - {capacityType: spot, instanceType: m5.large, zone: a, count: 1, cpu: \"4\", memory: 16Gi}\n",
		"pools:\n  - {capacityType: cheap, instanceType: m5, zone: a, count: 0, cpu: \"4\", memory: 1Gi}\n  - {capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: x, memory: 1Gi}\n",
		"pools:\n  - {capacityType: spot, instanceType: M5 Large/x, zone: \"us east\", count: 2000000000, cpu: \"4\", memory: 1Gi, gpu: \"-1\"}\n",
		"pools:\n  - {name: p, capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: \"4\", memory: 1Gi}\n  - {name: p, capacityType: on-demand, instanceType: c5, zone: b, count: 1, cpu: \"4\", memory: 1Gi}\n",
		"pools:\n  - {name: \"Not_A_Name\", capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: \"1\", memory: 1Gi}\n",
		"pools:\n  - {capacityType: spot, instanceType: m5, zone: a, count: 1, cpu: \"4\", memory: 1Gi, disk: 1Ti}\n",
	}, "cluster.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCluster(data)
		if err != nil {
			checkRefusal(t, err, "cluster")
			if c != nil {
				t.Fatalf("a cluster and an error")
			}
			return
		}
		total := 0
		for i, p := range c.Pools {
			if p.CapacityType != "spot" && p.CapacityType != "on-demand" {
				t.Fatalf("pools[%d]: accepted capacity type %q", i, p.CapacityType)
			}
			nodes := poolNodes(p)
			if len(nodes) != p.Count || p.Count < 1 || p.Count > maxPoolNodes {
				t.Fatalf("pools[%d]: %d nodes for count %d", i, len(nodes), p.Count)
			}
			total += len(nodes)
			for _, n := range nodes {
				if msgs := validation.IsDNS1123Subdomain(n.Name); len(msgs) > 0 {
					t.Fatalf("pools[%d]: node name %q: %v", i, n.Name, msgs)
				}
				for k, v := range n.Labels {
					if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
						t.Fatalf("pools[%d]: node label %s=%q: %v", i, k, v, msgs)
					}
				}
				for name, q := range n.Capacity {
					if v, err := resource.ParseQuantity(q); err != nil || v.Sign() <= 0 {
						t.Fatalf("pools[%d]: node capacity %s=%q", i, name, q)
					}
				}
			}
		}
		if total > maxNodes {
			t.Fatalf("accepted %d nodes", total)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("writing the cluster: %v", err)
		}
		again, err := ParseCluster(out)
		if err != nil {
			t.Fatalf("the cluster, written out, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("the cluster, written out and read again, differs:\n%s", out)
		}
	})
}

// FuzzValidate: the three files of a run checked together (trace, cluster,
// queues, as `muster sandbox --trace --cluster --queues` reads them) never
// panic, and a refusal names the file and the path of each problem. The
// fuzzer varies the queue file and an interruption's pool and node; the
// queue file parser itself is fuzzed by pkg/queue's FuzzParse.
func FuzzValidate(f *testing.F) {
	queues, err := demo.ReadFile("demo/queues.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(queues, "spot-m5-4xlarge-zone-a", "")
	f.Add(queues, "", "spot-c5-4xlarge-zone-b-2")
	f.Add(queues, "nowhere", "")
	f.Add([]byte("queues: [{name: a, weight: 0}]\n"), "", "nobody")
	f.Add([]byte("queues: [\n"), "x", "y")
	f.Add([]byte(""), "", "")
	f.Fuzz(func(t *testing.T, queueFile []byte, pool, node string) {
		trace := "events:\n  - at: 0s\n    batch: {name: a, namespace: b, count: 1, pod: {cpu: \"1\"}, duration: 1m}\n" +
			"  - at: 1m\n    interrupt: {pool: " + strconv.Quote(pool) + ", node: " + strconv.Quote(node) + "}\n"
		err := Validate(Options{Short: true, Trace: []byte(trace), Queues: queueFile})
		if err == nil {
			if (pool == "") == (node == "") {
				t.Fatalf("an interrupt with pool %q and node %q was accepted", pool, node)
			}
			return
		}
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "the queue file is invalid:\n"):
			var ce queue.ConfigError
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("the queue file's refusal %q is not a ConfigError", msg)
			}
			for _, fe := range ce {
				if fe.Path == "" || fe.Msg == "" {
					t.Fatalf("queue file problem %#v has no path or no message", fe)
				}
			}
		case strings.HasPrefix(msg, "trace: "), strings.HasPrefix(msg, "the trace is invalid, "):
			checkRefusal(t, err, "trace")
		default:
			t.Fatalf("refusal %q names no file", msg)
		}
	})
}

// TestInputBounds: what a typo could make the sandbox simulate, or what
// the apiserver would refuse half-way through a run, is refused up front
// with its path.
func TestInputBounds(t *testing.T) {
	pool := func(fields string) string {
		return "pools:\n  - {capacityType: spot, instanceType: m5.large, zone: a, count: 1, cpu: \"4\", memory: 16Gi, " + fields + "}\n"
	}
	batch := func(fields string) string {
		return "events:\n  - at: 0s\n    batch: {name: a, namespace: b, pod: {cpu: \"1\"}, duration: 1m, " + fields + "}\n"
	}
	for name, tc := range map[string]struct {
		cluster, trace, want string
	}{
		"nodes in a pool":       {cluster: strings.Replace(pool("name: p"), "count: 1", "count: 2000000000", 1), want: "pools[0].count: must be at most 1000"},
		"nodes in all":          {cluster: "pools:\n" + strings.Repeat("  - {capacityType: spot, instanceType: m5, zone: a, count: 1000, cpu: \"4\", memory: 1Gi}\n", 6), want: "pools: 6000 nodes in all; the sandbox simulates at most 5000"},
		"instance type":         {cluster: strings.Replace(pool("name: p"), "m5.large", `"M5 Large/x"`, 1), want: `pools[0].instanceType: "M5 Large/x" is not a label value`},
		"pool name":             {cluster: pool("name: Not_A_Name"), want: `pools[0].name: "Not_A_Name" does not make node names`},
		"pods in a batch":       {trace: batch("count: 100000000"), want: "events[0].batch.count: must be at most 5000"},
		"queue label":           {trace: batch(`count: 1, queue: "team a/etl"`), want: `events[0].batch.queue: "team a/etl" is not a queue name`},
		"training timeout":      {trace: "events:\n  - at: 0s\n    training: {name: a, namespace: b, workers: 2, worker: {cpu: \"1\"}, duration: 1m, timeout: -1m}\n", want: "events[0].training.timeout: must not be negative"},
		"spark max executors":   {trace: "events:\n  - at: 0s\n    spark: {name: a, namespace: b, driver: {cpu: \"1\"}, executor: {cpu: \"1\"}, executors: 2, maxExecutors: 9999, duration: 1m}\n", want: "events[0].spark.maxExecutors: must be at most 5000"},
		"spark executors, many": {trace: "events:\n  - at: 0s\n    spark: {name: a, namespace: b, driver: {cpu: \"1\"}, executor: {cpu: \"1\"}, executors: 9999, duration: 1m}\n", want: "events[0].spark.executors: must be at most 5000"},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			if tc.cluster != "" {
				_, err = ParseCluster([]byte(tc.cluster))
			} else {
				_, err = ParseTrace([]byte(tc.trace))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
