package fault

import (
	"encoding/base64"
	"strings"
)

// Paged lists: every list RPC takes a page_size and the page_token of the previous page, and
// returns a next_page_token, opaque to callers. A token names its list (its kind), so that a
// token of one list is no token of another, and is checked before it is used.

// maxTokenBytes bounds a page token before it is decoded.
const maxTokenBytes = 512

// PageSize returns the size of the page a list request asks for: def for 0, n for 1 to max;
// other sizes fail with an ErrInvalid naming page_size.
func PageSize(n int32, def, max int) (int, error) {
	switch {
	case n == 0:
		return def, nil
	case n < 0 || int(n) > max:
		return 0, Invalid("page_size", "must be 0 to %d", max)
	}
	return int(n), nil
}

// PageToken returns the page token that resumes a list of kind after key; "" for key "" (the
// last page).
func PageToken(kind, key string) string {
	if key == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + key))
}

// CheckPageToken returns the key of a page token of kind ("" for the first page, tok ""),
// adding a violation for page_token when tok is not a token PageToken issued for kind with a
// key that valid accepts.
func (v *Violations) CheckPageToken(kind, tok string, valid func(string) bool) string {
	if tok == "" {
		return ""
	}
	if len(tok) <= maxTokenBytes {
		if b, err := base64.RawURLEncoding.DecodeString(tok); err == nil {
			if key, ok := strings.CutPrefix(string(b), kind+":"); ok && valid(key) {
				return key
			}
		}
	}
	v.Add("page_token", "is not a token of a previous page of this list")
	return ""
}
