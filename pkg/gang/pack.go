package gang

import (
	"cmp"
	"math"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// Node is a node as the planner sees it.
type Node struct {
	Name string
	// Free is what the node can still take: allocatable minus requested (bound and
	// assumed pods) minus other gangs' reservations on it. Includes "pods" (slots).
	// A resource absent from Free is zero free; a negative amount (an
	// overcommitted node) takes nothing that requests it.
	Free resources.Vector
}

// Member is one pod to place (or a virtual one: a Spark executor slot).
type Member struct {
	Name string
	// Request is what the member takes from its node. Slots are counted like
	// any other resource: put pods=1 here to have Free's "pods" checked.
	// Negative amounts are treated as zero.
	Request resources.Vector
	// Class groups members with the same node constraints (taints, selectors).
	Class int
}

// Plan gives, for each member (same index as the members slice), the index of its node.
type Plan struct{ Node []int }

// ShortfallKind says what kind of reason keeps a gang out.
type ShortfallKind string

const (
	// Capacity: not enough free in total on the nodes the members may use
	// (over all members, or over the members of one class).
	Capacity ShortfallKind = "Capacity"
	// Fragmented: enough in total, but not node by node.
	Fragmented ShortfallKind = "Fragmented"
	// NoEligibleNode: a class has no node at all (or the cluster has no nodes).
	NoEligibleNode ShortfallKind = "NoEligibleNode"
)

// Shortfall explains why the gang does not fit.
type Shortfall struct {
	// Placed is how many members the planner could place, Needed how many
	// there are.
	Placed, Needed int
	Reason         string // one human sentence, for a pod condition / Event
	Kind           ShortfallKind
}

// Error makes a Shortfall usable as an error: its Reason.
func (s *Shortfall) Error() string { return s.Reason }

// Pack places every member on a node where it fits (every resource in Request,
// absent from Free = 0 free) and that eligible(class, nodeIndex) allows, or says why not.
// eligible may be nil: every node is eligible. Pack does not modify its inputs
// and gives the same answer for the same inputs. On a shortfall the Plan is empty.
//
// The placement is best-fit decreasing: the largest members first (by their
// dominant share of the total free), each on the node it leaves with the least
// slack. A member keeps off nodes with free extended resources it does not
// request (GPUs, for a member that needs none) while another node fits it:
// best fit alone would put small CPU-only members on the small GPU nodes and
// leave them no room for the work that needs their GPUs. Bin packing is NP-hard, so a Fragmented answer can in rare cases miss
// a placement that exists; a Plan is always valid.
func Pack(nodes []Node, members []Member, eligible func(class, node int) bool) (Plan, *Shortfall) {
	return pack(nodes, members, eligible, inFree, Spread{})
}

// Spread caps how many of a gang's members one pool of nodes may take, so
// that one pool's loss (a spot interruption) cannot take the whole gang.
type Spread struct {
	// Pool names each node's pool (same index as the nodes); "" for nodes
	// that are in no capped pool.
	Pool []string
	// MaxPerPool is the most members any one pool takes; 0: no cap.
	MaxPerPool int
}

// PackSpread is Pack with a per-pool cap. It does not fall back to packing
// without the cap: callers that accept that (the cap applies only "when
// another pool has room") call Pack next.
func PackSpread(nodes []Node, members []Member, eligible func(class, node int) bool, spread Spread) (Plan, *Shortfall) {
	return pack(nodes, members, eligible, inFree, spread)
}

// NeverFits packs the gang against the nodes' full allocatable (an empty
// cluster). A non-nil answer means the gang can never run on this cluster as
// it is; its Reason starts with "even on an empty cluster".
func NeverFits(allocatable []Node, members []Member, eligible func(class, node int) bool) *Shortfall {
	_, s := pack(allocatable, members, eligible, inEmptyCluster, Spread{})
	return s
}

// problem is a Pack input in dense form: the inner loop runs over slices,
// not maps, and allocates nothing.
type problem struct {
	nodes   []Node
	members []Member
	names   []v1.ResourceName // the resources members request, sorted; index r
	nr, nn  int               // len(names), len(nodes)
	free    []int64           // node n, resource r at n*nr+r; consumed by placement
	req     []int64           // member m, resource r at m*nr+r; never negative
	inv     []float64         // 1 / total free of r over all nodes; 0 where none is free
	classes []int             // dense class index -> Class, in order of first appearance
	classOf []int             // member -> dense class index
	elig    []bool            // dense class c, node n at c*nn+n
	nElig   []int             // dense class -> number of eligible nodes
	poolOf  []int             // node -> dense pool index, -1 when uncapped
	// Scarce resources: extended resources (GPUs) some node has free. xfree
	// at n*nx+x says node n has scarce resource x free, xreq at m*nx+x
	// that member m requests it.
	nx          int
	xfree, xreq []bool
	inPool      []int // dense pool -> members placed there
	poolCap     int   // 0: no cap
}

func pack(nodes []Node, members []Member, eligible func(class, node int) bool, w wording, spread Spread) (Plan, *Shortfall) {
	p := newProblem(nodes, members, eligible)
	p.setSpread(spread)
	assign, placed, firstFailed := p.place()
	if placed == len(members) {
		return Plan{Node: assign}, nil
	}
	return Plan{}, p.explain(assign, placed, firstFailed, w)
}

func newProblem(nodes []Node, members []Member, eligible func(class, node int) bool) *problem {
	p := &problem{nodes: nodes, members: members, nn: len(nodes)}

	// Only resources some member asks for can stop a placement.
	index := map[v1.ResourceName]int{}
	for _, m := range members {
		for name, a := range m.Request {
			if _, ok := index[name]; !ok && a > 0 {
				index[name] = 0
				p.names = append(p.names, name)
			}
		}
	}
	slices.Sort(p.names)
	for r, name := range p.names {
		index[name] = r
	}
	p.nr = len(p.names)

	p.req = make([]int64, len(members)*p.nr)
	for m, mem := range members {
		for name, a := range mem.Request {
			if a > 0 {
				p.req[m*p.nr+index[name]] = a
			}
		}
	}

	p.free = make([]int64, p.nn*p.nr)
	total := make([]float64, p.nr) // float64: a sum over thousands of nodes may pass int64
	for n, node := range nodes {
		for r, name := range p.names {
			f := node.Free[name]
			p.free[n*p.nr+r] = f
			if f > 0 {
				total[r] += float64(f)
			}
		}
	}
	p.inv = make([]float64, p.nr)
	for r, t := range total {
		if t > 0 {
			p.inv[r] = 1 / t
		}
	}

	var scarce []v1.ResourceName
	for _, node := range nodes {
		for name, f := range node.Free {
			if f > 0 && isScarce(name) && !slices.Contains(scarce, name) {
				scarce = append(scarce, name)
			}
		}
	}
	if p.nx = len(scarce); p.nx > 0 {
		p.xfree = make([]bool, p.nn*p.nx)
		for n, node := range nodes {
			for x, name := range scarce {
				p.xfree[n*p.nx+x] = node.Free[name] > 0
			}
		}
		p.xreq = make([]bool, len(members)*p.nx)
		for m, mem := range members {
			for x, name := range scarce {
				p.xreq[m*p.nx+x] = mem.Request[name] > 0
			}
		}
	}

	// Eligibility depends on the class alone: ask once per class and node,
	// not once per member and node.
	dense := map[int]int{}
	p.classOf = make([]int, len(members))
	for m, mem := range members {
		c, ok := dense[mem.Class]
		if !ok {
			c = len(p.classes)
			dense[mem.Class] = c
			p.classes = append(p.classes, mem.Class)
		}
		p.classOf[m] = c
	}
	p.elig = make([]bool, len(p.classes)*p.nn)
	p.nElig = make([]int, len(p.classes))
	for c, class := range p.classes {
		for n := range p.nn {
			if eligible == nil || eligible(class, n) {
				p.elig[c*p.nn+n] = true
				p.nElig[c]++
			}
		}
	}
	return p
}

func (p *problem) setSpread(s Spread) {
	if s.MaxPerPool <= 0 || len(s.Pool) != p.nn {
		return
	}
	p.poolCap = s.MaxPerPool
	p.poolOf = make([]int, p.nn)
	dense := map[string]int{}
	for n, name := range s.Pool {
		if name == "" {
			p.poolOf[n] = -1
			continue
		}
		i, ok := dense[name]
		if !ok {
			i = len(dense)
			dense[name] = i
		}
		p.poolOf[n] = i
	}
	p.inPool = make([]int, len(dense))
}

// full reports whether node n is in a pool that reached its cap.
func (p *problem) full(n int) bool {
	return p.poolCap > 0 && p.poolOf[n] >= 0 && p.inPool[p.poolOf[n]] >= p.poolCap
}

// order returns the member indexes, largest first: by dominant share of the
// total free (a request of a resource nothing has free counts as infinite),
// then by name and index, so that the order never depends on the input's
// accidents beyond what it says.
func (p *problem) order() []int {
	share := make([]float64, len(p.members))
	for m := range p.members {
		for r, q := range p.req[m*p.nr : m*p.nr+p.nr] {
			s := float64(q) * p.inv[r]
			if q > 0 && p.inv[r] == 0 {
				s = math.Inf(1)
			}
			share[m] = max(share[m], s)
		}
	}
	order := make([]int, len(p.members))
	for m := range order {
		order[m] = m
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(share[b], share[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(p.members[a].Name, p.members[b].Name); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return order
}

// place runs best-fit decreasing. Members that fit nowhere are skipped (their
// node is -1) and the rest go on, so that a shortfall can say how many fit;
// firstFailed is the first (so the largest) member that did not fit, or -1.
func (p *problem) place() (assign []int, placed, firstFailed int) {
	nr, nn := p.nr, p.nn
	assign = make([]int, len(p.members))
	firstFailed = -1
	for _, m := range p.order() {
		req := p.req[m*nr : m*nr+nr]
		elig := p.elig[p.classOf[m]*nn : p.classOf[m]*nn+nn]
		best, bestMax, bestSum, bestWaste := -1, 0.0, 0.0, false
		for n, ok := range elig {
			if !ok || p.full(n) {
				continue
			}
			waste := p.wastes(m, n)
			if best >= 0 && waste && !bestWaste {
				continue // a node without idle scarce resources fits already
			}
			// The slack is what the node would have left, as shares of the
			// total free: the dominant share first, then the sum, so that of
			// two nodes equally full in their fullest resource the fuller
			// overall is taken and the roomier one stays for larger members.
			f := p.free[n*nr : n*nr+nr]
			fits, slackMax, slackSum := true, 0.0, 0.0
			for r, q := range req {
				if q > f[r] {
					if q > 0 {
						fits = false
						break
					}
					continue // overcommitted in a resource this member does not take
				}
				s := float64(f[r]-q) * p.inv[r]
				slackSum += s
				slackMax = max(slackMax, s)
			}
			if !fits {
				continue
			}
			if best < 0 || bestWaste && !waste || slackMax < bestMax || slackMax == bestMax && slackSum < bestSum {
				best, bestMax, bestSum, bestWaste = n, slackMax, slackSum, waste
				if slackSum == 0 && !waste {
					break // an exact fit: no later node can do better
				}
			}
		}
		assign[m] = best
		if best < 0 {
			if firstFailed < 0 {
				firstFailed = m
			}
			continue
		}
		placed++
		if p.poolCap > 0 && p.poolOf[best] >= 0 {
			p.inPool[p.poolOf[best]]++
		}
		f := p.free[best*nr : best*nr+nr]
		for r, q := range req {
			f[r] -= q
		}
	}
	return assign, placed, firstFailed
}

// wastes reports whether placing member m on node n would sit on a scarce
// resource the node has free and m does not request.
func (p *problem) wastes(m, n int) bool {
	for x := range p.nx {
		if p.xfree[n*p.nx+x] && !p.xreq[m*p.nx+x] {
			return true
		}
	}
	return false
}

// isScarce reports whether a resource is an extended resource (a device such
// as nvidia.com/gpu): not cpu, memory, storage, pods or hugepages, and not in
// the kubernetes.io namespace.
func isScarce(name v1.ResourceName) bool {
	s := string(name)
	return strings.Contains(s, "/") && !strings.Contains(s, "kubernetes.io/") && !strings.HasPrefix(s, "requests.")
}

// FitOne is Pack for a gang of one, without building Pack's dense problem
// (reclaim asks it after every victim it considers): the first node in
// order that can take the member, preferring, as Pack does, nodes where it
// would not sit on an idle extended resource (a GPU) it does not request.
func FitOne(nodes []Node, m Member, eligible func(class, node int) bool) (Plan, bool) {
	return pickOne(nodes, m, func(n int) bool {
		return (eligible == nil || eligible(m.Class, n)) && covers(nodes[n].Free, m.Request)
	})
}

// FitOneWhere is FitOne when the caller knows already on which nodes the
// member fits (fits, same index as nodes): the same choice among them.
func FitOneWhere(nodes []Node, m Member, fits []bool) (Plan, bool) {
	return pickOne(nodes, m, func(n int) bool { return fits[n] })
}

// pickOne is the first node in order where the member fits and would sit
// on no idle scarce resource it does not ask for, else the first where it
// fits.
func pickOne(nodes []Node, m Member, fits func(n int) bool) (Plan, bool) {
	fallback := -1
	for n := range nodes {
		if !fits(n) {
			continue
		}
		if !idleScarce(nodes[n].Free, m.Request) {
			return Plan{Node: []int{n}}, true
		}
		if fallback < 0 {
			fallback = n
		}
	}
	if fallback >= 0 {
		return Plan{Node: []int{fallback}}, true
	}
	return Plan{}, false
}

// covers reports whether free holds req (negative requests count as zero).
func covers(free, req resources.Vector) bool { return free.Covers(req) }

// idleScarce reports whether free has an extended resource that req does
// not ask for.
func idleScarce(free, req resources.Vector) bool {
	for r, a := range free {
		if a > 0 && isScarce(r) && req[r] <= 0 {
			return true
		}
	}
	return false
}
