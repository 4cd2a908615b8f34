package docs

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/component-base/metrics/legacyregistry"

	"muster.dev/muster/pkg/metrics"
)

const (
	referenceFile = "reference.md"
	module        = "muster.dev/muster"
)

// sourceDirs are read for the names the code defines.
var sourceDirs = []string{"../pkg", "../cmd"}

// keyName and keyValue pick the constants that are label, annotation or
// taint keys: by their name (LabelQueue, AnnotationPolicy, TaintCAToBeDeleted,
// PrefixNTH, KeyGKEImpendingTermination, labelApp, ...) or by their value.
var (
	keyName  = regexp.MustCompile(`^(?i:label|annotation|taint|prefix|key)([A-Z_]|$)`)
	keyValue = regexp.MustCompile(`muster\.dev/|^spark-|^scheduling\.x-k8s\.io/`)
)

// enumTypes are the named string types whose values users see: in messages,
// the status ConfigMap, metric labels or `muster explain -o json`.
var enumTypes = map[string][]string{
	"pkg/gang":       {"Kind", "Phase", "Role"},
	"pkg/capacity":   {"Policy", "Type", "Role", "Source"},
	"pkg/explain":    {"Verdict"},
	"pkg/waitreason": {"Code"},
}

// jsonTypes are the structs whose JSON fields are an interface: the status
// ConfigMap, `muster explain -o json` and the plugin arguments.
var jsonTypes = map[string][]string{
	"pkg/status":         {"Report", "Config", "Queue", "Gang"},
	"pkg/explain":        {"Explanation", "QueueLine"},
	"pkg/apis/config/v1": {"MusterQueueArgs", "MusterGangArgs", "MusterCapacityArgs"},
}

// name is one name defined in the code and where.
type name struct {
	value, what, pos string
}

// TestReferenceDocumentsCode fails for every label, annotation, taint key,
// Event reason, user-visible enumeration value, status or argument field
// and metric (with its labels) that the code defines and reference.md does
// not mention.
func TestReferenceDocumentsCode(t *testing.T) {
	doc := readReference(t)
	src := loadSource(t)
	names := src.keys()
	names = append(names, src.eventReasons(t)...)
	names = append(names, src.enums()...)
	names = append(names, src.jsonFields()...)
	require.NotEmpty(t, names)

	kinds := map[string]int{}
	for _, n := range names {
		kinds[n.what]++
		found := mentions(doc, n.value)
		if strings.HasSuffix(n.what, " field") {
			found = mentionsField(doc, n.value) // config.lastError
		}
		assert.Truef(t, found, "%s %q (%s) is not in docs/%s", n.what, n.value, n.pos, referenceFile)
	}
	t.Logf("checked %d names: %v", len(names), kinds)
	// The collectors must keep finding what they were written for: a
	// refactoring that hides the names from them must fail here, not pass.
	for _, want := range []string{"label or annotation key", "Event reason", "explain.Verdict", "waitreason.Code", "gang.Kind", "capacity.Policy", "status.Report field", "v1.MusterGangArgs field"} {
		assert.Positivef(t, kinds[want], "no %s found in the code: the collector is broken", want)
	}
}

// TestReferenceMetrics checks muster's registered metrics against
// reference.md both ways: each metric has a table row naming each of its
// labels, and every muster_* name the reference uses is a metric muster
// registers (or one of a histogram's series).
func TestReferenceMetrics(t *testing.T) {
	doc := readReference(t)
	registered := musterMetrics(t)
	require.NotEmpty(t, registered, "no muster_* metric registered: the collector is broken")

	lines := strings.Split(doc, "\n")
	for metric, labels := range registered {
		row := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "| `"+metric+"` |") {
				row = l
				break
			}
		}
		if !assert.NotEmptyf(t, row, "metric %s has no row in the metrics table of docs/%s", metric, referenceFile) {
			continue
		}
		for _, label := range labels {
			assert.Containsf(t, row, "`"+label+"`", "metric %s: label %s is not in its row", metric, label)
		}
	}

	for _, used := range regexp.MustCompile(`\bmuster_[a-z0-9_]*[a-z0-9]`).FindAllString(doc, -1) {
		base := used
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(used, suffix); ok && registered[trimmed] != nil {
				base = trimmed
			}
		}
		assert.Containsf(t, registered, base, "docs/%s names %s, which muster does not register", referenceFile, used)
	}
}

