package watcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/weir-mesh/weir/api/istio"
	"github.com/weir-mesh/weir/api/smi"
)

// DecodeError is a user's mistake in a manifest file: where, and why.
type DecodeError struct {
	File   string
	Line   int // 1-based; the first line of the offending document, or the line YAML reported
	Reason string
}

// Error returns "FILE:LINE: REASON".
func (e *DecodeError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// Warning reports a document of a kind weir does not read; the document is
// ignored. Callers usually report one warning per (APIVersion, Kind).
type Warning struct {
	File       string
	Line       int // 1-based first line of the document
	APIVersion string
	Kind       string
	Message    string
}

// String returns "FILE:LINE: MESSAGE".
func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Message) }

// skippedKinds are read by Kubernetes but not by weir; they are dropped silently
// because they commonly sit next to weir's objects in the same manifests.
var skippedKinds = map[string]bool{
	"Namespace": true, "Deployment": true, "ReplicaSet": true, "StatefulSet": true,
	"DaemonSet": true, "ServiceAccount": true, "ConfigMap": true,
}

// kindInfo tells how to decode one apiVersion+kind.
type kindInfo struct {
	kind  Kind
	value func() metav1.Object
	// convert, if set, turns the decoded value into the stored one, or
	// explains why it cannot be stored.
	convert func(metav1.Object) (metav1.Object, error)
}

// knownKinds maps "apiVersion kind" to its store kind.
var knownKinds = buildKnownKinds()

func buildKnownKinds() map[string]kindInfo {
	m := map[string]kindInfo{
		"v1 Service":                        {KindService, func() metav1.Object { return &corev1.Service{} }, nil},
		"v1 Pod":                            {KindPod, func() metav1.Object { return &corev1.Pod{} }, nil},
		"discovery.k8s.io/v1 EndpointSlice": {KindEndpointSlice, func() metav1.Object { return &discoveryv1.EndpointSlice{} }, nil},
		"v1 Secret":                         {KindSecret, func() metav1.Object { return &corev1.Secret{} }, tlsSecretOnly},
		"networking.k8s.io/v1 Ingress":      {KindIngress, func() metav1.Object { return &networkingv1.Ingress{} }, nil},
		"extensions/v1beta1 Ingress":        {KindIngress, func() metav1.Object { return &extensionsv1beta1.Ingress{} }, legacyIngress},
		"networking.k8s.io/v1beta1 Ingress": {KindIngress, func() metav1.Object { return &extensionsv1beta1.Ingress{} }, legacyIngress},
	}
	for _, v := range istio.Versions {
		m[istio.Group+"/"+v+" "+istio.VirtualServiceKind] = kindInfo{KindVirtualService, func() metav1.Object { return &istio.VirtualService{} }, nil}
		m[istio.Group+"/"+v+" "+istio.DestinationRuleKind] = kindInfo{KindDestinationRule, func() metav1.Object { return &istio.DestinationRule{} }, nil}
		m[istio.Group+"/"+v+" "+istio.GatewayKind] = kindInfo{KindIstioGateway, func() metav1.Object { return &istio.Gateway{} }, nil}
	}
	for _, v := range []string{"v1", "v1beta1"} {
		av := gwapiv1.GroupName + "/" + v + " "
		m[av+"GatewayClass"] = kindInfo{KindGatewayClass, func() metav1.Object { return &gwapiv1.GatewayClass{} }, clusterScoped}
		m[av+"Gateway"] = kindInfo{KindGateway, func() metav1.Object { return &gwapiv1.Gateway{} }, nil}
		m[av+"HTTPRoute"] = kindInfo{KindHTTPRoute, func() metav1.Object { return &gwapiv1.HTTPRoute{} }, nil}
		m[av+"ReferenceGrant"] = kindInfo{KindReferenceGrant, func() metav1.Object { return &gwapiv1.ReferenceGrant{} }, nil}
	}
	for _, v := range smi.SplitVersions {
		m[smi.SplitGroup+"/"+v+" "+smi.TrafficSplitKind] = kindInfo{KindTrafficSplit, func() metav1.Object { return &smi.TrafficSplit{} }, nil}
	}
	for _, v := range smi.SpecsVersions {
		m[smi.SpecsGroup+"/"+v+" "+smi.HTTPRouteGroupKind] = kindInfo{KindHTTPRouteGroup, func() metav1.Object { return &smi.HTTPRouteGroup{} }, nil}
	}
	return m
}

