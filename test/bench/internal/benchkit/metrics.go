package benchkit

import (
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Histogram is a cumulative histogram's buckets: upper bounds and counts.
type Histogram struct {
	Upper  []float64
	Counts []float64 // cumulative, per upper bound
	Count  float64
	Sum    float64
}

// AttemptHistogram reads scheduler_scheduling_attempt_duration_seconds for a
// profile (every result) from the process's legacy registry, which every
// in-process scheduler shares: take it before and after a run and Sub.
func AttemptHistogram(b testing.TB, profile string) Histogram {
	b.Helper()
	return readHistogram(b, "scheduler_scheduling_attempt_duration_seconds", map[string]string{"profile": profile})
}

func readHistogram(b testing.TB, name string, want map[string]string) Histogram {
	b.Helper()
	fams, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		b.Fatalf("gathering metrics: %v", err)
	}
	var h Histogram
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			hist := m.GetHistogram()
			if h.Upper == nil {
				for _, bk := range hist.GetBucket() {
					h.Upper = append(h.Upper, bk.GetUpperBound())
				}
				h.Counts = make([]float64, len(h.Upper))
			}
			for i, bk := range hist.GetBucket() {
				h.Counts[i] += float64(bk.GetCumulativeCount())
			}
			h.Count += float64(hist.GetSampleCount())
			h.Sum += hist.GetSampleSum()
		}
	}
	return h
}

// Sub returns h minus an earlier reading.
func (h Histogram) Sub(before Histogram) Histogram {
	out := Histogram{Upper: h.Upper, Counts: make([]float64, len(h.Counts)), Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i]
		if i < len(before.Counts) {
			out.Counts[i] -= before.Counts[i]
		}
	}
	return out
}

// Quantile estimates the q-quantile (0..1) the way Prometheus's
// histogram_quantile does: linear within the bucket it falls in. NaN when
// empty.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count <= 0 {
		return math.NaN()
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for i, upper := range h.Upper {
		if h.Counts[i] >= rank {
			in := h.Counts[i] - below
			if in <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/in
		}
		lower, below = upper, h.Counts[i]
	}
	return lower // above the last bound
}

// Usage measures the process while a run goes: CPU time (user + system, of
// the whole process: scheduler, apiserver and etcd share it) and the peak of
// live heap, sampled every 100ms.
type Usage struct {
	cpu0  time.Duration
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	peak  uint64
	start time.Time
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapBytes() uint64 {
	s := make([]metrics.Sample, len(heapSample))
	copy(s, heapSample)
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		return s[0].Value.Uint64()
	}
	return 0
}

// StartUsage starts measuring.
func StartUsage() *Usage {
	u := &Usage{cpu0: cpuTime(), stop: make(chan struct{}), done: make(chan struct{}), start: time.Now(), peak: heapBytes()}
	go func() {
		defer close(u.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-u.stop:
				return
			case <-t.C:
				h := heapBytes()
				u.mu.Lock()
				u.peak = max(u.peak, h)
				u.mu.Unlock()
			}
		}
	}()
	return u
}

// Stop ends the measurement: process CPU seconds used, the mean number of
// cores busy, and the peak live heap in MiB.
func (u *Usage) Stop() (cpuSeconds, cores, heapMiB float64) {
	close(u.stop)
	<-u.done
	cpu := (cpuTime() - u.cpu0).Seconds()
	wall := time.Since(u.start).Seconds()
	u.mu.Lock()
	defer u.mu.Unlock()
	return cpu, cpu / wall, float64(u.peak) / (1 << 20)
}

// MetricSum adds up a counter's or gauge's samples, whose labels include
// want, from a scheduler's /metrics endpoint.
func MetricSum(b testing.TB, addr, name string, want map[string]string) float64 {
	b.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test endpoint
	resp, err := client.Get("https://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(fmt.Errorf("reading /metrics: %w", err))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	if fam, ok := mf[name]; ok {
	next:
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

// Get returns the body of a path of a scheduler's secure endpoint, such as
// /configz.
func Get(b testing.TB, addr, path string) string {
	b.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test endpoint
	resp, err := client.Get("https://" + addr + path)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(fmt.Errorf("reading %s: %w", path, err))
	}
	return string(body)
}

// Requests reads apiserver_request_total from the process's legacy registry
// (the in-process apiserver's), per "VERB resource[/subresource]".
func Requests(b testing.TB) map[string]float64 {
	b.Helper()
	out := map[string]float64{}
	for _, sm := range samples(b, "apiserver_request_total") {
		k := sm.l["verb"] + " " + sm.l["resource"]
		if sm.l["subresource"] != "" {
			k += "/" + sm.l["subresource"]
		}
		out[k] += sm.m.GetCounter().GetValue()
	}
	return out
}

// sample is one series of a metric family, with its labels as a map.
type sample struct {
	m *dto.Metric
	l map[string]string
}

// samples returns the series of the named family in the process's legacy
// registry.
func samples(b testing.TB, name string) []sample {
	b.Helper()
	fams, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		b.Fatalf("gathering metrics: %v", err)
	}
	var out []sample
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, sample{m: m, l: l})
		}
	}
	return out
}

// RequestsDelta returns the requests made since before, the busiest first,
// as "VERB resource: n" entries with n > 0 (at most top entries).
func RequestsDelta(before, after map[string]float64, top int) []string {
	type kv struct {
		k string
		v float64
	}
	var d []kv
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d = append(d, kv{k, n})
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i].v > d[j].v })
	var out []string
	for i := 0; i < len(d) && i < top; i++ {
		out = append(out, fmt.Sprintf("%s: %.0f", d[i].k, d[i].v))
	}
	return out
}

// ExtensionPoints reads the total time (seconds) the profile's scheduling
// cycles spent in each extension point, from
// scheduler_framework_extension_point_duration_seconds: take it before and
// after a run and subtract.
func ExtensionPoints(b testing.TB, profile string) map[string]float64 {
	b.Helper()
	out := map[string]float64{}
	for _, sm := range samples(b, "scheduler_framework_extension_point_duration_seconds") {
		if sm.l["profile"] == profile {
			out[sm.l["extension_point"]] += sm.m.GetHistogram().GetSampleSum()
		}
	}
	return out
}
