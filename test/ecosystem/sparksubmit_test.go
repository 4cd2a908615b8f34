package ecosystem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"muster.dev/muster/test/framework"
)

// Spark itself cannot run here (no registry serves its jars), so the Spark
// operator's SPARK_HOME holds a stand-in bin/spark-submit that records its
// arguments and waits; the test reads them and does what Spark 4.0's
// spark-submit does in cluster mode (KubernetesClientApplication.run):
// create the driver pod, then its spark.properties ConfigMap, owned by the
// driver. Then, once the driver runs, it creates the executors as the
// driver's ExecutorPodsAllocator would. Every name, label, annotation,
// owner reference and field below is Spark's; the comments name the
// Spark source file (resource-managers/kubernetes/core/src/main/scala/
// org/apache/spark/deploy/k8s/...) each comes from.

// sparkSubmitScript records "$@" NUL-separated in $RECORD/<pid>.args and
// exits once the test has created the driver (<pid>.args.done), as
// spark-submit with spark.kubernetes.submission.waitAppCompletion=false
// returns once the driver pod exists.
const sparkSubmitScript = `#!/bin/sh
set -eu
out="%s/$$.args"
printf '%%s\0' "$@" > "$out.tmp"
mv "$out.tmp" "$out"
i=0
while [ ! -e "$out.done" ]; do
  i=$((i+1))
  if [ "$i" -gt 600 ]; then echo "spark-submit stand-in: nobody created the driver" >&2; exit 1; fi
  sleep 0.1
done
`

// sparkVersion is the Spark the example's image runs (docker.io/library/spark:4.0.0).
const sparkVersion = "4.0.0"

// sparkHome is a SPARK_HOME whose bin/spark-submit is the stand-in.
type sparkHome struct {
	dir, record string
}

func newSparkHome(t *testing.T) *sparkHome {
	t.Helper()
	h := &sparkHome{dir: t.TempDir()}
	h.record = filepath.Join(h.dir, "submissions")
	require.NoError(t, os.MkdirAll(filepath.Join(h.dir, "bin"), 0o755))
	require.NoError(t, os.MkdirAll(h.record, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(h.dir, "bin", "spark-submit"), fmt.Appendf(nil, sparkSubmitScript, h.record), 0o755))
	return h
}

// submission is one spark-submit call as the stand-in recorded it.
type submission struct {
	file string
	args []string
	// conf is every --conf, the later winning, plus what spark-submit
	// derives from its other options (SparkSubmitArguments).
	conf               map[string]string
	mainClass, primary string
	appArgs            []string
}

