package musterqueue

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestOrderKeyBefore(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Millisecond) }
	keys := map[string]orderKey{
		// Queue "under" stands at 0.2 of its fair share, "over" at 1.5.
		"over-high-old":   {standing: 1.5, priority: 100, arrived: t0, seen: at(0), group: "pod/a"},
		"under-low-new":   {standing: 0.2, priority: 1, arrived: t0.Add(time.Minute), seen: at(9), group: "pod/b"},
		"under-high-new":  {standing: 0.2, priority: 100, arrived: t0.Add(time.Minute), seen: at(10), group: "pod/c"},
		"under-high-same": {standing: 0.2, priority: 100, arrived: t0.Add(time.Minute), seen: at(11), group: "pod/0"},
		"gang-member-2":   {standing: 0.2, priority: 1, arrived: t0, group: "gang/ns/g"},
		"gang-member-1":   {standing: 0.2, priority: 1, arrived: t0, group: "gang/ns/g", queued: at(1)},
	}
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return keys[names[i]].before(keys[names[j]]) })
	assert.Equal(t, []string{
		"under-high-new", "under-high-same", // the queue below its fair share first; priority first within it; then arrival to the millisecond
		"gang-member-2", "gang-member-1", // a gang by its first member's arrival, its members together, then by when queued
		"under-low-new",
		"over-high-old", // a queue above its fair share after, whatever the priority
	}, names)
	for _, a := range names {
		assert.False(t, keys[a].before(keys[a]), "irreflexive: %s", a)
		for _, b := range names {
			if a != b {
				assert.NotEqual(t, keys[a].before(keys[b]), keys[b].before(keys[a]), "total: %s, %s", a, b)
			}
		}
	}
}
