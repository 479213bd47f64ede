package tsa

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func timestamp(url string) error {
	_, err := (&Client{URL: url, Timeout: 5 * time.Second}).Timestamp(context.Background(), digestOf("x"), crypto.SHA256)
	return err
}

func TestClientDown(t *testing.T) {
	srv := newServer(t)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	srv.Down.Store(true)
	err := timestamp(ts.URL)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadResponse) {
		t.Fatalf("Down: %v, want ErrUnavailable only", err)
	}
	srv.Down.Store(false)
	if err := timestamp(ts.URL); err != nil {
		t.Fatalf("back up: %v", err)
	}
}

func TestClientUnavailable(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooManyRequests, http.StatusRequestTimeout} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", code)
		}))
		if err := timestamp(ts.URL); !errors.Is(err, ErrUnavailable) {
			t.Errorf("HTTP %d: %v, want ErrUnavailable", code, err)
		}
		ts.Close()
	}

	// Nothing listening any more.
	ts := httptest.NewServer(newServer(t))
	url := ts.URL
	ts.Close()
	if err := timestamp(url); !errors.Is(err, ErrUnavailable) {
		t.Errorf("closed server: %v, want ErrUnavailable", err)
	}

	// A TSA that does not answer in time.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	start := time.Now()
	_, err := (&Client{URL: slow.URL, Timeout: 100 * time.Millisecond}).Timestamp(context.Background(), digestOf("x"), crypto.SHA256)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	// The status rejection and waiting are transient for the caller.
	for _, tc := range []struct {
		status int64
		fail   int
		want   string
	}{{statusRejection, failTimeNotAvailable, "timeNotAvailable"}, {statusWaiting, -1, "waiting"}} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(&Server{}).reply(w, tc.status, "try later", tc.fail, nil)
		}))
		err := timestamp(ts.URL)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "try later") {
			t.Errorf("status %d: %v, want ErrUnavailable mentioning %s", tc.status, err, tc.want)
		}
		ts.Close()
	}
}

func TestClientBadResponse(t *testing.T) {
	srv := newServer(t)
	for name, h := range map[string]http.HandlerFunc{
		"garbage": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", replyMediaType)
			_, _ = w.Write([]byte("<html>hello</html>"))
		},
		"wrong content type": func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, r)
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write(rec.Body.Bytes())
		},
		"not found": func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		},
		"granted without token": func(w http.ResponseWriter, r *http.Request) {
			srv.reply(w, statusGranted, "", -1, nil)
		},
		"unknown status": func(w http.ResponseWriter, r *http.Request) {
			srv.reply(w, 9, "", -1, nil)
		},
		"token is garbage": func(w http.ResponseWriter, r *http.Request) {
			srv.reply(w, statusGranted, "", -1, []byte{0x30, 0x03, 0x02, 0x01, 0x01})
		},
		"another digest": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			i := bytes.Index(body, digestOf("x"))
			if i < 0 {
				t.Error("digest not in the request")
				return
			}
			body[i] ^= 0xff
			r2 := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			r2.Header.Set("Content-Type", queryMediaType)
			srv.ServeHTTP(w, r2)
		},
		"no nonce": func(w http.ResponseWriter, r *http.Request) {
			req, _ := marshalRequest(crypto.SHA256, digestOf("x"), nil, true)
			r2 := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(req))
			r2.Header.Set("Content-Type", queryMediaType)
			srv.ServeHTTP(w, r2)
		},
	} {
		ts := httptest.NewServer(h)
		err := timestamp(ts.URL)
		if !errors.Is(err, ErrBadResponse) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrBadResponse only", name, err)
		}
		ts.Close()
	}
}

// TestClientReplay checks the nonce: a response recorded for an earlier
// request is refused.
func TestClientReplay(t *testing.T) {
	srv := newServer(t)
	var mu sync.Mutex
	var recorded []byte
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if recorded == nil {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, r)
			recorded = rec.Body.Bytes()
		}
		w.Header().Set("Content-Type", replyMediaType)
		_, _ = w.Write(recorded)
	}))
	defer ts.Close()
	if err := timestamp(ts.URL); err != nil {
		t.Fatalf("first request: %v", err)
	}
	err := timestamp(ts.URL)
	if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("replayed response: %v, want ErrBadResponse about the nonce", err)
	}
}

func TestClientAuthentication(t *testing.T) {
	srv := newServer(t)
	const user, password, bearer = "mairie", "s3cr3t-basic", "s3cr3t-bearer"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if (ok && u == user && p == password) || r.Header.Get("Authorization") == "Bearer "+bearer {
			srv.ServeHTTP(w, r)
			return
		}
		http.Error(w, "who are you?", http.StatusUnauthorized)
	}))
	defer ts.Close()
	d := digestOf("auth")
	ctx := context.Background()

	if _, err := (&Client{URL: ts.URL, Username: user, Password: password}).Timestamp(ctx, d, crypto.SHA256); err != nil {
		t.Errorf("basic: %v", err)
	}
	if _, err := (&Client{URL: ts.URL, BearerToken: bearer}).Timestamp(ctx, d, crypto.SHA256); err != nil {
		t.Errorf("bearer: %v", err)
	}
	_, err := (&Client{URL: ts.URL, Username: user, Password: "wrong-" + password}).Timestamp(ctx, d, crypto.SHA256)
	if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), password) {
		t.Errorf("wrong password: %v, want ErrBadResponse about HTTP 401 without the password", err)
	}
	if _, err := (&Client{URL: ts.URL, Username: user, Password: password, BearerToken: bearer}).Timestamp(ctx, d, crypto.SHA256); err == nil {
		t.Error("basic and bearer together accepted")
	}

	// Credentials in the URL never reach the errors.
	closed := httptest.NewServer(srv)
	addr := closed.Listener.Addr().String()
	closed.Close()
	for _, u := range []string{
		"http://" + user + ":" + password + "@" + addr + "/tsa",
		"http://" + user + ":" + password + "@" + addr + ":bad/tsa",
		"ftp://" + user + ":" + password + "@" + addr,
	} {
		_, err := (&Client{URL: u, BearerToken: bearer}).Timestamp(ctx, d, crypto.SHA256)
		if err == nil || strings.Contains(err.Error(), password) || strings.Contains(err.Error(), bearer) {
			t.Errorf("URL with credentials: %v", err)
		}
	}
}
