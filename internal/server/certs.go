package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certFiles serves the API's certificate from its PEM files and re-reads
// them when they change, so that a renewed certificate (certbot, an ACME
// client, a PKI's rotation) is served without a restart. Each TLS
// handshake looks at the files' modification times and sizes at most
// once per certCheckEvery; a pair that does not load (the certificate
// written, its key not yet) leaves the previous certificate in service
// and is tried again at the next check.
type certFiles struct {
	cert, key string
	logger    *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string // the files' stamp current was loaded from
	checked time.Time
	warned  string // the stamp last reported as not loading
}

// certCheckEvery bounds how often handshakes look at the files.
const certCheckEvery = time.Second

func newCertFiles(cert, key string, logger *slog.Logger) (*certFiles, error) {
	c := &certFiles{cert: cert, key: key, logger: logger}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	c.current, c.stamp, c.checked = &pair, stamp, time.Now()
	return c, nil
}

// fileStamp identifies the files' current contents well enough to notice
// a rewrite: modification time and size of each.
func (c *certFiles) fileStamp() (string, error) {
	var s string
	for _, f := range []string{c.cert, c.key} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// get is tls.Config.GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) < certCheckEvery {
		return c.current, nil
	}
	c.checked = time.Now()
	stamp, err := c.fileStamp()
	if err != nil || stamp == c.stamp {
		if err != nil && c.warned != err.Error() {
			c.warned = err.Error()
			c.logger.Error("certificat TLS illisible : l'ancien reste en service", "err", err)
		}
		return c.current, nil
	}
	pair, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		if c.warned != stamp {
			c.warned = stamp
			c.logger.Error("nouveau certificat TLS refusé : l'ancien reste en service", "err", err)
		}
		return c.current, nil
	}
	c.current, c.stamp = &pair, stamp
	c.logger.Info("certificat TLS rechargé", "cert", c.cert)
	return c.current, nil
}
