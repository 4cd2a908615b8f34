package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"muster.dev/muster/pkg/capacity"
)

// Report is what a sandbox run found. Its JSON form (--output) is part of
// muster's interface: the keys are stable and documented in docs/sandbox.md.
type Report struct {
	// Scheduler is "muster" or "default" (kube-scheduler's default profile).
	Scheduler string `json:"scheduler"`
	Trace     string `json:"trace"`
	// TimeScale is how much faster than declared time the trace ran.
	TimeScale float64 `json:"timeScale"`
	// TraceSeconds is the run's length in trace time.
	TraceSeconds float64       `json:"traceSeconds"`
	Pods         PodCounts     `json:"pods"`
	Queues       []QueueReport `json:"queues"`
	Gangs        GangReport    `json:"gangs"`
	// Placement counts pods bound, by role and capacity type.
	Placement []PlacementCount `json:"placement"`
	// AppsLost counts Spark applications and training jobs lost to spot
	// interruptions (a driver or a worker taken away with its node).
	AppsLost int `json:"appsLostToInterruptions"`
	// AppsPreempted counts apps that ended because a driver or worker was
	// preempted.
	AppsPreempted int `json:"appsLostToPreemption"`
	// Domains are the racks and blocks each training gang with a topology
	// constraint or DRA GPUs ran in.
	Domains []GangDomains `json:"domains,omitempty"`
	// Timeline lists what happened, in trace time.
	Timeline []string `json:"timeline"`
	// Series is what the charts of the HTML report show (WriteHTML); not
	// part of the JSON report.
	Series Series `json:"-"`
}

// Series is the run over time, sampled every second of real time. Times
// are trace time since the start.
type Series struct {
	Points []SeriesPoint
	// Marks are the spot interruptions: notices, capacity gone, replaced.
	Marks []Mark
	// Gangs are the training jobs' and Spark apps' waits for admission.
	Gangs []GangWait
}

// SeriesPoint is one sample of the run.
type SeriesPoint struct {
	At               time.Duration
	Running, Pending int
	GangsWaiting     int
	Spot, OnDemand   int
	HeldCPU, FairCPU map[string]float64 // cores by leaf queue
}

// Mark is a moment the charts mark.
type Mark struct {
	At    time.Duration
	Label string
}

// GangWait is how long a gang waited from its first pod to its quorum bound.
type GangWait struct {
	Gang, Kind, Queue string
	Wait              time.Duration
	// Admitted is false for a gang that never reached its quorum: Wait is
	// then until the end of the run.
	Admitted bool
}

// PodCounts are totals over the run.
type PodCounts struct {
	Submitted int `json:"submitted"`
	Bound     int `json:"bound"`
	Succeeded int `json:"succeeded"`
	// NeverBound counts pods still waiting when the run ended.
	NeverBound int `json:"neverBound"`
}

// QueueReport is one leaf queue's figures. Waits are in trace time.
type QueueReport struct {
	Queue   string  `json:"queue"`
	Pods    int     `json:"pods"`
	WaitP50 float64 `json:"waitP50Seconds"`
	WaitP95 float64 `json:"waitP95Seconds"`
	WaitMax float64 `json:"waitMaxSeconds"`
	// AvgCPU is the CPU the queue held, AvgFairCPU its weighted DRF fair
	// share, both averaged over the moments it wanted any; ShareRatio is
	// AvgCPU / AvgFairCPU.
	AvgCPU     float64 `json:"avgCPU"`
	AvgFairCPU float64 `json:"avgFairShareCPU"`
	ShareRatio float64 `json:"shareOfFairShare"`
}

// GangReport counts gangs: training jobs and Spark apps with a reservation.
type GangReport struct {
	Total    int `json:"total"`
	Admitted int `json:"admitted"`
	TimedOut int `json:"timedOut"`
	// PartiallyBound counts gangs that, before they ever reached their
	// quorum, had some but fewer than their quorum of members bound for
	// longer than a binding burst: with muster it must be 0. Members that
	// finish, are lost or are replaced after the quorum do not count.
	PartiallyBound int `json:"partiallyBound"`
}

// PlacementCount is how many pods of a role went to a capacity type.
type PlacementCount struct {
	Role         string `json:"role"`
	CapacityType string `json:"capacityType"`
	Pods         int    `json:"pods"`
}

