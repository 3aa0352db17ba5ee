package xds

import (
	"maps"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Partial state-of-the-world responses.
//
// A state-of-the-world response of route configurations or load
// assignments need not hold every resource the proxy asked for: the proxy
// keeps those it leaves out (a listener or cluster response, by contrast,
// is the whole state and drops what it leaves out). So a SotW node whose
// tracker knows what it holds gets only the resources that differ from
// that: after a weight change, one route configuration among thousands.
//
// What a node holds of a type, its base, is the last response it ACKed
// on its stream, taken whole: the resources the view had for that version
// before leaving any out. A resource is left out when the base holds the
// same shared copy (Server.wire keeps one per content, so the same copy
// means the same content; an equal content in another copy is merely sent
// again). The base is unknown, and the next response holds everything,
// on a new stream, after a NACK, after a response the tracker cannot
// match to what the view offered, and while the node has more than one
// stream, since a view cannot tell which stream it answers. A name the
// proxy asks for anew may have been dropped by it meanwhile: it is sent
// even if the base holds it.
//
// go-control-plane asks the view for the resources both to respond and,
// when the version is the one the proxy has, to see whether the proxy
// lacks one it asked for; it then responds with what the view returned.
// After an ACK the view returns nothing at that version, so nothing is
// sent again; after a NACK it returns what the rejected response held
// until the version changes, so the rejected response is not sent again.

// partialType reports whether SotW responses of typeURL may leave out
// resources the proxy holds.
func partialType(typeURL string) bool {
	return typeURL == resourcev3.RouteType || typeURL == resourcev3.EndpointType
}

// maxSent bounds the responses of one type remembered until answered. A
// stream has one at most (go-control-plane responds again only to the
// next request); a node has more only while it has more streams.
const maxSent = 2

// wireResources are a type's encoded resources by name, as a view hands
// them to go-control-plane. The tracker holds only maps the snapshots
// made (or a response's own, small), never copies of them.
type wireResources = map[string]types.ResourceWithTTL

// partialState is what the tracker knows of the resources of one type a
// SotW node holds on its stream. A view reads it under the tracker's
// mutex and works outside it: maps are replaced, never modified.
type partialState struct {
	// base is what the node holds; nil: unknown. baseID names it (see
	// snapshot.mapID); 0: unnamed.
	base   wireResources
	baseID uint64
	// again maps the names the node asked for anew, which it may have
	// dropped, to the tick they were asked at; asks counts the ticks.
	again map[string]uint64
	asks  uint64
	// gen counts the changes to base, again and nacked, so that an offer
	// made from an older state is not taken for the current one.
	gen uint64
	// offer is the last response the view made; sent are the responses
	// sent and not answered yet, oldest first.
	offer offer
	sent  []sentOffer
	// nacked is the response the node rejected, until the next is sent.
	nacked *offer
}

// offer is one response a view made.
type offer struct {
	version string
	// full holds every resource the node asked for; nil: unknown. resp is
	// what the response held.
	full, resp wireResources
	fullID     uint64 // see snapshot.mapID
	// asks is the tick of the last name asked anew that the response
	// took into account.
	asks uint64
}

// sentOffer is a response sent on a stream, with its nonce.
type sentOffer struct {
	stream int64
	nonce  string
	offer
}

// holding is what a view reads of a node's partialState: enough to leave
// out of a response what the node holds. A zero holding leaves nothing
// out and records nothing.
type holding struct {
	st     *partialState
	gen    uint64
	base   wireResources
	baseID uint64
	again  map[string]uint64
	asks   uint64
	nacked *offer
}

// sotw returns the names node asks for of typeURL on a SotW stream (nil:
// all, on a delta stream, or unknown, as subscription does) and what a
// response may leave out.
func (t *proxyTracker) sotw(nodeID, typeURL string) (*nameSet, holding) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.nodes[nodeID]
	if ps == nil || ps.status.Delta || ps.subs[typeURL] == nil || ps.subs[typeURL].wildcard {
		return nil, holding{}
	}
	names := ps.subs[typeURL].shared
	if names == nil || !partialType(typeURL) || ps.status.Streams != 1 {
		return names, holding{}
	}
	st := ps.partialOf(typeURL)
	return names, holding{st: st, gen: st.gen, base: st.base, baseID: st.baseID, again: st.again, asks: st.asks, nacked: st.nacked}
}

