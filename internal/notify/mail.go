package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"
)

// SendMail sends one plain-text e-mail (UTF-8) to to, now, through the
// configured SMTP server. ErrMailDisabled when there is none.
func (n *Notifier) SendMail(ctx context.Context, to, subject, body string) error {
	var id [12]byte
	_, _ = rand.Read(id[:])
	return n.sendMail(ctx, to, subject, body, hex.EncodeToString(id[:]))
}

// sendMail sends with a Message-ID made of id: a delivery sent again keeps
// its Message-ID, so a mail client shows it once.
func (n *Notifier) sendMail(ctx context.Context, to, subject, body, id string) error {
	c := n.SMTP
	if !c.Enabled() {
		return ErrMailDisabled
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return fmt.Errorf("expéditeur %q invalide : %w", c.From, err)
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("destinataire %q invalide : %w", to, err)
	}
	msg, err := buildMessage(from, rcpt, subject, body, id, n.now())
	if err != nil {
		return err
	}
	return c.send(ctx, from.Address, rcpt.Address, msg)
}

// buildMessage writes an RFC 5322 message: the subject encoded per RFC
// 2047 when it is not ASCII, the body UTF-8 in quoted-printable, CRLF
// line ends.
func buildMessage(from, to *mail.Address, subject, body, id string, date time.Time) ([]byte, error) {
	if strings.ContainsAny(subject, "\r\n") {
		return nil, errors.New("objet du courriel sur plusieurs lignes")
	}
	domain := "etatcivil.invalid"
	if _, d, ok := strings.Cut(from.Address, "@"); ok && d != "" {
		domain = d
	}
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from.String())
	h("To", to.String())
	h("Subject", mime.QEncoding.Encode("utf-8", subject))
	h("Date", date.In(paris).Format(time.RFC1123Z))
	h("Message-ID", "<"+id+"@"+domain+">")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes(), nil
}

// send hands msg to the SMTP server: STARTTLS first if required, AUTH
// PLAIN if a user is set (net/smtp refuses it in clear, but to
// localhost), then one recipient.
func (c SMTPConfig) send(ctx context.Context, from, to string, msg []byte) error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("ETATCIVIL_SMTP_ADDR %q : %w", c.Addr, err)
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("connexion au serveur SMTP %s : %w", c.Addr, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Minute)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("serveur SMTP %s : %w", c.Addr, err)
	}
	defer cl.Close()
	if c.StartTLS {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return fmt.Errorf("le serveur SMTP %s ne propose pas STARTTLS (ETATCIVIL_SMTP_STARTTLS=true)", c.Addr)
		}
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if c.TLS != nil {
			cfg = c.TLS.Clone()
		}
		if err := cl.StartTLS(cfg); err != nil {
			return fmt.Errorf("STARTTLS avec %s : %w", c.Addr, err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, host)); err != nil {
			return fmt.Errorf("authentification SMTP de %q : %w", c.Username, err)
		}
	}
	if err := cl.Mail(from); err != nil {
		return fmt.Errorf("SMTP MAIL FROM : %w", err)
	}
	if err := cl.Rcpt(to); err != nil {
		return fmt.Errorf("SMTP RCPT TO %s : %w", to, err)
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA : %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("SMTP DATA : %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP, message refusé : %w", err)
	}
	// The message is accepted: a failed QUIT must not send it again.
	_ = cl.Quit()
	return nil
}
