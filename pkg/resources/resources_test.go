package resources

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	gpu       v1.ResourceName = "nvidia.com/gpu"
	hugepages v1.ResourceName = "hugepages-2Mi"
)

func TestFromQuantity(t *testing.T) {
	cases := map[string]struct {
		name v1.ResourceName
		q    string
		want int64
	}{
		"cpu whole cores in millicores":       {v1.ResourceCPU, "2", 2000},
		"cpu millicores":                      {v1.ResourceCPU, "500m", 500},
		"cpu fractional cores":                {v1.ResourceCPU, "1.5", 1500},
		"cpu below a millicore rounds up":     {v1.ResourceCPU, "0.1m", 1},
		"cpu zero":                            {v1.ResourceCPU, "0", 0},
		"memory binary suffix in bytes":       {v1.ResourceMemory, "1Gi", 1 << 30},
		"memory decimal suffix in bytes":      {v1.ResourceMemory, "1G", 1_000_000_000},
		"memory plain bytes":                  {v1.ResourceMemory, "1024", 1024},
		"memory fractional byte rounds up":    {v1.ResourceMemory, "0.5", 1},
		"memory in millis rounds up to bytes": {v1.ResourceMemory, "1500m", 2},
		"extended resource in units":          {gpu, "8", 8},
		"extended resource with suffix":       {gpu, "2k", 2000},
		"pods":                                {v1.ResourcePods, "110", 110},
		"hugepages in bytes":                  {hugepages, "4Mi", 4 << 20},
		"ephemeral storage in bytes":          {v1.ResourceEphemeralStorage, "10Gi", 10 << 30},
		"largest cpu":                         {v1.ResourceCPU, "9223372036854775807m", math.MaxInt64},
		"largest memory":                      {v1.ResourceMemory, "9223372036854775807", math.MaxInt64},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, FromQuantity(tc.name, resource.MustParse(tc.q)))
		})
	}
}

func TestToQuantity(t *testing.T) {
	cases := map[string]struct {
		name       v1.ResourceName
		amount     int64
		want       string
		wantFormat resource.Format
	}{
		"cpu millicores":                        {v1.ResourceCPU, 500, "500m", resource.DecimalSI},
		"cpu whole cores":                       {v1.ResourceCPU, 4000, "4", resource.DecimalSI},
		"cpu mixed":                             {v1.ResourceCPU, 1500, "1500m", resource.DecimalSI},
		"cpu zero":                              {v1.ResourceCPU, 0, "0", resource.DecimalSI},
		"memory Gi":                             {v1.ResourceMemory, 16 << 30, "16Gi", resource.BinarySI},
		"memory Mi":                             {v1.ResourceMemory, 1536 << 20, "1536Mi", resource.BinarySI},
		"memory not a power of 1024":            {v1.ResourceMemory, 1_000_000_000, "1000000000", resource.BinarySI},
		"memory zero":                           {v1.ResourceMemory, 0, "0", resource.BinarySI},
		"ephemeral storage is binary":           {v1.ResourceEphemeralStorage, 10 << 30, "10Gi", resource.BinarySI},
		"hugepages are binary":                  {hugepages, 4 << 20, "4Mi", resource.BinarySI},
		"hugepages-1Gi are binary":              {"hugepages-1Gi", 2 << 30, "2Gi", resource.BinarySI},
		"extended resource is decimal":          {gpu, 8, "8", resource.DecimalSI},
		"extended resource decimal suffix":      {gpu, 1000, "1k", resource.DecimalSI},
		"extended resource 1024 is not binary":  {gpu, 1024, "1024", resource.DecimalSI},
		"pods are decimal":                      {v1.ResourcePods, 110, "110", resource.DecimalSI},
		"a name that merely contains hugepages": {"example.com/hugepages-2Mi", 1 << 20, "1048576", resource.DecimalSI},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q := ToQuantity(tc.name, tc.amount)
			assert.Equal(t, tc.want, q.String())
			assert.Equal(t, tc.wantFormat, q.Format)
			assert.Equal(t, tc.want, Format(tc.name, tc.amount))
			// and back: the amount survives the round trip
			assert.Equal(t, tc.amount, FromQuantity(tc.name, q))
		})
	}
}

