package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// jobSeconds is how long each job took, by kind (validate, seal,
// archive, send, …: the pipeline's stages and the periodic jobs) and
// outcome. Each process counts the jobs it worked.
var jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "etatcivil_job_seconds",
	Help:    "Jobs worked by this process, by kind and outcome (ok, error, cancel, snooze), with their duration.",
	Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
}, []string{"kind", "outcome"})

// Collectors are the workers' metrics, to register on /metrics.
func Collectors() []prometheus.Collector { return []prometheus.Collector{jobSeconds} }

// timeJobs is River worker middleware timing every job.
var timeJobs = river.WorkerMiddlewareFunc(func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	err := doInner(ctx)
	outcome := "ok"
	var cancel *rivertype.JobCancelError
	var snooze *rivertype.JobSnoozeError
	switch {
	case err == nil:
	case errors.As(err, &cancel):
		outcome = "cancel"
	case errors.As(err, &snooze):
		outcome = "snooze"
	default:
		outcome = "error"
	}
	jobSeconds.WithLabelValues(job.Kind, outcome).Observe(time.Since(start).Seconds())
	return err
})
