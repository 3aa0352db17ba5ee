package ir

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServiceVersionsGroupsAndSorts(t *testing.T) {
	in := &IR{Clusters: []Cluster{
		{Name: "b80", Namespace: "ns", Service: "b", Endpoints: []Endpoint{
			{Address: "10.0.0.1", Port: 80, Version: "v2"},
			{Address: "10.0.0.2", Port: 80},
			{Address: "10.0.0.3", Port: 80, Version: "v10"},
			{Address: "10.0.0.4", Port: 80, Version: "v2"},
		}},
		// A second port of b: the port with most endpoints counts.
		{Name: "b90", Namespace: "ns", Service: "b", Endpoints: []Endpoint{
			{Address: "10.0.0.1", Port: 90, Version: "v2"},
			{Address: "10.0.0.3", Port: 90, Version: "v10"},
			{Address: "10.0.0.5", Port: 90, Version: "v10"},
		}},
		{Name: "a80", Namespace: "ns", Service: "a"},
		// Addresses shared by several endpoints (host network, loopback).
		{Name: "z80", Namespace: "alpha", Service: "z", Endpoints: []Endpoint{{Address: "127.0.0.1", Port: 81}, {Address: "127.0.0.1", Port: 82}}},
	}}
	var got []string
	for _, sv := range in.ServiceVersions() {
		got = append(got, sv.String())
	}
	want := []string{
		"service alpha/z: unversioned 2 ready",
		"service ns/a: none ready",
		"service ns/b: v10 2 ready, v2 2 ready, unversioned 1 ready",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
