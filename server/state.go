package main

import (
	"math/rand/v2"
	"sync"
	"time"
)

// status is the server's mutable state: the code GET /status answers and
// whether flaky mode is on. It is safe for concurrent use.
type status struct {
	delay    time.Duration // every answer waits this long (0 unless set for benchmarks)
	maxDelay time.Duration // flaky answers wait uniformly in [0, maxDelay) more

	mu    sync.Mutex
	code  int
	flaky bool
	rng   *rand.Rand // not safe for concurrent use: guarded by mu
}

func newStatus(flaky bool, delay, maxDelay time.Duration, rng *rand.Rand) *status {
	return &status{code: 200, flaky: flaky, delay: delay, maxDelay: maxDelay, rng: rng}
}

// answer returns the code for one GET /status and how long to wait before
// sending it. In flaky mode every call is its own draw and leaves the
// configured code alone, so switching flaky off restores it.
func (s *status) answer() (code int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.flaky {
		return s.code, s.delay
	}
	code = statusCodes[s.rng.IntN(len(statusCodes))]
	delay = s.delay
	if s.maxDelay > 0 {
		delay += time.Duration(s.rng.Int64N(int64(s.maxDelay)))
	}
	return code, delay
}

// setCode sets the configured code and reports whether it changed.
func (s *status) setCode(code int) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = s.code != code
	s.code = code
	return changed
}

// toggleFlaky flips flaky mode and returns the new state.
func (s *status) toggleFlaky() (flaky bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flaky = !s.flaky
	return s.flaky
}

// snapshot returns the configured code and flaky mode.
func (s *status) snapshot() (code int, flaky bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, s.flaky
}
