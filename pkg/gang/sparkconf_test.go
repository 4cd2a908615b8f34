package gang

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

func executorOf(milliCPU, memoryMiB int64) resources.Vector {
	return resources.Vector{v1.ResourceCPU: milliCPU, v1.ResourceMemory: memoryMiB * mib, v1.ResourcePods: 1}
}

// TestSparkExecutors checks the count and size against Spark 4.x's own
// rules (see sparkExecutors for the source files), worked by hand.
func TestSparkExecutors(t *testing.T) {
	for name, tc := range map[string]struct {
		conf    map[string]string
		n       int32
		size    resources.Vector
		wantErr string
	}{
		"nothing set: Spark's 2 executors of 1 core, 1g + 384m": {
			conf: map[string]string{}, n: 2, size: executorOf(1000, 1024+384),
		},
		"instances, cores, memory: the overhead's 384 MiB floor": {
			conf: map[string]string{"spark.executor.instances": "3", "spark.executor.cores": "2", "spark.executor.memory": "512m"},
			n:    3, size: executorOf(2000, 512+384),
		},
		"a large executor: 10% overhead, truncated": {
			conf: map[string]string{"spark.executor.instances": "1", "spark.executor.memory": "4g"},
			n:    1, size: executorOf(1000, 4096+409),
		},
		"an explicit overhead wins over factor and floor": {
			conf: map[string]string{"spark.executor.memory": "2g", "spark.executor.memoryOverhead": "100m"},
			n:    2, size: executorOf(1000, 2048+100),
		},
		"a bare overhead is MiB": {
			conf: map[string]string{"spark.executor.memory": "2048", "spark.executor.memoryOverhead": "100"},
			n:    2, size: executorOf(1000, 2048+100),
		},
		"the executor factor wins over the kubernetes one": {
			conf: map[string]string{"spark.executor.memory": "10g", "spark.executor.memoryOverheadFactor": "0.2", "spark.kubernetes.memoryOverheadFactor": "0.5"},
			n:    2, size: executorOf(1000, 10240+2048),
		},
		"a Python application: factor 0.4 and pyspark memory": {
			conf: map[string]string{"spark.executor.memory": "1g", "spark.kubernetes.resource.type": "python", "spark.executor.pyspark.memory": "256m"},
			n:    2, size: executorOf(1000, 1024+409+256),
		},
		"pyspark memory counts only for Python": {
			conf: map[string]string{"spark.executor.memory": "1g", "spark.executor.pyspark.memory": "256m"},
			n:    2, size: executorOf(1000, 1024+384),
		},
		"a raised minimum overhead": {
			conf: map[string]string{"spark.executor.memory": "1g", "spark.executor.minMemoryOverhead": "1g"},
			n:    2, size: executorOf(1000, 2048),
		},
		"off-heap memory, in bytes when bare": {
			conf: map[string]string{"spark.memory.offHeap.enabled": "true", "spark.memory.offHeap.size": "1073741824"},
			n:    2, size: executorOf(1000, 1024+384+1024),
		},
		"off-heap size without enabled is ignored": {
			conf: map[string]string{"spark.memory.offHeap.size": "1g"},
			n:    2, size: executorOf(1000, 1024+384),
		},
		"the kubernetes cpu request wins over cores": {
			conf: map[string]string{"spark.executor.cores": "4", "spark.kubernetes.executor.request.cores": "500m"},
			n:    2, size: executorOf(500, 1024+384),
		},
		"a GPU by vendor": {
			conf: map[string]string{"spark.executor.resource.gpu.amount": "1", "spark.executor.resource.gpu.vendor": "nvidia.com"},
			n:    2, size: resources.Vector{v1.ResourceCPU: 1000, v1.ResourceMemory: 1408 * mib, v1.ResourcePods: 1, "nvidia.com/gpu": 1},
		},
		"instances 0: no reservation": {
			conf: map[string]string{"spark.executor.instances": "0"},
		},
		"dynamic allocation: minExecutors alone": {
			conf: map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "3"},
			n:    3, size: executorOf(1000, 1408),
		},
		"dynamic allocation: the largest of min, initial and instances": {
			conf: map[string]string{"spark.dynamicAllocation.enabled": "TRUE", "spark.dynamicAllocation.minExecutors": "1",
				"spark.dynamicAllocation.initialExecutors": "4", "spark.executor.instances": "2"},
			n: 4, size: executorOf(1000, 1408),
		},
		"dynamic allocation with nothing set starts with none": {
			conf: map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.executor.instances": "0"},
		},
		"dynamic allocation off: instances, not min": {
			conf: map[string]string{"spark.dynamicAllocation.enabled": "false", "spark.dynamicAllocation.minExecutors": "5", "spark.executor.instances": "1"},
			n:    1, size: executorOf(1000, 1408),
		},
		"a Kubernetes quantity is not a JVM size": {
			conf:    map[string]string{"spark.executor.memory": "2Gi"},
			wantErr: `ConfigMap ml/c: spark.executor.memory="2Gi" is not a JVM memory size such as "512m" or "2g" (unknown unit "gi")`,
		},
		"a fractional size": {
			conf:    map[string]string{"spark.executor.memory": "1.5g"},
			wantErr: `ConfigMap ml/c: spark.executor.memory="1.5g" is not a JVM memory size such as "512m" or "2g" (a whole number is needed)`,
		},
		"bad instances": {
			conf:    map[string]string{"spark.executor.instances": "many"},
			wantErr: `ConfigMap ml/c: spark.executor.instances="many" is not a whole number of at least 0`,
		},
		"too many executors": {
			conf:    map[string]string{"spark.executor.instances": "200000"},
			wantErr: `ConfigMap ml/c: spark.executor.instances="200000" asks for 200000 executors, more than muster's limit of 100000`,
		},
		"initial above the maximum": {
			conf: map[string]string{"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.initialExecutors": "5",
				"spark.dynamicAllocation.maxExecutors": "2"},
			wantErr: `ConfigMap ml/c: spark.dynamicAllocation.maxExecutors="2" is below the initial executors (5)`,
		},
		"a bad boolean": {
			conf:    map[string]string{"spark.dynamicAllocation.enabled": "yes"},
			wantErr: `ConfigMap ml/c: spark.dynamicAllocation.enabled="yes" is not true or false`,
		},
		"a factor too large to count": {
			conf:    map[string]string{"spark.executor.memory": "1g", "spark.executor.memoryOverheadFactor": "1e300"},
			wantErr: `ConfigMap ml/c: spark.executor.memory="1g" times the memory overhead factor 1e+300 is more memory than muster can count`,
		},
		"a bad factor": {
			conf:    map[string]string{"spark.kubernetes.memoryOverheadFactor": "-1"},
			wantErr: `ConfigMap ml/c: spark.kubernetes.memoryOverheadFactor="-1" is not a number above 0 such as "0.1"`,
		},
		"off-heap enabled without a size": {
			conf:    map[string]string{"spark.memory.offHeap.enabled": "true"},
			wantErr: `ConfigMap ml/c: spark.memory.offHeap.size="" must be above 0 when spark.memory.offHeap.enabled is true`,
		},
		"a GPU without its vendor": {
			conf:    map[string]string{"spark.executor.resource.gpu.amount": "1"},
			wantErr: `ConfigMap ml/c: spark.executor.resource.gpu.amount="1" needs spark.executor.resource.gpu.vendor (Spark refuses a resource without its vendor)`,
		},
		"a bad cpu request": {
			conf:    map[string]string{"spark.kubernetes.executor.request.cores": "lots"},
			wantErr: `ConfigMap ml/c: spark.kubernetes.executor.request.cores="lots" is not a cpu quantity above 0 such as "1" or "500m"`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			n, size, err := sparkExecutors(sparkConf{from: "ConfigMap ml/c", values: tc.conf})
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				var confErr *SparkConfError
				assert.ErrorAs(t, err, &confErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.n, n)
			assert.Equal(t, tc.size, size)
		})
	}
}

