package webhook

import "time"

// SetKVStoreClock sets a KVStore's clock, for the conformance tests' leases.
func SetKVStoreClock(s *KVStore, now func() time.Time) { s.now = now }
