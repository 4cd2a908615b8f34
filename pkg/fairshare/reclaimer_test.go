package fairshare

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/resources"
)

// Unit tests of Reclaim's steps, one at a time; reclaim_test.go tests the
// whole.

// nestedQueues: analytics guarantees 8 cpus to etl (nothing of its own) and
// adhoc (2 of its own); ml guarantees 4; batch nothing.
const nestedQueues = `
queues:
  - name: analytics
    guaranteed: {cpu: "8"}
    queues:
      - name: etl
      - name: adhoc
        guaranteed: {cpu: "2"}
  - name: ml
    guaranteed: {cpu: "4"}
  - name: batch
`

// describe is a unit as the tests compare it: key, victims, priority,
// start (minutes after reclaimT0) and whether disruptions are allowed.
func describe(u reclaimUnit) string {
	keys := make([]string, len(u.victims))
	for i, v := range u.victims {
		keys[i] = v.Key + "=" + u.reasons[i]
	}
	return fmt.Sprintf("%s[%s] prio %d at %v pdb %v", u.key, strings.Join(keys, " "), u.prio,
		u.started.Sub(reclaimT0).Minutes(), u.pdb)
}

func describeAll(us []reclaimUnit) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, describe(u))
	}
	return out
}

func unitKeys(us []reclaimUnit) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.key)
	}
	return out
}

// unitOf is the candidate unit of the victim with that key.
func unitOf(t *testing.T, units []reclaimUnit, key string) reclaimUnit {
	t.Helper()
	for _, u := range units {
		if u.key == key {
			return u
		}
	}
	require.Failf(t, "no such unit", "%s in %v", key, unitKeys(units))
	return reclaimUnit{}
}

func TestReclaimerMayReclaimFrom(t *testing.T) {
	tree := mustTree(t, nestedQueues)
	cases := map[string]struct {
		preemptor string
		extra     map[string]resources.Vector // usage, by leaf
		from      string                      // "": every queue off its path
		want      bool
	}{
		"a leaf below its guarantee, from another branch": {
			preemptor: "ml", from: "root.batch", want: true,
		},
		"a leaf that would go above its guarantee": {
			preemptor: "ml", extra: map[string]resources.Vector{"ml": {cpu: cores(3)}}, from: "root.batch",
		},
		"a leaf that guarantees nothing, for its parent's guarantee": {
			preemptor: "analytics.etl", extra: map[string]resources.Vector{"analytics.etl": {cpu: cores(4)}},
			from: "root.ml", want: true,
		},
		"but not from a sibling: below their common ancestor nobody is owed": {
			preemptor: "analytics.etl", from: "root.analytics.adhoc",
		},
		"a leaf with a guarantee of its own, from a sibling": {
			preemptor: "analytics.adhoc", from: "root.analytics.etl", want: true,
		},
		"a parent at its guarantee": {
			preemptor: "analytics.etl", extra: map[string]resources.Vector{"analytics.adhoc": {cpu: cores(8)}},
			from: "root.batch",
		},
		"every queue off its path, owed": {
			preemptor: "ml", want: true,
		},
		"every queue off its path, not owed": {
			preemptor: "batch",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, tc.preemptor, 0, []gang.Member{member("p", 2)}, cpuFree(0), nil, tc.extra)
			r := newReclaimer(in)
			assert.Equal(t, tc.want, r.mayReclaimFrom(tc.from))
			assert.Equal(t, tc.want, r.mayReclaimFrom(tc.from), "asked again (cached)")
		})
	}
}

