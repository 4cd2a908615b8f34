package gang

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"muster.dev/muster/pkg/resources"
)

// This file reads a Spark application's executor reservation from Spark's
// own configuration, as Spark 4.x itself sizes and counts its executors on
// Kubernetes, for drivers that carry no muster annotation. The keys, their
// defaults and units are Spark's (core/.../internal/config/package.scala,
// resource-managers/kubernetes/.../deploy/k8s/Config.scala).

// The Spark configuration keys muster reads.
const (
	sparkExecutorInstances    = "spark.executor.instances"
	sparkExecutorCores        = "spark.executor.cores"
	sparkExecutorRequestCores = "spark.kubernetes.executor.request.cores"
	sparkExecutorMemory       = "spark.executor.memory"
	sparkExecutorOverhead     = "spark.executor.memoryOverhead"
	sparkExecutorMinOverhead  = "spark.executor.minMemoryOverhead"
	sparkExecutorFactor       = "spark.executor.memoryOverheadFactor"
	sparkK8sFactor            = "spark.kubernetes.memoryOverheadFactor"
	sparkOffHeapEnabled       = "spark.memory.offHeap.enabled"
	sparkOffHeapSize          = "spark.memory.offHeap.size"
	sparkPySparkMemory        = "spark.executor.pyspark.memory"
	sparkResourceType         = "spark.kubernetes.resource.type"
	sparkDynamicEnabled       = "spark.dynamicAllocation.enabled"
	sparkDynamicMin           = "spark.dynamicAllocation.minExecutors"
	sparkDynamicInitial       = "spark.dynamicAllocation.initialExecutors"
	sparkDynamicMax           = "spark.dynamicAllocation.maxExecutors"
	sparkExecutorResource     = "spark.executor.resource."
)

// Spark's defaults for the keys above.
const (
	// defaultSparkExecutors: SchedulerBackendUtils.DEFAULT_NUMBER_EXECUTORS,
	// what Spark on Kubernetes asks for without dynamic allocation when
	// spark.executor.instances is unset.
	defaultSparkExecutors = 2
	// defaultExecutorMemoryMiB: spark.executor.memory, "1g".
	defaultExecutorMemoryMiB = 1024
	// defaultMinOverheadMiB: spark.executor.minMemoryOverhead, "384m".
	defaultMinOverheadMiB = 384
	// jvmOverheadFactor: spark.kubernetes.memoryOverheadFactor's default.
	jvmOverheadFactor = 0.1
	// nonJVMOverheadFactor: Constants.NON_JVM_MEMORY_OVERHEAD_FACTOR, which
	// BasicDriverFeatureStep writes as spark.kubernetes.memoryOverheadFactor
	// for Python and R applications that set none.
	nonJVMOverheadFactor = 0.4
)

const mib = 1 << 20

// sparkConf is a Spark application's configuration as one source has it,
// able to name where each key came from in a message.
type sparkConf struct {
	// from names the source: "SparkApplication ml/pi".
	from   string
	values map[string]string
	// field names where a key was written in the source, when not under
	// its own name ("spec.executor.memory"); absent: the key itself.
	field map[string]string
}

// SparkConfError is a Spark setting muster cannot use for a reservation.
// Its message names where it was read, the setting and its value, for the
// driver's condition and Events.
type SparkConfError struct {
	// From names the source ("SparkApplication ml/pi", "ConfigMap
	// ml/spark-drv-…-conf-map key spark.properties").
	From string
	// Field is the setting as the source writes it.
	Field string
	Value string
	Msg   string
}

func (e *SparkConfError) Error() string {
	return fmt.Sprintf("%s: %s=%s %s", e.From, e.Field, quote(e.Value), e.Msg)
}

func (c sparkConf) errorf(key, format string, args ...any) error {
	field := key
	if f, ok := c.field[key]; ok {
		field = f
	}
	return &SparkConfError{From: c.from, Field: field, Value: c.values[key], Msg: fmt.Sprintf(format, args...)}
}

func (c sparkConf) get(key string) (string, bool) {
	v, ok := c.values[key]
	return strings.TrimSpace(v), ok
}

// count reads a whole-number key (Spark's intConf), def when unset.
func (c sparkConf) count(key string, def int64) (int64, error) {
	v, ok := c.get(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, c.errorf(key, "is not a whole number of at least 0")
	}
	return n, nil
}

