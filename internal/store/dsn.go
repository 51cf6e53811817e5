package store

import (
	"net/url"
	"strings"
)

// SplitPassword separates the password from a database URL: the URL
// without it (what a configuration file may keep) and the password ("" when
// the URL has none). A PostgreSQL URL carries it in its user information
// (postgres://user:PASSWORD@host/db) or its query (?password=PASSWORD);
// both are removed, the user and every other parameter kept. Anything
// else (a SQLite path) is returned as it is.
func SplitPassword(dsn string) (clean, password string) {
	scheme := strings.Index(dsn, "://")
	if scheme < 0 {
		return dsn, ""
	}
	head, rest := dsn[:scheme+3], dsn[scheme+3:]
	// The authority ends at the path or the query; the user information
	// ends at its last '@' (a password may hold an unescaped '@').
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		if i := strings.Index(userinfo, ":"); i >= 0 {
			password = userinfo[i+1:]
			if p, err := url.PathUnescape(password); err == nil {
				password = p
			}
			authority = userinfo[:i] + authority[at:]
		}
	}
	if q := strings.IndexByte(tail, '?'); q >= 0 {
		path, query := tail[:q], tail[q+1:]
		var kept []string
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if key, err := url.QueryUnescape(k); err == nil && key == "password" {
				if p, err := url.QueryUnescape(v); err == nil {
					v = p
				}
				if password == "" {
					password = v
				}
				continue
			}
			kept = append(kept, kv)
		}
		tail = path
		if len(kept) > 0 {
			tail += "?" + strings.Join(kept, "&")
		}
	}
	return head + authority + tail, password
}

// HasPassword tells whether a database URL carries a password.
func HasPassword(dsn string) bool {
	_, p := SplitPassword(dsn)
	return p != ""
}

// redact hides a password in a URL for messages.
func redact(dsn string) string {
	clean, password := SplitPassword(dsn)
	if password == "" {
		return clean
	}
	return clean + " (password hidden)"
}