func TestReclaimerCandidates(t *testing.T) {
	tree := mustTree(t, nestedQueues)
	// The preemptor: etl at priority 1; analytics is owed 2 cpus.
	cases := map[string]struct {
		victim      *vic
		wantReason  string // "": no candidate
		wantNotOwed bool
	}{
		"its own queue, lower priority": {
			victim: pod("e0", "analytics.etl", 0, 1), wantReason: ReasonPriority,
		},
		"its own queue, the same priority": {
			victim: pod("e1", "analytics.etl", 0, 1).prio(1),
		},
		"another branch, for its parent's guarantee": {
			victim: pod("m1", "ml", 0, 1).prio(5), wantReason: ReasonReclaim,
		},
		"a sibling: nobody below their common ancestor is owed": {
			victim: pod("d1", "analytics.adhoc", 0, 1), wantNotOwed: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "analytics.etl", 1, []gang.Member{member("p", 2)}, cpuFree(0), []*vic{tc.victim}, nil)
			r := newReclaimer(in)
			got := r.candidates()
			if tc.wantReason == "" {
				assert.Empty(t, got)
			} else {
				require.Len(t, got, 1)
				assert.Equal(t, fmt.Sprintf("%s[%s=%s] prio %d at 0 pdb true", tc.victim.v.Key, tc.victim.v.Key, tc.wantReason, tc.victim.v.Priority), describe(got[0]))
			}
			assert.Equal(t, tc.wantNotOwed, r.notOwed[tc.victim.v.Queue])
		})
	}
}

// TestReclaimerCandidatesGangs: what candidates learns of each gang.
func TestReclaimerCandidatesGangs(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	cases := map[string]struct {
		victims []*vic
		gangs   map[string]GangQuorum
		want    gangState // members as their count, in taken
	}{
		"known quorum: spares beyond it": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "c", 0, 1).gang("c/x"), pod("x3", "c", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 2, Bound: 3}},
			want:    gangState{spare: 1, bound: 3, taken: 3, eligible: true},
		},
		"quorum above the bound members: no spares": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 2, Bound: 1}},
			want:    gangState{spare: 0, bound: 1, taken: 1, eligible: true},
		},
		"unknown quorum: as many as are seen, no spares": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "c", 0, 1).gang("c/x")},
			want:    gangState{spare: 0, bound: -1, taken: 2, eligible: true},
		},
		"a member that is no candidate": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "a", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 1, Bound: 2}},
			want:    gangState{spare: 1, bound: 2, taken: 1, eligible: false},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p", 2)}, cpuFree(0), tc.victims, nil)
			in.Gangs = tc.gangs
			r := newReclaimer(in)
			r.candidates()
			require.Contains(t, r.gangs, "c/x")
			gs := *r.gangs["c/x"]
			gs.taken, gs.members = len(gs.members), nil
			assert.Equal(t, tc.want, gs)
		})
	}
}

func TestReclaimerGangUnits(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	cases := map[string]struct {
		victims []*vic
		gangs   map[string]GangQuorum
		want    []string // describe of each unit
	}{
		"pods of no gang stay single": {
			victims: []*vic{pod("c1", "c", 0, 1), pod("c2", "c", 0, 1).age(1)},
			want:    []string{"c1[c1=reclaim] prio 0 at 0 pdb true", "c2[c2=reclaim] prio 0 at 1 pdb true"},
		},
		"a gang with spare members: its members one by one": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "c", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 1, Bound: 2}},
			want:    []string{"x1[x1=reclaim] prio 0 at 0 pdb true", "x2[x2=reclaim] prio 0 at 0 pdb true"},
		},
		"a gang with no spares goes whole: its most important member's priority, its newest start, protected if one is": {
			victims: []*vic{pod("c1", "c", 0, 1), pod("x1", "c", 0, 1).gang("c/x").prio(2).age(5),
				pod("x2", "c", 0, 1).gang("c/x").age(9).pdb()},
			gangs: map[string]GangQuorum{"c/x": {Min: 2, Bound: 2}},
			want:  []string{"c1[c1=reclaim] prio 0 at 0 pdb true", "gang:c/x[x1=reclaim x2=reclaim] prio 2 at 9 pdb false"},
		},
		"whole gangs come by name": {
			victims: []*vic{pod("y1", "c", 0, 1).gang("c/y"), pod("x1", "c", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 1, Bound: 1}, "c/y": {Min: 1, Bound: 1}},
			want:    []string{"gang:c/x[x1=reclaim] prio 0 at 0 pdb true", "gang:c/y[y1=reclaim] prio 0 at 0 pdb true"},
		},
		"a gang of unknown quorum goes whole with the members seen": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "b", 0, 1).gang("c/x")},
			want:    []string{"gang:c/x[x1=reclaim x2=reclaim] prio 0 at 0 pdb true"},
		},
		"a gang with no spares and a member that is no candidate is not taken": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "a", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 2, Bound: 2}},
			want:    []string{},
		},
		"a gang with no spares and members not seen is not taken": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "c", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 3, Bound: 3}},
			want:    []string{},
		},
		"a gang with spares stays single even when it could not go whole": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "a", 0, 1).gang("c/x")},
			gangs:   map[string]GangQuorum{"c/x": {Min: 1, Bound: 2}},
			want:    []string{"x1[x1=reclaim] prio 0 at 0 pdb true"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p", 2)}, cpuFree(0), tc.victims, nil)
			in.Gangs = tc.gangs
			r := newReclaimer(in)
			assert.Equal(t, tc.want, describeAll(r.gangUnits(r.candidates())))
		})
	}
}

