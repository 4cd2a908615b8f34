package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/manifests"
)

// PrometheusJob is the scrape job of muster-scheduler in the sandbox's
// Prometheus: the job name the Prometheus Operator gives the metrics
// Service, so that the shipped alerts and dashboard work unchanged.
const PrometheusJob = "muster-scheduler-metrics"

// DefaultScrapeInterval is how often the sandbox's Prometheus scrapes: a
// replay is minutes long, so a second apart.
const DefaultScrapeInterval = time.Second

// prometheusServer is a Prometheus process scraping the sandbox's scheduler.
type prometheusServer struct {
	URL     string
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// prometheusConfig is the configuration of the sandbox's Prometheus: one
// target, the scheduler's secure port (self-signed certificate; /metrics
// needs no credentials in the sandbox), and muster's alerts.
func prometheusConfig(job, target string, interval time.Duration, rulesFile string) ([]byte, error) {
	cfg := map[string]any{
		"global": map[string]any{
			"scrape_interval":     interval.String(),
			"scrape_timeout":      interval.String(),
			"evaluation_interval": interval.String(),
		},
		"rule_files": []string{rulesFile},
		"scrape_configs": []any{map[string]any{
			"job_name":       job,
			"scheme":         "https",
			"tls_config":     map[string]any{"insecure_skip_verify": true},
			"static_configs": []any{map[string]any{"targets": []string{target}}},
		}},
	}
	return yaml.Marshal(cfg)
}

// alertRules returns the spec of manifests/prometheus-rule.yaml: a plain
// Prometheus rules file.
func alertRules() ([]byte, error) {
	var pr struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(manifests.PrometheusRule, &pr); err != nil {
		return nil, fmt.Errorf("reading the PrometheusRule: %w", err)
	}
	return yaml.Marshal(pr.Spec)
}

// startPrometheus starts bin with its data in dir (a fresh directory),
// listening on a free loopback port and scraping target every interval, and
// waits until it has scraped target once.
func startPrometheus(ctx context.Context, bin, dir, job, target string, interval time.Duration) (*prometheusServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating Prometheus' directory: %w", err)
	}
	rules, err := alertRules()
	if err != nil {
		return nil, err
	}
	rulesFile := filepath.Join(dir, "muster-rules.yaml")
	if err := os.WriteFile(rulesFile, rules, 0o644); err != nil {
		return nil, fmt.Errorf("writing Prometheus' rules: %w", err)
	}
	cfg, err := prometheusConfig(job, target, interval, rulesFile)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("writing Prometheus' configuration: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &prometheusServer{URL: "http://" + addr, dir: dir, logPath: filepath.Join(dir, "prometheus.log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("creating Prometheus' log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	p.cmd = exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--storage.tsdb.retention.time=1d",
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, time.Minute); err != nil {
		_ = p.stop()
		return nil, err
	}
	if err := p.waitScraped(ctx, job, time.Minute); err != nil {
		_ = p.stop()
		return nil, err
	}
	return p, nil
}

// waitScraped polls until Prometheus has scraped the target successfully
// (up is 1), so that a replay started next is seen from its first second:
// Prometheus starts scraping new targets up to 5 seconds after it is ready.
func (p *prometheusServer) waitScraped(ctx context.Context, job string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	query := url.Values{"query": {fmt.Sprintf("up{job=%q} == 1", job)}}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?"+query.Encode(), nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			last = err.Error()
			return false, nil
		}
		last = "no successful scrape yet"
		return len(body.Data.Result) > 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Prometheus to scrape %s (%s): %w%s", job, last, err, p.logTail())
	}
	return nil
}

// waitReady polls /-/ready until Prometheus answers 200, exits, or the
// timeout passes.
func (p *prometheusServer) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("prometheus exited: %v", p.waitErr)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/-/ready", nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Prometheus to be ready: %w%s", err, p.logTail())
	}
	return nil
}

// logTail is the end of Prometheus' log, for an error message.
func (p *prometheusServer) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "; its log (" + p.logPath + ") ends:\n" + string(bytes.TrimSpace(b))
}

// stop asks Prometheus to shut down (SIGTERM: it flushes and exits) and
// kills it if it has not within 15 seconds.
func (p *prometheusServer) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping Prometheus: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("prometheus did not stop within 15s of SIGTERM; killed")
	}
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for Prometheus: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// LookPrometheus finds the prometheus binary: bin if given, else
// $MUSTER_PROMETHEUS_BIN, else prometheus on PATH.
func LookPrometheus(bin string) (string, error) {
	if bin == "" {
		bin = os.Getenv("MUSTER_PROMETHEUS_BIN")
	}
	if bin == "" {
		bin = "prometheus"
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("prometheus not found (%w): apt-get install prometheus, or name it with --prometheus-bin or MUSTER_PROMETHEUS_BIN", err)
	}
	return p, nil
}
