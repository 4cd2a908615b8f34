package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/resources"
)

// fieldErr is an expected FieldError: the exact path, and the message or a
// prefix of it (messages from k8s validation go on with its explanations).
type fieldErr struct{ path, msg string }

// requireConfigErrors asserts that Parse refuses config with exactly the
// expected errors, in order, and returns no tree.
func requireConfigErrors(t *testing.T, config string, want ...fieldErr) {
	t.Helper()
	tree, err := Parse([]byte(config))
	require.Error(t, err)
	assert.Nil(t, tree, "no tree with an invalid config")
	var ce ConfigError
	require.True(t, errors.As(err, &ce), "a ConfigError, got %T", err)
	got := make([]string, len(ce))
	for i, fe := range ce {
		got[i] = fe.Error()
	}
	require.Len(t, ce, len(want), "errors:\n%s", strings.Join(got, "\n"))
	for i, w := range want {
		assert.Equal(t, w.path, ce[i].Path, "error %d: %s", i, got[i])
		assert.True(t, strings.HasPrefix(ce[i].Msg, w.msg), "error %d at %s:\n got: %s\nwant: %s", i, ce[i].Path, ce[i].Msg, w.msg)
	}
}

const policies = "use one of require-spot, prefer-spot, prefer-on-demand, require-on-demand, any"