func TestFromList(t *testing.T) {
	cases := map[string]struct {
		list v1.ResourceList
		want Vector
	}{
		"nil":   {nil, Vector{}},
		"empty": {v1.ResourceList{}, Vector{}},
		"mixed": {
			v1.ResourceList{
				v1.ResourceCPU:    resource.MustParse("1500m"),
				v1.ResourceMemory: resource.MustParse("2Gi"),
				gpu:               resource.MustParse("1"),
				hugepages:         resource.MustParse("4Mi"),
			},
			Vector{v1.ResourceCPU: 1500, v1.ResourceMemory: 2 << 30, gpu: 1, hugepages: 4 << 20},
		},
		"zero amounts are kept": {v1.ResourceList{v1.ResourceCPU: resource.MustParse("0")}, Vector{v1.ResourceCPU: 0}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, FromList(tc.list))
		})
	}
}

func TestClone(t *testing.T) {
	cases := map[string]Vector{
		"nil":   nil,
		"empty": {},
		"some":  {v1.ResourceCPU: 1, gpu: 2},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			c := v.Clone()
			require.NotNil(t, c, "a clone can always be added to")
			assert.Equal(t, len(v), len(c))
			for k, a := range v {
				assert.Equal(t, a, c[k])
			}
			c[v1.ResourcePods] = 99
			_, leaked := v[v1.ResourcePods]
			assert.False(t, leaked, "the clone must not share storage")
		})
	}
}

func TestAdd(t *testing.T) {
	cases := map[string]struct {
		v, o, want Vector
	}{
		"nil other":      {Vector{v1.ResourceCPU: 1}, nil, Vector{v1.ResourceCPU: 1}},
		"into empty":     {Vector{}, Vector{v1.ResourceCPU: 1, gpu: 2}, Vector{v1.ResourceCPU: 1, gpu: 2}},
		"same resources": {Vector{v1.ResourceCPU: 1000, v1.ResourceMemory: 1 << 30}, Vector{v1.ResourceCPU: 500, v1.ResourceMemory: 1 << 30}, Vector{v1.ResourceCPU: 1500, v1.ResourceMemory: 2 << 30}},
		"new resource":   {Vector{v1.ResourceCPU: 1}, Vector{gpu: 4}, Vector{v1.ResourceCPU: 1, gpu: 4}},
		"zero is kept":   {Vector{}, Vector{gpu: 0}, Vector{gpu: 0}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := tc.o.Clone()
			tc.v.Add(tc.o)
			assert.Equal(t, tc.want, tc.v)
			if tc.o != nil {
				assert.Equal(t, o, tc.o, "the argument is not modified")
			}
		})
	}
}

func TestSub(t *testing.T) {
	cases := map[string]struct {
		v, o, want Vector
	}{
		"nil other":                     {Vector{v1.ResourceCPU: 1}, nil, Vector{v1.ResourceCPU: 1}},
		"partial":                       {Vector{v1.ResourceCPU: 1500, gpu: 2}, Vector{v1.ResourceCPU: 500}, Vector{v1.ResourceCPU: 1000, gpu: 2}},
		"reaching zero drops":           {Vector{v1.ResourceCPU: 1500, gpu: 2}, Vector{v1.ResourceCPU: 1500}, Vector{gpu: 2}},
		"everything to zero is empty":   {Vector{v1.ResourceCPU: 1, gpu: 2}, Vector{v1.ResourceCPU: 1, gpu: 2}, Vector{}},
		"subtracting zero keeps":        {Vector{v1.ResourceCPU: 1}, Vector{v1.ResourceCPU: 0}, Vector{v1.ResourceCPU: 1}},
		"subtracting absent zero":       {Vector{v1.ResourceCPU: 1}, Vector{gpu: 0}, Vector{v1.ResourceCPU: 1}},
		"an explicit zero is dropped":   {Vector{v1.ResourceCPU: 1, gpu: 0}, Vector{gpu: 0}, Vector{v1.ResourceCPU: 1}},
		"below zero stays negative":     {Vector{v1.ResourceCPU: 1}, Vector{v1.ResourceCPU: 3}, Vector{v1.ResourceCPU: -2}},
		"absent resource goes negative": {Vector{v1.ResourceCPU: 1}, Vector{gpu: 1}, Vector{v1.ResourceCPU: 1, gpu: -1}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.v.Sub(tc.o)
			assert.Equal(t, tc.want, tc.v)
		})
	}
}

