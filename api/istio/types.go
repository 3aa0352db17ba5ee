// Package istio holds the parts of Istio's networking.istio.io API that weir
// reads: VirtualService, DestinationRule and Gateway. Fields weir does not
// read are not decoded.
package istio

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group is Istio's networking API group.
const Group = "networking.istio.io"

// Versions are the served versions weir reads, oldest first; they share one
// schema.
var Versions = []string{"v1alpha3", "v1beta1", "v1"}

// Kinds of the API.
const (
	VirtualServiceKind  = "VirtualService"
	DestinationRuleKind = "DestinationRule"
	GatewayKind         = "Gateway"
)

// Status is the part of an Istio object's status weir writes.
type Status struct {
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
}

// VirtualService routes requests for hosts.
type VirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              VirtualServiceSpec `json:"spec"`
	Status            Status             `json:"status,omitempty"`
}

// VirtualServiceSpec is the routing of a VirtualService.
type VirtualServiceSpec struct {
	Hosts    []string `json:"hosts,omitempty"`
	Gateways []string `json:"gateways,omitempty"`
	ExportTo []string `json:"exportTo,omitempty"`
}

// DestinationRule defines subsets and traffic policy of a host.
type DestinationRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DestinationRuleSpec `json:"spec"`
	Status            Status              `json:"status,omitempty"`
}

// DestinationRuleSpec is the policy of a DestinationRule.
type DestinationRuleSpec struct {
	Host     string   `json:"host"`
	ExportTo []string `json:"exportTo,omitempty"`
}

// Gateway describes ports, hosts and TLS of gateway proxies picked by labels.
type Gateway struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              GatewaySpec `json:"spec"`
	Status            Status      `json:"status,omitempty"`
}

// GatewaySpec is a Gateway's servers and the proxies that serve them.
type GatewaySpec struct {
	// Selector picks gateway proxies by their labels.
	Selector map[string]string `json:"selector,omitempty"`
	Servers  []Server          `json:"servers,omitempty"`
}

// Server is one port with its hosts and TLS settings.
type Server struct {
	Port Port `json:"port"`
	// Hosts are "[namespace/]host" with "*" wildcards.
	Hosts []string   `json:"hosts,omitempty"`
	TLS   *ServerTLS `json:"tls,omitempty"`
	Name  string     `json:"name,omitempty"`
}

// Port is a server's port.
type Port struct {
	Number   uint32 `json:"number"`
	Protocol string `json:"protocol,omitempty"`
	Name     string `json:"name,omitempty"`
}

// ServerTLS is a server's TLS settings.
type ServerTLS struct {
	HTTPSRedirect bool `json:"httpsRedirect,omitempty"`
	// Mode is PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH or ISTIO_MUTUAL.
	Mode string `json:"mode,omitempty"`
	// CredentialName names a kubernetes.io/tls Secret in the Gateway's
	// namespace.
	CredentialName string `json:"credentialName,omitempty"`
}
