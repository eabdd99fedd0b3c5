package sandbox

import (
	"context"
	"sync"
)

// startsAtOnce is how many containers the layered start starts at once.
// The engine does much of a start (network endpoints, published ports) one
// container at a time, so more at once only makes each take longer; what
// matters is which go first. On a machine of two cores, two at once was
// the fastest.
const startsAtOnce = 2

// startSlots lets n starts run at once; when more wait, the one with the
// longest chain of services behind it goes first (the critical path: the
// database before a dashboard nothing waits for), ties by name.
type startSlots struct {
	mu      sync.Mutex
	free    int
	waiting map[string]chan struct{} // queued, not granted yet
	granted map[string]bool          // granted before its acquire came
	urgency map[string]int
}

func newStartSlots(n int, urgency map[string]int) *startSlots {
	return &startSlots{free: n, waiting: map[string]chan struct{}{}, granted: map[string]bool{}, urgency: urgency}
}

// queue registers services that are ready to start, all at once, so that
// the first slots go to the most urgent of them rather than to whichever
// asked first.
func (q *startSlots) queue(svcs ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, svc := range svcs {
		if _, ok := q.waiting[svc]; !ok {
			q.waiting[svc] = make(chan struct{})
		}
	}
	q.grant()
}

// acquire waits for a slot for svc (queued already, or now).
func (q *startSlots) acquire(ctx context.Context, svc string) error {
	q.mu.Lock()
	ch, ok := q.waiting[svc]
	if !ok {
		if q.granted[svc] {
			delete(q.granted, svc)
			q.mu.Unlock()
			return nil
		}
		ch = make(chan struct{})
		q.waiting[svc] = ch
		q.grant()
	}
	q.mu.Unlock()
	select {
	case <-ch:
		q.mu.Lock()
		delete(q.granted, svc)
		q.mu.Unlock()
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		defer q.mu.Unlock()
		if _, still := q.waiting[svc]; still {
			delete(q.waiting, svc)
			return context.Cause(ctx)
		}
		delete(q.granted, svc)
		q.free++ // granted meanwhile: give it back
		q.grant()
		return context.Cause(ctx)
	}
}

// release frees a slot for the most urgent waiter.
func (q *startSlots) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.free++
	q.grant()
}

// grant hands free slots to the most urgent waiters; q.mu is held.
func (q *startSlots) grant() {
	for q.free > 0 && len(q.waiting) > 0 {
		best := ""
		for svc := range q.waiting {
			if best == "" || q.urgency[svc] > q.urgency[best] || q.urgency[svc] == q.urgency[best] && svc < best {
				best = svc
			}
		}
		close(q.waiting[best])
		delete(q.waiting, best)
		q.granted[best] = true
		q.free--
	}
}
