package producer

// SetIndexMissedHook runs f when a lookup found no INDEX entry, before it
// reads the fan-out's ack floor: a test fans the event out there.
func SetIndexMissedHook(p *Producer, f func()) { p.indexMissed = f }
