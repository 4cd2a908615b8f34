package gang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/resources"
	"muster.dev/muster/pkg/waitreason"
)

func TestRegistryGatedMembers(t *testing.T) {
	const gate = "example.com/x"
	spec := Spec{MinMember: 4, Timeout: time.Minute}

	cases := map[string]struct {
		pods       []pod
		wantPhase  Phase
		wantCode   waitreason.Code
		wantReason string // "" for no reason
		wantNames  []string
	}{
		"the last member gated: waiting, nothing to place": {
			pods:       []pod{{name: "w-0"}, {name: "w-1", at: time.Second}, {name: "w-2", at: 2 * time.Second}, {name: "w-3", at: 3 * time.Second, gates: []string{gate}}},
			wantPhase:  PhaseWaiting,
			wantCode:   waitreason.MembersGated,
			wantReason: "3 of 4 members may be scheduled; 1 is held by scheduling gate(s) example.com/x; none is bound until 4 may be",
			wantNames:  []string{"w-0", "w-1", "w-2"},
		},
		"gated and missing members": {
			pods: []pod{{name: "w-0"}, {name: "w-1", at: time.Second, gates: []string{gate, "b.example/y"}},
				{name: "w-2", at: 2 * time.Second, gates: []string{gate}}},
			wantPhase:  PhaseWaiting,
			wantCode:   waitreason.MembersGated,
			wantReason: "1 of 4 members may be scheduled (3 exist); 2 are held by scheduling gate(s) b.example/y, example.com/x; none is bound until 4 may be",
			wantNames:  []string{"w-0"},
		},
		"members missing, none gated: the reason is unchanged": {
			pods:       pods("w", 3),
			wantPhase:  PhaseWaiting,
			wantCode:   waitreason.MembersMissing,
			wantReason: "3 of 4 members exist; waiting for the rest before any is bound",
			wantNames:  []string{"w-0", "w-1", "w-2"},
		},
		"a gated member beyond the quorum does not hold the gang back": {
			pods:      append(pods("w", 4), pod{name: "w-4", at: -time.Second, gates: []string{gate}}),
			wantPhase: PhasePending,
			wantNames: []string{"w-0", "w-1", "w-2", "w-3"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, _ := newTestRegistry()
			observe(r, refA, spec, tc.pods...)
			in := mustGet(t, r, refA)
			assert.Equal(t, tc.wantPhase, in.Phase)
			assert.Equal(t, tc.wantReason, in.Reason)
			assert.Equal(t, tc.wantCode, in.ReasonCode)
			names, _ := r.PendingMembers(refA)
			assert.Equal(t, tc.wantNames, names, "gated members are never planned")
			assert.False(t, r.AnyReserved())
		})
	}

	t.Run("lifting the gate makes the gang pending; it holds nothing before", func(t *testing.T) {
		r, clk := newTestRegistry()
		ps := pods("w", 4)
		ps[3].gates = []string{gate}
		observe(r, refA, spec, ps...)
		in := mustGet(t, r, refA)
		require.Equal(t, PhaseWaiting, in.Phase)
		assert.Equal(t, 1, in.Gated)
		assert.Equal(t, []string{gate}, in.Gates)

		ps[3].gates = nil
		observe(r, refA, spec, ps[3])
		in = mustGet(t, r, refA)
		assert.Equal(t, PhasePending, in.Phase)
		assert.Empty(t, in.Reason, "a pending gang has no waiting reason until admission says one")
		assert.Zero(t, in.Gated)
		names, _ := r.PendingMembers(refA)
		assert.Equal(t, []string{"w-0", "w-1", "w-2", "w-3"}, names)

		// The timeout still counts from the first member: a gang gated past
		// it is reported (the plugin tells the tenant) like one short of members.
		clk.Step(time.Minute)
		assert.Len(t, r.TimedOut(clk.Now()), 1)
	})

	t.Run("a gated gang times out like one short of members", func(t *testing.T) {
		r, clk := newTestRegistry()
		ps := pods("w", 4)
		ps[0].gates = []string{gate}
		observe(r, refA, spec, ps...)
		clk.Step(time.Minute)
		out := r.TimedOut(clk.Now())
		require.Len(t, out, 1)
		assert.Equal(t, PhaseWaiting, out[0].Phase)
		assert.Equal(t, 1, out[0].Gated)
	})
}