// TestReferenceKeysExist fails for a muster.dev key the reference documents
// that no constant in the code defines: a renamed or removed key.
func TestReferenceKeysExist(t *testing.T) {
	doc := readReference(t)
	defined := map[string]bool{}
	for _, n := range loadSource(t).keys() {
		defined[n.value] = true
	}
	for _, used := range regexp.MustCompile(`(?:[a-z0-9-]+\.)*muster\.dev/[a-z0-9.-]*[a-z0-9]`).FindAllString(doc, -1) {
		assert.Truef(t, defined[used], "docs/%s documents %s, which no constant in the code defines", referenceFile, used)
	}
}

// TestMentions pins down the matching: a name must appear whole, not as
// part of a longer name.
func TestMentions(t *testing.T) {
	doc := "label `muster.dev/gang-min-member`, `sandbox.muster.dev/app`, GangAdmitted. `aws-node-termination-handler/` key"
	for name, want := range map[string]bool{
		"muster.dev/gang-min-member":    true,
		"muster.dev/gang":               false,
		"muster.dev/app":                false,
		"sandbox.muster.dev/app":        true,
		"GangAdmitted":                  true,
		"Gang":                          false,
		"aws-node-termination-handler/": true,
		"gang-min":                      false,
	} {
		assert.Equalf(t, want, mentions(doc, name), "mentions(%q)", name)
	}
}

func readReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(referenceFile)
	require.NoError(t, err)
	return string(b)
}