func TestReclaimUnitOrder(t *testing.T) {
	unit := func(key string, prio int32, minutes int, pdb bool) reclaimUnit {
		return reclaimUnit{key: key, prio: prio, started: reclaimT0.Add(time.Duration(minutes) * time.Minute), pdb: pdb}
	}
	cases := map[string]struct {
		first, then reclaimUnit
	}{
		"disruption allowed first, whatever the priority": {unit("b", 9, 0, true), unit("a", 0, 5, false)},
		"then the lowest priority":                        {unit("b", 0, 0, true), unit("a", 1, 5, true)},
		"then the newest":                                 {unit("b", 0, 5, true), unit("a", 0, 0, true)},
		"then by key":                                     {unit("a", 0, 0, true), unit("b", 0, 0, true)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.True(t, tc.first.before(tc.then))
			assert.False(t, tc.then.before(tc.first))
			r := &reclaimer{}
			assert.Equal(t, []string{tc.first.key, tc.then.key}, unitKeys(r.order([]reclaimUnit{tc.then, tc.first})))
		})
	}
}

func TestReclaimerRemoveGiveBack(t *testing.T) {
	tree := mustTree(t, nestedQueues)
	cases := map[string]struct {
		preemptor     string
		prio          int32
		victim        *vic
		extra         map[string]resources.Vector
		eligible      func(class, node int) bool
		wantOK        bool
		wantProtected []string
	}{
		"a queue without a guarantee": {
			preemptor: "ml", victim: pod("v", "batch", 1, 2), wantOK: true,
		},
		"its parent would drop below its guarantee": {
			preemptor: "ml", victim: pod("v", "analytics.etl", 1, 2),
			extra:  map[string]resources.Vector{"analytics.etl": {cpu: cores(6)}},
			wantOK: false, wantProtected: []string{"root.analytics"},
		},
		"the same on a node the members may not use: not named in the refusal": {
			preemptor: "ml", victim: pod("v", "analytics.etl", 1, 2),
			extra:    map[string]resources.Vector{"analytics.etl": {cpu: cores(6)}},
			eligible: func(_, node int) bool { return node != 1 },
			wantOK:   false,
		},
		"its own leaf would drop below its guarantee, its parent not": {
			preemptor: "ml", victim: pod("v", "analytics.adhoc", 1, 2),
			extra:  map[string]resources.Vector{"analytics.etl": {cpu: cores(8)}},
			wantOK: false, wantProtected: []string{"root.analytics.adhoc"},
		},
		"an ancestor the preemptor shares is not checked": {
			preemptor: "analytics.adhoc", victim: pod("v", "analytics.etl", 1, 2),
			extra:  map[string]resources.Vector{"analytics.etl": {cpu: cores(6)}},
			wantOK: true,
		},
		"a victim of its own queue, taken for priority, is not checked": {
			preemptor: "analytics.etl", prio: 1, victim: pod("v", "analytics.etl", 1, 2),
			extra:  map[string]resources.Vector{"analytics.etl": {cpu: cores(6)}},
			wantOK: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, tc.preemptor, tc.prio, []gang.Member{member("p", 2)}, cpuFree(0, 1), []*vic{tc.victim}, tc.extra)
			in.Eligible = tc.eligible
			r := newReclaimer(in)
			units := r.candidates()
			require.Len(t, units, 1)
			u := units[0]

			assert.Equal(t, tc.wantOK, r.remove(u))
			assert.Equal(t, tc.wantProtected, sortedSet(r.protected))
			assert.True(t, r.taken["v"])
			assert.Equal(t, cores(3), r.free[1].Free[cpu], "the victim's node")
			assert.Equal(t, cores(0), r.free[0].Free[cpu], "another node")
			for q := tree.Get(tc.victim.v.Queue); q != nil; q = q.Parent {
				assert.Equal(t, in.Usage[q.Path][cpu]-cores(2), r.usage[q.Path][cpu], q.Path)
			}

			r.giveBack(u)
			assert.False(t, r.taken["v"])
			assert.Equal(t, in.Nodes, r.free)
			assert.Equal(t, in.Usage, r.usage)
			assert.Equal(t, tc.wantProtected, sortedSet(r.protected), "giving back keeps what the refusal will say")
		})
	}
}

