package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	configv1 "muster.dev/muster/pkg/apis/config/v1"
	"muster.dev/muster/pkg/capacity"
	"muster.dev/muster/pkg/devices"
	"muster.dev/muster/pkg/explain"
	"muster.dev/muster/pkg/gang"
	"muster.dev/muster/pkg/queue"
	"muster.dev/muster/pkg/status"
)

// explainOptions are `muster explain`'s flags.
type explainOptions struct {
	kubeconfig, context string
	namespace           string // the pod's namespace
	musterNamespace     string
	schedulerName       string
	gang                string
	output              string
}

func newExplainCommand() *cobra.Command {
	o := explainOptions{}
	cmd := &cobra.Command{
		Use:   "explain (POD | NAMESPACE/POD | --gang NAME)",
		Short: "Say why a pod (or a gang) is pending: its queue, gang, limits and the scheduler's reason",
		Long: `Reads the pod, its gang, the queue configuration, the status muster-scheduler
publishes and the pod's Events from the live cluster, and prints one verdict
with the reason and what to do, followed by the facts it rests on: the queue's
usage against its limits and fair share, the gang's members, muster's
muster.dev/Admitted condition (whose reason code decides the verdict), the
scheduler's PodScheduled condition and recent Events.

Verdicts: Bound, Finished, NotMuster, NoQueueConfig, NoQueue, BadAnnotation,
GangSourceMissing, GangIncomplete, QueueOverMax, GangWaiting, NoNodeFits,
NeverFits, NotTriedYet, SchedulerStatus.`,
		Example: `  muster explain spark-pi-exec-3 -n team-a
  muster explain team-a/spark-pi-driver
  muster explain --gang train-resnet -n ml
  kubectl muster explain spark-pi-driver -n team-a -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.gang != "" && len(args) > 0 || o.gang == "" && len(args) != 1 {
				return fmt.Errorf("give one pod (POD or NAMESPACE/POD) or --gang NAME")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), args)
		},
	}
	cmd.Flags().StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&o.context, "context", "", "the kubeconfig context to use")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "the pod's namespace (default: the context's namespace)")
	cmd.Flags().StringVar(&o.musterNamespace, "muster-namespace", configv1.DefaultNamespace, "muster's namespace (queue and status ConfigMaps)")
	cmd.Flags().StringVar(&o.schedulerName, "scheduler-name", "muster", "muster's schedulerName")
	cmd.Flags().StringVar(&o.gang, "gang", "", "explain a gang (PodGroup, muster.dev/gang or Spark application) instead of one pod")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output format: text, yaml or json")
	return cmd
}

func (o *explainOptions) run(ctx context.Context, w io.Writer, args []string) error {
	switch o.output {
	case "text", "yaml", "json":
	default:
		return fmt.Errorf("unknown output format %q: use text, yaml or json", o.output)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	if o.namespace == "" {
		if o.namespace, _, err = cc.Namespace(); err != nil || o.namespace == "" {
			o.namespace = metav1.NamespaceDefault
		}
	}
	g, err := newGatherer(cfg, o)
	if err != nil {
		return err
	}
	var pods []*v1.Pod
	if o.gang != "" {
		if pods, err = g.gangPods(ctx, o.namespace, o.gang); err != nil {
			return err
		}
	} else {
		ns, name := o.namespace, args[0]
		if i := strings.Index(name, "/"); i >= 0 {
			ns, name = name[:i], name[i+1:]
		}
		p, err := g.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading pod %s/%s: %w", ns, name, err)
		}
		pods = []*v1.Pod{p}
	}
	// For a gang: one explanation for the whole gang, from the member that
	// waits (a bound member says little about why the rest wait).
	subject := pods[0]
	for _, p := range pods {
		if p.Spec.NodeName == "" && p.Status.Phase == v1.PodPending {
			subject = p
			break
		}
	}
	ex := explain.Explain(g.input(ctx, subject))
	switch o.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ex)
	case "yaml":
		b, err := yaml.Marshal(ex)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	printExplanation(w, ex)
	if o.gang != "" {
		printMembers(w, pods)
	}
	return nil
}

// gatherer reads the facts explain needs. Anything it cannot read becomes
// a warning in the explanation, never a failure: a tenant without rights to
// muster's namespace still learns what their own objects say.
//
// It is the gang.Objects of `muster explain`: the objects that define gangs
// are read with a dynamic client, whatever their kind.
type gatherer struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface
	o       *explainOptions
	clock   clock.PassiveClock
}

var _ gang.Objects = &gatherer{}

func newGatherer(cfg *rest.Config, o *explainOptions) (*gatherer, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &gatherer{client: client, dynamic: dyn, o: o, clock: clock.RealClock{}}, nil
}

func (g *gatherer) input(ctx context.Context, p *v1.Pod) explain.Input {
	in := explain.Input{Pod: p, SchedulerName: g.o.schedulerName, Now: g.clock.Now()}
	cm, err := g.client.CoreV1().ConfigMaps(g.o.musterNamespace).Get(ctx, configv1.DefaultQueuesConfigMap, metav1.GetOptions{})
	switch {
	case err != nil:
		in.TreeErr = fmt.Errorf("reading ConfigMap %s/%s: %w", g.o.musterNamespace, configv1.DefaultQueuesConfigMap, err)
	default:
		in.Tree, in.TreeErr = queue.Parse([]byte(cm.Data[queue.ConfigKey]))
	}
	if st, err := g.client.CoreV1().ConfigMaps(g.o.musterNamespace).Get(ctx, configv1.DefaultStatusConfigMap, metav1.GetOptions{}); err == nil {
		if r, err := status.Decode([]byte(st.Data[status.Key])); err == nil {
			in.Status = &r
		}
	}
	in.Devices = devices.PodDevices(p, claimReader{ctx: ctx, client: g.client})
	in.Gang = g.gangFacts(ctx, p)
	g.placementFacts(ctx, &in)
	sel := fields.Set{"involvedObject.name": p.Name, "involvedObject.uid": string(p.UID)}.AsSelector().String()
	if evs, err := g.client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel}); err == nil {
		in.Events = evs.Items
	}
	return in
}

// claimReader reads the ResourceClaims and templates a pod names.
type claimReader struct {
	ctx    context.Context
	client kubernetes.Interface
}

func (r claimReader) Claim(ns, name string) *resourceapi.ResourceClaim {
	c, err := r.client.ResourceV1().ResourceClaims(ns).Get(r.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return c
}

func (r claimReader) Template(ns, name string) *resourceapi.ResourceClaimTemplate {
	t, err := r.client.ResourceV1().ResourceClaimTemplates(ns).Get(r.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return t
}

// placementFacts reads, for a pod no node takes, the nodes as muster's
// filters see them and where its gang's members are: the details behind
// the filters' fixed reasons.
func (g *gatherer) placementFacts(ctx context.Context, in *explain.Input) {
	p := in.Pod
	if p.Spec.NodeName != "" || p.Status.Phase != v1.PodPending {
		return
	}
	g.pendingFacts(ctx, in)
	nodes, err := g.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return // a tenant may not list nodes: the verdict stands without details
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		in.Nodes = append(in.Nodes, explain.NodeFacts{Name: n.Name, View: capacity.ViewOf(n)})
	}
	if in.Gang == nil {
		return
	}
	members, _ := gang.SourceOf(in.Gang.Ref.Kind).Members(ctx, in.Gang.Ref, g)
	for _, m := range members {
		if m.Spec.NodeName != "" && gang.Live(m) {
			in.GangNodes = append(in.GangNodes, m.Spec.NodeName)
		}
	}
}

// pendingFacts reads the pods waiting for muster, for the pod's place in
// its queue's order: cluster-wide (a queue may take pods of several
// namespaces), else the pod's namespace only, said in a warning.
func (g *gatherer) pendingFacts(ctx context.Context, in *explain.Input) {
	sel := fields.Set{"spec.schedulerName": g.o.schedulerName, "spec.nodeName": ""}.AsSelector().String()
	list, err := g.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		if list, err = g.client.CoreV1().Pods(in.Pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel}); err != nil {
			return
		}
		in.PendingNamespaceOnly = true
	}
	in.Pending = make([]*v1.Pod, 0, len(list.Items))
	for i := range list.Items {
		in.Pending = append(in.Pending, &list.Items[i])
	}
}

// gangFacts reads the pod's gang as muster's gang plugin does: through its
// source (pkg/gang), here over the apiserver.
func (g *gatherer) gangFacts(ctx context.Context, p *v1.Pod) *explain.GangFacts {
	ref, _, ok := gang.Identify(p)
	if !ok {
		return nil
	}
	src := gang.SourceOf(ref.Kind)
	if r, defined := src.Resource(); defined {
		if served, err := discovery.IsResourceEnabled(g.client.Discovery(), r); err != nil || !served {
			return nil // as for the scheduler: the reference means nothing here
		}
	}
	def, err := src.Spec(ctx, ref, p, g)
	f := &explain.GangFacts{Ref: ref, MinMember: def.Spec.MinMember, QueueLabel: def.QueueLabel}
	var readErr *gang.ReadError
	switch {
	case errors.As(err, &readErr):
		f.Missing = fmt.Sprintf("%s could not be read: %v", readErr.Object, readErr.Err)
	case err != nil:
		f.SpecErr = err
	case def.Wait != nil:
		f.Missing = def.Wait.Detail
	}
	members, _ := src.Members(ctx, ref, g)
	for _, m := range members {
		if !gang.Live(m) {
			continue
		}
		f.Members++
		if m.Spec.NodeName != "" {
			f.Placed++
		}
	}
	return f
}

// Pods implements gang.Objects.
func (g *gatherer) Pods(ctx context.Context, namespace string, selector labels.Selector) ([]*v1.Pod, error) {
	list, err := g.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	out := make([]*v1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Object implements gang.Objects. Spark drivers' ConfigMaps are not read:
// the scheduler reads them only where the admin allows it, which explain
// cannot tell, so its reservation is the one muster's defaults give.
func (g *gatherer) Object(ctx context.Context, r schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	if r == gang.ResourceConfigMap {
		return nil, fmt.Errorf("%s: %w", r, gang.ErrNotServed)
	}
	return g.dynamic.Resource(r).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
}

// gangPods finds a gang by name in the namespace, whatever its source.
func (g *gatherer) gangPods(ctx context.Context, ns, name string) ([]*v1.Pod, error) {
	for _, src := range gang.Sources() {
		pods, _ := src.Members(ctx, gang.Ref{Kind: src.Kind(), Namespace: ns, Name: name}, g)
		if len(pods) > 0 {
			sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
			return pods, nil
		}
	}
	return nil, fmt.Errorf("no pods of a gang named %s in namespace %s (looked for labels %s, %s, %s, the Workload API's schedulingGroup, and labels %s, %s)",
		name, ns, gang.LabelPodGroup, gang.LabelGang, gang.LabelSparkApp, gang.LabelRayCluster, gang.LabelJobSet)
}

func printExplanation(w io.Writer, e explain.Explanation) {
	fmt.Fprintf(w, "Pod:        %s (%s", e.Pod, e.Phase)
	if e.Node != "" {
		fmt.Fprintf(w, " on %s", e.Node)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "Verdict:    %s\n", e.Verdict)
	if e.ReasonCode != "" {
		fmt.Fprintf(w, "Code:       %s\n", e.ReasonCode)
	}
	fmt.Fprintf(w, "Why:        %s\n", e.Reason)
	for i, d := range e.Details {
		label := "            "
		if i == 0 {
			label = "Details:    "
		}
		fmt.Fprintf(w, "%s%s\n", label, d)
	}
	for i, t := range e.Todo {
		label := "            "
		if i == 0 {
			label = "What to do: "
		}
		fmt.Fprintf(w, "%s%s\n", label, t)
	}
	fmt.Fprintln(w)
	if e.Queue != "" {
		fmt.Fprintf(w, "Queue:      %s (from %s)\n", e.Queue, e.QueueVia)
	}
	if e.Gang != "" {
		fmt.Fprintf(w, "Gang:       %s: %s\n", e.Gang, e.GangLine)
	}
	if e.Policy != "" {
		fmt.Fprintf(w, "Placement:  %s\n", e.Policy)
	}
	fmt.Fprintf(w, "Requests:   %s\n", e.Request)
	if e.Order != "" {
		fmt.Fprintf(w, "Order:      %s\n", e.Order)
	}
	for i, b := range e.WaitsBehind {
		label := "            "
		if i == 0 {
			label = "Behind:     "
		}
		fmt.Fprintf(w, "%s%s\n", label, b)
	}
	if e.Holds != "" {
		fmt.Fprintf(w, "Held room:  %s\n", e.Holds)
	}
	if len(e.Usage) > 0 {
		fmt.Fprintf(w, "\nQueue usage (muster-queue-status, %s old):\n", e.StatusAge)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  QUEUE\tGUARANTEED\tMAX\tALLOCATED\tRESERVED\tPENDING\tFAIR SHARE\tDOMINANT")
		for _, q := range e.Usage {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\n", q.Queue.Queue, list(q.Guaranteed), list(q.OwnMax),
				list(q.Allocated), list(q.Reserved), list(q.Pending), list(q.FairShare), 100*q.DominantShare)
		}
		_ = tw.Flush()
	}
	if e.Admission != "" {
		fmt.Fprintf(w, "\nAdmission:  %s\n", e.Admission)
	}
	if e.Condition != "" {
		if e.Admission == "" {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Scheduler:  %s\n", e.Condition)
	}
	if len(e.Events) > 0 {
		fmt.Fprintln(w, "\nRecent events:")
		for _, ev := range e.Events {
			fmt.Fprintf(w, "  %s\n", ev)
		}
	}
	for _, warn := range e.Warnings {
		fmt.Fprintf(w, "\nWARNING: %s\n", warn)
	}
}

func printMembers(w io.Writer, pods []*v1.Pod) {
	fmt.Fprintln(w, "\nMembers:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  POD\tPHASE\tNODE\tSCHEDULED")
	for _, p := range pods {
		node, sched := p.Spec.NodeName, ""
		if node == "" {
			node = "-"
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled {
				sched = string(c.Status)
				if c.Reason != "" {
					sched += " " + c.Reason
				}
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Status.Phase, node, sched)
	}
	_ = tw.Flush()
}
