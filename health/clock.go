package health

import "time"

// Clock is the time source of a Manager's scheduling and state machine
// (probes themselves time out on the real clock): the system clock by
// default, a fake one in tests.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending Clock.AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not happened yet, and reports
	// whether it did so.
	Stop() bool
	// Reset makes the call happen d from now (again, if it happened), as
	// time.Timer.Reset does for an AfterFunc timer.
	Reset(d time.Duration) bool
}

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
