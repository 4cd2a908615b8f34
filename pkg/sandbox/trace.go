package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/gang"
)

// Trace is a workload to replay: arrivals of Spark applications, ML training
// gangs and batch pods over time, and spot interruptions. docs/sandbox.md
// documents the format; these types are its reference.
type Trace struct {
	// Name labels the run in the report.
	Name string `json:"name,omitempty"`
	// Events happen at their offset from the start, in declared (trace)
	// time; the sandbox's time scale speeds them up.
	Events []Event `json:"events"`
}

// Event is one arrival or interruption; exactly one field besides At is set.
type Event struct {
	At        Duration   `json:"at"`
	Spark     *SparkApp  `json:"spark,omitempty"`
	Training  *Training  `json:"training,omitempty"`
	Batch     *Batch     `json:"batch,omitempty"`
	Interrupt *Interrupt `json:"interrupt,omitempty"`
}

// SparkApp is a Spark application: a driver that, once running, starts its
// executors and runs for Duration; executors run until the driver ends.
type SparkApp struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Queue is the muster.dev/queue label (optional: namespaceQueues decide).
	Queue    string    `json:"queue,omitempty"`
	Driver   Resources `json:"driver"`
	Executor Resources `json:"executor"`
	// MinExecutors is reserved with the driver (muster.dev/min-executors).
	MinExecutors int `json:"minExecutors,omitempty"`
	// Executors start when the driver runs; MaxExecutors (dynamic
	// allocation) are added when a quarter of the run has passed.
	Executors    int      `json:"executors"`
	MaxExecutors int      `json:"maxExecutors,omitempty"`
	Duration     Duration `json:"duration"`
}

// Training is an ML training job: a PodGroup of Workers that run together
// for Duration.
type Training struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	Queue     string    `json:"queue,omitempty"`
	Workers   int       `json:"workers"`
	Worker    Resources `json:"worker"`
	Duration  Duration  `json:"duration"`
	// Timeout is the PodGroup's scheduleTimeoutSeconds (optional).
	Timeout Duration `json:"timeout,omitempty"`
	// Devices is the number of DRA GPUs each worker takes, through a
	// ResourceClaim made from a ResourceClaimTemplate of the sandbox's
	// DeviceClass (optional).
	Devices int `json:"devices,omitempty"`
	// TopologyRequired / TopologyPreferred are the PodGroup's
	// muster.dev/topology-required / -preferred: node label keys, narrowest
	// last or first as in the annotation, e.g. "sandbox.muster.dev/block,sandbox.muster.dev/rack".
	TopologyRequired  string `json:"topologyRequired,omitempty"`
	TopologyPreferred string `json:"topologyPreferred,omitempty"`
}

// topologyAnnotations are the PodGroup's topology annotations.
func (t *Training) topologyAnnotations() map[string]string {
	ann := map[string]string{}
	if t.TopologyRequired != "" {
		ann[gang.AnnotationTopologyRequired] = t.TopologyRequired
	}
	if t.TopologyPreferred != "" {
		ann[gang.AnnotationTopologyPreferred] = t.TopologyPreferred
	}
	return ann
}

// Batch is Count independent pods of one size that run for Duration.
type Batch struct {
	Name      string    `json:"name"`
	Namespace string    `json:"namespace"`
	Queue     string    `json:"queue,omitempty"`
	Count     int       `json:"count"`
	Pod       Resources `json:"pod"`
	Duration  Duration  `json:"duration"`
}

// Interrupt takes spot capacity away: the nodes of a pool (or one node) get
// the termination handler's taint, and Notice later they are gone with
// their pods. ReplaceAfter, when set, brings them back (the autoscaler
// replacing capacity) that long after they went.
type Interrupt struct {
	Pool         string   `json:"pool,omitempty"`
	Node         string   `json:"node,omitempty"`
	Notice       Duration `json:"notice,omitempty"`
	ReplaceAfter Duration `json:"replaceAfter,omitempty"`
}

// Resources is a pod's requests: resource name to quantity.
type Resources map[string]string

// ClusterSpec describes the simulated nodes.
type ClusterSpec struct {
	Pools []PoolSpec `json:"pools"`
}

// PoolSpec is a group of identical nodes.
type PoolSpec struct {
	// Name identifies the pool in interruptions; default type-instance-zone.
	Name         string `json:"name,omitempty"`
	CapacityType string `json:"capacityType"` // spot or on-demand
	InstanceType string `json:"instanceType"`
	Zone         string `json:"zone"`
	Count        int    `json:"count"`
	// CPU, Memory and GPU are each node's allocatable.
	CPU    string `json:"cpu"`
	Memory string `json:"memory"`
	GPU    string `json:"gpu,omitempty"`
	// Devices is the number of GPUs the sandbox's simulated DRA driver
	// publishes for each node in a ResourceSlice (optional).
	Devices int `json:"devices,omitempty"`
	// Block labels every node of the pool sandbox.muster.dev/block; RackSize
	// puts each run of that many nodes in a rack of its own
	// (sandbox.muster.dev/rack: <pool>-rack-<n>). Both optional.
	Block    string `json:"block,omitempty"`
	RackSize int    `json:"rackSize,omitempty"`
}

