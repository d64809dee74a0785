package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// handleGetStatus answers the current code with its status text as the body.
// In flaky mode it first waits a random delay, cut short if the client
// leaves (nothing to answer) or the server cuts it off at shutdown (503).
func handleGetStatus(st *status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		code, delay := st.answer()
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				if errors.Is(context.Cause(r.Context()), errCutOff) {
					writeStatus(w, http.StatusServiceUnavailable)
				}
				return // else nobody is listening any more
			}
		}
		writeStatus(w, code)
	}
}

// writeStatus sends code with its status text as the body, where HTTP allows
// one. A 1xx cannot be a final answer: Go sends 100, 102 and 103 as interim
// responses followed by an empty 200, and 101 as a final one without the
// protocol switch it promises. Either leaves a keep-alive client out of step,
// so the connection is closed after the answer.
func writeStatus(w http.ResponseWriter, code int) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if code < 200 {
		h.Set("Connection", "close")
	}
	if !bodyAllowed(code) {
		w.WriteHeader(code)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, http.StatusText(code)+"\n")
}

type codeReply struct {
	Code    int  `json:"code"`
	Changed bool `json:"changed"`
}

// handleSetStatus sets the code GET /status answers: 202 when it changed,
// 200 when it already was that code, 400 for anything not in statusCodes or
// not written as plain decimal digits (strconv.Atoi alone takes "+204" and
// "0200").
func handleSetStatus(st *status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue("code")
		if !plainDecimal(raw) {
			http.Error(w, fmt.Sprintf("status code %q is not a plain decimal number like 503", truncate(raw, 32)), http.StatusBadRequest)
			return
		}
		code, err := strconv.Atoi(raw)
		if err != nil || !knownCode(code) {
			http.Error(w, fmt.Sprintf("status code %s is not one of Go's named status codes", truncate(raw, 32)), http.StatusBadRequest)
			return
		}
		changed := st.setCode(code)
		reply := http.StatusOK
		if changed {
			reply = http.StatusAccepted
		}
		writeJSON(w, reply, codeReply{Code: code, Changed: changed})
	}
}

// plainDecimal reports whether s is written as a status code is: digits
// only, no sign, no leading zero.
func plainDecimal(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

type flakyReply struct {
	Flaky bool `json:"flaky"`
}

// handleToggleFlaky flips flaky mode. It answers 202 as the original did, and
// also tells the new state (header and body) so callers need not guess.
func handleToggleFlaky(st *status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flaky := st.toggleFlaky()
		w.Header().Set("X-Flaky", strconv.FormatBool(flaky))
		writeJSON(w, http.StatusAccepted, flakyReply{Flaky: flaky})
	}
}

func handleGetFlaky(st *status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, flaky := st.snapshot()
		w.Header().Set("X-Flaky", strconv.FormatBool(flaky))
		writeJSON(w, http.StatusOK, flakyReply{Flaky: flaky})
	}
}

// handleHealthz is the liveness probe: it never waits and is never flaky.
func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// truncate shortens s to at most n bytes for echoing client input in errors.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
