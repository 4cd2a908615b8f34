package gang

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"muster.dev/muster/pkg/resources"
)

// This file parses the annotations that size and time a gang. Their errors
// name the annotation and the bad value: they reach users as pod conditions
// and Events.

const (
	// DefaultTimeout is how long a gang waits for its quorum when nothing says otherwise.
	DefaultTimeout = 5 * time.Minute
	// MaxTimeout bounds gang-timeout: a reservation held longer is capacity lost.
	MaxTimeout = 24 * time.Hour
	// MaxMembers bounds gang-min-member and min-executors: far above any real
	// gang, low enough that a typo cannot make the planner place a million pods.
	MaxMembers = 100000
)

// AnnotationError is a gang annotation muster cannot use. Its message names
// the annotation and the bad value, for the pod's condition and Events.
type AnnotationError struct {
	Key   string // the annotation
	Value string // its value as written
	Msg   string // what is wrong with it
}

func (e *AnnotationError) Error() string { return e.Key + ": " + e.Msg }

func annotationErr(key, value, format string, args ...any) error {
	return &AnnotationError{Key: key, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// quote quotes a value for a message, cut short: annotations can hold
// hundreds of kilobytes, and a condition message should not. The cut is
// made on the quoted form, as escapes can make a byte four characters.
func quote(s string) string {
	const most = 64
	if q := strconv.Quote(s); len(q) <= most+2 {
		return q
	}
	width, cut := 0, 0
	for cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		w := len(strconv.Quote(s[cut:cut+size])) - 2
		if width+w > most {
			break
		}
		width, cut = width+w, cut+size
	}
	return strconv.Quote(s[:cut]) + "..."
}

// nameProblems shortens validation's messages about a resource name: their
// examples and regular expressions are for API reviewers, not in a pod
// condition.
func nameProblems(msgs []string) string {
	for i, m := range msgs {
		if before, _, found := strings.Cut(m, " (e.g."); found {
			msgs[i] = before
		}
	}
	return strings.Join(msgs, "; ")
}

// ParseMinMember parses muster.dev/gang-min-member: a whole number, 1..100000.
func ParseMinMember(s string) (int32, error) {
	return parseCount(AnnotationMinMember, s, 1)
}

// ParseMinExecutors parses muster.dev/min-executors: a whole number, 0..100000.
func ParseMinExecutors(s string) (int32, error) {
	return parseCount(AnnotationMinExecutors, s, 0)
}

func parseCount(key, s string, least int64) (int32, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, annotationErr(key, s, "is empty; it must be a whole number such as \"8\"")
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		// all digits, but beyond int64: out of range, not malformed
		if strings.HasPrefix(t, "-") {
			return 0, annotationErr(key, s, "must be at least %d, got %s", least, quote(t))
		}
		return 0, annotationErr(key, s, "must be at most %d, got %s", MaxMembers, quote(t))
	}
	if err != nil {
		return 0, annotationErr(key, s, "%s is not a whole number", quote(s))
	}
	if n < least {
		return 0, annotationErr(key, s, "must be at least %d, got %d", least, n)
	}
	if n > MaxMembers {
		return 0, annotationErr(key, s, "must be at most %d, got %d", MaxMembers, n)
	}
	return int32(n), nil
}

// ParseTimeout parses muster.dev/gang-timeout: a Go duration ("10m", "90s")
// or whole seconds ("600", as PodGroup's scheduleTimeoutSeconds counts);
// more than 0 and at most 24h.
func ParseTimeout(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, annotationErr(AnnotationTimeout, s, "is empty; it must be a duration such as \"10m\", \"90s\" or \"600\" (seconds)")
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(t, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Bounds first: multiplying a large count of seconds would wrap.
		switch {
		case secs <= 0:
			return 0, annotationErr(AnnotationTimeout, s, "must be more than 0, got %s", quote(t))
		case secs > int64(MaxTimeout/time.Second):
			return 0, annotationErr(AnnotationTimeout, s, "must be at most 24h, got %s seconds", quote(t))
		}
		d = time.Duration(secs) * time.Second
	} else {
		d, err = time.ParseDuration(t)
		if err != nil {
			return 0, annotationErr(AnnotationTimeout, s, "%s is not a duration such as \"10m\", \"90s\" or \"600\" (seconds)", quote(s))
		}
	}
	if d <= 0 {
		return 0, annotationErr(AnnotationTimeout, s, "must be more than 0, got %s", quote(t))
	}
	if d > MaxTimeout {
		return 0, annotationErr(AnnotationTimeout, s, "must be at most 24h, got %s", quote(t))
	}
	return d, nil
}

