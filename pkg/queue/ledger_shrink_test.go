package queue

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"muster.dev/muster/pkg/resources"
)

func TestLedgerShrink(t *testing.T) {
	tree, err := Parse([]byte("queues: [{name: a}]"))
	require.NoError(t, err)
	l := NewLedger(tree)
	leaf := tree.Get("root.a")
	require.Nil(t, l.Reserve("gang", leaf, resources.Vector{"cpu": 3000, "pods": 3}))
	l.Shrink("gang", resources.Vector{"cpu": 1000, "pods": 1})
	assert.Equal(t, resources.Vector{"cpu": 2000, "pods": 2}, l.Usage("root.a").Reserved)
	assert.Equal(t, resources.Vector{"cpu": 2000, "pods": 2}, l.Usage("root").Reserved)
	l.Shrink("gang", resources.Vector{"cpu": 5000, "pods": 5})
	assert.True(t, l.Usage("root.a").Reserved.IsZero(), "never below zero; gone when empty")
	_, _, ok := l.Lookup("gang")
	assert.False(t, ok)
	l.Allocate("pod", "root.a", resources.Vector{"cpu": 1000})
	l.Shrink("pod", resources.Vector{"cpu": 1000})
	assert.Equal(t, resources.Vector{"cpu": 1000}, l.Usage("root.a").Allocated, "only reservations shrink")
}