func TestReclaimerForGang(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	victims := []*vic{
		pod("c0", "c", 0, 1),
		pod("x1", "c", 0, 1).gang("c/x"), pod("x2", "c", 0, 1).gang("c/x"),
		pod("y1", "c", 0, 1).gang("c/y"), pod("y2", "c", 0, 1).gang("c/y"), pod("y3", "a", 0, 1).gang("c/y"),
	}
	gangs := map[string]GangQuorum{"c/x": {Min: 1, Bound: 2}, "c/y": {Min: 2, Bound: 3}}
	cases := map[string]struct {
		try       string
		setup     func(r *reclaimer, units []reclaimUnit) []reclaimUnit // returns what is chosen so far
		want      string                                                // the unit's key; "": may not be taken
		wantChose []string
	}{
		"a pod of no gang": {try: "c0", want: "c0"},
		"a spare member":   {try: "x1", want: "x1"},
		"beyond the spares the whole rest goes, with the spares taken so far": {
			try: "x2",
			setup: func(r *reclaimer, units []reclaimUnit) []reclaimUnit {
				for _, k := range []string{"x1", "c0"} {
					require.True(t, r.remove(unitOf(t, units, k)))
				}
				r.gangs["c/x"].taken = 1
				return []reclaimUnit{unitOf(t, units, "x1"), unitOf(t, units, "c0")}
			},
			want: "gang:c/x", wantChose: []string{"c0"},
		},
		"beyond the spares of a gang that cannot go whole": {
			try: "y2",
			setup: func(r *reclaimer, units []reclaimUnit) []reclaimUnit {
				require.True(t, r.remove(unitOf(t, units, "y1")))
				r.gangs["c/y"].taken = 1
				return []reclaimUnit{unitOf(t, units, "y1")}
			},
			wantChose: []string{"y1"},
		},
		"its gang went whole already": {
			try:   "x1",
			setup: func(r *reclaimer, _ []reclaimUnit) []reclaimUnit { r.gangs["c/x"].whole = true; return nil },
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p", 2)}, cpuFree(0), victims, nil)
			in.Gangs = gangs
			r := newReclaimer(in)
			units := r.candidates()
			var chosen []reclaimUnit
			if tc.setup != nil {
				chosen = tc.setup(r, units)
			}
			u, chosen, ok := r.forGang(unitOf(t, units, tc.try), chosen)
			assert.Equal(t, tc.want != "", ok)
			if ok {
				assert.Equal(t, tc.want, u.key)
			}
			if tc.wantChose != nil {
				assert.Equal(t, tc.wantChose, unitKeys(chosen))
			}
			if tc.want == "gang:c/x" {
				assert.Equal(t, "gang:c/x[x1=reclaim x2=reclaim] prio 0 at 0 pdb true", describe(u))
				assert.False(t, r.taken["x1"], "the spare member taken is given back, to go with its gang")
				assert.Equal(t, cores(1), r.free[0].Free[cpu], "c0 alone is off the node")
				assert.Zero(t, r.gangs["c/x"].taken)
			}
		})
	}
}

