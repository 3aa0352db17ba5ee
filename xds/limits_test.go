package xds

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestMessageSizeLimit sends an ADS request larger than MaxMessageBytes over
// real gRPC: the stream fails with ResourceExhausted naming the sizes.
func TestMessageSizeLimit(t *testing.T) {
	s := quietServer(0)
	s.opts.MaxMessageBytes = 1024
	s.Update(twoVersions(50, 50))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, lis) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := &discoveryv3.DiscoveryRequest{
		Node:          &corev3.Node{Id: "n1"},
		TypeUrl:       resourcev3.ClusterType,
		ResourceNames: []string{strings.Repeat("x", 4096)},
	}
	if err := stream.Send(big); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("got %v, want ResourceExhausted saying the message is larger than the maximum", err)
	}
	t.Logf("error a proxy sees: %v", err)
}
