package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/resources"
)

var sprintf = fmt.Sprintf

// ConfigKey is the key of queues.yaml in the muster-queues ConfigMap.
const ConfigKey = "queues.yaml"

// spec is one queue as written in queues.yaml.
type spec struct {
	name           string
	path           string // root.analytics.etl, or root.queues[2] while unnamed
	weight         float64
	guaranteed     resources.Vector // nil when absent
	max            resources.Vector // nil when absent
	namespaces     []string         // nil when absent (inherited)
	capacityPolicy capacity.Policy
	ordering       Ordering
	minRuntime     *time.Duration // nil when absent (inherited)
	children       []*spec
}

// file is queues.yaml.
type file struct {
	queues          []*spec
	namespaceQueues map[string]string
	nsOrder         []string
}

// parse decodes queues.yaml strictly: every unknown field, wrong type, bad
// quantity, bad glob or bad weight is reported with its path; parsing goes on
// after an error so that one run reports them all. Fields are visited in name
// order, so the errors come in a stable order.
func parse(data []byte, e *errs) *file {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		e.add("queues.yaml", "not valid YAML: %v", err)
		return nil
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		e.add("queues.yaml", "not valid YAML: %v", err)
		return nil
	}
	f := &file{}
	if doc == nil {
		return f // an empty file: just root
	}
	top, ok := doc.(map[string]any)
	if !ok {
		e.add("queues.yaml", "must be a mapping with the fields queues and namespaceQueues")
		return nil
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "queues":
			f.queues = parseQueues(top[k], "root", e)
		case "namespaceQueues":
			f.namespaceQueues, f.nsOrder = parseNamespaceQueues(top[k], e)
		default:
			if k == "" {
				k = `""` // a path must say where: an empty key has no name to show
			}
			e.add(k, "unknown field (known: queues, namespaceQueues)")
		}
	}
	return f
}

var queueFields = "name, weight, guaranteed, max, namespaces, capacityPolicy, ordering, minRuntimeSeconds, queues"

func parseQueues(v any, parent string, e *errs) []*spec {
	list, ok := v.([]any)
	if !ok {
		if v != nil {
			e.add(parent+".queues", "must be a list of queues")
		}
		return nil
	}
	out := make([]*spec, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			e.add(fmt.Sprintf("%s.queues[%d]", parent, i), "must be a mapping with the fields %s", queueFields)
			continue
		}
		s := &spec{weight: 1, path: fmt.Sprintf("%s.queues[%d]", parent, i)}
		n, isString := m["name"].(string)
		if isString && n != "" {
			s.name = n
			if msgs := validation.IsDNS1123Label(n); len(msgs) > 0 {
				e.add(s.path+".name", "%q is not a valid queue name: %s", n, strings.Join(msgs, "; "))
			} else {
				s.path = parent + "." + n
			}
			if n == "root" {
				e.add(s.path+".name", `"root" is the implicit top of the tree and cannot name a queue`)
			}
		} else if isString || m["name"] == nil {
			// absent, null or empty; any other value is reported below
			e.add(s.path+".name", "required: a queue needs a name")
		}
		for _, k := range sortedKeys(m) {
			val := m[k]
			switch k {
			case "name":
				if _, ok := val.(string); !ok && val != nil {
					e.add(s.path+".name", "must be a string, got %s", describe(val))
				}
			case "weight":
				s.weight = parseWeight(val, s.path+".weight", e)
			case "guaranteed":
				s.guaranteed = parseResources(val, s.path+".guaranteed", e)
			case "max":
				s.max = parseResources(val, s.path+".max", e)
			case "namespaces":
				s.namespaces = parseGlobs(val, s.path+".namespaces", e)
			case "capacityPolicy":
				s.capacityPolicy = parsePolicy(val, s.path+".capacityPolicy", e)
			case "ordering":
				s.ordering = parseOrdering(val, s.path+".ordering", e)
			case "minRuntimeSeconds":
				s.minRuntime = parseSeconds(val, s.path+".minRuntimeSeconds", e)
			case "queues":
				s.children = parseQueues(val, s.path, e)
			default:
				e.add(s.path+"."+k, "unknown field (known: %s)", queueFields)
			}
		}
		out = append(out, s)
	}
	return out
}

func parseWeight(v any, p string, e *errs) float64 {
	n, ok := v.(json.Number)
	if !ok {
		e.add(p, "must be a number, got %s", describe(v))
		return 1
	}
	w, err := n.Float64()
	if err != nil || math.IsInf(w, 0) || math.IsNaN(w) {
		e.add(p, "must be a number, got %s", n)
		return 1
	}
	if w <= 0 {
		e.add(p, "must be greater than 0, got %s", n)
		return 1
	}
	return w
}