// build assembles the report.
func (o *observer) report(scheduler, trace string, timedOut int) Report {
	now := o.clock.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	r := Report{Scheduler: scheduler, Trace: trace, TimeScale: o.scale, TraceSeconds: o.traceTime(now).Seconds(), Timeline: append([]string{}, o.log...)}
	waits := map[string][]time.Duration{}
	pods := map[string]int{}
	place := map[[2]string]int{}
	for _, p := range o.pods {
		r.Pods.Submitted++
		pods[p.queue]++
		if p.finished && !p.bound.IsZero() {
			r.Pods.Succeeded++
		}
		if p.bound.IsZero() {
			if p.pending() {
				r.Pods.NeverBound++
			}
			continue
		}
		r.Pods.Bound++
		waits[p.queue] = append(waits[p.queue], time.Duration(float64(p.bound.Sub(p.submitted))*o.scale))
		ct := string(p.capType)
		if ct == "" {
			ct = string(capacity.OnDemand)
		}
		place[[2]string{string(p.role), ct}]++
	}
	if o.tree != nil {
		for _, q := range o.tree.Leaves() {
			ds := sortedDurations(waits[q.Path])
			qr := QueueReport{Queue: q.Path, Pods: pods[q.Path],
				WaitP50: percentile(ds, 0.5).Seconds(), WaitP95: percentile(ds, 0.95).Seconds(), WaitMax: percentile(ds, 1).Seconds()}
			if a := o.acc[q.Path]; a != nil && a.samples > 0 {
				qr.AvgCPU, qr.AvgFairCPU = round1(a.alloc/float64(a.samples)), round1(a.fair/float64(a.samples))
				if qr.AvgFairCPU > 0 {
					qr.ShareRatio = round2(qr.AvgCPU / qr.AvgFairCPU)
				}
			}
			r.Queues = append(r.Queues, qr)
		}
	}
	r.Series = o.seriesLocked(now)
	for _, g := range o.gangs {
		r.Gangs.Total++
		if g.admitted {
			r.Gangs.Admitted++
		}
		if g.partial || !g.partialSince.IsZero() && now.Sub(g.partialSince) > partialGrace {
			r.Gangs.PartiallyBound++
		}
	}
	r.Gangs.TimedOut = timedOut
	for k, n := range place {
		r.Placement = append(r.Placement, PlacementCount{Role: k[0], CapacityType: k[1], Pods: n})
	}
	sort.Slice(r.Placement, func(i, j int) bool {
		a, b := r.Placement[i], r.Placement[j]
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.CapacityType < b.CapacityType
	})
	r.AppsLost, r.AppsPreempted = len(o.lost), len(o.preempted)
	r.Domains = o.domainsLocked()
	return r
}

// seriesLocked copies the samples and gang waits for the report; o.mu is held.
func (o *observer) seriesLocked(now time.Time) Series {
	s := Series{Points: slices.Clone(o.points), Marks: slices.Clone(o.marks)}
	queueOf := map[string]string{}
	for _, p := range o.pods {
		queueOf[p.app] = p.queue
	}
	for _, g := range o.gangs {
		gw := GangWait{Gang: g.key, Kind: g.kind, Queue: queueOf[g.key], Admitted: g.admitted}
		end := now
		if g.admitted {
			end = g.admittedAt
		}
		gw.Wait = time.Duration(float64(end.Sub(g.submitted)) * o.scale)
		s.Gangs = append(s.Gangs, gw)
	}
	sort.Slice(s.Gangs, func(i, j int) bool { return s.Gangs[i].Gang < s.Gangs[j].Gang })
	return s
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Print renders one report for a terminal.
func (r Report) Print(w io.Writer) { printReports(w, r) }

// printReports renders one report, or several side by side (--compare).
func printReports(w io.Writer, rs ...Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head, rows := reportRows(rs)
	fmt.Fprintln(tw, "\t"+strings.Join(head, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	_ = tw.Flush()
}

// reportRows is the side-by-side table of the reports: the schedulers,
// then rows of a label and one cell per report. The terminal and the HTML
// report show the same.
func reportRows(rs []Report) (head []string, rows [][]string) {
	for _, r := range rs {
		head = append(head, r.Scheduler)
	}
	row := func(label string, f func(Report) string) {
		line := []string{label}
		for _, r := range rs {
			line = append(line, f(r))
		}
		rows = append(rows, line)
	}
	row("pods bound / submitted", func(r Report) string { return fmt.Sprintf("%d / %d", r.Pods.Bound, r.Pods.Submitted) })
	row("pods never bound", func(r Report) string { return fmt.Sprint(r.Pods.NeverBound) })
	row("gangs admitted / total", func(r Report) string { return fmt.Sprintf("%d / %d", r.Gangs.Admitted, r.Gangs.Total) })
	row("gangs timed out", func(r Report) string { return fmt.Sprint(r.Gangs.TimedOut) })
	row("gangs partially bound", func(r Report) string { return fmt.Sprint(r.Gangs.PartiallyBound) })
	row("apps lost to interruptions", func(r Report) string { return fmt.Sprint(r.AppsLost) })
	row("apps lost to preemption", func(r Report) string { return fmt.Sprint(r.AppsPreempted) })
	for _, role := range []string{"driver", "executor", "other"} {
		row(role+" pods on spot / on-demand", func(r Report) string {
			spot, od := 0, 0
			for _, p := range r.Placement {
				if p.Role != role {
					continue
				}
				if p.CapacityType == string(capacity.Spot) {
					spot += p.Pods
				} else {
					od += p.Pods
				}
			}
			return fmt.Sprintf("%d / %d", spot, od)
		})
	}
	if len(rs) > 0 {
		for _, d := range rs[0].Domains {
			row(d.Gang+" ("+d.Placement+"): racks / blocks", func(r Report) string { return domainsOf(r, d.Gang) })
		}
		for i := range rs[0].Queues {
			q := rs[0].Queues[i].Queue
			row(q+": wait p50/p95/max", func(r Report) string {
				for _, qr := range r.Queues {
					if qr.Queue == q {
						return fmt.Sprintf("%s / %s / %s", secs(qr.WaitP50), secs(qr.WaitP95), secs(qr.WaitMax))
					}
				}
				return "-"
			})
			row(q+": CPU held / fair share", func(r Report) string {
				for _, qr := range r.Queues {
					if qr.Queue == q {
						return fmt.Sprintf("%.1f / %.1f (%.0f%%)", qr.AvgCPU, qr.AvgFairCPU, 100*qr.ShareRatio)
					}
				}
				return "-"
			})
		}
	}
	return head, rows
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}