// mentions reports whether name appears in doc as a whole: not preceded or
// followed by characters that would make it part of a longer name.
func mentions(doc, name string) bool {
	re := regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])` + regexp.QuoteMeta(name) + `(?:$|[^A-Za-z0-9_/-])`)
	return re.MatchString(doc)
}

// mentionsField is mentions for a field name, which may also follow its
// parent's name and a dot (config.lastError).
func mentionsField(doc, name string) bool {
	re := regexp.MustCompile(`(?:^|[^A-Za-z0-9_/-])` + regexp.QuoteMeta(name) + `(?:$|[^A-Za-z0-9_/-])`)
	return re.MatchString(doc)
}

// pkg is one package's parsed non-test files.
type pkg struct {
	dir    string // relative to the module root, e.g. pkg/gang
	files  []*ast.File
	consts map[string]*constDef
}

type constDef struct {
	name     string
	typeName string // the declared type's name, if it is a plain identifier
	value    ast.Expr
	pos      string
	file     *ast.File
}

type source struct {
	fset *token.FileSet
	pkgs map[string]*pkg // by directory relative to the module root
}

func loadSource(t *testing.T) *source {
	t.Helper()
	s := &source{fset: token.NewFileSet(), pkgs: map[string]*pkg{}}
	for _, root := range sourceDirs {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(s.fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			dir := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../")))
			p := s.pkgs[dir]
			if p == nil {
				p = &pkg{dir: dir, consts: map[string]*constDef{}}
				s.pkgs[dir] = p
			}
			p.files = append(p.files, f)
			s.collectConsts(p, f)
			return nil
		})
		require.NoError(t, err)
	}
	require.NotEmpty(t, s.pkgs)
	return s
}

func (s *source) collectConsts(p *pkg, f *ast.File) {
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			typeName := ""
			if id, ok := vs.Type.(*ast.Ident); ok {
				typeName = id.Name
			}
			for i, n := range vs.Names {
				if i >= len(vs.Values) {
					continue // iota groups: not strings
				}
				p.consts[n.Name] = &constDef{name: n.Name, typeName: typeName, value: vs.Values[i],
					pos: s.pos(n.Pos()), file: f}
			}
		}
	}
}

func (s *source) pos(p token.Pos) string {
	position := s.fset.Position(p)
	return fmt.Sprintf("%s:%d", strings.TrimPrefix(position.Filename, "../"), position.Line)
}

// eval returns the string value of a constant expression of package p:
// literals, constants of muster's packages and their concatenations.
func (s *source) eval(p *pkg, f *ast.File, e ast.Expr, depth int) (string, bool) {
	if depth > 10 {
		return "", false
	}
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		v, err := strconv.Unquote(e.Value)
		return v, err == nil
	case *ast.ParenExpr:
		return s.eval(p, f, e.X, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := s.eval(p, f, e.X, depth+1)
		b, ok2 := s.eval(p, f, e.Y, depth+1)
		return a + b, ok1 && ok2
	case *ast.Ident:
		if c := p.consts[e.Name]; c != nil {
			return s.eval(p, c.file, c.value, depth+1)
		}
	case *ast.SelectorExpr:
		if other := s.imported(f, e.X); other != nil {
			if c := other.consts[e.Sel.Name]; c != nil {
				return s.eval(other, c.file, c.value, depth+1)
			}
		}
	}
	return "", false
}

// imported returns the muster package that x names in file f, or nil.
func (s *source) imported(f *ast.File, x ast.Expr) *pkg {
	id, ok := x.(*ast.Ident)
	if !ok {
		return nil
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		dir, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			continue
		}
		local := filepath.Base(dir)
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == id.Name {
			return s.pkgs[dir]
		}
	}
	return nil
}

func (s *source) sortedPkgs() []*pkg {
	out := make([]*pkg, 0, len(s.pkgs))
	for _, p := range s.pkgs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].dir < out[j].dir })
	return out
}

// keys returns the constants that are label, annotation or taint keys.
func (s *source) keys() []name {
	var out []name
	for _, p := range s.sortedPkgs() {
		for _, c := range p.consts {
			v, ok := s.eval(p, c.file, c.value, 0)
			if !ok || v == "" || strings.ContainsAny(v, " \t") || !keyName.MatchString(c.name) && !keyValue.MatchString(v) {
				continue
			}
			out = append(out, name{value: v, what: "label or annotation key", pos: c.pos})
		}
	}
	return out
}

// enums returns the values of the named string types in enumTypes.
func (s *source) enums() []name {
	var out []name
	for dir, types := range enumTypes {
		p := s.pkgs[dir]
		if p == nil {
			out = append(out, name{value: "package " + dir + " not found", what: "enum"})
			continue
		}
		for _, c := range p.consts {
			for _, typ := range types {
				if c.typeName != typ {
					continue
				}
				if v, ok := s.eval(p, c.file, c.value, 0); ok && v != "" {
					out = append(out, name{value: v, what: filepath.Base(dir) + "." + typ, pos: c.pos})
				}
			}
		}
	}
	return out
}

// jsonFields returns the JSON field names of the structs in jsonTypes.
func (s *source) jsonFields() []name {
	var out []name
	for dir, types := range jsonTypes {
		p := s.pkgs[dir]
		if p == nil {
			out = append(out, name{value: "package " + dir + " not found", what: "JSON type"})
			continue
		}
		want := map[string]bool{}
		for _, typ := range types {
			want[typ] = true
		}
		for _, f := range p.files {
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok || !want[ts.Name.Name] {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				for _, field := range st.Fields.List {
					if field.Tag == nil {
						continue
					}
					tag, _ := strconv.Unquote(field.Tag.Value)
					js, _, _ := strings.Cut(reflectTag(tag, "json"), ",")
					if js == "" || js == "-" {
						continue
					}
					out = append(out, name{value: js, what: filepath.Base(dir) + "." + ts.Name.Name + " field", pos: s.pos(field.Pos())})
				}
				return false
			})
		}
	}
	return out
}

// reflectTag is reflect.StructTag.Get for a tag read from source.
func reflectTag(tag, key string) string {
	re := regexp.MustCompile(regexp.QuoteMeta(key) + `:"([^"]*)"`)
	if m := re.FindStringSubmatch(tag); m != nil {
		return m[1]
	}
	return ""
}