func TestAddThenSubIsEmpty(t *testing.T) {
	v := Vector{}
	reqs := []Vector{{v1.ResourceCPU: 100, v1.ResourceMemory: 1 << 20}, {gpu: 1}, {v1.ResourceCPU: 900}}
	for _, r := range reqs {
		v.Add(r)
	}
	assert.Equal(t, Vector{v1.ResourceCPU: 1000, v1.ResourceMemory: 1 << 20, gpu: 1}, v)
	for _, r := range reqs {
		v.Sub(r)
	}
	assert.Empty(t, v, "Sub drops zeros, so nothing is left behind")
	assert.True(t, v.IsZero())
}

func TestPlus(t *testing.T) {
	cases := map[string]struct {
		v, o, want Vector
	}{
		"nil plus nil":  {nil, nil, Vector{}},
		"nil plus some": {nil, Vector{gpu: 1}, Vector{gpu: 1}},
		"some plus nil": {Vector{gpu: 1}, nil, Vector{gpu: 1}},
		"overlapping":   {Vector{v1.ResourceCPU: 1, gpu: 1}, Vector{v1.ResourceCPU: 2, v1.ResourceMemory: 3}, Vector{v1.ResourceCPU: 3, gpu: 1, v1.ResourceMemory: 3}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v, o := tc.v.Clone(), tc.o.Clone()
			assert.Equal(t, tc.want, tc.v.Plus(tc.o))
			if tc.v != nil {
				assert.Equal(t, v, tc.v, "the receiver is not modified")
			}
			if tc.o != nil {
				assert.Equal(t, o, tc.o, "the argument is not modified")
			}
		})
	}
}

func TestIsZero(t *testing.T) {
	cases := map[string]struct {
		v    Vector
		want bool
	}{
		"nil":            {nil, true},
		"empty":          {Vector{}, true},
		"explicit zeros": {Vector{v1.ResourceCPU: 0, gpu: 0}, true},
		"one non-zero":   {Vector{v1.ResourceCPU: 0, gpu: 1}, false},
		"negative":       {Vector{v1.ResourceCPU: -1}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.v.IsZero())
		})
	}
}

func TestNames(t *testing.T) {
	assert.Empty(t, Vector(nil).Names())
	assert.Equal(t,
		[]v1.ResourceName{v1.ResourceCPU, hugepages, v1.ResourceMemory, gpu, v1.ResourcePods},
		Vector{v1.ResourcePods: 1, gpu: 1, v1.ResourceMemory: 1, hugepages: 1, v1.ResourceCPU: 1}.Names())
}