// document is one YAML document of a file.
type document struct {
	text  []byte // the document, with its "---" marker blanked out
	first int    // 1-based file line where text starts
	last  int    // 1-based file line where text ends
	line  int    // 1-based file line of its first content (not blank, not comment); 0 if none
}

// DecodeFile decodes the manifests in data, read from path (used only in
// messages): multi-document YAML, a JSON document, or a List of objects.
// It returns the objects weir stores, in file order, and a Warning for each
// document of a kind weir does not read. Any bad document makes the whole
// file fail with a *DecodeError and no objects.
func DecodeFile(path string, data []byte) ([]Object, []Warning, error) {
	var objs []Object
	var warns []Warning
	for _, doc := range splitDocuments(data) {
		if doc.line == 0 {
			continue
		}
		d := decoder{file: path, line: doc.line}
		j, err := yaml.YAMLToJSON(doc.text)
		if err != nil {
			return nil, nil, yamlError(path, doc, err)
		}
		if err := d.decodeJSON(j); err != nil {
			return nil, nil, err
		}
		objs = append(objs, d.objs...)
		warns = append(warns, d.warns...)
	}
	return objs, warns, nil
}

// splitDocuments cuts data at "---" and "..." lines, keeping line numbers.
func splitDocuments(data []byte) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var docs []document
	cur := document{first: 1}
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		n := i + 1
		if len(line) == 0 {
			break // after the final newline
		}
		switch {
		case isMarker(line, "---"):
			docs = append(docs, cur)
			cur = document{first: n}
			line = append([]byte("   "), line[3:]...)
		case isMarker(line, "..."):
			docs = append(docs, cur)
			cur = document{first: n + 1}
			continue
		}
		cur.text = append(cur.text, line...)
		cur.last = n
		if t := bytes.TrimSpace(line); cur.line == 0 && len(t) > 0 && t[0] != '#' {
			cur.line = n
		}
	}
	return append(docs, cur)
}

// isMarker reports whether line starts with the document marker m followed
// by the end of line or a blank.
func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	rest := line[len(m):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '\n'
}

var yamlLine = regexp.MustCompile(`yaml: line (\d+): `)

// yamlError turns a YAML syntax error into a DecodeError at the line YAML
// reported, made absolute in the file; YAML may report the line after the
// document's end, or count a lone "\r" as a line break, so the line is kept
// within the document.
func yamlError(path string, doc document, err error) *DecodeError {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	line := doc.line
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		if n, convErr := strconv.Atoi(msg[m[2]:m[3]]); convErr == nil && n > 0 {
			line = min(doc.first+n-1, doc.last)
		}
		msg = msg[:m[0]] + "yaml: " + msg[m[1]:]
	}
	return &DecodeError{File: path, Line: line, Reason: msg}
}

// decoder decodes the JSON form of one document of a file.
type decoder struct {
	file  string
	line  int
	objs  []Object
	warns []Warning
}

// header holds the fields every manifest shares.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func (d *decoder) fail(format string, args ...any) error {
	return &DecodeError{File: d.file, Line: d.line, Reason: fmt.Sprintf(format, args...)}
}

// decodeJSON decodes one object, or the items of a List.
func (d *decoder) decodeJSON(j []byte) error {
	j = bytes.TrimSpace(j)
	if bytes.Equal(j, []byte("null")) {
		return nil
	}
	if len(j) == 0 || j[0] != '{' {
		return d.fail("document is not a Kubernetes object (want a mapping with apiVersion and kind)")
	}
	var h header
	if err := yaml.Unmarshal(j, &h); err != nil {
		return d.fail("%s", jsonReason(err))
	}
	switch {
	case h.APIVersion == "" || h.Kind == "":
		return d.fail("apiVersion and kind are required")
	case h.Kind == "List":
		return d.decodeItems(h.Items)
	case skippedKinds[h.Kind]:
		return nil
	}
	info, ok := knownKinds[h.APIVersion+" "+h.Kind]
	if !ok {
		d.warns = append(d.warns, Warning{File: d.file, Line: d.line, APIVersion: h.APIVersion, Kind: h.Kind, Message: unknownMessage(h.APIVersion, h.Kind)})
		return nil
	}
	return d.decodeObject(h, info, j)
}