// eventReasonArg is the reason's position in Eventf(regarding, related,
// eventtype, reason, action, note, args...) of client-go's events API.
const eventReasonArg = 3

// eventReasons returns the reason of every Event the code records: the
// reason argument of each Eventf call, a constant or a literal, or, when a
// helper passes its own parameter on (func (pl *Plugin) event(..., reason,
// ...)), the constants its callers in the package pass. A reason it cannot
// resolve fails the test: make it a constant.
func (s *source) eventReasons(t *testing.T) []name {
	var out []name
	for _, p := range s.sortedPkgs() {
		// forwarders: helper name -> the index of its parameter passed as
		// the reason.
		forwarders := map[string]int{}
		for _, f := range p.files {
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				params := paramIndex(fd)
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || callee(call) != "Eventf" || len(call.Args) <= eventReasonArg {
						return true
					}
					arg := call.Args[eventReasonArg]
					if id, ok := arg.(*ast.Ident); ok {
						if i, isParam := params[id.Name]; isParam {
							forwarders[fd.Name.Name] = i
							return true
						}
					}
					out = append(out, s.reason(t, p, f, arg))
					return true
				})
			}
		}
		for helper, i := range forwarders {
			found := false
			for _, f := range p.files {
				ast.Inspect(f, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || callee(call) != helper || len(call.Args) <= i {
						return true
					}
					found = true
					out = append(out, s.reason(t, p, f, call.Args[i]))
					return true
				})
			}
			assert.Truef(t, found, "%s: %s passes its parameter as an Event reason but is never called", p.dir, helper)
		}
	}
	return out
}

func (s *source) reason(t *testing.T, p *pkg, f *ast.File, arg ast.Expr) name {
	v, ok := s.eval(p, f, arg, 0)
	assert.Truef(t, ok && v != "", "%s: an Event reason that is not a constant string", s.pos(arg.Pos()))
	return name{value: v, what: "Event reason", pos: s.pos(arg.Pos())}
}

// callee is the name of the function or method a call calls.
func callee(call *ast.CallExpr) string {
	switch fn := call.Fun.(type) {
	case *ast.Ident:
		return fn.Name
	case *ast.SelectorExpr:
		return fn.Sel.Name
	}
	return ""
}

// paramIndex maps a function's parameter names to their positions.
func paramIndex(fd *ast.FuncDecl) map[string]int {
	out := map[string]int{}
	i := 0
	for _, field := range fd.Type.Params.List {
		if len(field.Names) == 0 {
			i++
			continue
		}
		for _, n := range field.Names {
			out[n.Name] = i
			i++
		}
	}
	return out
}

// musterMetrics registers muster's metrics as muster-scheduler does and
// returns each muster_* metric the registry describes (vectors without
// series included) with its variable labels.
func musterMetrics(t *testing.T) map[string][]string {
	t.Helper()
	metrics.Register()
	reg, ok := legacyregistry.Registerer().(prometheus.Collector)
	require.Truef(t, ok, "legacyregistry's registerer is a %T, not a prometheus.Collector", legacyregistry.Registerer())
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	// Desc has no accessors; its String is
	// Desc{fqName: "...", help: "...", constLabels: {...}, variableLabels: {a,b,...}}.
	descRE := regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)
	out := map[string][]string{}
	for d := range ch {
		m := descRE.FindStringSubmatch(d.String())
		if !assert.NotNilf(t, m, "cannot parse %s", d.String()) || !strings.HasPrefix(m[1], "muster_") {
			continue
		}
		var labels []string
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels = append(labels, l)
			}
		}
		out[m[1]] = labels
	}
	return out
}
