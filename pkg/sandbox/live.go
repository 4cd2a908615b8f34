package sandbox

import (
	"fmt"
	"io"
	"strings"

	"muster.dev/muster/pkg/queue"
)

// liveView shows progress: on a terminal, a compact block redrawn in place;
// elsewhere, a plain line every few seconds.
type liveView struct {
	out    io.Writer
	live   bool
	tree   *queue.Tree
	lines  int // lines drawn last time (terminal)
	ticks  int
	events int // timeline entries shown so far
}

func newLiveView(out io.Writer, live bool, tree *queue.Tree) *liveView {
	return &liveView{out: out, live: live, tree: tree}
}

func (v *liveView) show(s snapshot, o *observer) {
	v.ticks++
	o.mu.Lock()
	newEvents := append([]string{}, o.log[v.events:]...)
	v.events = len(o.log)
	o.mu.Unlock()

	if !v.live {
		for _, e := range newEvents {
			fmt.Fprintln(v.out, e)
		}
		if v.ticks%5 != 1 {
			return
		}
		var parts []string
		for _, q := range v.tree.Leaves() {
			parts = append(parts, fmt.Sprintf("%s %.0f/%.0f", short(q.Path), s.alloc[q.Path], s.fair[q.Path]))
		}
		fmt.Fprintf(v.out, "[%s] running %d pending %d | cpu held/fair: %s | gangs waiting %d | spot %d on-demand %d\n",
			fmtTrace(s.at), s.running, s.pending, strings.Join(parts, ", "), s.gangsWaiting, s.spot, s.onDemand)
		return
	}

	var b strings.Builder
	fmt.Fprintf(&b, "t=%s  running %d  pending %d  gangs waiting %d  spot %d / on-demand %d\n",
		fmtTrace(s.at), s.running, s.pending, s.gangsWaiting, s.spot, s.onDemand)
	fmt.Fprintf(&b, "  %-24s %8s %8s %8s  %s\n", "QUEUE", "CPU", "FAIR", "WAITING", "")
	for _, q := range v.tree.Leaves() {
		bar := ""
		if f := s.fair[q.Path]; f > 0 {
			n := int(10 * s.alloc[q.Path] / f)
			bar = strings.Repeat("#", min(n, 15))
		}
		fmt.Fprintf(&b, "  %-24s %8.0f %8.0f %8.0f  %s\n", q.Path, s.alloc[q.Path], s.fair[q.Path], s.want[q.Path], bar)
	}
	for _, e := range newEvents {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if v.lines > 0 {
		fmt.Fprintf(v.out, "\033[%dA\033[J", v.lines) // up and clear what was drawn
	}
	text := b.String()
	fmt.Fprint(v.out, text)
	// Event lines scroll into the permanent output; the block above them is redrawn.
	v.lines = strings.Count(text, "\n") - len(newEvents)
	if len(newEvents) > 0 {
		// Keep the events: redraw the block below them next time.
		v.lines = 0
	}
}

func (v *liveView) done() {}

// short is a queue path without "root.".
func short(p string) string { return strings.TrimPrefix(p, "root.") }
