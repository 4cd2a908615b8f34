package gang

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// requireAnnotationError checks that err is an AnnotationError for key whose
// message is exactly want (or, when want ends in "...", starts with it).
func requireAnnotationError(t *testing.T, err error, key, value, want string) {
	t.Helper()
	require.Error(t, err)
	var ae *AnnotationError
	require.True(t, errors.As(err, &ae), "an AnnotationError, got %T", err)
	assert.Equal(t, key, ae.Key)
	assert.Equal(t, value, ae.Value)
	if prefix, cut := strings.CutSuffix(want, "..."); cut {
		assert.True(t, strings.HasPrefix(err.Error(), prefix), "got:  %s\nwant: %s", err, want)
		return
	}
	assert.Equal(t, want, err.Error())
}

func TestParseMinMember(t *testing.T) {
	cases := map[string]struct {
		in   string
		want int32
		err  string
	}{
		"a number":                  {in: "8", want: 8},
		"spaces around":             {in: " 8 ", want: 8},
		"one":                       {in: "1", want: 1},
		"the most":                  {in: "100000", want: 100000},
		"a plus sign":               {in: "+3", want: 3},
		"leading zeros":             {in: "008", want: 8},
		"a word":                    {in: "eight", err: `muster.dev/gang-min-member: "eight" is not a whole number`},
		"a fraction":                {in: "8.0", err: `muster.dev/gang-min-member: "8.0" is not a whole number`},
		"an exponent":               {in: "1e3", err: `muster.dev/gang-min-member: "1e3" is not a whole number`},
		"a space inside":            {in: "1 0", err: `muster.dev/gang-min-member: "1 0" is not a whole number`},
		"zero":                      {in: "0", err: `muster.dev/gang-min-member: must be at least 1, got 0`},
		"negative":                  {in: "-4", err: `muster.dev/gang-min-member: must be at least 1, got -4`},
		"too many":                  {in: "100001", err: `muster.dev/gang-min-member: must be at most 100000, got 100001`},
		"beyond int64":              {in: "99999999999999999999", err: `muster.dev/gang-min-member: must be at most 100000, got "99999999999999999999"`},
		"negative beyond int64":     {in: "-99999999999999999999", err: `muster.dev/gang-min-member: must be at least 1, got "-99999999999999999999"`},
		"empty":                     {in: "", err: `muster.dev/gang-min-member: is empty; it must be a whole number such as "8"`},
		"blank":                     {in: "  ", err: `muster.dev/gang-min-member: is empty...`},
		"a long value is cut short": {in: strings.Repeat("x", 200), err: `muster.dev/gang-min-member: "` + strings.Repeat("x", 64) + `"... is not a whole number`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMinMember(tc.in)
			if tc.err != "" {
				requireAnnotationError(t, err, AnnotationMinMember, tc.in, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseMinExecutors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want int32
		err  string
	}{
		"zero executors: the driver alone": {in: "0", want: 0},
		"a number":                         {in: "12", want: 12},
		"the most":                         {in: "100000", want: 100000},
		"negative":                         {in: "-1", err: `muster.dev/min-executors: must be at least 0, got -1`},
		"too many":                         {in: "250000", err: `muster.dev/min-executors: must be at most 100000, got 250000`},
		"a word":                           {in: "all", err: `muster.dev/min-executors: "all" is not a whole number`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseMinExecutors(tc.in)
			if tc.err != "" {
				requireAnnotationError(t, err, AnnotationMinExecutors, tc.in, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseTimeout(t *testing.T) {
	const notDuration = ` is not a duration such as "10m", "90s" or "600" (seconds)`
	cases := map[string]struct {
		in   string
		want time.Duration
		err  string
	}{
		"minutes":                    {in: "10m", want: 10 * time.Minute},
		"seconds":                    {in: "90s", want: 90 * time.Second},
		"whole seconds":              {in: "600", want: 10 * time.Minute},
		"spaces around":              {in: " 600 ", want: 10 * time.Minute},
		"compound":                   {in: "1h30m", want: 90 * time.Minute},
		"a fraction":                 {in: "1.5h", want: 90 * time.Minute},
		"under a second":             {in: "500ms", want: 500 * time.Millisecond},
		"the most, as a duration":    {in: "24h", want: 24 * time.Hour},
		"the most, in seconds":       {in: "86400", want: 24 * time.Hour},
		"zero seconds":               {in: "0", err: `muster.dev/gang-timeout: must be more than 0, got "0"`},
		"zero duration":              {in: "0s", err: `muster.dev/gang-timeout: must be more than 0, got "0s"`},
		"negative duration":          {in: "-5m", err: `muster.dev/gang-timeout: must be more than 0, got "-5m"`},
		"negative seconds":           {in: "-600", err: `muster.dev/gang-timeout: must be more than 0, got "-600"`},
		"too long":                   {in: "48h", err: `muster.dev/gang-timeout: must be at most 24h, got "48h"`},
		"just too long":              {in: "24h0m1s", err: `muster.dev/gang-timeout: must be at most 24h, got "24h0m1s"`},
		"too many seconds":           {in: "86401", err: `muster.dev/gang-timeout: must be at most 24h, got "86401" seconds`},
		"seconds beyond int64":       {in: "99999999999999999999", err: `muster.dev/gang-timeout: must be at most 24h, got "99999999999999999999" seconds`},
		"words":                      {in: "ten minutes", err: `muster.dev/gang-timeout: "ten minutes"` + notDuration},
		"a space before the unit":    {in: "10 m", err: `muster.dev/gang-timeout: "10 m"` + notDuration},
		"days are not a Go duration": {in: "1d", err: `muster.dev/gang-timeout: "1d"` + notDuration},
		"fractional seconds":         {in: "600.5", err: `muster.dev/gang-timeout: "600.5"` + notDuration},
		"empty":                      {in: "", err: `muster.dev/gang-timeout: is empty; it must be a duration such as "10m", "90s" or "600" (seconds)`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTimeout(tc.in)
			if tc.err != "" {
				requireAnnotationError(t, err, AnnotationTimeout, tc.in, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestParseExecutorResources(t *testing.T) {
	const key = "muster.dev/executor-resources: "
	cases := map[string]struct {
		in   string
		want resources.Vector
		err  string
	}{
		"cpu and memory": {in: "cpu=4,memory=18Gi", want: resources.Vector{v1.ResourceCPU: 4000, v1.ResourceMemory: 18 << 30}},
		"spaces and a gpu": {in: " cpu = 4 , memory = 18Gi , nvidia.com/gpu = 1 ",
			want: resources.Vector{v1.ResourceCPU: 4000, v1.ResourceMemory: 18 << 30, gpu: 1}},
		"millicores":                {in: "cpu=500m", want: resources.Vector{v1.ResourceCPU: 500}},
		"a sliver rounds up":        {in: "cpu=0.1m", want: resources.Vector{v1.ResourceCPU: 1}},
		"a fraction of a byte":      {in: "memory=0.5", want: resources.Vector{v1.ResourceMemory: 1}},
		"the largest memory":        {in: "memory=9223372036854775806", want: resources.Vector{v1.ResourceMemory: 1<<63 - 2}},
		"an exponent of two digits": {in: "memory=1e18", want: resources.Vector{v1.ResourceMemory: 1e18}},
		"no value": {in: "cpu=4,memory",
			err: key + `"cpu=4,memory": "memory" has no "=value"`},
		"no name": {in: "=4",
			err: key + `"=4": "=4" has no resource name before "="`},
		"no quantity": {in: "cpu=",
			err: key + `"cpu=": "cpu" has no quantity after "="`},
		"an empty entry": {in: "cpu=4,,memory=1Gi",
			err: key + `"cpu=4,,memory=1Gi": entry 2 is empty (a comma too many?)`},
		"a trailing comma": {in: "cpu=4,",
			err: key + `"cpu=4,": entry 2 is empty (a comma too many?)`},
		"a duplicate": {in: "cpu=4, memory=1Gi, cpu=2",
			err: key + `"cpu=4, memory=1Gi, cpu=2": cpu appears twice`},
		"a bad resource name": {in: "cpu=4,Bad Name=1",
			err: key + `"cpu=4,Bad Name=1": "Bad Name" is not a valid resource name: ...`},
		"a bad quantity": {in: "cpu=four",
			err: key + `"cpu=four": "four" for cpu is not a valid quantity such as "4", "500m" or "18Gi"`},
		"two equals signs": {in: "cpu=4=5",
			err: key + `"cpu=4=5": "4=5" for cpu is not a valid quantity such as "4", "500m" or "18Gi"`},
		"zero": {in: "cpu=0",
			err: key + `"cpu=0": cpu must be more than 0, got "0"`},
		"negative": {in: "memory=-1Gi",
			err: key + `"memory=-1Gi": memory must be more than 0, got "-1Gi"`},
		"a huge exponent": {in: "cpu=1e999999999",
			err: key + `"cpu=1e999999999": "1e999999999" for cpu is not a valid quantity: the exponent is out of range`},
		"a huge negative exponent": {in: "cpu=1e-999999999",
			err: key + `"cpu=1e-999999999": "1e-999999999" for cpu is not a valid quantity: the exponent is out of range`},
		"a long quantity": {in: "cpu=" + strings.Repeat("1", 65),
			err: key + `"cpu=` + strings.Repeat("1", 60) + `"...: the quantity of cpu is not valid: longer than 64 characters`},
		"memory beyond int64": {in: "memory=9Ei",
			err: key + `"memory=9Ei": memory=9Ei is too large (at most 9223372036854775806)`},
		"memory where ParseQuantity clamps": {in: "memory=9223372036854775807",
			err: key + `"memory=9223372036854775807": memory=9223372036854775807 is too large (at most 9223372036854775806)`},
		"memory far beyond int64": {in: "memory=1e30",
			err: key + `"memory=1e30": memory=1e30 is too large (at most 9223372036854775806)`},
		"cpu beyond int64 millicores": {in: "cpu=9223372036854776",
			err: key + `"cpu=9223372036854776": cpu=9223372036854776 is too large (at most 9223372036854775806m)`},
		"empty": {in: "",
			err: key + `is empty; it must list what one executor requests, such as "cpu=4,memory=18Gi"`},
		"blank": {in: " ", err: key + `is empty...`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseExecutorResources(tc.in)
			if tc.err != "" {
				requireAnnotationError(t, err, AnnotationExecutorResources, tc.in, tc.err)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
