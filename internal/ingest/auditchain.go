package ingest

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// AuditChainArgs chains the audit events committed since the last run.
type AuditChainArgs struct{}

// Kind implements river.JobArgs.
func (AuditChainArgs) Kind() string { return "audit_chain" }

// AuditChainWorker chains audit events, in commit order, by batches.
type AuditChainWorker struct {
	river.WorkerDefaults[AuditChainArgs]
	deps *Deps
}

// Timeout bounds one chaining round.
func (w *AuditChainWorker) Timeout(*river.Job[AuditChainArgs]) time.Duration {
	return w.deps.stepTimeout()
}

// Work implements river.Worker.
func (w *AuditChainWorker) Work(ctx context.Context, _ *river.Job[AuditChainArgs]) error {
	for {
		n, err := w.deps.Store.ChainAudit(ctx, 5000)
		if err != nil || n < 5000 {
			return err
		}
	}
}
