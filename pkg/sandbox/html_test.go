package sandbox

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"
)

// syntheticReport is a report with a series, as a run would produce.
func syntheticReport(scheduler string, lag float64) Report {
	r := Report{Scheduler: scheduler, Trace: "synthetic", TimeScale: 40, TraceSeconds: 600,
		Queues:   []QueueReport{{Queue: "root.ml"}, {Queue: "root.batch"}},
		Timeline: []string{"[01m00s] spot interruption notice: 3 node(s) of spot-a", "[03m00s] <script>alert(1)</script>"}}
	for i := 0; i <= 20; i++ {
		at := time.Duration(i) * 30 * time.Second
		r.Series.Points = append(r.Series.Points, SeriesPoint{At: at, Running: i, Pending: 20 - i, GangsWaiting: (20 - i) / 5,
			Spot: i / 2, OnDemand: i - i/2,
			HeldCPU: map[string]float64{"root.ml": float64(i) * lag, "root.batch": float64(20 - i)},
			FairCPU: map[string]float64{"root.ml": 12, "root.batch": 10}})
	}
	r.Series.Marks = []Mark{{At: time.Minute, Label: "interruption notice"}, {At: 3 * time.Minute, Label: "spot capacity gone"}}
	r.Series.Gangs = []GangWait{{Gang: "ml/train", Kind: kindTraining, Queue: "root.ml", Wait: time.Duration(lag * float64(time.Minute)), Admitted: true},
		{Gang: "spark-etl/etl", Kind: kindSpark, Queue: "root.batch", Wait: 30 * time.Second, Admitted: lag < 1}}
	return r
}

func TestWriteHTML(t *testing.T) {
	for name, tc := range map[string]struct {
		reports []Report
		charts  int
	}{
		"muster alone":             {[]Report{syntheticReport("muster", 0.5)}, 5},
		"muster beside default":    {[]Report{syntheticReport("muster", 0.5), syntheticReport("default", 1.5)}, 5},
		"no gangs, no series left": {[]Report{{Scheduler: "muster", Trace: "empty", Queues: []QueueReport{{Queue: "root.a"}}}}, 3},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, WriteHTML(&buf, tc.reports))
			page := buf.String()
			assert.True(t, strings.HasPrefix(page, "<!DOCTYPE html>"))
			assert.Equal(t, tc.charts, strings.Count(page, "<svg "), "one inline SVG per chart")
			assert.NotContains(t, page, "<?xml", "SVGs are inlined without their prolog")
			// Self-contained: nothing is fetched (namespaces are no fetch).
			for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*"([^"]*)"|url\(([^)]*)\)|@import`).FindAllString(page, -1) {
				assert.Failf(t, "the page refers to something outside it", "%s", m)
			}
			assert.NotContains(t, page, "<script", "text is escaped, and the page needs no script")
			for _, r := range tc.reports {
				assert.Contains(t, page, ">"+r.Scheduler+"<")
			}
			assert.Contains(t, page, "pods bound / submitted")
			assert.NotContains(t, page, "ZgotmplZ", "html/template refused a value")
		})
	}
	require.Error(t, WriteHTML(&bytes.Buffer{}, nil))
}

// chromium returns the headless browser, or skips the test on a machine
// without one; in CI (which installs it) a missing one fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("MUSTER_CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: apt-get install chromium (or set MUSTER_CHROMIUM_BIN)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI installs it: hack/install-test-tools.sh")
	}
	t.Skip(msg + ": this test screenshots the HTML report")
	return ""
}

// screenshot opens a page in headless Chromium and returns the screenshot.
func screenshot(t *testing.T, bin, page string, width, height int) image.Image {
	t.Helper()
	dir := t.TempDir()
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot,
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "file://"+page)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", out)
	f, err := os.Open(shot)
	require.NoError(t, err, "chromium wrote no screenshot: %s", out)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img
}

// inkStats counts the pixels that are not (near) white, and the distinct
// colours, of an image.
func inkStats(img image.Image) (inked float64, colors int) {
	seen := map[color.RGBA]bool{}
	ink, total := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			total++
			if int(c.R)+int(c.G)+int(c.B) < 3*235 {
				ink++
			}
			seen[c] = true
		}
	}
	return float64(ink) / float64(total), len(seen)
}

// TestHTMLReportScreenshot replays the short trace with muster and the
// default scheduler, writes the HTML report, opens it in headless Chromium
// and checks the screenshot is a page of charts, not a blank one. With
// MUSTER_SCREENSHOT_OUT set it keeps the screenshot there (docs/images).
func TestHTMLReportScreenshot(t *testing.T) {
	bin := chromium(t)
	_, ctx := ktesting.NewTestContext(t)
	var out bytes.Buffer
	rs, err := Compare(ctx, Options{Out: &out, Short: true, Timeout: 3 * time.Minute})
	require.NoError(t, err, out.String())
	require.Len(t, rs, 2)
	for _, r := range rs {
		require.NotEmpty(t, r.Series.Points, "%s: the observer sampled the run", r.Scheduler)
		require.NotEmpty(t, r.Series.Marks, "%s: the short trace's interruption is marked", r.Scheduler)
		require.NotEmpty(t, r.Series.Gangs, "%s: the gangs' waits", r.Scheduler)
	}

	page := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, WriteHTML(f, rs))
	require.NoError(t, f.Close())

	img := screenshot(t, bin, page, 1200, 2600)
	inked, colors := inkStats(img)
	t.Logf("screenshot %v: %.1f%% of the pixels inked, %d distinct colours", img.Bounds().Size(), 100*inked, colors)
	assert.Greater(t, inked, 0.03, "the page is (nearly) blank")
	assert.Greater(t, colors, 50, "the page has too few colours to hold charts")
	// Both schedulers' colours are drawn.
	for _, c := range schedulerColors[:2] {
		assert.True(t, hasColor(img, c), "no pixel of %s in the screenshot", hexColor(c))
	}
	if dst := os.Getenv("MUSTER_SCREENSHOT_OUT"); dst != "" {
		wf, err := os.Create(dst)
		require.NoError(t, err)
		require.NoError(t, png.Encode(wf, img))
		require.NoError(t, wf.Close())
	}
}

func hasColor(img image.Image, want color.RGBA) bool {
	b := img.Bounds()
	near := func(a, b uint8) bool { return max(a, b)-min(a, b) <= 6 }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if near(c.R, want.R) && near(c.G, want.G) && near(c.B, want.B) {
				return true
			}
		}
	}
	return false
}

// The screenshot check fails on a blank page (and on a page of text only).
func TestScreenshotCheckSeesBlankPage(t *testing.T) {
	bin := chromium(t)
	for name, body := range map[string]string{
		"blank": "",
		"text":  "<p>muster sandbox: the report has no charts</p>",
	} {
		t.Run(name, func(t *testing.T) {
			page := filepath.Join(t.TempDir(), "page.html")
			require.NoError(t, os.WriteFile(page, []byte("<!DOCTYPE html><html><body>"+body+"</body></html>"), 0o644))
			img := screenshot(t, bin, page, 1200, 2600)
			inked, colors := inkStats(img)
			assert.True(t, inked <= 0.03 || colors <= 50, "%s: %.2f%% inked, %d colours would pass as a report", name, 100*inked, colors)
			assert.False(t, hasColor(img, schedulerColors[0]))
		})
	}
}
