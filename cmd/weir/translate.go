package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/weir-mesh/weir/translator"
	"github.com/weir-mesh/weir/translator/envoy"
	"github.com/weir-mesh/weir/translator/gatewayapi"
	"github.com/weir-mesh/weir/translator/ingressnginx"
	"github.com/weir-mesh/weir/watcher"
)

func runTranslate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("translate", stderr)
	path := fs.String("f", "", "a manifest file or a directory of them (required)")
	format := fs.String("o", "json", "output format: json or yaml")
	proxyNamespace := fs.String("proxy-namespace", "default", "namespace of the sidecar the resources are built for")
	services := fs.Bool("services", false, "print each Service's ready endpoints by version instead of the document")
	var versionLabels stringList
	fs.Var(&versionLabels, "version-label", "Pod label naming an endpoint's version (repeatable, first set wins); default version")
	gatewayLabels := fs.String("gateway-labels", "istio=ingressgateway", "labels k=v,k=v of the gateway the resources are built for")
	ingressClass := fs.String("ingress-class", ingressnginx.DefaultClass, "ingress class weir serves")
	gatewayController := fs.String("gateway-controller", gatewayapi.DefaultControllerName, "controllerName of the Gateway API GatewayClasses weir serves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	labels, err := parseLabels(*gatewayLabels)
	if err != nil {
		return fmt.Errorf("translate: --gateway-labels: %w", err)
	}
	if *path == "" {
		return errors.New("translate: -f PATH is required")
	}
	if *format != "json" && *format != "yaml" {
		return fmt.Errorf("translate: -o %q: want json or yaml", *format)
	}
	res, err := translatePath(*path, translator.Options{VersionLabels: versionLabels, IngressClass: *ingressClass, GatewayController: *gatewayController}, stderr)
	if err != nil {
		return err
	}
	if *services {
		for _, sv := range res.IR.ServiceVersions() {
			if _, err := fmt.Fprintln(stdout, sv); err != nil {
				return err
			}
		}
		return nil
	}
	out, err := translator.Render(res, []envoy.Proxy{
		{Role: envoy.Sidecar, Namespace: *proxyNamespace, OutboundAddress: "127.0.0.1", OutboundPort: envoy.DefaultOutboundPort},
		{Role: envoy.GRPC},
		{Role: envoy.Gateway, Labels: envoy.CanonicalLabels(labels)},
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("translate: encode: %w", err)
	}
	if *format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("translate: encode: %w", err)
		}
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// translatePath loads manifests offline and translates them.
func translatePath(path string, opts translator.Options, stderr io.Writer) (translator.Result, error) {
	objs, warnings, err := watcher.LoadPath(path)
	if err != nil {
		return translator.Result{}, err
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	store, err := watcher.NewStore()
	if err != nil {
		return translator.Result{}, err
	}
	if _, err := store.ReplaceSource(path, objs); err != nil {
		return translator.Result{}, err
	}
	return translator.Translate(store.Snapshot(), opts), nil
}
