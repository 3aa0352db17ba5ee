//go:build tools

// Package k8sbins pins the Kubernetes commands the e2e tests run, so that
// `go mod tidy` keeps their dependencies. Build them with hack/k8sbins.sh.
package k8sbins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
