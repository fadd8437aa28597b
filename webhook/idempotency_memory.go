package webhook

import (
	"context"
	"sync"
	"time"
)

// MemoryStore is a Store in one process's memory: it forgets everything on
// restart and is not shared by replicas (use KVStore then). It is safe for
// concurrent use.
type MemoryStore struct {
	remember time.Duration
	now      func() time.Time

	mu     sync.Mutex
	ids    map[string]memoryEntry
	sweepN int
}

type memoryEntry struct {
	done  bool
	until time.Time // the lease's end, or when a handled id is forgotten
}

// sweepEvery is how many claims go between two sweeps of expired ids, so a
// long-running receiver's memory stays bounded by what it handled in the
// remember window.
const sweepEvery = 1024

// NewMemoryStore remembers handled ids for remember (RememberDefault when
// 0).
func NewMemoryStore(remember time.Duration) *MemoryStore {
	return NewMemoryStoreClock(remember, time.Now)
}

// NewMemoryStoreClock is NewMemoryStore with a clock, for tests.
func NewMemoryStoreClock(remember time.Duration, now func() time.Time) *MemoryStore {
	if remember <= 0 {
		remember = RememberDefault
	}
	return &MemoryStore{remember: remember, now: now, ids: map[string]memoryEntry{}}
}

// Claim implements Store.
func (m *MemoryStore) Claim(_ context.Context, id string, lease time.Duration) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.sweepN++; m.sweepN >= sweepEvery {
		m.sweepN = 0
		for k, e := range m.ids {
			if !now.Before(e.until) {
				delete(m.ids, k)
			}
		}
	}
	if e, ok := m.ids[id]; ok && now.Before(e.until) {
		if e.done {
			return ClaimDone, nil
		}
		return ClaimBusy, nil
	}
	m.ids[id] = memoryEntry{until: now.Add(lease)}
	return ClaimNew, nil
}

// Complete implements Store.
func (m *MemoryStore) Complete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids[id] = memoryEntry{done: true, until: m.now().Add(m.remember)}
	return nil
}

// Release implements Store.
func (m *MemoryStore) Release(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.ids[id]; ok && !e.done {
		delete(m.ids, id)
	}
	return nil
}

// Len is the number of ids held or remembered (expired ones included until
// the next sweep).
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids)
}
