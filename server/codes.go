package main

import "net/http"

// statusCodes are the codes POST /status/{code} accepts and flaky mode draws
// from: every code from 100 to 599 that Go's http.StatusText names, as the
// exercise's original server accepted Go's named codes.
var statusCodes = namedCodes()

func namedCodes() []int {
	var codes []int
	for code := 100; code <= 599; code++ {
		if http.StatusText(code) != "" {
			codes = append(codes, code)
		}
	}
	return codes
}

func knownCode(code int) bool {
	return code >= 100 && code <= 599 && http.StatusText(code) != ""
}

// bodyAllowed reports whether HTTP allows a response body with code
// (RFC 9110: none after 1xx, 204 and 304).
func bodyAllowed(code int) bool {
	return code >= 200 && code != 204 && code != 304
}