// response returns what a response of version, whose resources are full,
// holds for the node: full but for what the node holds; what it rejected
// if it is that version again.
func (h holding) response(version string, full wireResources) wireResources {
	if h.nacked != nil && h.nacked.version == version {
		return h.nacked.resp
	}
	if h.base == nil {
		return full
	}
	out := wireResources{}
	for name, r := range full {
		if h.base[name] == r {
			if _, asked := h.again[name]; !asked {
				continue
			}
		}
		out[name] = r
	}
	return out
}

// offered records o as the response a view made for node and typeURL from
// h, unless what the node holds changed since h was read.
func (t *proxyTracker) offered(h holding, o offer) {
	if h.st == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.st.gen == h.gen {
		h.st.offer = o
	}
}

// partialOf returns the node's partialState of typeURL, made if need be.
func (ps *proxyState) partialOf(typeURL string) *partialState {
	st := ps.partial[typeURL]
	if st == nil {
		st = &partialState{}
		if ps.partial == nil {
			ps.partial = map[string]*partialState{}
		}
		ps.partial[typeURL] = st
	}
	return st
}

// forgetHeld makes what the node holds unknown, of every type: on a new
// stream or a closed one.
func (ps *proxyState) forgetHeld() {
	ps.partial = nil
}

// askedAgain records names the node asks for anew of typeURL on a SotW
// stream. Before any response was made on the stream there is nothing to
// record: every later base comes from responses made after.
func (ps *proxyState) askedAgain(typeURL string, names []string) {
	st := ps.partial[typeURL]
	if len(names) == 0 || st == nil || (st.base == nil && len(st.sent) == 0 && st.offer.full == nil) {
		return
	}
	st.asks++
	again := make(map[string]uint64, len(st.again)+len(names))
	maps.Copy(again, st.again)
	for _, n := range names {
		again[n] = st.asks
	}
	st.again = again
	st.gen++
}

// sentPartial records a response of typeURL sent on SotW stream id: the
// view's last offer if it is of that version, else an unknown one.
func (ps *proxyState) sentPartial(id int64, typeURL, version, nonce string) {
	if !partialType(typeURL) || ps.status.Delta {
		return
	}
	st := ps.partialOf(typeURL)
	s := sentOffer{stream: id, nonce: nonce}
	if st.offer.full != nil && st.offer.version == version {
		s.offer = st.offer
	}
	if len(st.sent) == maxSent {
		// An answer to the one forgotten would leave the node holding
		// what the tracker does not know.
		st.sent, st.base, st.baseID = slices.Delete(st.sent, 0, 1), nil, 0
	}
	st.sent = append(st.sent, s)
	st.nacked = nil
	st.gen++
}

// answeredPartial records the node's answer on SotW stream id to a
// response of typeURL: on an ACK it holds what the response offered; on a
// NACK, something unknown.
func (ps *proxyState) answeredPartial(id int64, typeURL, nonce string, nack bool) {
	st := ps.partial[typeURL]
	if st == nil {
		return
	}
	i := slices.IndexFunc(st.sent, func(s sentOffer) bool { return s.stream == id && s.nonce == nonce })
	if i < 0 {
		return // an answer already taken, repeated with a new subscription
	}
	s := st.sent[i]
	st.sent = slices.Delete(st.sent, i, i+1)
	st.gen++
	switch {
	case nack:
		st.base, st.baseID, st.nacked = nil, 0, nil
		if s.full != nil {
			st.nacked = &s.offer
		}
	case s.full == nil:
		st.base, st.baseID = nil, 0
	default:
		st.base, st.baseID, st.nacked = s.full, s.fullID, nil
		st.again = askedSince(st.again, s.asks)
	}
}

// askedSince returns the names of again asked after tick.
func askedSince(again map[string]uint64, tick uint64) map[string]uint64 {
	var out map[string]uint64
	for n, t := range again {
		if t > tick {
			if out == nil {
				out = map[string]uint64{}
			}
			out[n] = t
		}
	}
	return out
}