// ParseExecutorResources parses muster.dev/executor-resources, what one Spark
// executor requests: "cpu=4,memory=18Gi[,nvidia.com/gpu=1]". Spaces around
// entries and "=" are allowed; every resource must be a valid name, appear
// once and have a quantity above zero.
func ParseExecutorResources(s string) (resources.Vector, error) {
	const key = AnnotationExecutorResources
	if strings.TrimSpace(s) == "" {
		return nil, annotationErr(key, s, "is empty; it must list what one executor requests, such as \"cpu=4,memory=18Gi\"")
	}
	out := resources.Vector{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, annotationErr(key, s, "%s: entry %d is empty (a comma too many?)", quote(s), i+1)
		}
		k, val, ok := strings.Cut(entry, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		switch {
		case !ok:
			return nil, annotationErr(key, s, "%s: %s has no \"=value\"", quote(s), quote(entry))
		case k == "":
			return nil, annotationErr(key, s, "%s: %s has no resource name before \"=\"", quote(s), quote(entry))
		case val == "":
			return nil, annotationErr(key, s, "%s: %s has no quantity after \"=\"", quote(s), quote(k))
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, annotationErr(key, s, "%s: %s is not a valid resource name: %s", quote(s), quote(k), nameProblems(msgs))
		}
		name := v1.ResourceName(k)
		if _, dup := out[name]; dup {
			return nil, annotationErr(key, s, "%s: %s appears twice", quote(s), k)
		}
		amount, msg := parseAmount(name, val)
		if msg != "" {
			return nil, annotationErr(key, s, "%s: %s", quote(s), msg)
		}
		out[name] = amount
	}
	return out, nil
}

// parseAmount converts a quantity of name to an amount above zero, or says
// what is wrong with it.
func parseAmount(name v1.ResourceName, val string) (int64, string) {
	// ParseQuantity's time grows with the exponent and the digits
	// (1e-99999999 takes most of a minute); no amount that fits an int64
	// needs a long quantity or an exponent of three digits.
	if len(val) > 64 {
		return 0, fmt.Sprintf("the quantity of %s is not valid: longer than 64 characters", name)
	}
	if i := strings.IndexAny(val, "eE"); i >= 0 && len(strings.TrimLeft(val[i+1:], "+-")) > 2 {
		return 0, fmt.Sprintf("%s for %s is not a valid quantity: the exponent is out of range", quote(val), name)
	}
	q, err := resource.ParseQuantity(val)
	if err != nil {
		return 0, fmt.Sprintf("%s for %s is not a valid quantity such as \"4\", \"500m\" or \"18Gi\"", quote(val), name)
	}
	if q.Sign() <= 0 {
		return 0, fmt.Sprintf("%s must be more than 0, got %s", name, quote(val))
	}
	// Amounts are int64 (cpu in millicores): a larger quantity would wrap.
	// ParseQuantity clamps what it cannot hold to MaxInt64 base units, so
	// that value cannot be told from an overflow and is refused too.
	if largest := resources.ToQuantity(name, math.MaxInt64-1); q.Cmp(largest) > 0 {
		return 0, fmt.Sprintf("%s=%s is too large (at most %s)", name, val, largest.String())
	}
	// FromQuantity rounds up, so a positive quantity is at least 1: this
	// only guards that promise.
	if amount := resources.FromQuantity(name, q); amount > 0 {
		return amount, ""
	}
	return 0, fmt.Sprintf("%s must be more than 0, got %s", name, quote(val))
}