func TestJVMBytes(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "2g": 2 << 30, "2G": 2 << 30, "1536k": 1536 << 10,
		"1gb": 1 << 30, " 3m ": 3 << 20, "7": 7 << 20, "10b": 10, "1t": 1 << 40} {
		got, err := jvmBytes(in, mib)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "m", "1.5g", "-1g", "2Gi", "1e3", "99999999999p", "1 g"} {
		_, err := jvmBytes(in, mib)
		assert.Error(t, err, in)
	}
}

func TestParseProperties(t *testing.T) {
	// As java.util.Properties.store writes Spark's spark.properties: a
	// comment, a date, ':' and '=' in values escaped.
	text := "#Java properties built from Kubernetes config map with name: spark-drv-1-conf-map\n" +
		"#Mon Dec 07 11:00:00 UTC 2026\n" +
		"spark.executor.instances=2\n" +
		"spark.master=k8s\\://https\\://10.0.0.1\\:443\n" +
		"spark.kubernetes.driver.label.a\\=b=c\n" +
		"! another comment\n" +
		"spark.executor.extraJavaOptions=-Da\\=1 \\\n    -Db\\=2\n" +
		"spark.app.name = caf\\u00e9\n" +
		"   spark.empty\n"
	assert.Equal(t, map[string]string{
		"spark.executor.instances":          "2",
		"spark.master":                      "k8s://https://10.0.0.1:443",
		"spark.kubernetes.driver.label.a=b": "c",
		"spark.executor.extraJavaOptions":   "-Da=1 -Db=2",
		"spark.app.name":                    "café",
		"spark.empty":                       "",
	}, parseProperties(text))
}

// FuzzSparkProperties: whatever a tenant's spark.properties holds, reading
// a reservation from it never panics; it is either refused with a
// SparkConfError naming the key on one short line, or a count within
// muster's limit and an executor of positive cpu, memory and one pod.
func FuzzSparkProperties(f *testing.F) {
	f.Add("spark.executor.instances=2\nspark.executor.memory=512m\n")
	f.Add("spark.dynamicAllocation.enabled=true\nspark.dynamicAllocation.minExecutors=3\nspark.dynamicAllocation.maxExecutors=2\n")
	f.Add("spark.memory.offHeap.enabled=true\nspark.memory.offHeap.size=9223372036854775807p\n")
	f.Add("spark.executor.resource.gpu.amount=1\nspark.executor.resource.gpu.vendor=nvidia.com\nspark.kubernetes.executor.request.cores=1e3\n")
	f.Add("spark.executor.memory=8589934591p\nspark.executor.memoryOverheadFactor=1e308\n")
	f.Fuzz(func(t *testing.T, text string) {
		n, size, err := sparkExecutors(sparkConf{from: "ConfigMap ml/c key spark.properties", values: parseProperties(text)})
		if err != nil {
			var ce *SparkConfError
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, not a SparkConfError: %v", err, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "ConfigMap ml/c key spark.properties: "+ce.Field+"=") || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("message %q does not name the key on one line", msg)
			}
			return
		}
		if n < 0 || n > MaxMembers {
			t.Fatalf("%d executors", n)
		}
		if n == 0 {
			return
		}
		if size[v1.ResourceCPU] <= 0 || size[v1.ResourceMemory] <= 0 || size[v1.ResourcePods] != 1 {
			t.Fatalf("executor %v", size)
		}
		for name, a := range size {
			if a <= 0 {
				t.Fatalf("%s=%d in %v", name, a, size)
			}
		}
	})
}