func TestRegistryDisplace(t *testing.T) {
	spec := Spec{MinMember: 3, Timeout: time.Minute}

	t.Run("free slots leave the node and are placed elsewhere", func(t *testing.T) {
		r, _ := newTestRegistry()
		ps := pods("w", 3)
		observe(r, refA, spec, ps...)
		observe(r, refB, spec, pods("b", 3)...)
		require.True(t, r.Admit(refA, []string{"n1", "n2", "n2"}, []resources.Vector{ps[0].request(), ps[1].request(), ps[2].request()}, nil))
		admit(t, r, refB, []string{"n2"})
		require.True(t, r.Claim(refA, ps[1].Key(), "n2", ps[1].request()), "a member took one of the slots there")

		assert.True(t, r.HasSlotsOn("n2"))
		assert.Equal(t, []Ref{refB, refA}, r.Displace("n2"), "sorted by name")
		assert.False(t, r.HasSlotsOn("n2"))
		assert.Nil(t, r.ReservedOnNode("n2", Ref{}), "nothing is held on the node any more")
		assert.Equal(t, vec("cpu=1,pods=1"), r.ReservedOnNode("n1", Ref{}), "the other slot stays")
		assert.Equal(t, []Ref{refB, refA}, r.Displaced())
		in := mustGet(t, r, refA)
		assert.Equal(t, 2, in.FreeSlots, "a displaced slot is still the gang's")
		assert.Equal(t, 1, in.Displaced)
		assert.Equal(t, PhaseAdmitted, in.Phase)
		assert.Equal(t, []string{"n1"}, r.SlotNodes(refA))
		assert.Nil(t, r.Displace("n2"), "nothing left to displace")
		checkInvariants(t, r)

		assert.False(t, r.Replace(refA, []string{"n3", "n4"}), "one node per displaced slot")
		require.True(t, r.Replace(refA, []string{"n3"}))
		assert.Equal(t, []string{"n1", "n3"}, r.SlotNodes(refA))
		assert.Equal(t, vec("cpu=1,pods=1"), r.ReservedOnNode("n3", Ref{}))
		assert.Equal(t, []Ref{refB}, r.Displaced())
		assert.False(t, r.Replace(refA, []string{"n3"}), "nothing displaced any more")
		checkInvariants(t, r)

		assert.Equal(t, vec("cpu=3,pods=3"), r.DropDisplaced(refB))
		assert.Empty(t, r.Displaced())
		assert.Zero(t, mustGet(t, r, refB).FreeSlots)
		checkInvariants(t, r)
	})

	t.Run("a release drops displaced slots too", func(t *testing.T) {
		r, _ := newTestRegistry()
		observe(r, refA, spec, pods("w", 3)...)
		admit(t, r, refA, []string{"n1"})
		r.Displace("n1")
		r.Release(refA, waitreason.Released, "slots could not be placed", time.Time{})
		in := mustGet(t, r, refA)
		assert.Zero(t, in.FreeSlots)
		assert.Empty(t, r.Displaced())
		checkInvariants(t, r)
	})

	t.Run("a bound gang's displaced slots still time out", func(t *testing.T) {
		r, clk := newTestRegistry()
		spark := Spec{MinMember: 1, Timeout: time.Minute, Executors: 2, ExecutorRequest: vec("cpu=2,pods=1")}
		driver := pod{name: "driver"}
		observe(r, refC, spark, driver)
		admit(t, r, refC, []string{"n1"}, spark.ExecutorRequest, spark.ExecutorRequest)
		require.True(t, r.Claim(refC, driver.Key(), "n1", driver.request()))
		driver.bound = true
		observe(r, refC, spark, driver)
		require.Equal(t, PhaseBound, mustGet(t, r, refC).Phase)
		r.Displace("n1")
		clk.Step(time.Minute)
		assert.Len(t, r.TimedOut(clk.Now()), 1)
	})

	t.Run("a member bound elsewhere takes a displaced slot", func(t *testing.T) {
		r, _ := newTestRegistry()
		spark := Spec{MinMember: 1, Timeout: time.Minute, Executors: 1, ExecutorRequest: vec("cpu=2,pods=1")}
		driver := pod{name: "driver", bound: true}
		observe(r, refC, spark, driver)
		require.True(t, r.Restore(refC, t0, []string{"n1"}, []resources.Vector{spark.ExecutorRequest}))
		r.Displace("n1")
		assert.True(t, r.BoundElsewhere(refC, "uid-exec", "n2", vec("cpu=2,pods=1")))
		assert.Zero(t, mustGet(t, r, refC).FreeSlots)
	})
}

