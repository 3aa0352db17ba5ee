package envoy

import "unsafe"

// slab hands out zero values of T carved from larger blocks: one allocation
// for many small messages, which the garbage collector then sees as one
// object. A block stays alive while any value from it does. Not safe for
// concurrent use; the zero value is ready.
type slab[T any] struct{ block []T }

// slabBlock is how many values a block holds.
const slabBlock = 256

func (s *slab[T]) new() *T { return &s.slice(1)[0] }

// slice returns n zero values, with capacity n.
func (s *slab[T]) slice(n int) []T {
	if n > slabBlock {
		return make([]T, n)
	}
	if len(s.block) < n {
		s.block = make([]T, slabBlock)
	}
	v := s.block[:n:n]
	s.block = s.block[n:]
	return v
}

// textSlab hands out strings copied into larger blocks of bytes: one
// allocation for many short strings. A block stays alive while any string
// from it does; its bytes are never written once handed out. Not safe for
// concurrent use; the zero value is ready.
type textSlab struct{ block []byte }

// textBlock is the size of a block; longer strings get their own.
const textBlock = 16 << 10

// string returns a string holding b.
func (s *textSlab) string(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > textBlock/8 {
		return string(b)
	}
	if cap(s.block)-len(s.block) < len(b) {
		s.block = make([]byte, 0, textBlock)
	}
	start := len(s.block)
	s.block = append(s.block, b...)
	return unsafe.String(&s.block[start], len(b))
}
