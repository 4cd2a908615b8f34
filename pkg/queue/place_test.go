package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlace(t *testing.T) {
	withFallback := mustParse(t, `
queues:
  - name: analytics
    namespaces: ["spark-etl", "team-a-*"]
    queues:
      - name: etl
      - name: adhoc
        namespaces: ["team-a-*"]
  - name: ml
    queues: [{name: train}, {name: etl}]
  - name: default
namespaceQueues:
  spark-etl: root.analytics.etl
  team-a-web: adhoc
  "*": root.default
`)
	noFallback := mustParse(t, `
queues:
  - name: analytics
    namespaces: ["spark-etl"]
    queues: [{name: etl}]
  - name: open
namespaceQueues:
  spark-etl: root.analytics.etl
`)
	aclFallback := mustParse(t, `
queues:
  - name: restricted
    namespaces: ["team-a-*"]
namespaceQueues:
  "*": restricted
`)
	cases := map[string]struct {
		tree      *Tree
		ns, label string
		want      string // the leaf's path
		wantQueue string // PlacementError.Queue
		wantMsg   string
	}{
		"label: full path": {
			tree: withFallback, ns: "spark-etl", label: "root.analytics.etl", want: "root.analytics.etl"},
		"label: unique leaf name": {
			tree: withFallback, ns: "anything", label: "train", want: "root.ml.train"},
		"label: wins over namespaceQueues": {
			tree: withFallback, ns: "spark-etl", label: "root.ml.train", want: "root.ml.train"},
		"label: glob ACL admits": {
			tree: withFallback, ns: "team-a-batch", label: "adhoc", want: "root.analytics.adhoc"},
		"label: full path of an ambiguous name": {
			tree: withFallback, ns: "x", label: "root.ml.etl", want: "root.ml.etl"},
		"label: ambiguous name": {
			tree: withFallback, ns: "spark-etl", label: "etl", wantQueue: "etl",
			wantMsg: "queue name etl is ambiguous (root.analytics.etl, root.ml.etl); use the full path (from label muster.dev/queue=etl)"},
		"label: nonexistent": {
			tree: withFallback, ns: "spark-etl", label: "nope", wantQueue: "nope",
			wantMsg: "queue nope does not exist (from label muster.dev/queue=nope)"},
		"label: nonexistent path": {
			tree: withFallback, ns: "spark-etl", label: "root.analytics.nope", wantQueue: "root.analytics.nope",
			wantMsg: "queue root.analytics.nope does not exist (from label muster.dev/queue=root.analytics.nope)"},
		"label: non-leaf": {
			tree: withFallback, ns: "spark-etl", label: "analytics", wantQueue: "root.analytics",
			wantMsg: "queue root.analytics (from label muster.dev/queue=analytics) is not a leaf queue; pods are admitted to leaf queues only: root.analytics.etl, root.analytics.adhoc"},
		"label: root": {
			tree: withFallback, ns: "spark-etl", label: "root", wantQueue: "root",
			wantMsg: "queue root (from label muster.dev/queue=root) is not a leaf queue; pods are admitted to leaf queues only: root.analytics.etl, root.analytics.adhoc, root.ml.train, root.ml.etl, root.default"},
		"label: ACL denial names the refusing parent": {
			tree: withFallback, ns: "other", label: "root.analytics.etl", wantQueue: "root.analytics.etl",
			wantMsg: "namespace other may not submit to queue root.analytics.etl (from label muster.dev/queue=root.analytics.etl): root.analytics admits namespaces spark-etl, team-a-*"},
		"label: ACL denial names the refusing leaf": {
			tree: withFallback, ns: "spark-etl", label: "adhoc", wantQueue: "root.analytics.adhoc",
			wantMsg: "namespace spark-etl may not submit to queue root.analytics.adhoc (from label muster.dev/queue=adhoc): root.analytics.adhoc admits namespaces team-a-*"},
		"label: glob does not match another prefix": {
			tree: withFallback, ns: "team-b-x", label: "adhoc", wantQueue: "root.analytics.adhoc",
			wantMsg: "namespace team-b-x may not submit to queue root.analytics.adhoc (from label muster.dev/queue=adhoc): root.analytics.adhoc admits namespaces team-a-*"},
		"namespace mapping": {
			tree: withFallback, ns: "spark-etl", want: "root.analytics.etl"},
		"namespace mapping by leaf name": {
			tree: withFallback, ns: "team-a-web", want: "root.analytics.adhoc"},
		"fallback": {
			tree: withFallback, ns: "kube-system", want: "root.default"},
		"fallback for an empty namespace": {
			tree: withFallback, ns: "", want: "root.default"},
		"no fallback": {
			tree: noFallback, ns: "team-b",
			wantMsg: `namespace team-b has no queue: the pod has no muster.dev/queue label and namespaceQueues names neither team-b nor "*"`},
		"no fallback, but a label": {
			tree: noFallback, ns: "team-b", label: "open", want: "root.open"},
		"no fallback, mapped namespace": {
			tree: noFallback, ns: "spark-etl", want: "root.analytics.etl"},
		"fallback refused by its ACL": {
			tree: aclFallback, ns: "team-b-1", wantQueue: "root.restricted",
			wantMsg: `namespace team-b-1 may not submit to queue root.restricted (from namespaceQueues."*"): root.restricted admits namespaces team-a-*`},
		"fallback admitted by its glob ACL": {
			tree: aclFallback, ns: "team-a-1", want: "root.restricted"},
		"default tree": {
			tree: Default(), ns: "anything", want: "root.default"},
		"label: root of an empty tree": {
			tree: mustParse(t, ""), ns: "x", label: "root", wantQueue: "root",
			wantMsg: "root (from label muster.dev/queue=root) is the top of the queue tree, not a queue pods can use; name a leaf queue"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q, perr := tc.tree.Place(tc.ns, tc.label)
			if tc.wantMsg != "" {
				require.NotNil(t, perr)
				assert.Nil(t, q)
				assert.Equal(t, tc.wantMsg, perr.Error())
				assert.Equal(t, tc.wantQueue, perr.Queue)
				return
			}
			require.Nil(t, perr)
			require.NotNil(t, q)
			assert.Equal(t, tc.want, q.Path)
			assert.True(t, q.IsLeaf())
			assert.Same(t, tc.tree.Get(tc.want), q)
		})
	}
}

// TestPlaceEveryLeaf: every leaf of the README's example is reachable by its path
// and, where unique, by its name, for a namespace it admits.
func TestPlaceEveryLeaf(t *testing.T) {
	tree := mustParse(t, specExample)
	for _, l := range tree.Leaves() {
		q, perr := tree.Place("spark-etl", l.Path)
		require.Nil(t, perr, l.Path)
		assert.Same(t, l, q)
		q, perr = tree.Place("spark-etl", l.Name)
		require.Nil(t, perr, l.Name)
		assert.Same(t, l, q)
	}
	q, perr := tree.Place("team-a-notebooks", "adhoc")
	require.Nil(t, perr)
	assert.Equal(t, "root.analytics.adhoc", q.Path)
	_, perr = tree.Place("team-b", "adhoc")
	require.NotNil(t, perr)
	assert.Contains(t, perr.Msg, "root.analytics admits namespaces spark-etl, team-a-*")
}