func TestExecutorsToRestore(t *testing.T) {
	spark := Spec{MinMember: 1, Timeout: 5 * time.Minute, Executors: 3, ExecutorRequest: vec("cpu=2,pods=1")}
	bound := Info{Ref: refC, Spec: spark, Phase: PhaseBound, Members: 1, Bound: 1}
	with := func(f func(*Info)) Info {
		in := bound
		f(&in)
		return in
	}
	driverBound := t0
	cases := map[string]struct {
		in   Info
		now  time.Time
		want int
	}{
		"a bound driver without executors":        {in: bound, now: t0.Add(time.Minute), want: 3},
		"one executor bound":                      {in: with(func(in *Info) { in.Members, in.Bound = 2, 2 }), now: t0.Add(time.Minute), want: 2},
		"an executor created, not bound: counted": {in: with(func(in *Info) { in.Members = 2 }), now: t0.Add(time.Minute), want: 3},
		"every executor bound":                    {in: with(func(in *Info) { in.Members, in.Bound = 4, 4 }), now: t0.Add(time.Minute), want: 0},
		"more executors than asked":               {in: with(func(in *Info) { in.Members, in.Bound = 6, 6 }), now: t0.Add(time.Minute), want: 0},
		"just before the timeout":                 {in: bound, now: t0.Add(5*time.Minute - time.Second), want: 3},
		"the timeout passed":                      {in: bound, now: t0.Add(5 * time.Minute), want: 0},
		"slots held already":                      {in: with(func(in *Info) { in.FreeSlots = 3 }), now: t0, want: 0},
		"the driver is not bound":                 {in: with(func(in *Info) { in.Phase, in.Bound = PhasePending, 0 }), now: t0, want: 0},
		"no reservation asked":                    {in: with(func(in *Info) { in.Spec.Executors = 0 }), now: t0, want: 0},
		"not a Spark app":                         {in: with(func(in *Info) { in.Ref = refA }), now: t0, want: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, ExecutorsToRestore(tc.in, driverBound, tc.now))
		})
	}
}

func TestRegistryRestore(t *testing.T) {
	spark := Spec{MinMember: 1, Timeout: 5 * time.Minute, Executors: 2, ExecutorRequest: vec("cpu=2,pods=1")}
	exec := []resources.Vector{spark.ExecutorRequest, spark.ExecutorRequest}
	r, clk := newTestRegistry()
	driver := pod{name: "driver"}
	observe(r, refC, spark, driver)
	assert.False(t, r.Restore(refC, t0, []string{"n1", "n2"}, exec), "the driver is not bound")

	driver.bound = true
	observe(r, refC, spark, driver)
	clk.Step(2 * time.Minute) // the restart came two minutes after the driver was bound
	n := ExecutorsToRestore(mustGet(t, r, refC), t0, clk.Now())
	require.Equal(t, 2, n)
	require.True(t, r.Restore(refC, t0, []string{"n1", "n2"}, exec))
	assert.False(t, r.Restore(refC, t0, []string{"n1", "n2"}, exec), "slots held already")
	in := mustGet(t, r, refC)
	assert.Equal(t, PhaseBound, in.Phase)
	assert.Equal(t, 2, in.FreeSlots)
	assert.Equal(t, t0, in.AdmittedAt, "held since the driver's bind")
	assert.Equal(t, vec("cpu=2,pods=1"), r.ReservedOnNode("n2", Ref{}))
	checkInvariants(t, r)

	// An executor arrives and takes a slot, as after the first admission.
	assert.True(t, r.Claim(refC, "uid-exec-0", "n1", spark.ExecutorRequest))

	// The timeout counts from the driver's bind, not from the restart.
	assert.Empty(t, r.TimedOut(t0.Add(5*time.Minute-time.Second)))
	out := r.TimedOut(t0.Add(5 * time.Minute))
	require.Len(t, out, 1)
	assert.Equal(t, refC, out[0].Ref)
}
