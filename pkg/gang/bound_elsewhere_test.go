package gang

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestRegistryBoundElsewhere: a member bound by another replica releases
// the slot it would have claimed, once; a member this scheduler placed, or
// a gang without slots, releases nothing.
func TestRegistryBoundElsewhere(t *testing.T) {
	spec := Spec{MinMember: 3, Timeout: time.Minute}
	tests := []struct {
		name string
		// claimFirst: the member went through this scheduler's Reserve.
		claimFirst bool
		admitted   bool
		node       string
		want       bool
		slotsLeft  int
	}{
		{name: "bound elsewhere, on its slot's node", admitted: true, node: "n1", want: true, slotsLeft: 2},
		{name: "bound elsewhere, on another node", admitted: true, node: "n9", want: true, slotsLeft: 2},
		{name: "placed by this scheduler", admitted: true, claimFirst: true, node: "n1", want: false, slotsLeft: 2},
		{name: "gang not admitted here (no slots)", node: "n1", want: false, slotsLeft: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := newTestRegistry()
			members := pods("m", 3)
			observe(r, refA, spec, members...)
			if tc.admitted {
				admit(t, r, refA, []string{"n1", "n2", "n3"})
			}
			m := members[0]
			if tc.claimFirst {
				assert.True(t, r.Claim(refA, m.Key(), "n1", m.request()))
			}
			assert.Equal(t, tc.want, r.BoundElsewhere(refA, m.Key(), tc.node, m.request()))
			m.bound = true
			observe(r, refA, spec, m)
			assert.False(t, r.BoundElsewhere(refA, m.Key(), tc.node, m.request()), "never twice")
			assert.Len(t, r.gangs[refA].slots, tc.slotsLeft)
			checkInvariants(t, r)
		})
	}
}

func TestRegistryMembers(t *testing.T) {
	r, _ := newTestRegistry()
	members := pods("m", 2)
	observe(r, refA, Spec{MinMember: 3, Timeout: time.Minute}, members...)
	got := r.Members()
	assert.Equal(t, map[Ref]map[string]string{refA: {members[0].Key(): "m-0", members[1].Key(): "m-1"}}, got)
	r.Forget(refA, members[0].Key())
	r.Forget(refA, members[1].Key())
	assert.Empty(t, r.Members(), "a gang without members is gone")
}
