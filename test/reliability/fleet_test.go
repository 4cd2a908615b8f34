package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/pkg/status"
	"muster.dev/muster/test/framework"
)

// firstStatusOfLeaderSince returns the status report, once the lease
// holder that acquired the lease after since has published one. It reads
// the lease and the status ConfigMap directly: the test's watches may still
// be backing off after an apiserver outage.
func firstStatusOfLeaderSince(since time.Time) (status.Report, leaseTerm, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	term, ok := leaseNow(ctx)
	if !ok || term.Acquired.Before(since) {
		return status.Report{}, term, false
	}
	cm, err := framework.CP.Client.CoreV1().ConfigMaps(musterNamespace).Get(ctx, framework.StatusConfigMap, metav1.GetOptions{})
	if err != nil || ownerOf(cm.ManagedFields, `"f:`+status.Key+`"`) != term.Manager {
		return status.Report{}, term, false
	}
	r, err := status.Decode([]byte(cm.Data[status.Key]))
	if err != nil {
		return status.Report{}, term, false
	}
	at, err := time.Parse(time.RFC3339, r.UpdatedAt)
	if err != nil || at.Before(term.Acquired.Truncate(time.Second)) {
		return status.Report{}, term, false
	}
	return r, term, true
}

// leaseNow reads the lease: its holder, the holder's field manager (the
// replica's name) and its acquire time.
func leaseNow(ctx context.Context) (leaseTerm, bool) {
	l, err := framework.CP.Client.CoordinationV1().Leases(musterNamespace).Get(ctx, status.LeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || l.Spec.AcquireTime == nil {
		return leaseTerm{}, false
	}
	return leaseTerm{Holder: *l.Spec.HolderIdentity, Manager: ownerOf(l.ManagedFields, `"f:holderIdentity"`), Acquired: l.Spec.AcquireTime.Time}, true
}

// currentLeader is the replica that holds the lease now, read from the
// apiserver ("" when it cannot be read).
func currentLeader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	term, _ := leaseNow(ctx)
	return term.Manager
}

// ownerOf is the manager of the managed fields entry that holds field.
func ownerOf(entries []metav1.ManagedFieldsEntry, field string) string {
	for _, e := range entries {
		if e.FieldsV1 != nil && strings.Contains(string(e.FieldsV1.Raw), field) {
			return e.Manager
		}
	}
	return ""
}

// chaosKill is a leader killed.
type chaosKill struct {
	name string
	at   time.Time
}

// fleet keeps two muster-scheduler replicas running, as a Deployment of
// two would: a replica killed, or exited by itself, is replaced by a new
// process. Used from the test's goroutine only.
type fleet struct {
	t        *testing.T
	gen      int
	procs    []*proc
	killed   map[*proc]bool
	replaced map[*proc]bool
	// selfExits counts replicas that exited without being killed;
	// exitNotes says how each ended.
	selfExits int
	exitNotes []string
}

func (f *fleet) start() {
	if f.gen >= 100 {
		f.t.Fatalf("100 replicas started: a crash loop? %v", f.exitNotes)
	}
	f.gen++
	p := startBinaryAs(f.t, fmt.Sprintf("muster-scheduler-chaos-%d", f.gen))
	f.procs = append(f.procs, p)
	f.t.Logf("started %s", p.Name)
}

// logged lists the replicas whose output has a line containing every one
// of parts, with the line.
func (f *fleet) logged(parts ...string) []string {
	var out []string
	for _, p := range f.procs {
		for _, line := range strings.Split(p.Out.String(), "\n") {
			if containsAll(line, parts...) {
				out = append(out, p.Name+": "+line)
				break
			}
		}
	}
	return out
}

// replaceExited starts a new replica for each that has ended.
func (f *fleet) replaceExited() {
	for _, p := range f.procs {
		if !p.Exited() || f.replaced[p] {
			continue
		}
		f.replaced[p] = true
		if !f.killed[p] {
			f.selfExits++
			f.exitNotes = append(f.exitNotes, fmt.Sprintf("%s: %v: %s", p.Name, p.Err(), strings.TrimSpace(tail(p.Out.String(), 2))))
		}
		f.start()
	}
}

func (f *fleet) byName(name string) *proc {
	for _, p := range f.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (f *fleet) names() []string {
	var out []string
	for _, p := range f.procs {
		out = append(out, p.Name)
	}
	return out
}

func (f *fleet) live() []string {
	var out []string
	for _, p := range f.procs {
		if !p.Exited() {
			out = append(out, p.Name)
		}
	}
	return out
}

// takeovers counts the lease's changes of holder and returns the longest
// time from a kill to the next acquisition.
func (w *writeWatch) takeovers(kills []chaosKill) (int, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	for _, k := range kills {
		for _, tm := range w.terms {
			if tm.Acquired.After(k.at) {
				longest = max(longest, tm.Acquired.Sub(k.at))
				break
			}
		}
	}
	return max(0, len(w.terms)-1), longest
}

// quorumSnapshot returns the registered gangs and their quorum.
func (w *podWatch) quorumSnapshot() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.quorum))
	for g, q := range w.quorum {
		out[g] = q
	}
	return out
}