func parseResources(v any, p string, e *errs) resources.Vector {
	m, ok := v.(map[string]any)
	if !ok {
		e.add(p, "must be a mapping of resource names to quantities, got %s", describe(v))
		return nil
	}
	out := resources.Vector{}
	for _, k := range sortedKeys(m) {
		rp := p + "." + k
		if msgs := validResourceName(k); len(msgs) > 0 {
			e.add(rp, "%q is not a valid resource name: %s", k, strings.Join(msgs, "; "))
			continue
		}
		var s string
		switch q := m[k].(type) {
		case string:
			s = q
		case json.Number:
			s = q.String()
		default:
			e.add(rp, "must be a quantity such as \"4\", \"500m\" or \"16Gi\", got %s", describe(m[k]))
			continue
		}
		// ParseQuantity's time grows with the exponent and the digits
		// (1e-99999999 takes most of a minute); no amount that fits an
		// int64 needs a long quantity or an exponent of three digits.
		if len(s) > 64 {
			e.add(rp, "%.20q... is not a valid quantity: longer than 64 characters", s)
			continue
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(strings.TrimLeft(s[i+1:], "+-")) > 2 {
			e.add(rp, "%q is not a valid quantity: the exponent is out of range", s)
			continue
		}
		q, err := resource.ParseQuantity(s)
		if err != nil {
			e.add(rp, "%q is not a valid quantity", s)
			continue
		}
		if q.Sign() < 0 {
			e.add(rp, "must not be negative, got %s", s)
			continue
		}
		// Amounts are int64 (cpu in millicores): a larger quantity would wrap.
		name := v1.ResourceName(k)
		if largest := resources.ToQuantity(name, math.MaxInt64); q.Cmp(largest) > 0 {
			e.add(rp, "%s is too large (at most %s)", s, largest.String())
			continue
		}
		out[name] = resources.FromQuantity(name, q)
	}
	return out
}

// validResourceName checks a resource name: a qualified name, or
// deviceclass/<DeviceClass name> (DRA devices by class), whose class is any
// object name (a DNS subdomain, up to 253 characters).
func validResourceName(k string) []string {
	if class, ok := strings.CutPrefix(k, resources.DeviceClassPrefix); ok {
		if class == "" {
			return []string{"names no DeviceClass after " + resources.DeviceClassPrefix}
		}
		return validation.IsDNS1123Subdomain(class)
	}
	return validation.IsQualifiedName(k)
}

func parseGlobs(v any, p string, e *errs) []string {
	list, ok := v.([]any)
	if !ok {
		e.add(p, "must be a list of namespace names or globs, got %s", describe(v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, item := range list {
		g, ok := item.(string)
		ip := fmt.Sprintf("%s[%d]", p, i)
		if !ok || g == "" {
			e.add(ip, "must be a non-empty namespace name or glob, got %s", describe(item))
			continue
		}
		if err := checkGlob(g); err != nil {
			e.add(ip, "%q is not a valid namespace glob: %v", g, err)
			continue
		}
		out = append(out, g)
	}
	return out
}

// checkGlob accepts path.Match patterns over namespace names.
func checkGlob(g string) error {
	if _, err := path.Match(g, ""); err != nil {
		return err
	}
	if strings.ContainsAny(g, "/\\") {
		return fmt.Errorf("namespaces contain no slashes")
	}
	// path.Match negates a class with ^ only: [!a] would mean "! or a".
	if strings.Contains(g, "[!") {
		return fmt.Errorf("negate a character class with [^...], not [!...]")
	}
	for _, r := range g {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-*?[]^", r)) {
			return fmt.Errorf("%q cannot appear in a namespace name", r)
		}
	}
	return nil
}

func parsePolicy(v any, p string, e *errs) capacity.Policy {
	s, ok := v.(string)
	if !ok {
		e.add(p, "must be one of %v, got %s", capacity.Policies, describe(v))
		return ""
	}
	pol, err := capacity.ParsePolicy(s)
	if err != nil {
		e.add(p, "%v", err)
	}
	return pol
}

func parseOrdering(v any, p string, e *errs) Ordering {
	s, _ := v.(string)
	for _, o := range Orderings {
		if Ordering(s) == o {
			return o
		}
	}
	e.add(p, "must be one of %v, got %s", Orderings, describe(v))
	return ""
}

// maxMinRuntime bounds minRuntimeSeconds: a week protects any batch pod;
// more is a typo (milliseconds, say).
const maxMinRuntime = 7 * 24 * time.Hour

func parseSeconds(v any, p string, e *errs) *time.Duration {
	n, ok := v.(json.Number)
	if !ok {
		e.add(p, "must be a whole number of seconds, got %s", describe(v))
		return nil
	}
	i, err := n.Int64()
	if err != nil || i < 0 || time.Duration(i)*time.Second > maxMinRuntime {
		e.add(p, "must be a whole number of seconds from 0 to %d, got %s", int64(maxMinRuntime/time.Second), n)
		return nil
	}
	d := time.Duration(i) * time.Second
	return &d
}

func parseNamespaceQueues(v any, e *errs) (map[string]string, []string) {
	m, ok := v.(map[string]any)
	if !ok {
		e.add("namespaceQueues", "must be a mapping of namespace to queue, got %s", describe(v))
		return nil, nil
	}
	out := map[string]string{}
	var order []string
	for _, k := range sortedKeys(m) {
		p := "namespaceQueues." + k
		if k != "*" {
			if msgs := validation.IsDNS1123Label(k); len(msgs) > 0 {
				e.add(p, "%q is not a namespace name (or \"*\"): %s", k, strings.Join(msgs, "; "))
				continue
			}
		}
		s, ok := m[k].(string)
		if !ok || s == "" {
			e.add(p, "must name a queue, got %s", describe(m[k]))
			continue
		}
		out[k] = s
		order = append(order, k)
	}
	return out, order
}

func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", t)
	case json.Number:
		return t.String()
	case bool:
		return fmt.Sprintf("%t", t)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", t)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
