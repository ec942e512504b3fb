package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// workload is a Deployment or StatefulSet, reduced to what the checks need.
type workload struct {
	kind, name, namespace string
	selector              *metav1.LabelSelector
	pod                   corev1.PodTemplateSpec
}

// manifest is one built overlay, decoded.
type manifest struct {
	objects   []runtime.Object
	workloads []workload
}

func newScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// decodeStrict decodes a multi-document YAML stream into typed objects:
// unknown fields, duplicate fields, wrong types and unknown kinds fail.
func decodeStrict(t *testing.T, scheme *runtime.Scheme, data []byte) ([]runtime.Object, error) {
	t.Helper()
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	r := utilyaml.NewYAMLReader(bufioReader(data))
	var out []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err != nil {
			if err.Error() == "EOF" {
				return out, nil
			}
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := ser.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if gvk.Kind == "" {
			return nil, fmt.Errorf("document %d has no kind", i)
		}
		out = append(out, obj)
	}
}

func build(t *testing.T, overlay string) manifest {
	t.Helper()
	out, err := exec.Command(tool(t, "kustomize"), "build", overlay).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("kustomize build %s: %v\n%s", overlay, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	objs, err := decodeStrict(t, newScheme(t), out)
	if err != nil {
		t.Fatalf("decoding %s: %v", overlay, err)
	}
	m := manifest{objects: objs}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			m.workloads = append(m.workloads, workload{"Deployment", o.Name, o.Namespace, o.Spec.Selector, o.Spec.Template})
		case *appsv1.StatefulSet:
			m.workloads = append(m.workloads, workload{"StatefulSet", o.Name, o.Namespace, o.Spec.Selector, o.Spec.Template})
		}
	}
	return m
}

func overlays(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("k8s/overlays/*")
	if err != nil || len(dirs) < 2 {
		t.Fatalf("overlays = %v (err %v), want dev and production", dirs, err)
	}
	return dirs
}

// TestOverlaysDecodeStrictly builds every overlay and checks each object
// against the API types and the others: selectors match pod labels, probe
// ports are container ports, Services, PDBs and the HPA point at workloads,
// and every container runs non-root on a read-only root with resources set.
func TestOverlaysDecodeStrictly(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := build(t, dir)
			if len(m.workloads) < 6 {
				t.Fatalf("%d workloads, want the four services, etcd and NATS", len(m.workloads))
			}
			for _, w := range m.workloads {
				checkWorkload(t, w)
				checkProjectSettings(t, m, w)
			}
			for _, o := range m.objects {
				switch o := o.(type) {
				case *corev1.Service:
					checkService(t, m, o)
				case *policyv1.PodDisruptionBudget:
					if len(selected(t, m, o.Namespace, o.Spec.Selector)) == 0 {
						t.Errorf("PodDisruptionBudget %s selects no workload", o.Name)
					}
				case *autoscalingv2.HorizontalPodAutoscaler:
					ref := o.Spec.ScaleTargetRef
					if find(m, ref.Kind, ref.Name, o.Namespace) == nil {
						t.Errorf("HorizontalPodAutoscaler %s targets %s/%s, which does not exist", o.Name, ref.Kind, ref.Name)
					}
				}
			}
		})
	}
}

func checkWorkload(t *testing.T, w workload) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || sel.Empty() {
		t.Errorf("%s %s: selector %v is invalid or empty (%v)", w.kind, w.name, w.selector, err)
		return
	}
	if !sel.Matches(labels.Set(w.pod.Labels)) {
		t.Errorf("%s %s: selector %v does not match its pod labels %v", w.kind, w.name, sel, w.pod.Labels)
	}
	psc := w.pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("%s %s: the pod does not set runAsNonRoot", w.kind, w.name)
	}
	for _, c := range w.pod.Spec.Containers {
		where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is not read-only", where)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: privilege escalation is not disabled", where)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
			c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: cpu and memory requests and limits must all be set", where)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness and liveness probes are required", where)
		}
		for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p != nil {
				checkProbePort(t, where+" "+name+" probe", c, p)
			}
		}
		if strings.HasSuffix(c.Image, ":latest") && !strings.Contains(c.Image, "bullseye-") {
			t.Errorf("%s: third-party image %s is not pinned", where, c.Image)
		}
	}
}

func checkProbePort(t *testing.T, where string, c corev1.Container, p *corev1.Probe) {
	t.Helper()
	switch {
	case p.GRPC != nil:
		if !hasPort(c, intstr.FromInt32(p.GRPC.Port)) {
			t.Errorf("%s: gRPC port %d is not a container port", where, p.GRPC.Port)
		}
	case p.HTTPGet != nil:
		if !hasPort(c, p.HTTPGet.Port) {
			t.Errorf("%s: HTTP port %s is not a container port", where, p.HTTPGet.Port.String())
		}
	case p.TCPSocket != nil:
		if !hasPort(c, p.TCPSocket.Port) {
			t.Errorf("%s: TCP port %s is not a container port", where, p.TCPSocket.Port.String())
		}
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			t.Errorf("%s: exec probe without a command", where)
		}
	default:
		t.Errorf("%s: no probe handler", where)
	}
}

func hasPort(c corev1.Container, port intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if port.Type == intstr.String && cp.Name == port.StrVal {
			return true
		}
		if port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
			return true
		}
	}
	return false
}

