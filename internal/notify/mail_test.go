package notify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/etatcivil/etatcivil/internal/notify"
	"github.com/etatcivil/etatcivil/internal/store"
)

// received is one message the sink took.
type received struct {
	from string
	to   []string
	data []byte
	auth string // the user who authenticated
	tls  bool
}

// sink is a real SMTP server on 127.0.0.1 that keeps what it receives,
// with AUTH PLAIN (user "etatcivil", password "mot-de-passe") required.
type sink struct {
	mu   sync.Mutex
	msgs []received
}

func newSink(t *testing.T, tlsCfg *tls.Config) (*sink, string) {
	t.Helper()
	s := &sink{}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = tlsCfg == nil
	srv.TLSConfig = tlsCfg
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log{t}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s, l.Addr().String()
}

type log struct{ t *testing.T }

func (l log) Printf(format string, v ...any) { l.t.Logf(format, v...) }
func (l log) Println(v ...any)               { l.t.Log(v...) }

func (s *sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{sink: s, tls: isTLS, conn: c}, nil
}

func (s *sink) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type session struct {
	sink *sink
	conn *smtp.Conn
	tls  bool
	user string
	cur  received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "etatcivil" || password != "mot-de-passe" {
			return errors.New("identifiants invalides")
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.cur = received{from: from, auth: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, s.cur)
	s.sink.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// parsed is a received message, decoded as a mail client would.
type parsed struct {
	subject, body, contentType string
	header                     mail.Header
}

func parse(t *testing.T, m received) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.data)))
	if err != nil {
		t.Fatalf("message illisible: %v\n%s", err, m.data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("objet: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type %q", msg.Header.Get("Content-Type"))
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(msg.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("corps: %v", err)
	}
	for _, line := range strings.Split(string(m.data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("ligne de %d octets", len(line))
		}
	}
	return parsed{subject: subject, body: string(b), contentType: mt, header: msg.Header}
}

func waitMessages(t *testing.T, s *sink, want int) []received {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs := s.messages()
		if len(msgs) >= want {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d courriels reçus, %d attendus", len(msgs), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDigest: the daily digest reaches the subscribers whose scope has
// something to report, in French, decoded properly; a subscriber with
// nothing to report gets nothing; a second run the same day sends nothing.
func TestDigest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sk, addr := newSink(t, nil)
	n := &notify.Notifier{Logger: testLogger(), SMTP: notify.SMTPConfig{Addr: addr, From: "État civil <etatcivil@example.org>",
		Username: "etatcivil", Password: "mot-de-passe"}}
	s := stack(t, n)
	s.Hub(t, "h", "12202")
	subs := map[string]store.EmailSubscription{
		"commune": {Commune: "12202", Address: "mairie-rodez@example.org"},
		"hub":     {HubID: "h", Address: "operateur@example.org"},
		"paris":   {Commune: "75056", Address: "mairie-paris@example.org"},
	}
	for k, sub := range subs {
		created, err := s.Store.CreateEmailSubscription(ctx, store.System, sub)
		if err != nil {
			t.Fatal(err)
		}
		subs[k] = created
	}
	files := map[string][]byte{"acte-1.pdf": []byte("pas un pdf du tout")}
	b := upload(t, s, files, []string{"acte-1.pdf"})
	if b.Counts.Rejected != 1 {
		t.Fatalf("lot %+v", b.Counts)
	}
	collectUntil(t, s, n, 1)

	// Tomorrow, after 07:00 in Paris.
	tomorrow := notify.DigestDue(time.Now()).Add(24*time.Hour + 5*time.Minute)
	queued, err := n.Digest(ctx, s.Jobs.River, tomorrow)
	if err != nil || queued != 2 {
		t.Fatalf("résumés: %d en file (2 attendus), %v", queued, err)
	}
	msgs := waitMessages(t, sk, 2)
	got := map[string]parsed{}
	for _, m := range msgs {
		if len(m.to) != 1 || m.from != "etatcivil@example.org" || m.auth != "etatcivil" {
			t.Errorf("enveloppe: de %q à %v (authentifié %q)", m.from, m.to, m.auth)
			continue
		}
		got[m.to[0]] = parse(t, m)
	}
	for _, k := range []string{"commune", "hub"} {
		p, ok := got[subs[k].Address]
		if !ok {
			t.Errorf("pas de résumé pour %s", subs[k].Address)
			continue
		}
		for _, want := range []string{"Actes refusés (1)", "Acte de décès n° 1 de 2020, commune 12202 (Rodez), fichier acte-1.pdf",
			"Motif : not_pdf", "Le fichier n'est pas un PDF", deref(b.Acts[0].ID)} {
			if !strings.Contains(p.body, want) {
				t.Errorf("résumé de %s sans %q:\n%s", k, want, p.body)
			}
		}
		if !strings.HasPrefix(p.subject, "État civil : 1 signalement pour ") {
			t.Errorf("objet %q", p.subject)
		}
		if from, err := p.header.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "État civil" {
			t.Errorf("From %v %v", from, err)
		}
	}
	if _, ok := got[subs["paris"].Address]; ok || len(msgs) != 2 {
		t.Errorf("courriel pour un abonné sans rien à signaler (%d courriels)", len(msgs))
	}

	// The same day again: nothing more.
	if queued, err := n.Digest(ctx, s.Jobs.River, tomorrow.Add(time.Hour)); err != nil || queued != 0 {
		t.Errorf("second passage le même jour: %d en file, %v", queued, err)
	}
	var delivered int
	if err := s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_deliveries WHERE channel = 'email' AND state = 'delivered'`).Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for delivered != 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		_ = s.Store.Pool.QueryRow(ctx, `SELECT count(*) FROM notification_deliveries WHERE channel = 'email' AND state = 'delivered'`).Scan(&delivered)
	}
	if delivered != 2 {
		t.Errorf("%d courriels marqués remis, 2 attendus", delivered)
	}

	// Past the retention, events and delivered e-mails go.
	if n, err := s.Store.PruneNotifications(ctx, time.Now().Add(time.Minute)); err != nil || n != 3 {
		t.Errorf("purge: %d lignes (3 attendues), %v", n, err)
	}
}

// TestDigestDue: the digest is due from 07:00 Paris time, summer or winter.
func TestDigestDue(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ now, due string }{
		{"2025-07-14T05:00:00Z", "2025-07-14T05:00:00Z"}, // 07:00 CEST
		{"2025-07-14T04:59:59Z", "2025-07-13T05:00:00Z"},
		{"2025-01-15T06:30:00Z", "2025-01-15T06:00:00Z"}, // 07:00 CET
		{"2025-01-15T05:59:00Z", "2025-01-14T06:00:00Z"},
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		want, _ := time.Parse(time.RFC3339, c.due)
		if got := notify.DigestDue(now); !got.Equal(want) {
			t.Errorf("DigestDue(%s) = %s, %s attendu", c.now, got.UTC().Format(time.RFC3339), c.due)
		}
	}
}

// TestSendMailStartTLS: SendMail through STARTTLS and AUTH; the subject
// and body survive the encodings, lines starting with a dot too.
func TestSendMailStartTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	sk, addr := newSink(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	n := &notify.Notifier{SMTP: notify.SMTPConfig{Addr: addr, From: "etatcivil@example.org", Username: "etatcivil", Password: "mot-de-passe",
		StartTLS: true, TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	body := "Bonjour,\n\nVotre lien de connexion : https://etatcivil.example.org/connexion?jeton=é\n.ligne qui commence par un point\n" +
		strings.Repeat("très longue ligne ", 20) + "\n"
	if err := n.SendMail(context.Background(), "agent@example.org", "Connexion à état civil — « lien » à usage unique", body); err != nil {
		t.Fatal(err)
	}
	m := waitMessages(t, sk, 1)[0]
	if !m.tls {
		t.Error("message reçu sans TLS")
	}
	p := parse(t, m)
	if p.subject != "Connexion à état civil — « lien » à usage unique" {
		t.Errorf("objet %q", p.subject)
	}
	if strings.ReplaceAll(p.body, "\r\n", "\n") != body {
		t.Errorf("corps %q, attendu %q", p.body, body)
	}

	// Without STARTTLS on offer, STARTTLS required: nothing is sent.
	_, plain := newSink(t, nil)
	n.SMTP.Addr = plain
	if err := n.SendMail(context.Background(), "agent@example.org", "x", "y"); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("envoi sans STARTTLS: %v", err)
	}
	// No server configured.
	if err := (&notify.Notifier{}).SendMail(context.Background(), "agent@example.org", "x", "y"); !errors.Is(err, notify.ErrMailDisabled) {
		t.Errorf("sans serveur: %v", err)
	}
	// A header cannot be injected through the subject.
	n.SMTP.Addr = addr
	if err := n.SendMail(context.Background(), "agent@example.org", "x\r\nBcc: autre@example.org", "y"); err == nil {
		t.Error("objet sur deux lignes accepté")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp de test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestFromEnv: the SMTP configuration from the environment, with the
// password from a file, and bad values refused.
func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ETATCIVIL_SMTP_ADDR", "ETATCIVIL_SMTP_FROM", "ETATCIVIL_SMTP_USERNAME", "ETATCIVIL_SMTP_PASSWORD",
		"ETATCIVIL_SMTP_PASSWORD_FILE", "ETATCIVIL_SMTP_STARTTLS"} {
		t.Setenv(k, "")
	}
	c, err := notify.FromEnv()
	if err != nil || c.Enabled() {
		t.Fatalf("sans variable: %+v %v", c, err)
	}
	t.Setenv("ETATCIVIL_SMTP_ADDR", "smtp.example.org:587")
	t.Setenv("ETATCIVIL_SMTP_FROM", "État civil <etatcivil@example.org>")
	t.Setenv("ETATCIVIL_SMTP_USERNAME", "etatcivil")
	t.Setenv("ETATCIVIL_SMTP_PASSWORD_FILE", pw)
	t.Setenv("ETATCIVIL_SMTP_STARTTLS", "true")
	c, err = notify.FromEnv()
	if err != nil || !c.Enabled() || c.Password != "s3cret" || !c.StartTLS || c.Username != "etatcivil" {
		t.Fatalf("configuration: %+v %v", c, err)
	}
	for k, v := range map[string]string{
		"ETATCIVIL_SMTP_ADDR":     "smtp.example.org",
		"ETATCIVIL_SMTP_FROM":     "pas une adresse",
		"ETATCIVIL_SMTP_STARTTLS": "peut-être",
	} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			if _, err := notify.FromEnv(); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%q accepté (%v)", k, v, err)
			}
		})
	}
}
