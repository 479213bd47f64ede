package transmit

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/etatcivil/etatcivil/internal/registry"
	"github.com/etatcivil/etatcivil/internal/seda"
)

// SendTransfer posts one SEDA 2.3 package (a ZIP of the ArchiveTransfer
// and the sealed PDFs, streamed: never held in memory) under key, and
// reads the ArchiveTransferReply: OK acknowledges every act, KO refuses
// them with the reply's reason.
func (h *HTTP) SendTransfer(ctx context.Context, reg registry.Registry, key string, t seda.Transfer, open func(seda.Act) (io.ReadCloser, error)) (Outcome, error) {
	c, err := h.client(reg)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(t.WriteZip(pw, open)) }()
	defer pr.Close()
	req, err := http.NewRequestWithContext(ctx, "POST", reg.Endpoint, pr)
	if err != nil {
		return Outcome{}, err
	}
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Idempotency-Key", key)
	if err := h.authorize(req, reg); err != nil {
		return Outcome{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	o := Outcome{Status: resp.StatusCode}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return o, fmt.Errorf("%w: statut %d", ErrTransient, resp.StatusCode)
	case resp.StatusCode == http.StatusAccepted:
		return o, nil
	}
	reply, err := seda.ParseReply(body)
	if err != nil {
		if resp.StatusCode >= 400 {
			o.Refused, o.Reason = true, fmt.Sprintf("refus du registre (statut %d)", resp.StatusCode)
			return o, nil
		}
		return o, fmt.Errorf("%w: réponse illisible: %w", ErrTransient, err)
	}
	if reply.ReplyCode == seda.ReplyOK {
		o.Acknowledged, o.AckID = true, reply.MessageID
		return o, nil
	}
	o.Refused, o.Reason = true, reply.Reason
	return o, nil
}
