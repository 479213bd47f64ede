// Package reqid carries a request's id from the API into the jobs it
// creates and the jobs those create: the id is kept in River's job
// metadata (never in the args, which carry entity ids only), put back in
// the worker's context, and logged with every line about the work.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From returns the id ctx carries, "" if none.
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// New returns a fresh id (16 hex digits).
func New() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Valid reports whether a client-supplied id may be kept: 1–64 letters,
// digits, '-', '_' or '.' (it is logged; nothing else may enter a log
// line from a header).
func Valid(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// metadataKey is the job metadata field holding the id.
const metadataKey = "request_id"

// Insert is River insert middleware: each job inserted with a request id
// in its context gets it in its metadata.
var Insert = river.JobInsertMiddlewareFunc(func(ctx context.Context, params []*rivertype.JobInsertParams,
	doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	if id := From(ctx); id != "" {
		for _, p := range params {
			m := map[string]any{}
			if len(p.Metadata) > 0 {
				if err := json.Unmarshal(p.Metadata, &m); err != nil {
					continue // not ours to rewrite
				}
			}
			if _, set := m[metadataKey]; set {
				continue
			}
			m[metadataKey] = id
			if b, err := json.Marshal(m); err == nil {
				p.Metadata = b
			}
		}
	}
	return doInner(ctx)
})

// Work is River worker middleware: the job's request id, if it has one,
// is put in the context it is worked with.
var Work = river.WorkerMiddlewareFunc(func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	var m struct {
		ID string `json:"request_id"`
	}
	if len(job.Metadata) > 0 && json.Unmarshal(job.Metadata, &m) == nil && Valid(m.ID) {
		ctx = With(ctx, m.ID)
	}
	return doInner(ctx)
})
