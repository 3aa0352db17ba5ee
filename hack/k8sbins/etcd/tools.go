//go:build tools

// Package etcd pins the etcd server command the e2e tests run, so that
// `go mod tidy` keeps its dependencies. Build it with hack/k8sbins.sh.
package etcd

import _ "go.etcd.io/etcd/server/v3"