// Duration is a time.Duration written as "90s", "5m", "1h".
type Duration struct{ time.Duration }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration such as \"90s\" or \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"90s\" or \"5m\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// ParseTrace reads a trace strictly (unknown fields are errors) and checks it;
// every problem is reported with its path.
func ParseTrace(data []byte) (*Trace, error) {
	var t Trace
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	sort.SliceStable(t.Events, func(i, j int) bool { return t.Events[i].At.Duration < t.Events[j].At.Duration })
	return &t, nil
}

// ParseCluster reads a cluster file strictly and checks it.
func ParseCluster(data []byte) (*ClusterSpec, error) {
	var c ClusterSpec
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// readFile reads a file given on the command line, naming it in errors.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// Bounds on what one file may ask of the sandbox. The sandbox runs every
// simulated node and pod in this process: a typo such as count: 1000000
// must be refused with its path, not exhaust the machine.
const (
	maxEvents     = 10000
	maxPodsPerApp = 5000 // batch count, training workers, Spark executors
	maxPoolNodes  = 1000
	maxNodes      = 5000
	// maxDevicesPerNode bounds the DRA GPUs of a node and of a worker.
	maxDevicesPerNode = 64
)

type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

func (p problems) err(what string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s is invalid, %d error(s):\n  %s", what, len(p), strings.Join(p, "\n  "))
}

func (t *Trace) validate() error {
	var p problems
	if len(t.Events) == 0 {
		p.add("events", "a trace needs at least one event")
	}
	if len(t.Events) > maxEvents {
		p.add("events", "%d events; a trace holds at most %d", len(t.Events), maxEvents)
		return p.err("the trace")
	}
	names := map[string]string{}
	for i, e := range t.Events {
		path := fmt.Sprintf("events[%d]", i)
		if e.At.Duration < 0 {
			p.add(path+".at", "must not be negative")
		}
		set := 0
		for _, b := range []bool{e.Spark != nil, e.Training != nil, e.Batch != nil, e.Interrupt != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			p.add(path, "exactly one of spark, training, batch, interrupt must be set, found %d", set)
			continue
		}
		checkName := func(field, ns, name, queue string) {
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 || len(name) > 40 {
				p.add(path+"."+field+".name", "%q must be a lowercase name of at most 40 characters", name)
			}
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				p.add(path+"."+field+".namespace", "%q is not a namespace name", ns)
			}
			if msgs := validation.IsValidLabelValue(queue); len(msgs) > 0 {
				p.add(path+"."+field+".queue", "%q is not a queue name (a label value): %s", queue, strings.Join(msgs, "; "))
			}
			key := ns + "/" + name
			if first, dup := names[key]; dup {
				p.add(path+"."+field+".name", "%s is used twice (first at %s)", key, first)
			}
			names[key] = path
		}
		switch {
		case e.Spark != nil:
			s := e.Spark
			checkName("spark", s.Namespace, s.Name, s.Queue)
			checkResources(&p, path+".spark.driver", s.Driver)
			checkResources(&p, path+".spark.executor", s.Executor)
			checkCount(&p, path+".spark.executors", s.Executors)
			if s.MinExecutors < 0 || s.MinExecutors > s.Executors {
				p.add(path+".spark.minExecutors", "must be between 0 and executors (%d)", s.Executors)
			}
			if s.MaxExecutors != 0 && s.MaxExecutors < s.Executors {
				p.add(path+".spark.maxExecutors", "must be at least executors (%d)", s.Executors)
			} else if s.MaxExecutors > maxPodsPerApp {
				p.add(path+".spark.maxExecutors", "must be at most %d", maxPodsPerApp)
			}
			checkDuration(&p, path+".spark.duration", s.Duration)
		case e.Training != nil:
			tr := e.Training
			checkName("training", tr.Namespace, tr.Name, tr.Queue)
			checkResources(&p, path+".training.worker", tr.Worker)
			checkCount(&p, path+".training.workers", tr.Workers)
			if tr.Timeout.Duration < 0 {
				p.add(path+".training.timeout", "must not be negative")
			}
			if tr.Devices < 0 || tr.Devices > maxDevicesPerNode {
				p.add(path+".training.devices", "must be between 0 and %d", maxDevicesPerNode)
			}
			if _, err := gang.ParseTopology(tr.topologyAnnotations()); err != nil {
				p.add(path+".training", "topologyRequired, topologyPreferred: %v", err)
			}
			checkDuration(&p, path+".training.duration", tr.Duration)
		case e.Batch != nil:
			b := e.Batch
			checkName("batch", b.Namespace, b.Name, b.Queue)
			checkResources(&p, path+".batch.pod", b.Pod)
			checkCount(&p, path+".batch.count", b.Count)
			checkDuration(&p, path+".batch.duration", b.Duration)
		case e.Interrupt != nil:
			in := e.Interrupt
			if (in.Pool == "") == (in.Node == "") {
				p.add(path+".interrupt", "exactly one of pool and node must be set")
			}
			if in.Notice.Duration < 0 || in.ReplaceAfter.Duration < 0 {
				p.add(path+".interrupt", "notice and replaceAfter must not be negative")
			}
		}
	}
	return p.err("the trace")
}

