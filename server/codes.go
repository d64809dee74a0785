package main

import "slices"

// statusCodes are the codes POST /status/{code} accepts and flaky mode draws
// from: Go's named status codes, as in the exercise's original server.
var statusCodes = []int{
	100, 101, 102, 103,
	200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
	300, 301, 302, 303, 304, 305, 307, 308,
	400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418,
	421, 422, 423, 424, 426, 428, 429, 431, 451,
	500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
}

func knownCode(code int) bool {
	return slices.Contains(statusCodes, code)
}

// bodyAllowed reports whether HTTP allows a response body with code
// (RFC 9110: none after 1xx, 204 and 304).
func bodyAllowed(code int) bool {
	return code >= 200 && code != 204 && code != 304
}