func (d *decoder) decodeItems(items []json.RawMessage) error {
	for i, item := range items {
		if err := d.decodeJSON(item); err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				de.Reason = fmt.Sprintf("items[%d]: %s", i, de.Reason)
			}
			return err
		}
	}
	return nil
}

// decodeObject decodes j strictly into the typed object of info.
func (d *decoder) decodeObject(h header, info kindInfo, j []byte) error {
	what := h.APIVersion + " " + h.Kind
	if h.Metadata.Name == "" {
		return d.fail("%s: metadata.name is required", what)
	}
	v := info.value()
	if err := yaml.Unmarshal(j, v); err != nil {
		return d.fail("%s %s: %s", what, h.Metadata.Name, jsonReason(err))
	}
	if v.GetNamespace() == "" {
		v.SetNamespace(metav1.NamespaceDefault)
	}
	if info.convert != nil {
		var err error
		if v, err = info.convert(v); err != nil {
			return d.fail("%s %s: %v", what, h.Metadata.Name, err)
		}
		if v == nil {
			return nil
		}
	}
	d.objs = append(d.objs, Object{Kind: info.kind, Namespace: v.GetNamespace(), Name: v.GetName(), Value: v})
	return nil
}

// jsonReason strips the wrapping sigs.k8s.io/yaml adds to encoding/json errors.
func jsonReason(err error) string {
	msg := err.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// unknownMessage explains why a kind is ignored, naming the accepted versions
// when only the version is wrong.
func unknownMessage(apiVersion, kind string) string {
	var versions []string
	for k := range knownKinds {
		av, kd, _ := strings.Cut(k, " ")
		if kd == kind && groupOf(av) == groupOf(apiVersion) {
			versions = append(versions, av)
		}
	}
	if len(versions) == 0 {
		return fmt.Sprintf("weir does not read %s %s; ignored", apiVersion, kind)
	}
	sort.Strings(versions)
	return fmt.Sprintf("weir does not read %s %s (it reads %s); ignored", apiVersion, kind, strings.Join(versions, ", "))
}

// groupOf returns the API group of an apiVersion ("" for the core group).
func groupOf(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}

// LoadPath decodes the manifest file at path, or every manifest under it if
// it is a directory (see LoadDir). Errors are wrapped *DecodeError for a
// user's mistake in a file, or I/O errors.
func LoadPath(path string) ([]Object, []Warning, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	if info.IsDir() {
		return LoadDir(path)
	}
	return loadFile(path)
}

// LoadDir decodes every .yaml, .yml and .json file under dir, recursively, in
// sorted path order, skipping hidden files and directories. It stops at the
// first error: a wrapped *DecodeError for a user's mistake, or an I/O error.
func LoadDir(dir string) ([]Object, []Warning, error) {
	files, _, err := scanTree(dir)
	if err != nil {
		return nil, nil, err
	}
	var objs []Object
	var warns []Warning
	for _, f := range files {
		o, w, err := loadFile(f)
		if err != nil {
			return nil, nil, err
		}
		objs = append(objs, o...)
		warns = append(warns, w...)
	}
	return objs, warns, nil
}

func loadFile(path string) ([]Object, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	objs, warns, err := DecodeFile(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	return objs, warns, nil
}

// isManifest reports whether a file name has a manifest extension.
func isManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// scanTree lists the manifest files (regular files, or symlinks to them) and
// the directories under root, sorted, skipping hidden names. Entries that
// vanish during the walk are left out.
func scanTree(root string) (files, dirs []string, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, path)
			return nil
		}
		if isManifest(d.Name()) && isRegular(path, d) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("scan %s: %w", root, err)
	}
	sort.Strings(files)
	return files, dirs, nil
}

// isRegular reports whether d is a regular file or a symlink to one (as in a
// Kubernetes ConfigMap volume).
func isRegular(path string, d fs.DirEntry) bool {
	if d.Type().IsRegular() {
		return true
	}
	if d.Type()&fs.ModeSymlink == 0 {
		return false
	}
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}