func TestParseLimits(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"child max above parent max": {`
queues:
  - name: analytics
    max: {cpu: "128", memory: 512Gi}
    queues:
      - name: adhoc
        max: {cpu: "200", memory: 1Ti}
`, []fieldErr{
			{"root.analytics.adhoc.max.cpu", "200 exceeds parent max 128"},
			{"root.analytics.adhoc.max.memory", "1Ti exceeds parent max 512Gi"},
		}},
		"child max above a grandparent's max": {`
queues:
  - name: analytics
    max: {cpu: "128"}
    queues:
      - name: team
        max: {memory: 1Gi}
        queues:
          - name: adhoc
            max: {cpu: "200"}
`, []fieldErr{{"root.analytics.team.adhoc.max.cpu", "200 exceeds parent max 128"}}},
		"child max above the tightest ancestor": {`
queues:
  - name: a
    max: {cpu: "100"}
    queues:
      - name: b
        max: {cpu: "10"}
        queues:
          - name: c
            max: {cpu: "50"}
`, []fieldErr{{"root.a.b.c.max.cpu", "50 exceeds parent max 10"}}},
		"a child above an invalid parent is held to the tighter of the two": {`
queues:
  - name: a
    max: {cpu: "10"}
    queues:
      - name: b
        max: {cpu: "20"}
        queues:
          - name: c
            max: {cpu: "15"}
`, []fieldErr{
			{"root.a.b.max.cpu", "20 exceeds parent max 10"},
			{"root.a.b.c.max.cpu", "15 exceeds parent max 10"},
		}},
		"child max in millicores above parent": {`
queues:
  - name: a
    max: {cpu: 500m}
    queues: [{name: b, max: {cpu: 501m}}]
`, []fieldErr{{"root.a.b.max.cpu", "501m exceeds parent max 500m"}}},
		"children's guaranteed sum above the parent's": {`
queues:
  - name: analytics
    guaranteed: {cpu: "64", memory: 256Gi}
    queues:
      - name: etl
        guaranteed: {cpu: "32", memory: 128Gi}
      - name: adhoc
        guaranteed: {cpu: "40", memory: 128Gi}
`, []fieldErr{{"root.analytics.guaranteed.cpu", "children's guaranteed sum to 72, above this queue's guaranteed 64"}}},
		"children's guaranteed of an extended resource": {`
queues:
  - name: ml
    guaranteed: {nvidia.com/gpu: 8}
    queues:
      - {name: a, guaranteed: {nvidia.com/gpu: 4}}
      - {name: b, guaranteed: {nvidia.com/gpu: 4}}
      - {name: c, guaranteed: {nvidia.com/gpu: 1}}
`, []fieldErr{{"root.ml.guaranteed.nvidia.com/gpu", "children's guaranteed sum to 9, above this queue's guaranteed 8"}}},
		"children's guaranteed checked at every level": {`
queues:
  - name: a
    guaranteed: {cpu: "10"}
    queues:
      - name: b
        guaranteed: {cpu: "11"}
        queues:
          - {name: c, guaranteed: {cpu: "6"}}
          - {name: d, guaranteed: {cpu: "6"}}
`, []fieldErr{
			{"root.a.b.guaranteed.cpu", "children's guaranteed sum to 12, above this queue's guaranteed 11"},
			{"root.a.guaranteed.cpu", "children's guaranteed sum to 11, above this queue's guaranteed 10"},
		}},
		"children's guaranteed sum that would overflow int64": {`
queues:
  - name: a
    guaranteed: {memory: "9223372036854775807"}
    queues:
      - {name: b, guaranteed: {memory: "9223372036854775807"}}
      - {name: c, guaranteed: {memory: "9223372036854775807"}}
`, []fieldErr{{"root.a.guaranteed.memory", "children's guaranteed sum to more than 9223372036854775807, above this queue's guaranteed 9223372036854775807"}}},
		"guaranteed above its own max": {`
queues:
  - name: a
    guaranteed: {cpu: "10", memory: 1Gi}
    max: {cpu: "8", memory: 1Gi}
`, []fieldErr{{"root.a.guaranteed.cpu", "10 exceeds max 8"}}},
		"guaranteed above an inherited max": {`
queues:
  - name: a
    max: {nvidia.com/gpu: 2}
    queues:
      - name: b
        guaranteed: {nvidia.com/gpu: 4}
`, []fieldErr{{"root.a.b.guaranteed.nvidia.com/gpu", "4 exceeds max 2"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

func TestParseNames(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"duplicate siblings": {`
queues:
  - name: a
  - name: b
  - name: a
`, []fieldErr{{"root.a", `duplicate queue name "a" under root (first at root.a)`}}},
		"duplicate siblings deeper down": {`
queues:
  - name: p
    queues: [{name: x}, {name: x}, {name: x}]
`, []fieldErr{
			{"root.p.x", `duplicate queue name "x" under root.p`},
			{"root.p.x", `duplicate queue name "x" under root.p`},
		}},
		"uppercase": {`
queues: [{name: Analytics}]
`, []fieldErr{{"root.queues[0].name", `"Analytics" is not a valid queue name: a lowercase RFC 1123 label`}}},
		"dots": {`
queues: [{name: a}, {name: a.b}]
`, []fieldErr{{"root.queues[1].name", `"a.b" is not a valid queue name: must not contain dots`}}},
		"leading dash, underscore, too long": {fmt.Sprintf(`
queues: [{name: -a}, {name: a_b}, {name: %s}]
`, strings.Repeat("a", 64)), []fieldErr{
			{"root.queues[0].name", `"-a" is not a valid queue name`},
			{"root.queues[1].name", `"a_b" is not a valid queue name`},
			{"root.queues[2].name", `"` + strings.Repeat("a", 64) + `" is not a valid queue name: must be no more than 63 characters`},
		}},
		"root": {`
queues: [{name: root}]
`, []fieldErr{{"root.root.name", `"root" is the implicit top of the tree and cannot name a queue`}}},
		"root deeper down": {`
queues: [{name: a, queues: [{name: root}]}]
`, []fieldErr{{"root.a.root.name", `"root" is the implicit top`}}},
		"missing, empty, null and not a string": {`
queues:
  - {weight: 2}
  - {name: ""}
  - {name: null}
  - {name: 5}
  - {name: [a]}
`, []fieldErr{
			{"root.queues[0].name", "required: a queue needs a name"},
			{"root.queues[1].name", "required: a queue needs a name"},
			{"root.queues[2].name", "required: a queue needs a name"},
			{"root.queues[3].name", "must be a string, got 5"},
			{"root.queues[4].name", "must be a string, got a list"},
		}},
		"errors under an unnamed queue keep its index": {`
queues:
  - max: {cpu: lots}
    queues: [{name: Bad}]
`, []fieldErr{
			{"root.queues[0].name", "required: a queue needs a name"},
			{"root.queues[0].max.cpu", `"lots" is not a valid quantity`},
			{"root.queues[0].queues[0].name", `"Bad" is not a valid queue name`},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

func TestParseFields(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"unknown top-level fields, all of them": {`
queue: []
namespaces: {}
queues: [{name: a}]
defaults: {weight: 1}
`, []fieldErr{
			{"defaults", "unknown field (known: queues, namespaceQueues)"},
			{"namespaces", "unknown field (known: queues, namespaceQueues)"},
			{"queue", "unknown field (known: queues, namespaceQueues)"},
		}},
		"unknown queue fields, all of them": {`
queues:
  - name: a
    maximum: {cpu: "1"}
    guarantee: {cpu: "1"}
    children: []
    queues:
      - name: b
        Weight: 2
`, []fieldErr{
			{"root.a.children", "unknown field (known: name, weight, guaranteed, max, namespaces, capacityPolicy, ordering, minRuntimeSeconds, queues)"},
			{"root.a.guarantee", "unknown field"},
			{"root.a.maximum", "unknown field"},
			{"root.a.b.Weight", "unknown field"},
		}},
		// found by FuzzParse: an empty key still gets a path that says where
		"empty keys": {`
"": 1
queues: [{name: a, "": 2}]
`, []fieldErr{
			{`""`, "unknown field (known: queues, namespaceQueues)"},
			{"root.a.", "unknown field (known: name, weight"},
		}},
		"not a mapping": {"- a\n", []fieldErr{{"queues.yaml", "must be a mapping with the fields queues and namespaceQueues"}}},
		"a scalar":      {"42", []fieldErr{{"queues.yaml", "must be a mapping with the fields queues and namespaceQueues"}}},
		"queues not a list": {"queues: {a: 1}", []fieldErr{
			{"root.queues", "must be a list of queues"}}},
		"child queues not a list": {"queues: [{name: a, queues: b}]", []fieldErr{
			{"root.a.queues", "must be a list of queues"}}},
		"a queue not a mapping": {"queues: [a, [b], {name: c}]", []fieldErr{
			{"root.queues[0]", "must be a mapping with the fields name, weight"},
			{"root.queues[1]", "must be a mapping with the fields name, weight"},
		}},
		"weights": {`
queues:
  - {name: zero, weight: 0}
  - {name: negative, weight: -1.5}
  - {name: quoted, weight: "2"}
  - {name: boolean, weight: true}
  - {name: "null", weight: null}
  - {name: huge, weight: 1e400}
  - {name: list, weight: [1]}
`, []fieldErr{
			{"root.zero.weight", "must be greater than 0, got 0"},
			{"root.negative.weight", "must be greater than 0, got -1.5"},
			{"root.quoted.weight", `must be a number, got "2"`},
			{"root.boolean.weight", "must be a number, got true"},
			{"root.null.weight", "must be a number, got nothing"},
			{"root.huge.weight", "must be a number, got"},
			{"root.list.weight", "must be a number, got a list"},
		}},
		"capacity policies": {`
queues:
  - {name: a, capacityPolicy: spot}
  - {name: b, capacityPolicy: ""}
  - {name: c, capacityPolicy: 5}
  - {name: d, capacityPolicy: Prefer-Spot}
`, []fieldErr{
			{"root.a.capacityPolicy", `"spot" is not a capacity policy; ` + policies},
			{"root.b.capacityPolicy", `"" is not a capacity policy; ` + policies},
			{"root.c.capacityPolicy", "must be one of"},
			{"root.d.capacityPolicy", `"Prefer-Spot" is not a capacity policy`},
		}},
		"orderings and run times": {`
queues:
  - {name: a, ordering: lifo}
  - {name: b, ordering: FIFO}
  - {name: c, ordering: 1}
  - {name: d, minRuntimeSeconds: -1}
  - {name: e, minRuntimeSeconds: 1.5}
  - {name: f, minRuntimeSeconds: "600"}
  - {name: g, minRuntimeSeconds: 604801}
`, []fieldErr{
			{"root.a.ordering", `must be one of [priority fifo], got "lifo"`},
			{"root.b.ordering", `must be one of [priority fifo], got "FIFO"`},
			{"root.c.ordering", "must be one of [priority fifo], got 1"},
			{"root.d.minRuntimeSeconds", "must be a whole number of seconds from 0 to 604800, got -1"},
			{"root.e.minRuntimeSeconds", "must be a whole number of seconds from 0 to 604800, got 1.5"},
			{"root.f.minRuntimeSeconds", `must be a whole number of seconds, got "600"`},
			{"root.g.minRuntimeSeconds", "must be a whole number of seconds from 0 to 604800, got 604801"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

func TestOrderingAndMinRuntimeInherit(t *testing.T) {
	tr, err := Parse([]byte(`
queues:
  - name: ml
    ordering: fifo
    minRuntimeSeconds: 600
    queues:
      - {name: train}
      - {name: serve, ordering: priority, minRuntimeSeconds: 0}
  - name: etl
`))
	require.NoError(t, err)
	cases := []struct {
		path       string
		ordering   Ordering
		minRuntime time.Duration
	}{
		{"root", OrderPriority, 0},
		{"root.ml", OrderFIFO, 10 * time.Minute},
		{"root.ml.train", OrderFIFO, 10 * time.Minute},
		{"root.ml.serve", OrderPriority, 0},
		{"root.etl", OrderPriority, 0},
	}
	for _, tc := range cases {
		q := tr.Get(tc.path)
		require.NotNil(t, q, tc.path)
		assert.Equal(t, tc.ordering, q.Ordering, tc.path)
		assert.Equal(t, tc.minRuntime, q.MinRuntime, tc.path)
	}
}

func TestParseQuantities(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"bad quantities": {`
queues:
  - name: a
    max: {cpu: lots, memory: 1GB, pods: "", nvidia.com/gpu: 1.5.0}
`, []fieldErr{
			{"root.a.max.cpu", `"lots" is not a valid quantity`},
			{"root.a.max.memory", `"1GB" is not a valid quantity`},
			{"root.a.max.nvidia.com/gpu", `"1.5.0" is not a valid quantity`},
			{"root.a.max.pods", `"" is not a valid quantity`},
		}},
		"not quantities": {`
queues:
  - name: a
    guaranteed: {cpu: true, memory: [1], pods: {a: 1}, nvidia.com/gpu: null}
`, []fieldErr{
			{"root.a.guaranteed.cpu", `must be a quantity such as "4", "500m" or "16Gi", got true`},
			{"root.a.guaranteed.memory", "must be a quantity such as \"4\", \"500m\" or \"16Gi\", got a list"},
			{"root.a.guaranteed.nvidia.com/gpu", "must be a quantity such as \"4\", \"500m\" or \"16Gi\", got nothing"},
			{"root.a.guaranteed.pods", "must be a quantity such as \"4\", \"500m\" or \"16Gi\", got a mapping"},
		}},
		"negative quantities": {`
queues:
  - name: a
    guaranteed: {cpu: "-1", memory: -5Gi}
    max: {nvidia.com/gpu: -2}
`, []fieldErr{
			{"root.a.guaranteed.cpu", "must not be negative, got -1"},
			{"root.a.guaranteed.memory", "must not be negative, got -5Gi"},
			{"root.a.max.nvidia.com/gpu", "must not be negative, got -2"},
		}},
		// (binary suffixes are capped at MaxInt64 by ParseQuantity itself:
		// 8Ei is accepted as 8Ei-1)
		"quantities too large for an amount": {`
queues:
  - name: a
    max: {cpu: 10E, memory: 8Ei, pods: "9223372036854775808", nvidia.com/gpu: 1e30}
`, []fieldErr{
			{"root.a.max.cpu", "10E is too large (at most 9223372036854775807m)"},
			{"root.a.max.nvidia.com/gpu", "1e+30 is too large (at most 9223372036854775807)"},
			{"root.a.max.pods", "9223372036854775808 is too large (at most 9223372036854775807)"},
		}},
		// ParseQuantity would take minutes over these: they are refused first
		"exponents out of range and overlong quantities": {`
queues:
  - name: a
    max: {cpu: "1e-999999999", memory: "1E+999", pods: "1e100", nvidia.com/gpu: "0.00000000000000000000000000000000000000000000000000000000000000001"}
`, []fieldErr{
			{"root.a.max.cpu", `"1e-999999999" is not a valid quantity: the exponent is out of range`},
			{"root.a.max.memory", `"1E+999" is not a valid quantity: the exponent is out of range`},
			{"root.a.max.nvidia.com/gpu", `"0.000000000000000000"... is not a valid quantity: longer than 64 characters`},
			{"root.a.max.pods", `"1e100" is not a valid quantity: the exponent is out of range`},
		}},
		"bad resource names": {`
queues:
  - name: a
    max: {"bad name!": 1, "/gpu": 1, "nvidia.com/": 1, "a/b/c": 1}
`, []fieldErr{
			{"root.a.max./gpu", `"/gpu" is not a valid resource name: prefix part must be non-empty`},
			{"root.a.max.a/b/c", `"a/b/c" is not a valid resource name`},
			{"root.a.max.bad name!", `"bad name!" is not a valid resource name: name part must consist of`},
			{"root.a.max.nvidia.com/", `"nvidia.com/" is not a valid resource name: name part must be non-empty`},
		}},
		"bad device class names": {`
queues:
  - name: a
    max: {"deviceclass/": 1, "deviceclass/GPU": 1, "deviceclass/gpu_x": 1}
`, []fieldErr{
			{"root.a.max.deviceclass/", `"deviceclass/" is not a valid resource name: names no DeviceClass after deviceclass/`},
			{"root.a.max.deviceclass/GPU", `"deviceclass/GPU" is not a valid resource name: a lowercase RFC 1123 subdomain`},
			{"root.a.max.deviceclass/gpu_x", `"deviceclass/gpu_x" is not a valid resource name: a lowercase RFC 1123 subdomain`},
		}},
		"resources not a mapping": {`
queues:
  - {name: a, max: "4"}
  - {name: b, guaranteed: [cpu]}
  - {name: c, max: null}
`, []fieldErr{
			{"root.a.max", `must be a mapping of resource names to quantities, got "4"`},
			{"root.b.guaranteed", "must be a mapping of resource names to quantities, got a list"},
			{"root.c.max", "must be a mapping of resource names to quantities, got nothing"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

func TestParseGlobs(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"bad globs": {`
queues:
  - name: a
    namespaces: ["[", "team/a", "Team-A", "a.b", "", 5, 'a\b', "[a-", "x[!a]", "ok-*", "a!"]
`, []fieldErr{
			{"root.a.namespaces[0]", `"[" is not a valid namespace glob: syntax error in pattern`},
			{"root.a.namespaces[1]", `"team/a" is not a valid namespace glob: namespaces contain no slashes`},
			{"root.a.namespaces[2]", `"Team-A" is not a valid namespace glob: 'T' cannot appear in a namespace name`},
			{"root.a.namespaces[3]", `"a.b" is not a valid namespace glob: '.' cannot appear in a namespace name`},
			{"root.a.namespaces[4]", `must be a non-empty namespace name or glob, got ""`},
			{"root.a.namespaces[5]", "must be a non-empty namespace name or glob, got 5"},
			{"root.a.namespaces[6]", `"a\\b" is not a valid namespace glob: namespaces contain no slashes`},
			{"root.a.namespaces[7]", `"[a-" is not a valid namespace glob: syntax error in pattern`},
			{"root.a.namespaces[8]", `"x[!a]" is not a valid namespace glob: negate a character class with [^...], not [!...]`},
			{"root.a.namespaces[10]", `"a!" is not a valid namespace glob: '!' cannot appear in a namespace name`},
		}},
		"not a list": {`
queues:
  - {name: a, namespaces: spark}
  - {name: b, namespaces: null}
`, []fieldErr{
			{"root.a.namespaces", `must be a list of namespace names or globs, got "spark"`},
			{"root.b.namespaces", "must be a list of namespace names or globs, got nothing"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

func TestParseNamespaceQueues(t *testing.T) {
	const tree = `
queues:
  - name: analytics
    namespaces: ["spark-etl", "team-a-*"]
    queues: [{name: etl}, {name: adhoc}]
  - name: ml
    queues: [{name: etl}]
  - name: default
`
	cases := map[string]struct {
		namespaceQueues string
		want            []fieldErr
	}{
		"a nonexistent queue": {`{spark-etl: root.nope, other: nope}`, []fieldErr{
			{"namespaceQueues.other", "queue nope does not exist"},
			{"namespaceQueues.spark-etl", "queue root.nope does not exist"},
		}},
		"an ambiguous leaf name": {`{"*": etl}`, []fieldErr{
			{"namespaceQueues.*", "queue name etl is ambiguous (root.analytics.etl, root.ml.etl); use the full path"},
		}},
		"a non-leaf queue": {`{spark-etl: root.analytics, x: ml}`, []fieldErr{
			{"namespaceQueues.spark-etl", "root.analytics is not a leaf queue; pods are admitted to leaf queues only (its leaves: root.analytics.etl, root.analytics.adhoc)"},
			{"namespaceQueues.x", "root.ml is not a leaf queue; pods are admitted to leaf queues only (its leaves: root.ml.etl)"},
		}},
		"root": {`{"*": root}`, []fieldErr{
			{"namespaceQueues.*", "root is not a leaf queue"},
		}},
		"a queue that does not admit the namespace": {`{other: root.analytics.etl, team-b-1: adhoc}`, []fieldErr{
			{"namespaceQueues.other", "root.analytics.etl does not admit namespace other (root.analytics.namespaces is [spark-etl team-a-*])"},
			{"namespaceQueues.team-b-1", "root.analytics.adhoc does not admit namespace team-b-1 (root.analytics.namespaces is [spark-etl team-a-*])"},
		}},
		"bad namespace names and values": {`{Bad_NS: root.default, empty: "", number: 5, "": default}`, []fieldErr{
			{"namespaceQueues.", `"" is not a namespace name (or "*")`},
			{"namespaceQueues.Bad_NS", `"Bad_NS" is not a namespace name (or "*")`},
			{"namespaceQueues.empty", `must name a queue, got ""`},
			{"namespaceQueues.number", "must name a queue, got 5"},
		}},
		"not a mapping": {`[default]`, []fieldErr{
			{"namespaceQueues", "must be a mapping of namespace to queue, got a list"},
		}},
		"null": {``, []fieldErr{
			{"namespaceQueues", "must be a mapping of namespace to queue, got nothing"},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tree+"namespaceQueues: "+tc.namespaceQueues+"\n", tc.want...)
		})
	}

	t.Run("valid: mapped namespaces are checked against ACLs, the fallback is not", func(t *testing.T) {
		tr := mustParse(t, tree+`namespaceQueues: {spark-etl: root.analytics.etl, team-a-1: adhoc, "*": root.analytics.etl}`+"\n")
		for ns, want := range map[string]string{"spark-etl": "root.analytics.etl", "team-a-1": "root.analytics.adhoc", "team-a-2": "root.analytics.etl"} {
			q, perr := tr.Place(ns, "")
			require.Nil(t, perr, ns)
			assert.Equal(t, want, q.Path, ns)
		}
		_, perr := tr.Place("other", "")
		require.NotNil(t, perr, "the fallback's ACL applies when a pod is placed")
		assert.Equal(t, "root.analytics.etl", perr.Queue)
	})
}

func TestParseYAML(t *testing.T) {
	cases := map[string]struct {
		config string
		want   []fieldErr
	}{
		"unclosed flow sequence": {"queues: [", []fieldErr{{"queues.yaml", "not valid YAML: yaml: line 1: did not find expected node content"}}},
		"tab indentation":        {"queues:\n\t- name: a\n", []fieldErr{{"queues.yaml", "not valid YAML: yaml: line 2: found character that cannot start any token"}}},
		"bad indentation":        {"queues:\n  - name: a\n   weight: 2\n", []fieldErr{{"queues.yaml", "not valid YAML: "}}},
		"duplicate top-level key": {"queues: []\nqueues: []\n", []fieldErr{
			{"queues.yaml", `not valid YAML: yaml: unmarshal errors:` + "\n" + `  line 2: key "queues" already set in map`}}},
		"duplicate queue field": {"queues:\n  - name: a\n    name: b\n", []fieldErr{
			{"queues.yaml", `not valid YAML: yaml: unmarshal errors:` + "\n" + `  line 3: key "name" already set in map`}}},
		"duplicate resource": {"queues:\n  - name: a\n    max: {cpu: 1, cpu: 2}\n", []fieldErr{
			{"queues.yaml", `not valid YAML: yaml: unmarshal errors:` + "\n" + `  line 3: key "cpu" already set in map`}}},
		"duplicate namespace": {"namespaceQueues:\n  a: root.x\n  a: root.y\n", []fieldErr{
			{"queues.yaml", `not valid YAML: yaml: unmarshal errors:` + "\n" + `  line 3: key "a" already set in map`}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			requireConfigErrors(t, tc.config, tc.want...)
		})
	}
}

// TestParseReportsEveryError puts many independent mistakes in one file:
// parsing goes on after each, and the structural checks still run, so one
// refusal lists them all, in the order they appear in the file.
func TestParseReportsEveryError(t *testing.T) {
	const config = `
queues:
  - name: analytics
    weight: 0
    guaranteed: {cpu: "64"}
    max: {cpu: "128", memory: 512Gi}
    namespaces: ["spark-etl", "Team-A"]
    queues:
      - name: etl
        guaranteed: {cpu: "40"}
      - name: adhoc
        guaranteed: {cpu: "40"}
        max: {cpu: "200", memory: lots}
        colour: blue
      - name: etl
  - name: ml
    capacityPolicy: spot
    max: {nvidia.com/gpu: -1}
  - name: Bad.Name
namespaceQueues:
  spark-etl: root.analytics
  other: root.nope
  "*": nope
extra: true
`
	requireConfigErrors(t, config,
		// while parsing, field by field in name order
		fieldErr{"extra", "unknown field"},
		fieldErr{"root.analytics.namespaces[1]", `"Team-A" is not a valid namespace glob`},
		fieldErr{"root.analytics.adhoc.colour", "unknown field"},
		fieldErr{"root.analytics.adhoc.max.memory", `"lots" is not a valid quantity`},
		fieldErr{"root.analytics.weight", "must be greater than 0, got 0"},
		fieldErr{"root.ml.capacityPolicy", `"spot" is not a capacity policy`},
		fieldErr{"root.ml.max.nvidia.com/gpu", "must not be negative, got -1"},
		fieldErr{"root.queues[2].name", `"Bad.Name" is not a valid queue name`},
		// then building the tree
		fieldErr{"root.analytics.adhoc.max.cpu", "200 exceeds parent max 128"},
		fieldErr{"root.analytics.etl", `duplicate queue name "etl" under root.analytics (first at root.analytics.etl)`},
		fieldErr{"root.analytics.guaranteed.cpu", "children's guaranteed sum to 80, above this queue's guaranteed 64"},
		// and the namespace mappings
		fieldErr{"namespaceQueues.*", "queue nope does not exist"},
		fieldErr{"namespaceQueues.other", "queue root.nope does not exist"},
		fieldErr{"namespaceQueues.spark-etl", "root.analytics is not a leaf queue"},
	)

	_, err := Parse([]byte(config))
	var ce ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Len(t, ce, 14)
	assert.Len(t, strings.Split(err.Error(), "\n"), 14, "Error() is one line per problem")
	assert.True(t, strings.HasPrefix(err.Error(), "extra: unknown field"))
}

func TestParseIsDeterministic(t *testing.T) {
	const config = `
queues:
  - {name: a, max: {cpu: x, memory: y, pods: z, nvidia.com/gpu: w}, foo: 1, bar: 2, baz: 3}
namespaceQueues: {c: nope, b: nope, a: nope}
`
	_, first := Parse([]byte(config))
	require.Error(t, first)
	for range 20 {
		_, err := Parse([]byte(config))
		assert.Equal(t, first, err)
	}
}

func TestParseDeviceClassQuota(t *testing.T) {
	long := "gpu." + strings.Repeat("a", 70) + ".example.com" // longer than a qualified name's 63
	tree, err := Parse([]byte(`
queues:
  - name: ml
    guaranteed: {deviceclass/gpu.example.com: "8"}
    max: {deviceclass/gpu.example.com: "16", deviceclass/` + long + `: "2"}
`))
	require.NoError(t, err)
	q := tree.Get("root.ml")
	require.NotNil(t, q)
	assert.Equal(t, int64(8), q.Guaranteed["deviceclass/gpu.example.com"])
	assert.Equal(t, int64(16), q.Max["deviceclass/gpu.example.com"])
	assert.Equal(t, int64(2), q.Max[resources.DeviceClassName(long)])
}