func TestExceeds(t *testing.T) {
	cases := map[string]struct {
		v, limit Vector
		want     v1.ResourceName
		wantOK   bool
	}{
		"nil limit is unlimited":                {Vector{v1.ResourceCPU: math.MaxInt64}, nil, "", false},
		"empty limit is unlimited":              {Vector{v1.ResourceCPU: 1}, Vector{}, "", false},
		"absent from the limit is unlimited":    {Vector{v1.ResourceCPU: 1, gpu: 1000}, Vector{v1.ResourceCPU: 1}, "", false},
		"exactly at the limit fits":             {Vector{v1.ResourceCPU: 1000}, Vector{v1.ResourceCPU: 1000}, "", false},
		"one above the limit":                   {Vector{v1.ResourceCPU: 1001}, Vector{v1.ResourceCPU: 1000}, v1.ResourceCPU, true},
		"absent from v is zero":                 {Vector{}, Vector{v1.ResourceCPU: 0}, "", false},
		"zero limit refuses any amount":         {Vector{gpu: 1}, Vector{gpu: 0}, gpu, true},
		"first by name when several exceed":     {Vector{v1.ResourceMemory: 2, v1.ResourceCPU: 2, gpu: 2}, Vector{gpu: 1, v1.ResourceMemory: 1, v1.ResourceCPU: 1}, v1.ResourceCPU, true},
		"first by name among those that exceed": {Vector{v1.ResourceMemory: 2, v1.ResourceCPU: 1, gpu: 2}, Vector{gpu: 1, v1.ResourceMemory: 1, v1.ResourceCPU: 1}, v1.ResourceMemory, true},
		"extended resource":                     {Vector{gpu: 9}, Vector{gpu: 8, v1.ResourceCPU: 100}, gpu, true},
		"nil v fits":                            {nil, Vector{v1.ResourceCPU: 0}, "", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := tc.v.Exceeds(tc.limit)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestMinLimit(t *testing.T) {
	cases := map[string]struct {
		a, b, want Vector
	}{
		"both nil":                   {nil, nil, Vector{}},
		"nil a takes b":              {nil, Vector{v1.ResourceCPU: 4}, Vector{v1.ResourceCPU: 4}},
		"nil b takes a":              {Vector{v1.ResourceCPU: 4}, nil, Vector{v1.ResourceCPU: 4}},
		"smaller per resource":       {Vector{v1.ResourceCPU: 4, v1.ResourceMemory: 8}, Vector{v1.ResourceCPU: 8, v1.ResourceMemory: 2}, Vector{v1.ResourceCPU: 4, v1.ResourceMemory: 2}},
		"disjoint resources kept":    {Vector{v1.ResourceCPU: 4}, Vector{gpu: 1}, Vector{v1.ResourceCPU: 4, gpu: 1}},
		"zero is a limit, not unset": {Vector{gpu: 0}, Vector{gpu: 8}, Vector{gpu: 0}},
		"equal":                      {Vector{v1.ResourceCPU: 4}, Vector{v1.ResourceCPU: 4}, Vector{v1.ResourceCPU: 4}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := tc.a.Clone(), tc.b.Clone()
			got := MinLimit(tc.a, tc.b)
			assert.Equal(t, tc.want, got)
			// and symmetric
			assert.Equal(t, tc.want, MinLimit(tc.b, tc.a))
			// the result never aliases an argument
			got[v1.ResourcePods] = 1
			if tc.a != nil {
				assert.Equal(t, a, tc.a)
			}
			if tc.b != nil {
				assert.Equal(t, b, tc.b)
			}
		})
	}
}

func TestString(t *testing.T) {
	cases := map[string]struct {
		v    Vector
		want string
	}{
		"nil":   {nil, ""},
		"empty": {Vector{}, ""},
		"cpu and memory": {
			Vector{v1.ResourceMemory: 16 << 30, v1.ResourceCPU: 4000}, "cpu=4, memory=16Gi"},
		"sorted, each in its own format": {
			Vector{gpu: 8, v1.ResourcePods: 110, hugepages: 4 << 20, v1.ResourceCPU: 250, v1.ResourceMemory: 512 << 20},
			"cpu=250m, hugepages-2Mi=4Mi, memory=512Mi, nvidia.com/gpu=8, pods=110"},
		"zero and negative": {Vector{v1.ResourceCPU: 0, gpu: -1}, "cpu=0, nvidia.com/gpu=-1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.v.String())
		})
	}
}

func TestQuantities(t *testing.T) {
	cases := map[string]struct {
		v    Vector
		want map[string]string
	}{
		"nil": {nil, map[string]string{}},
		"mixed": {
			Vector{v1.ResourceCPU: 1500, v1.ResourceMemory: 2 << 30, gpu: 2, hugepages: 2 << 20, v1.ResourceEphemeralStorage: 1 << 40},
			map[string]string{"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "2", "hugepages-2Mi": "2Mi", "ephemeral-storage": "1Ti"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.v.Quantities())
		})
	}
}