// flag reads a boolean key (Spark's booleanConf: "true" or "false", any case).
func (c sparkConf) flag(key string) (bool, error) {
	v, ok := c.get(key)
	if !ok {
		return false, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, c.errorf(key, "is not true or false")
}

// factor reads a fraction key (a doubleConf above 0).
func (c sparkConf) factor(key string) (float64, bool, error) {
	v, ok := c.get(key)
	if !ok {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, false, c.errorf(key, "is not a number above 0 such as \"0.1\"")
	}
	return f, true, nil
}

// size reads a JVM memory size key in MiB; unit is what a bare number
// counts (Spark's bytesConf unit for the key: MiB or bytes).
func (c sparkConf) size(key string, unit int64, def int64) (int64, bool, error) {
	v, ok := c.get(key)
	if !ok {
		return def, false, nil
	}
	b, err := jvmBytes(v, unit)
	if err != nil {
		return 0, false, c.errorf(key, "is not a JVM memory size such as \"512m\" or \"2g\" (%v)", err)
	}
	return b / mib, true, nil
}

// jvmBytes parses a JVM memory string as Spark does (JavaUtils.byteStringAs):
// a whole number with an optional suffix b, k, m, g, t, p (or kb, mb, …;
// any case), in binary units: "512m" is 512 MiB, not a Kubernetes quantity.
// A bare number counts in unit bytes.
func jvmBytes(s string, unit int64) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	digits := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	suffix := t[len(digits):]
	if digits == "" || strings.ContainsAny(digits, ".-+ ") {
		return 0, fmt.Errorf("a whole number is needed")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	mult := unit
	if suffix != "" {
		units := map[string]int64{"b": 1, "k": 1 << 10, "kb": 1 << 10, "m": mib, "mb": mib,
			"g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "p": 1 << 50, "pb": 1 << 50}
		var ok bool
		if mult, ok = units[suffix]; !ok {
			return 0, fmt.Errorf("unknown unit %q", suffix)
		}
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("out of range")
	}
	return n * mult, nil
}

// sparkExecutors reads how many executors a Spark application starts with
// and what one requests, as Spark 4.x computes them.
//
// The count is SchedulerBackendUtils.getInitialTargetExecutorNumber: with
// dynamic allocation (spark.dynamicAllocation.enabled), Spark's initial
// executors, Utils.getDynamicAllocationInitialExecutors: the largest of
// minExecutors (default 0), initialExecutors (default minExecutors) and
// spark.executor.instances (default 0); without it,
// spark.executor.instances, default 2.
//
// The size is BasicExecutorFeatureStep's (resource-managers/kubernetes/core/
// src/main/scala/org/apache/spark/deploy/k8s/features/
// BasicExecutorFeatureStep.scala, with ResourceProfile.
// getResourcesForClusterManager): cpu spark.kubernetes.executor.request.cores
// if set, else spark.executor.cores (default 1); memory
// spark.executor.memory (default 1g) plus the overhead,
// spark.executor.memoryOverhead if set, else the larger of factor ×
// memory (truncated to whole MiB) and spark.executor.minMemoryOverhead
// (default 384m), where the factor is spark.executor.memoryOverheadFactor
// if set, else spark.kubernetes.memoryOverheadFactor (0.1, 0.4 for Python
// and R applications); plus spark.memory.offHeap.size when
// spark.memory.offHeap.enabled; plus spark.executor.pyspark.memory for
// Python applications; and the custom resources
// spark.executor.resource.NAME.amount as VENDOR/NAME.
func sparkExecutors(c sparkConf) (int32, resources.Vector, error) {
	n, err := sparkExecutorCount(c)
	if err != nil || n == 0 {
		return 0, nil, err
	}
	size, err := sparkExecutorSize(c)
	if err != nil {
		return 0, nil, err
	}
	return n, size, nil
}

func sparkExecutorCount(c sparkConf) (int32, error) {
	dynamic, err := c.flag(sparkDynamicEnabled)
	if err != nil {
		return 0, err
	}
	var n int64
	if !dynamic {
		if n, err = c.count(sparkExecutorInstances, defaultSparkExecutors); err != nil {
			return 0, err
		}
	} else {
		minimum, err := c.count(sparkDynamicMin, 0)
		if err != nil {
			return 0, err
		}
		initial, err := c.count(sparkDynamicInitial, minimum)
		if err != nil {
			return 0, err
		}
		instances, err := c.count(sparkExecutorInstances, 0)
		if err != nil {
			return 0, err
		}
		n = max(minimum, initial, instances)
		maximum, err := c.count(sparkDynamicMax, math.MaxInt32)
		if err != nil {
			return 0, err
		}
		if n > maximum { // Spark refuses to start: initial executors above the maximum
			return 0, c.errorf(sparkDynamicMax, "is below the initial executors (%d)", n)
		}
	}
	if n > MaxMembers {
		return 0, c.errorf(sparkExecutorInstances, "asks for %d executors, more than muster's limit of %d", n, MaxMembers)
	}
	return int32(n), nil
}

func sparkExecutorSize(c sparkConf) (resources.Vector, error) {
	out := resources.Vector{v1.ResourcePods: 1}
	cores, err := c.count(sparkExecutorCores, 1)
	if err != nil {
		return nil, err
	}
	out[v1.ResourceCPU] = cores * 1000
	if v, ok := c.get(sparkExecutorRequestCores); ok {
		amount, msg := parseAmount(v1.ResourceCPU, v)
		if msg != "" {
			return nil, c.errorf(sparkExecutorRequestCores, "is not a cpu quantity above 0 such as \"1\" or \"500m\"")
		}
		out[v1.ResourceCPU] = amount
	}
	memory, err := sparkExecutorMemoryMiB(c)
	if err != nil {
		return nil, err
	}
	out[v1.ResourceMemory] = memory * mib
	if err := sparkCustomResources(c, out); err != nil {
		return nil, err
	}
	return out, nil
}

// sparkExecutorMemoryMiB is an executor's memory request in MiB.
func sparkExecutorMemoryMiB(c sparkConf) (int64, error) {
	memory, _, err := c.size(sparkExecutorMemory, mib, defaultExecutorMemoryMiB)
	if err != nil {
		return 0, err
	}
	overhead, set, err := c.size(sparkExecutorOverhead, mib, 0)
	if err != nil {
		return 0, err
	}
	kind, _ := c.get(sparkResourceType)
	if !set {
		factor, ok, err := c.factor(sparkExecutorFactor)
		if err == nil && !ok {
			factor, ok, err = c.factor(sparkK8sFactor)
		}
		if err != nil {
			return 0, err
		}
		if !ok {
			factor = jvmOverheadFactor
			if kind == "python" || kind == "r" {
				factor = nonJVMOverheadFactor
			}
		}
		least, _, err := c.size(sparkExecutorMinOverhead, mib, defaultMinOverheadMiB)
		if err != nil {
			return 0, err
		}
		scaled := factor * float64(memory)
		if scaled >= float64(math.MaxInt64/mib) {
			return 0, c.errorf(sparkExecutorMemory, "times the memory overhead factor %g is more memory than muster can count", factor)
		}
		overhead = max(int64(scaled), least)
	}
	total := memory + overhead
	offHeap, err := c.flag(sparkOffHeapEnabled)
	if err != nil {
		return 0, err
	}
	if offHeap { // Utils.checkOffHeapEnabled: the size is in bytes unless a unit says otherwise
		size, _, err := c.size(sparkOffHeapSize, 1, 0)
		if err != nil {
			return 0, err
		}
		if size <= 0 {
			return 0, c.errorf(sparkOffHeapSize, "must be above 0 when %s is true", sparkOffHeapEnabled)
		}
		total += size
	}
	if kind == "python" {
		pyspark, _, err := c.size(sparkPySparkMemory, mib, 0)
		if err != nil {
			return 0, err
		}
		total += pyspark
	}
	if total > math.MaxInt64/mib {
		return 0, c.errorf(sparkExecutorMemory, "adds up to more memory than muster can count")
	}
	return total, nil
}

// sparkCustomResources adds spark.executor.resource.NAME.amount (with its
// .vendor, as BasicExecutorFeatureStep names the Kubernetes resource
// VENDOR/NAME) to an executor's request.
func sparkCustomResources(c sparkConf, out resources.Vector) error {
	var keys []string
	for k := range c.values {
		if strings.HasPrefix(k, sparkExecutorResource) && strings.HasSuffix(k, ".amount") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.TrimSuffix(strings.TrimPrefix(k, sparkExecutorResource), ".amount")
		amount, err := c.count(k, 0)
		if err != nil {
			return err
		}
		if amount == 0 {
			continue
		}
		vendor, _ := c.get(sparkExecutorResource + name + ".vendor")
		if vendor == "" {
			return c.errorf(k, "needs %s%s.vendor (Spark refuses a resource without its vendor)", sparkExecutorResource, name)
		}
		r := v1.ResourceName(vendor + "/" + name)
		if _, msg := parseAmount(r, strconv.FormatInt(amount, 10)); msg != "" {
			return c.errorf(k, "%s", msg)
		}
		out[r] = amount
	}
	return nil
}

// parseProperties reads a Java properties file as java.util.Properties.store
// writes it (Spark's spark.properties): "key=value" or "key:value" lines,
// comments after # or !, backslash escapes (\=, \:, \ , \n, \t, \uXXXX) and
// lines continued by a trailing backslash.
func parseProperties(text string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		for continued(line) && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + strings.TrimLeft(lines[i], " \t\f")
		}
		key, value := splitProperty(line)
		out[unescapeProperty(key)] = unescapeProperty(value)
	}
	return out
}

// continued: the line ends in an odd number of backslashes.
func continued(line string) bool {
	n := 0
	for i := len(line) - 1; i >= 0 && line[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// splitProperty splits a logical line at the first unescaped =, : or
// white space.
func splitProperty(line string) (string, string) {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '=', ':':
			return line[:i], strings.TrimLeft(line[i+1:], " \t\f")
		case ' ', '\t', '\f':
			rest := strings.TrimLeft(line[i:], " \t\f")
			if rest != "" && (rest[0] == '=' || rest[0] == ':') {
				rest = strings.TrimLeft(rest[1:], " \t\f")
			}
			return line[:i], rest
		}
	}
	return line, ""
}

func unescapeProperty(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if r, err := strconv.ParseUint(s[i+1:min(i+5, len(s))], 16, 32); err == nil && i+5 <= len(s) {
				b.WriteRune(rune(r))
				i += 4
				continue
			}
			b.WriteByte('u')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