func TestReclaimerTake(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	cases := map[string]struct {
		victims []*vic
		extra   map[string]resources.Vector
		want    []string // the units chosen, in order
		wantOK  bool
	}{
		"in order, until the members fit": {
			victims: []*vic{pod("old", "c", 0, 1), pod("new", "c", 0, 1).age(2), pod("mid", "c", 0, 1).age(1)},
			want:    []string{"new", "mid"}, wantOK: true,
		},
		"a unit that would take its queue below its guarantee is skipped": {
			victims: []*vic{pod("b1", "b", 0, 2).age(9), pod("c1", "c", 0, 2)},
			extra:   map[string]resources.Vector{"b": {cpu: cores(3)}},
			want:    []string{"c1"}, wantOK: true,
		},
		"a whole gang, once its spares are taken": {
			victims: []*vic{pod("x1", "c", 0, 1).gang("c/x").age(2), pod("x2", "c", 0, 1).gang("c/x").age(1), pod("c1", "c", 0, 1)},
			want:    []string{"gang:c/x"}, wantOK: true,
		},
		"every unit taken and still no room": {
			victims: []*vic{pod("c1", "c", 0, 1)},
			want:    []string{"c1"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p", 2)}, cpuFree(0), tc.victims, tc.extra)
			in.Gangs = map[string]GangQuorum{"c/x": {Min: 1, Bound: 2}}
			r := newReclaimer(in)
			chosen, plan, ok := r.take(r.order(r.gangUnits(r.candidates())))
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.want, unitKeys(chosen))
			if ok {
				assert.Equal(t, []int{0}, plan.Node)
			}
		})
	}
}

func TestReclaimerSpare(t *testing.T) {
	tree := mustTree(t, reclaimQueues)
	victims := []*vic{pod("s1", "c", 0, 1), pod("s2", "c", 0, 1), pod("big", "c", 0, 2), pod("other", "c", 1, 2)}
	cases := map[string]struct {
		chosen   []string // in the order chosen
		want     []string
		wantNode int // the member's
	}{
		"the newest choice first: a big one last is not needed": {
			chosen: []string{"s1", "s2", "big"}, want: []string{"s1", "s2"},
		},
		"the newest choice first: a big one first makes the later ones unneeded": {
			chosen: []string{"big", "s1", "s2"}, want: []string{"big"},
		},
		"the newest choice first, whatever the node: the member moves": {
			chosen: []string{"other", "big"}, want: []string{"other"}, wantNode: 1,
		},
		"nothing to spare": {
			chosen: []string{"s1", "s2"}, want: []string{"s1", "s2"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := reclaimInput(t, tree, "a", 0, []gang.Member{member("p", 2)}, cpuFree(0, 0), victims, nil)
			r := newReclaimer(in)
			units := r.candidates()
			var chosen []reclaimUnit
			for _, k := range tc.chosen {
				u := unitOf(t, units, k)
				require.True(t, r.remove(u))
				chosen = append(chosen, u)
			}
			plan, ok := r.fits()
			require.True(t, ok)
			kept, plan := r.spare(chosen, plan)
			assert.Equal(t, tc.want, unitKeys(kept))
			assert.Equal(t, []int{tc.wantNode}, plan.Node)
			for _, k := range tc.chosen {
				assert.Equal(t, contains(tc.want, k), r.taken[k], k)
			}
		})
	}
}