// wait waits for the next spark-submit call the operator makes.
func (h *sparkHome) wait(t *testing.T, timeout time.Duration) *submission {
	t.Helper()
	var s *submission
	framework.WaitFor(t, timeout, "the Spark operator to run spark-submit", func(context.Context) (bool, error) {
		files, err := filepath.Glob(filepath.Join(h.record, "*.args"))
		if err != nil || len(files) == 0 {
			return false, err
		}
		sort.Strings(files)
		for _, f := range files {
			if _, err := os.Stat(f + ".done"); err == nil {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return false, err
			}
			s = parseSubmission(f, strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00"))
			return true, nil
		}
		return false, nil
	})
	return s
}

// done lets the stand-in spark-submit exit.
func (s *submission) done(t *testing.T) {
	t.Helper()
	require.NoError(t, os.WriteFile(s.file+".done", nil, 0o644))
}

// parseSubmission reads spark-submit's command line as the operator writes
// it (spark-operator internal/controller/sparkapplication/submission.go).
func parseSubmission(file string, args []string) *submission {
	s := &submission{file: file, args: args, conf: map[string]string{}}
	valued := map[string]string{"--master": "spark.master", "--deploy-mode": "spark.submit.deployMode",
		"--name": "spark.app.name", "--jars": "spark.jars", "--files": "spark.files", "--py-files": "spark.submit.pyFiles",
		"--proxy-user": "", "--class": "", "--conf": "", "--properties-file": ""}
	for i := 0; i < len(args); i++ {
		key, isOpt := valued[args[i]]
		switch {
		case isOpt && i+1 < len(args):
			v := args[i+1]
			switch args[i] {
			case "--conf":
				k, val, _ := strings.Cut(v, "=")
				s.conf[k] = val
			case "--class":
				s.mainClass = v
			default:
				if key != "" {
					s.conf[key] = v
				}
			}
			i++
		case s.primary == "":
			s.primary = args[i]
		default:
			s.appArgs = append(s.appArgs, args[i])
		}
	}
	return s
}

// uniqueID is KubernetesUtils.uniqueID: 8 random bytes, hex.
func uniqueID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

var nonLabelChars = regexp.MustCompile(`[^a-z0-9\-.]+`)

// appNameLabel is KubernetesConf.getAppNameLabel: the app name lowercased,
// other characters made "-", at most 63, trimmed to alphanumerics.
func appNameLabel(name string) string {
	s := nonLabelChars.ReplaceAllString(strings.ToLower(name), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-.")
}

// sparkApp is what Spark resolves for an application at submission.
type sparkApp struct {
	sub       *submission
	namespace string
	// appID is KubernetesConf.getKubernetesAppId: "spark-" and a UUID
	// without dashes; it is the pods' spark-app-selector.
	appID string
	// prefix is KubernetesConf.getResourceNamePrefix: the app name label
	// and a unique id; executors are named prefix-exec-N.
	prefix       string
	driverName   string
	driverConfig string
	driver       *v1.Pod
}

func resolveSparkApp(t *testing.T, s *submission) *sparkApp {
	t.Helper()
	uuid := uniqueID(t) + uniqueID(t)
	a := &sparkApp{sub: s, namespace: s.conf["spark.kubernetes.namespace"], appID: "spark-" + uuid,
		prefix: appNameLabel(s.conf["spark.app.name"]) + "-" + uniqueID(t)}
	a.driverName = s.conf["spark.kubernetes.driver.pod.name"]
	if a.driverName == "" {
		a.driverName = a.prefix + "-driver" // BasicDriverFeatureStep, driverPodName
	}
	// KubernetesClientUtils.configMapNameDriver
	a.driverConfig = "spark-drv-" + uniqueID(t) + "-conf-map"
	return a
}

// prefixed returns the conf keys under prefix (spark.kubernetes.driver.label.,
// ...executor.label.: KubernetesConf, KubernetesUtils.parsePrefixedKeyValuePairs).
func (a *sparkApp) prefixed(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range a.sub.conf {
		if name, ok := strings.CutPrefix(k, prefix); ok {
			out[name] = v
		}
	}
	return out
}

// podLabels are KubernetesDriverConf.labels / KubernetesExecutorConf.labels:
// the user's labels, then Spark's preset ones (Constants.scala:
// SPARK_VERSION_LABEL, SPARK_APP_ID_LABEL, SPARK_APP_NAME_LABEL,
// SPARK_ROLE_LABEL), which win.
func (a *sparkApp) podLabels(role string) map[string]string {
	l := a.prefixed("spark.kubernetes." + role + ".label.")
	l["spark-version"] = sparkVersion
	l["spark-app-selector"] = a.appID
	l["spark-app-name"] = appNameLabel(a.sub.conf["spark.app.name"])
	l["spark-role"] = role
	return l
}

// memoryRequest is BasicDriverFeatureStep / BasicExecutorFeatureStep's
// memory: spark.{driver,executor}.memory (MiB; "512m" here) plus the
// overhead, max(0.1 × memory, 384 MiB).
func memoryRequest(t *testing.T, jvm string) resource.Quantity {
	t.Helper()
	mib := strings.TrimSuffix(strings.ToLower(jvm), "m")
	var n int64
	_, err := fmt.Sscanf(mib, "%d", &n)
	require.NoError(t, err, "a memory in MiB (\"512m\"): %q", jvm)
	return resource.MustParse(fmt.Sprintf("%dMi", n+max(n/10, 384)))
}

// properties is java.util.Properties.store's form of conf, as
// KubernetesClientUtils.buildStringFromPropertiesMap writes spark.properties:
// a comment, the date, then key=value with ':' and '=' escaped.
func properties(configMap string, conf map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#Java properties built from Kubernetes config map with name: %s\n#%s\n", configMap,
		time.Now().UTC().Format("Mon Jan 02 15:04:05 MST 2006"))
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	esc := strings.NewReplacer(`\`, `\\`, ":", `\:`, "=", `\=`, " ", `\ `)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", esc.Replace(k), strings.NewReplacer(`\`, `\\`, ":", `\:`, "=", `\=`).Replace(conf[k]))
	}
	return b.String()
}

// ownedByDriver is KubernetesUtils.addOwnerReference's reference to the
// driver pod (controller), on the driver's ConfigMap and, from
// BasicExecutorFeatureStep, on each executor.
func ownedByDriver(driver *v1.Pod) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: driver.Name, UID: driver.UID, Controller: new(true)}}
}

// createDriver does what spark-submit does: the driver pod, then its
// spark.properties ConfigMap owned by it (KubernetesClientApplication.run).
func (a *sparkApp) createDriver(t *testing.T) *v1.Pod {
	t.Helper()
	pod := a.driverPod(t)
	created, err := framework.CP.Client.CoreV1().Pods(a.namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(t, err, "creating the driver")
	a.driver = created
	// The resolved configuration: the submission's, plus the system
	// properties the driver's feature steps add (BasicDriverFeatureStep,
	// getAdditionalPodSystemProperties; DriverServiceFeatureStep).
	conf := map[string]string{}
	for k, v := range a.sub.conf {
		conf[k] = v
	}
	conf["spark.app.id"] = a.appID
	conf["spark.app.submitTime"] = fmt.Sprint(time.Now().UnixMilli())
	conf["spark.kubernetes.driver.pod.name"] = a.driverName
	conf["spark.kubernetes.executor.podNamePrefix"] = a.prefix
	conf["spark.kubernetes.memoryOverheadFactor"] = "0.1"
	conf["spark.kubernetes.submitInDriver"] = "true"
	conf["spark.driver.host"] = a.prefix + "-driver-svc." + a.namespace + ".svc"
	conf["spark.driver.port"] = "7078"
	conf["spark.driver.blockManager.port"] = "7079"
	cm := &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.driverConfig, OwnerReferences: ownedByDriver(created)},
		Immutable:  new(true),
		// buildSparkConfDirFilesMap's spark.properties, plus the namespace
		// key run adds for buildConfigMap.
		Data: map[string]string{"spark.properties": properties(a.driverConfig, conf), "spark.kubernetes.namespace": a.namespace},
	}
	_, err = framework.CP.Client.CoreV1().ConfigMaps(a.namespace).Create(context.Background(), cm, metav1.CreateOptions{})
	require.NoError(t, err, "creating the driver's ConfigMap")
	return created
}
