package envoy

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
