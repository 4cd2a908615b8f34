package ops

import (
	"fmt"
	"strings"
	"unicode"
)

// selector is one metric a PromQL expression reads, with the label names its
// matchers use ({queue=~"..."}).
type selector struct {
	Metric string
	Labels []string
}

// PromQL words that are not metric names.
var (
	aggregations = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio")
	// Keywords followed by a parenthesised list of label names.
	grouping = set("by", "without", "on", "ignoring", "group_left", "group_right")
	keywords = set("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan")
	// PromQL's functions (prometheus/promql/parser/functions.go). An unknown
	// name before "(" is an error, so a misspelled function is caught too.
	functions = set("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
		"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
		"count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg", "delta",
		"deriv", "double_exponential_smoothing", "end", "exp", "first_over_time", "floor", "histogram_avg",
		"histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar",
		"histogram_sum", "holt_winters", "hour", "idelta", "increase", "info", "irate", "label_join",
		"label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
		"min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time",
		"rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label",
		"sort_by_label_desc", "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time",
		"sum_over_time", "tan", "tanh", "time", "timestamp", "ts_of_max_over_time", "ts_of_min_over_time",
		"ts_of_last_over_time", "vector", "year")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// selectors returns the metrics a PromQL expression (possibly with Grafana
// variables such as $queue, ${datasource} or $__rate_interval) reads. It is
// a tokenizer, not a parser: it skips strings, comments, numbers and
// durations, range and subquery brackets, variables, function and
// aggregation names and the label lists of by/without/on/ignoring/
// group_left/group_right; every other identifier is a metric name, and a
// {...} right after it holds its label matchers.
func selectors(expr string) ([]selector, error) {
	s := []rune(expr)
	var out []selector
	i := 0
	skipSpace := func(j int) int {
		for j < len(s) && unicode.IsSpace(s[j]) {
			j++
		}
		return j
	}
	for i < len(s) {
		c := s[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#': // comment to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$':
			i = skipVariable(s, i)
		case c == '[':
			j := indexFrom(s, i, ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ at %d", i)
			}
			i = j + 1
		case c == '{':
			// A selector without a metric name before it: {__name__="..."}.
			return nil, fmt.Errorf("label matchers without a metric name at %d: name the metric", i)
		case unicode.IsDigit(c) || c == '.' && i+1 < len(s) && unicode.IsDigit(s[i+1]):
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := string(s[i:j])
			lower := strings.ToLower(word) // keywords are case-insensitive
			next := skipSpace(j)
			switch {
			case grouping[lower]:
				i = next
				if i < len(s) && s[i] == '(' {
					k := indexFrom(s, i, ')')
					if k < 0 {
						return nil, fmt.Errorf("unclosed ( after %s", word)
					}
					i = k + 1
				}
				continue
			case aggregations[lower] || keywords[lower]:
				i = j
				continue
			case next < len(s) && s[next] == '(':
				if !functions[word] {
					return nil, fmt.Errorf("unknown function %s", word)
				}
				i = j
				continue
			}
			sel := selector{Metric: word}
			i = j
			if next < len(s) && s[next] == '{' {
				labels, end, err := matchers(s, next)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", word, err)
				}
				sel.Labels, i = labels, end
			}
			out = append(out, sel)
		default:
			i++ // operators, parentheses, commas, @
		}
	}
	return out, nil
}

// matchers reads {name op "value", ...} starting at the '{' at i and returns
// the label names and the index after the '}'.
func matchers(s []rune, i int) ([]string, int, error) {
	var names []string
	i++
	for {
		for i < len(s) && (unicode.IsSpace(s[i]) || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return nil, 0, fmt.Errorf("unclosed {")
		}
		if s[i] == '}' {
			return names, i + 1, nil
		}
		if !isIdentStart(s[i]) {
			return nil, 0, fmt.Errorf("label name expected at %d, got %q", i, s[i])
		}
		j := i
		for j < len(s) && isIdent(s[j]) {
			j++
		}
		names = append(names, string(s[i:j]))
		i = j
		for i < len(s) && (unicode.IsSpace(s[i]) || strings.ContainsRune("=!~", s[i])) {
			i++
		}
		if i >= len(s) || !strings.ContainsRune("\"'`", s[i]) {
			return nil, 0, fmt.Errorf("quoted value expected for label %s", names[len(names)-1])
		}
		end, err := skipString(s, i)
		if err != nil {
			return nil, 0, err
		}
		i = end
	}
}

// skipString returns the index after the string literal starting at i.
func skipString(s []rune, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d", i)
}

// skipVariable returns the index after a Grafana variable: $name, ${name},
// ${name:format}.
func skipVariable(s []rune, i int) int {
	i++
	if i < len(s) && s[i] == '{' {
		if j := indexFrom(s, i, '}'); j >= 0 {
			return j + 1
		}
		return len(s)
	}
	for i < len(s) && isIdent(s[i]) {
		i++
	}
	return i
}

func indexFrom(s []rune, i int, r rune) int {
	for j := i; j < len(s); j++ {
		if s[j] == r {
			return j
		}
	}
	return -1
}

func isIdentStart(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
func isIdent(r rune) bool      { return isIdentStart(r) || unicode.IsDigit(r) }
