package web

import (
	"net/http/httptest"
	"testing"
)

// TestNext: after sign-in, only a path of this site; every known trick to
// leave it falls back to the dashboard.
func TestNext(t *testing.T) {
	for in, want := range map[string]string{
		"/actes?q=martin":      "/actes?q=martin",
		"/actes/../registres":  "/registres",
		"":                     "/tableau-de-bord",
		"//evil.example":       "/tableau-de-bord",
		"/\\evil.example":      "/tableau-de-bord",
		"/./\\evil.example":    "/tableau-de-bord",
		"/%5Cevil.example":     "/tableau-de-bord",
		"/\t/evil.example":     "/tableau-de-bord",
		"/.//evil.example":     "/evil.example", // cleaned: a path of this site
		"https://evil.example": "/tableau-de-bord",
		"javascript:alert(1)":  "/tableau-de-bord",
	} {
		if got := next(in); got != want {
			t.Errorf("next(%q) = %q, attendu %q", in, got, want)
		}
	}
}

// TestCrossSite: a read of personal data that another site made the
// browser send is refused; from these pages or typed, it is not.
func TestCrossSite(t *testing.T) {
	for v, want := range map[string]bool{"": false, "none": false, "same-origin": false, "cross-site": true, "same-site": true} {
		r := httptest.NewRequest("GET", "/actes/x", nil)
		if v != "" {
			r.Header.Set("Sec-Fetch-Site", v)
		}
		if got := crossSite(r); got != want {
			t.Errorf("Sec-Fetch-Site %q : %v, attendu %v", v, got, want)
		}
	}
}
