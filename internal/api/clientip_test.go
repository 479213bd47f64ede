package api

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestClientIP: the address failed authentications are counted against.
// A peer that is not a declared proxy is the client whatever its headers
// say; behind declared proxies, the nearest undeclared hop of
// X-Forwarded-For is; a malformed chain counts the proxy.
func TestClientIP(t *testing.T) {
	s := &Server{Limits: Limits{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}}}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.5:4000", nil, "203.0.113.5"},
		{"203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"}, // not a proxy: its header is not believed
		{"10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7"}, "198.51.100.1"},           // two proxies in a row
		{"10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1", "10.9.9.9"}, "198.51.100.1"}, // the forged first hop is ignored
		{"10.1.2.3:4000", []string{"pas-une-adresse"}, "10.1.2.3"},
		{"10.1.2.3:4000", nil, "10.1.2.3"},
		{"[::ffff:10.1.2.3]:4000", []string{"2001:db8::1"}, "2001:db8::1"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientIP(r); got != c.want {
			t.Errorf("pair %s, X-Forwarded-For %q : %s, attendu %s", c.peer, c.xff, got, c.want)
		}
	}
}