func checkResources(p *problems, path string, r Resources) {
	if len(r) == 0 {
		p.add(path, "needs at least one resource, e.g. {cpu: \"1\", memory: 2Gi}")
	}
	for name, q := range r {
		if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
			p.add(path+"."+name, "%q is not a resource name", name)
			continue
		}
		if v, err := resource.ParseQuantity(q); err != nil || v.Sign() <= 0 {
			p.add(path+"."+name, "%q is not a positive quantity", q)
		}
	}
}

func checkCount(p *problems, path string, n int) {
	if n < 1 {
		p.add(path, "must be at least 1")
	} else if n > maxPodsPerApp {
		p.add(path, "must be at most %d", maxPodsPerApp)
	}
}

func checkDuration(p *problems, path string, d Duration) {
	if d.Duration <= 0 {
		p.add(path, "must be a positive duration such as \"10m\"")
	}
}

func (c *ClusterSpec) validate() error {
	var p problems
	if len(c.Pools) == 0 {
		p.add("pools", "a cluster needs at least one pool")
	}
	names := map[string]bool{}
	total := 0
	for i, pool := range c.Pools {
		path := fmt.Sprintf("pools[%d]", i)
		if pool.CapacityType != "spot" && pool.CapacityType != "on-demand" {
			p.add(path+".capacityType", "%q must be spot or on-demand", pool.CapacityType)
		}
		if pool.Count < 1 {
			p.add(path+".count", "must be at least 1")
		} else if pool.Count > maxPoolNodes {
			p.add(path+".count", "must be at most %d", maxPoolNodes)
		} else {
			total += pool.Count
		}
		if pool.InstanceType == "" || pool.Zone == "" {
			p.add(path, "instanceType and zone are required")
		}
		// Both become node labels, and (with the capacity type) the
		// pool's default name, which names its nodes.
		for field, v := range map[string]string{"instanceType": pool.InstanceType, "zone": pool.Zone} {
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				p.add(path+"."+field, "%q is not a label value: %s", v, strings.Join(msgs, "; "))
			}
		}
		if msgs := validation.IsDNS1123Subdomain(fmt.Sprintf("%s-%d", pool.poolName(), max(pool.Count, 1)-1)); len(msgs) > 0 || len(pool.poolName()) > 50 {
			p.add(path+".name", "%q does not make node names (a lowercase name of at most 50 characters): %s", pool.poolName(), strings.Join(msgs, "; "))
		}
		checkResources(&p, path, Resources{"cpu": pool.CPU, "memory": pool.Memory})
		if pool.GPU != "" {
			checkResources(&p, path, Resources{"gpu": pool.GPU})
		}
		if pool.Devices < 0 || pool.Devices > maxDevicesPerNode {
			p.add(path+".devices", "must be between 0 and %d", maxDevicesPerNode)
		}
		if pool.RackSize < 0 {
			p.add(path+".rackSize", "must not be negative")
		}
		if msgs := validation.IsValidLabelValue(pool.Block); len(msgs) > 0 {
			p.add(path+".block", "%q is not a label value: %s", pool.Block, strings.Join(msgs, "; "))
		}
		name := pool.poolName()
		if names[name] {
			p.add(path+".name", "pool %s is defined twice", name)
		}
		names[name] = true
	}
	if total > maxNodes {
		p.add("pools", "%d nodes in all; the sandbox simulates at most %d", total, maxNodes)
	}
	return p.err("the cluster")
}

func (p PoolSpec) poolName() string {
	if p.Name != "" {
		return p.Name
	}
	return strings.ToLower(fmt.Sprintf("%s-%s-%s", p.CapacityType, strings.ReplaceAll(p.InstanceType, ".", "-"), p.Zone))
}

// requests converts Resources to a ResourceList-like map of strings for
// cluster.Pod.
func (r Resources) requests() map[v1.ResourceName]string {
	out := make(map[v1.ResourceName]string, len(r))
	for k, v := range r {
		out[v1.ResourceName(k)] = v
	}
	return out
}
