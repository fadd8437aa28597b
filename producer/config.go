package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookstream/hookstream/streams"
)

// Defaults of Config.
const (
	// MaxEventDataDefault is the largest event data accepted: 1 MiB.
	MaxEventDataDefault = streams.MaxEventDataDefault
	// BodyOverheadDefault is what an HTTP body may hold beside the data (the
	// other fields and JSON framing): MaxBodyBytes defaults to MaxEventData
	// plus this.
	BodyOverheadDefault = 64 << 10
	// MaxBatchBodyDefault is the largest POST /v1/events/batch body
	// accepted: 16 MiB (each event in it still within MaxEventData).
	MaxBatchBodyDefault = 16 << 20
	// maxEventDataLimit is the most MaxEventData may be set to, as in
	// streams.Config.
	maxEventDataLimit = 64 << 20
)

// Config configures a Producer.
type Config struct {
	// JS is the JetStream context events are published with. Required.
	JS jetstream.JetStream
	// MaxEventData is the largest event `data` accepted, in bytes. It should
	// match the streams configuration's MaxEventData. Defaults to
	// MaxEventDataDefault (1 MiB).
	MaxEventData int
	// MaxBodyBytes is the largest POST /v1/events body accepted, in bytes.
	// Defaults to MaxEventData + BodyOverheadDefault (64 KiB).
	MaxBodyBytes int64
	// MaxBatchBodyBytes is the largest POST /v1/events/batch body accepted,
	// in bytes. Defaults to MaxBatchBodyDefault (16 MiB), or MaxBodyBytes
	// when that is larger.
	MaxBatchBodyBytes int64
	// Now is the clock that sets an event's time when the publisher gives
	// none. Defaults to time.Now.
	Now func() time.Time
	// NewID makes the id of an event published without one. Defaults to
	// "evt_" followed by 26 characters of crypto-random lower-case base32.
	NewID func() string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics, when set, registers hookstream_events_published_total.
	// Defaults to nil: no metrics registered (tests make many producers).
	Metrics prometheus.Registerer
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxEventData == 0 {
		c.MaxEventData = MaxEventDataDefault
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = int64(c.MaxEventData) + BodyOverheadDefault
	}
	if c.MaxBatchBodyBytes == 0 {
		c.MaxBatchBodyBytes = max(MaxBatchBodyDefault, c.MaxBodyBytes)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = newEventID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every invalid field by name.
func (c Config) validate() error {
	var errs []error
	if c.JS == nil {
		errs = append(errs, errors.New("js: required"))
	}
	if c.MaxEventData < 1 || c.MaxEventData > maxEventDataLimit {
		errs = append(errs, fmt.Errorf("max-event-data: must be 1 byte to 64 MiB, got %d", c.MaxEventData))
	}
	if c.MaxBatchBodyBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("max-batch-body-bytes: must be at least max-body-bytes (%d), got %d", c.MaxBodyBytes, c.MaxBatchBodyBytes))
	}
	if c.MaxBodyBytes < int64(c.MaxEventData) {
		errs = append(errs, fmt.Errorf("max-body-bytes: must be at least max-event-data (%d), got %d", c.MaxEventData, c.MaxBodyBytes))
	}
	return errors.Join(errs...)
}
