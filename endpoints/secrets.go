package endpoints

import (
	"time"

	"github.com/hookstream/hookstream/streams"
)

// rotateSecrets returns an endpoint's secrets after a rotation at now: the
// new key first (newest first is the order signatures are sent in), then
// every earlier secret that still signs, each given an expiry of now+overlap
// unless it already has one. Secrets already expired are dropped, so the
// list stays short however often the secret is rotated.
func rotateSecrets(old []streams.Secret, key string, now time.Time, overlap time.Duration) []streams.Secret {
	out := make([]streams.Secret, 0, len(old)+1)
	out = append(out, streams.Secret{Key: key, CreatedAt: now})
	for _, s := range old {
		switch {
		case s.ExpiresAt.IsZero():
			s.ExpiresAt = now.Add(overlap)
		case !now.Before(s.ExpiresAt):
			continue
		}
		out = append(out, s)
	}
	return out
}
