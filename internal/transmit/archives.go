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
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(t.WriteZip(pw, open)) }()
	defer pr.Close()
	status, body, err := h.post(ctx, reg, key, "application/zip", pr, 8<<20)
	o := Outcome{Status: status}
	if err != nil || status == http.StatusAccepted {
		return o, err
	}
	reply, err := seda.ParseReply(body)
	if err != nil {
		if status >= 400 {
			o.Refused, o.Reason = true, fmt.Sprintf("refus du registre (statut %d)", status)
			return o, nil
		}
		return o, fmt.Errorf("%w: réponse illisible: %w", ErrTransient, err)
	}
	if reply.ReplyCode == seda.ReplyOK {
		o.Acknowledged, o.AckID = true, reply.MessageID
		return o, nil
	}
	o.Refused, o.Reason = true, reply.Reason
	for id, why := range reply.Refused {
		o.Refusals = append(o.Refusals, Refusal{ActID: id, Reason: why})
	}
	return o, nil
}