func checkService(t *testing.T, m manifest, s *corev1.Service) {
	t.Helper()
	if len(s.Spec.Selector) == 0 {
		t.Errorf("Service %s has no selector", s.Name)
		return
	}
	ws := selected(t, m, s.Namespace, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
	if len(ws) == 0 {
		t.Errorf("Service %s selects no Deployment or StatefulSet", s.Name)
		return
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, w := range ws {
			found := false
			for _, c := range w.pod.Spec.Containers {
				found = found || hasPort(c, target)
			}
			if !found {
				t.Errorf("Service %s port %s targets %s, which %s %s does not expose", s.Name, p.Name, target.String(), w.kind, w.name)
			}
		}
	}
}

func selected(t *testing.T, m manifest, namespace string, ls *metav1.LabelSelector) []workload {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("selector %v: %v", ls, err)
		return nil
	}
	var out []workload
	for _, w := range m.workloads {
		if w.namespace == namespace && sel.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func find(m manifest, kind, name, namespace string) *workload {
	for i, w := range m.workloads {
		if w.kind == kind && w.name == name && w.namespace == namespace {
			return &m.workloads[i]
		}
	}
	return nil
}

// checkProjectSettings checks that a project container gets only settings and
// probe arguments its binary accepts, including those from ConfigMaps.
func checkProjectSettings(t *testing.T, m manifest, w workload) {
	t.Helper()
	for _, c := range w.pod.Spec.Containers {
		svc, ok := serviceOfImage(c.Image)
		if !ok {
			continue
		}
		where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
		env := map[string]string{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef == nil {
				continue
			}
			cm := configMap(m, from.ConfigMapRef.Name, w.namespace)
			if cm == nil {
				t.Errorf("%s: ConfigMap %s does not exist", where, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		checkEnv(t, where, svc, env)
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.Exec != nil {
				if p.Exec.Command[0] != "/bullseye" {
					t.Errorf("%s: exec probe %v does not run the binary", where, p.Exec.Command)
					continue
				}
				checkArgs(t, where+" probe", svc, p.Exec.Command[1:])
			}
		}
	}
}

func configMap(m manifest, name, namespace string) *corev1.ConfigMap {
	for _, o := range m.objects {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Namespace == namespace && (cm.Name == name || strings.HasPrefix(cm.Name, name+"-")) {
			return cm
		}
	}
	return nil
}

// TestProductionRunsThreeMembers checks the production overlay's quorum sizes.
func TestProductionRunsThreeMembers(t *testing.T) {
	m := build(t, "k8s/overlays/production")
	for _, o := range m.objects {
		if s, ok := o.(*appsv1.StatefulSet); ok {
			if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
				t.Errorf("StatefulSet %s has %v replicas, want 3", s.Name, s.Spec.Replicas)
			}
		}
	}
}

// TestStrictDecodingRejectsMistakes makes sure the decoder really is strict:
// the checks above mean nothing if it accepts these.
func TestStrictDecodingRejectsMistakes(t *testing.T) {
	scheme := newScheme(t)
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"wrong type":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
		"unknown kind":  "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n",
	} {
		if _, err := decodeStrict(t, scheme, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// tool finds one of the project's pinned tools: in $BULLSEYE_BIN, else in
// the bin folder at the repository's root (make tools installs it there).
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, d := range []string{os.Getenv("BULLSEYE_BIN"), "../bin"} {
		if d == "" {
			continue
		}
		if p, err := filepath.Abs(filepath.Join(d, name)); err == nil {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("%s not found in $BULLSEYE_BIN or ../bin: run 'make tools'", name)
	return ""
}

// TestKeyReachesEveryServiceThatTakesIt checks, in every overlay, that each
// service whose binary takes --hmac-key-file is given one, read from a
// mounted Secret, and that all of them read the same Secret's same key: a
// feature service with another key (or none) cannot consult ingest's erasure
// list and answers erased customers as unknown.
func TestKeyReachesEveryServiceThatTakesIt(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := build(t, dir)
			sources := map[string]string{} // service -> "secret/key"
			for _, w := range m.workloads {
				for _, c := range w.pod.Spec.Containers {
					svc, ok := serviceOfImage(c.Image)
					if !ok || flagsOf(t, svc).Lookup("hmac-key-file") == nil {
						continue
					}
					where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
					src, err := secretFileOf(w.pod.Spec, c)
					if err != nil {
						t.Errorf("%s: %v", where, err)
						continue
					}
					sources[svc] = src
				}
			}
			for _, svc := range []string{"ingest", "feature"} {
				if _, ok := sources[svc]; !ok {
					t.Errorf("the %s service is given no HMAC key from a Secret", svc)
				}
			}
			for svc, src := range sources {
				if src != sources["ingest"] {
					t.Errorf("the %s service reads its HMAC key from %s, ingest from %s", svc, src, sources["ingest"])
				}
			}
		})
	}
}

// secretFileOf returns "secret/key" for the file that a container's
// BULLSEYE_HMAC_KEY_FILE names, or why it is not a key of a mounted Secret.
func secretFileOf(pod corev1.PodSpec, c corev1.Container) (string, error) {
	var path string
	for _, e := range c.Env {
		switch e.Name {
		case "BULLSEYE_HMAC_KEY_FILE":
			path = e.Value
		case "BULLSEYE_DEV_HMAC_KEY":
			return "", fmt.Errorf("generates a development key (BULLSEYE_DEV_HMAC_KEY)")
		}
	}
	if path == "" {
		return "", fmt.Errorf("BULLSEYE_HMAC_KEY_FILE is not set")
	}
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != vm.Name {
				continue
			}
			if v.Secret == nil {
				return "", fmt.Errorf("%s is on volume %s, which is not a Secret", path, v.Name)
			}
			key := rel
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					key = it.Key
				}
			}
			return v.Secret.SecretName + "/" + key, nil
		}
	}
	return "", fmt.Errorf("%s is on no mounted volume", path)
}
