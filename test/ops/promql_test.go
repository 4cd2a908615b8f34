package ops

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// selector is one metric a PromQL expression reads, with the label names its
// matchers use ({queue=~"..."}).
type selector struct {
	Metric string
	Labels []string
}

// grafanaVarRE matches Grafana's variables: $name, ${name} and
// ${name:format}. $1 (a regexp group in label_replace) is no variable.
var grafanaVarRE = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)`)

// grafanaDurations are Grafana's built-in variables that stand for a
// duration; they appear in range brackets ([$__rate_interval]).
var grafanaDurations = map[string]bool{"__interval": true, "__rate_interval": true, "__range": true}

// substituteVariables replaces Grafana's variables by values PromQL
// accepts: a duration for $__rate_interval and its kin, vars[name] for a
// dashboard variable, else x (inside a label value "x" is as good as any).
func substituteVariables(expr string, vars map[string]string) string {
	return grafanaVarRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVarRE.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := vars[name]; ok {
			return v
		}
		if grafanaDurations[name] {
			return "5m"
		}
		return "x"
	})
}

// parseQuery parses a dashboard or alert expression with Prometheus' own
// parser, its Grafana variables substituted first.
func parseQuery(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(substituteVariables(expr, nil))
}

// selectors returns the metrics a PromQL expression (possibly with Grafana
// variables) reads, in the order they appear, with the label names of
// their matchers.
func selectors(expr string) ([]selector, error) {
	e, err := parseQuery(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	var walkErr error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			// {__name__="..."} or {__name__=~"..."}: no name to check.
			walkErr = fmt.Errorf("selector %s names no metric: name the metric", vs)
			return walkErr
		}
		s := selector{Metric: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				s.Labels = append(s.Labels, m.Name)
			}
		}
		out = append(out, s)
		return nil
	})
	return out, walkErr
}

// labelSet is the set of label names an expression's series can carry; nil
// stands for "not known" (an unknown metric, already reported), which
// matches everything so that one mistake is reported once.
type labelSet map[string]bool

func (s labelSet) has(l string) bool { return s == nil || s[l] }

func (s labelSet) String() string {
	if s == nil {
		return "unknown"
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(sortedKeys(s), ", ")
}

// union of sets; unknown if either is.
func union(a, b labelSet) labelSet {
	if a == nil || b == nil {
		return nil
	}
	out := labelSet{}
	for l := range a {
		out[l] = true
	}
	for l := range b {
		out[l] = true
	}
	return out
}

// labelChecker follows the labels of every sub-expression up the tree, as
// Prometheus computes them, and reports labels used where they cannot
// exist: in a selector's matchers, in by/without, in on/ignoring and in
// group_left/group_right.
type labelChecker struct {
	metrics  map[string]metricInfo
	problems []string
}

func (c *labelChecker) problemf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// labels returns the labels of expr's result.
func (c *labelChecker) labels(expr parser.Expr) labelSet {
	switch e := expr.(type) {
	case *parser.VectorSelector:
		return c.selectorLabels(e)
	case *parser.MatrixSelector:
		return c.labels(e.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(e.Expr)
	case *parser.ParenExpr:
		return c.labels(e.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(e.Expr)
	case *parser.UnaryExpr:
		return c.labels(e.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return labelSet{}
	case *parser.AggregateExpr:
		return c.aggregateLabels(e)
	case *parser.BinaryExpr:
		return c.binaryLabels(e)
	case *parser.Call:
		return c.callLabels(e)
	default:
		c.problemf("unexpected expression %T: %s", expr, expr)
		return nil
	}
}

func (c *labelChecker) selectorLabels(vs *parser.VectorSelector) labelSet {
	if vs.Name == "" {
		c.problemf("selector %s names no metric: name the metric", vs)
		return nil
	}
	info, extra, ok := lookup(c.metrics, vs.Name)
	if !ok {
		c.problemf("metric %s does not exist%s", vs.Name, suggest(c.metrics, vs.Name))
		return nil
	}
	have := labelSet{}
	for _, set := range []map[string]bool{info.labels, extra, toSet(targetLabels)} {
		for l := range set {
			have[l] = true
		}
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != labels.MetricName && !have[m.Name] {
			c.problemf("metric %s has no label %s (it has %s)", vs.Name, m.Name, strings.Join(sortedKeys(info.labels), ", "))
		}
	}
	return have
}

func (c *labelChecker) aggregateLabels(e *parser.AggregateExpr) labelSet {
	if e.Param != nil {
		c.labels(e.Param)
	}
	in := c.labels(e.Expr)
	for _, l := range e.Grouping {
		if !in.has(l) {
			c.problemf("%s groups by %s, which %s does not have (it has %s)", e.Op, l, e.Expr, in)
		}
	}
	switch {
	case e.Op == parser.TOPK || e.Op == parser.BOTTOMK || e.Op == parser.LIMITK || e.Op == parser.LIMIT_RATIO:
		return in // they select series and keep their labels
	case e.Without:
		if in == nil {
			return nil
		}
		out := labelSet{}
		for l := range in {
			out[l] = true
		}
		for _, l := range e.Grouping {
			delete(out, l)
		}
		return out
	default:
		out := toSet(e.Grouping)
		if e.Op == parser.COUNT_VALUES {
			if s, ok := e.Param.(*parser.StringLiteral); ok {
				out[s.Val] = true
			}
		}
		return out
	}
}

func (c *labelChecker) binaryLabels(e *parser.BinaryExpr) labelSet {
	lhs, rhs := c.labels(e.LHS), c.labels(e.RHS)
	vm := e.VectorMatching
	if vm == nil || e.LHS.Type() != parser.ValueTypeVector || e.RHS.Type() != parser.ValueTypeVector {
		// A scalar on one side: the vector's labels.
		if e.LHS.Type() == parser.ValueTypeVector {
			return lhs
		}
		return rhs
	}
	word := "ignoring"
	if vm.On {
		word = "on"
	}
	for _, l := range vm.MatchingLabels {
		// on (l) needs l on both sides; ignoring (l) on one at least.
		if vm.On && (!lhs.has(l) || !rhs.has(l)) || !vm.On && !lhs.has(l) && !rhs.has(l) {
			c.problemf("%s (%s): the left side has %s, the right side %s", word, l, lhs, rhs)
		}
	}
	switch {
	case e.Op.IsSetOperator() && e.Op == parser.LOR:
		return union(lhs, rhs)
	case e.Op.IsSetOperator():
		return lhs
	case vm.Card == parser.CardManyToOne: // group_left: labels copied from the right
		return c.include(lhs, rhs, vm.Include, "group_left", "right")
	case vm.Card == parser.CardOneToMany:
		return c.include(rhs, lhs, vm.Include, "group_right", "left")
	default:
		return lhs
	}
}

// include checks that the labels group_left/group_right copy exist on the
// side they are copied from, and returns the result's labels.
func (c *labelChecker) include(many, one labelSet, include []string, word, side string) labelSet {
	for _, l := range include {
		if !one.has(l) {
			c.problemf("%s (%s): the %s side has %s", word, l, side, one)
		}
	}
	if many == nil {
		return nil
	}
	out := labelSet{}
	for l := range many {
		out[l] = true
	}
	for _, l := range include {
		out[l] = true
	}
	return out
}

func (c *labelChecker) callLabels(e *parser.Call) labelSet {
	var args []labelSet
	for _, a := range e.Args {
		args = append(args, c.labels(a))
	}
	stringArg := func(i int) string {
		if i < len(e.Args) {
			if s, ok := e.Args[i].(*parser.StringLiteral); ok {
				return s.Val
			}
		}
		return ""
	}
	// The first vector argument's labels flow through most functions.
	var in labelSet = labelSet{}
	for i, a := range e.Args {
		if t := a.Type(); t == parser.ValueTypeVector || t == parser.ValueTypeMatrix {
			in = args[i]
			break
		}
	}
	switch e.Func.Name {
	case "histogram_quantile", "histogram_fraction":
		if !in.has("le") {
			c.problemf("%s of %s, which has no le label: read the _bucket series", e.Func.Name, e.Args[len(e.Args)-1])
		}
		return without(in, "le")
	case "label_replace":
		if src := stringArg(3); src != "" && !in.has(src) {
			c.problemf("label_replace reads label %s, which %s does not have (it has %s)", src, e.Args[0], in)
		}
		return with(in, stringArg(1))
	case "label_join":
		for i := 3; i < len(e.Args); i++ {
			if src := stringArg(i); !in.has(src) {
				c.problemf("label_join reads label %s, which %s does not have (it has %s)", src, e.Args[0], in)
			}
		}
		return with(in, stringArg(1))
	case "vector", "time", "scalar", "pi":
		return labelSet{}
	default:
		return in
	}
}

func without(s labelSet, l string) labelSet {
	if s == nil {
		return nil
	}
	out := labelSet{}
	for k := range s {
		if k != l {
			out[k] = true
		}
	}
	return out
}

func with(s labelSet, l string) labelSet {
	if s == nil {
		return nil
	}
	out := labelSet{l: true}
	for k := range s {
		out[k] = true
	}
	return out
}

// checkExpr parses expr with Prometheus' parser and returns a problem for
// every metric it reads that muster-scheduler does not export, and every
// label it uses (in matchers, by/without, on/ignoring, group_left/right)
// that the series it applies to cannot have. Histogram series (_bucket,
// _sum, _count) are looked up by their base name.
func checkExpr(metrics map[string]metricInfo, expr string) []string {
	e, err := parseQuery(expr)
	if err != nil {
		return []string{fmt.Sprintf("cannot parse %q: %v", expr, err)}
	}
	sels, err := selectors(expr)
	if err != nil {
		return []string{err.Error()}
	}
	if len(sels) == 0 {
		return []string{fmt.Sprintf("%q reads no metric", expr)}
	}
	c := &labelChecker{metrics: metrics}
	c.labels(e)
	sort.Strings(c.problems)
	return c.problems
}
