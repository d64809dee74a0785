package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestFlakyDraws checks the seeded draws statistically: every code is
// reachable, delays stay in [0, maxDelay), and both are roughly uniform.
func TestFlakyDraws(t *testing.T) {
	const perCode = 1000
	const maxDelay = 500 * time.Millisecond
	n := perCode * len(statusCodes)
	st := seededStatus(true, maxDelay, 20261130)

	counts := map[int]int{}
	var delayDeciles [10]int
	for range n {
		code, delay := st.answer()
		if !knownCode(code) {
			t.Fatalf("drew %d, which is not in the list", code)
		}
		if delay < 0 || delay >= maxDelay {
			t.Fatalf("drew delay %s, outside [0, %s)", delay, maxDelay)
		}
		counts[code]++
		delayDeciles[delay*10/maxDelay]++
	}
	if len(counts) != len(statusCodes) {
		t.Fatalf("drew %d distinct codes, want all %d", len(counts), len(statusCodes))
	}
	// Pearson's chi-squared with 59 degrees of freedom: a uniform draw
	// exceeds 120 with a probability below one in a million.
	var chi2 float64
	for _, c := range statusCodes {
		d := float64(counts[c] - perCode)
		chi2 += d * d / perCode
	}
	if chi2 > 120 {
		t.Errorf("codes are not uniform: chi-squared %.1f > 120 (counts %v)", chi2, counts)
	}
	for i, c := range delayDeciles {
		if want := n / 10; c < want*9/10 || c > want*11/10 {
			t.Errorf("delays in decile %d: %d, want %d ± 10%%", i, c, want)
		}
	}
}

func TestFlakyOffAnswersConfiguredCodeAtOnce(t *testing.T) {
	st := seededStatus(false, time.Second, 1)
	st.setCode(503)
	for range 100 {
		if code, delay := st.answer(); code != 503 || delay != 0 {
			t.Fatalf("got %d after %s, want 503 at once", code, delay)
		}
	}
}

// TestConcurrentUse drives the real handler with 1,000 concurrent toggles,
// sets and reads; run under -race it fails on any unguarded state.
func TestConcurrentUse(t *testing.T) {
	api := newTestAPI(t, seededStatus(false, 0, 1))
	h := api.Config.Handler
	const n = 1000
	var wg sync.WaitGroup
	for i := range n {
		var method, path string
		switch i % 4 {
		case 0:
			method, path = "POST", "/flaky"
		case 1:
			method, path = "POST", fmt.Sprintf("/status/%d", statusCodes[i%len(statusCodes)])
		case 2:
			method, path = "GET", "/status"
		case 3:
			method, path = "GET", "/flaky"
		}
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
			if rec.Code == http.StatusInternalServerError && path != "/status" {
				t.Errorf("%s %s: %d", method, path, rec.Code)
			}
		})
		if i%20 == 0 {
			wg.Go(func() { _ = scrape(t, api.tel, "") }) // reads the state gauges
		}
	}
	wg.Wait()
	if _, flaky := api.st.snapshot(); flaky {
		t.Errorf("after %d toggles (an even number) flaky is on", n/4)
	}
}

func TestFixedDelayAddsToEveryAnswer(t *testing.T) {
	const fixed, maxDelay = 50 * time.Millisecond, 10 * time.Millisecond
	steady := newStatus(false, fixed, maxDelay, rand.New(rand.NewPCG(1, 1)))
	if code, delay := steady.answer(); code != 200 || delay != fixed {
		t.Fatalf("flaky off: got %d after %s, want 200 after %s", code, delay, fixed)
	}
	flaky := newStatus(true, fixed, maxDelay, rand.New(rand.NewPCG(1, 1)))
	for range 1000 {
		if _, delay := flaky.answer(); delay < fixed || delay >= fixed+maxDelay {
			t.Fatalf("flaky: delay %s outside [%s, %s)", delay, fixed, fixed+maxDelay)
		}
	}
}