// TestReclaimRefusalCodes: each refusal's code, the queues behind it and
// its sentence (the error's text, also through a wrapped error).
func TestReclaimRefusalCodes(t *testing.T) {
	flat, nested := mustTree(t, reclaimQueues), mustTree(t, nestedQueues)
	const noRoom = "preempting every eligible pod would not make room (victim queues keep their guarantees)"
	cases := map[string]struct {
		tree          string // "nested", or the flat reclaimQueues
		preemptor     string
		free          []resources.Vector
		victims       []*vic
		extra         map[string]resources.Vector
		want          RefusalCode
		wantProtected []string
		wantNotOwed   []string
		wantMsg       string
	}{
		"it fits": {
			preemptor: "a", free: cpuFree(2), victims: []*vic{pod("c1", "c", 0, 2)},
			want: RefusalNotNeeded, wantMsg: "the pod fits without preempting anything",
		},
		"its queue is at its guarantee": {
			preemptor: "a", victims: []*vic{pod("c1", "c", 0, 2)},
			extra:   map[string]resources.Vector{"a": {cpu: cores(3)}},
			want:    RefusalNotBelowGuarantee,
			wantMsg: "queue root.a is not below its guaranteed with this request, so it may not reclaim from other queues",
		},
		"too little to take": {
			preemptor: "a", victims: []*vic{pod("c1", "c", 0, 1)},
			want: RefusalNoRoom, wantMsg: noRoom,
		},
		"pods kept by their queues' guarantees": {
			preemptor: "a", victims: []*vic{pod("b1", "b", 0, 2), pod("b2", "b", 0, 2)},
			want: RefusalProtectedByGuarantee, wantProtected: []string{"root.b"},
			wantMsg: noRoom + "; pods on the nodes it may use are kept because their queues would drop below their guaranteed: root.b",
		},
		"a queue it is not owed by": {
			tree: "nested", preemptor: "analytics.etl", victims: []*vic{pod("d1", "analytics.adhoc", 0, 2)},
			want: RefusalNotOwed, wantNotOwed: []string{"root.analytics.adhoc"},
			wantMsg: noRoom + "; it may not reclaim from root.analytics.adhoc: below their common ancestor with root.analytics.etl no queue is owed this request by its guaranteed",
		},
		"both: the guarantees win the code, the sentence says both": {
			tree: "nested", preemptor: "analytics.etl",
			victims: []*vic{pod("d1", "analytics.adhoc", 0, 2), pod("m1", "ml", 0, 2), pod("m2", "ml", 0, 2)},
			want:    RefusalProtectedByGuarantee, wantProtected: []string{"root.ml"}, wantNotOwed: []string{"root.analytics.adhoc"},
			wantMsg: noRoom + "; pods on the nodes it may use are kept because their queues would drop below their guaranteed: root.ml" +
				"; it may not reclaim from root.analytics.adhoc: below their common ancestor with root.analytics.etl no queue is owed this request by its guaranteed",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tree := flat
			if tc.tree == "nested" {
				tree = nested
			}
			free := tc.free
			if free == nil {
				free = cpuFree(0)
			}
			in := reclaimInput(t, tree, tc.preemptor, 0, []gang.Member{member("p", 2)}, free, tc.victims, tc.extra)
			p, ref := Reclaim(in)
			assert.Nil(t, p)
			require.NotNil(t, ref)
			assert.Equal(t, tc.want, ref.Code)
			assert.Equal(t, tc.wantProtected, ref.Protected)
			assert.Equal(t, tc.wantNotOwed, ref.NotOwed)
			assert.Equal(t, tc.wantMsg, ref.Msg)
			checkRefusal(t, in, ref)

			var err error = ref
			assert.EqualError(t, err, tc.wantMsg)
			var got *ReclaimRefusal
			require.ErrorAs(t, fmt.Errorf("no preemption: %w", err), &got)
			assert.Equal(t, tc.want, got.Code)
		})
	}
}
