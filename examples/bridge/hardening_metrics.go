//go:build linux

package main

import "github.com/prometheus/client_golang/prometheus"

// hardeningCollector exports the counters of the bridge's defences: rejects held back by the
// rate limit or a full port, reject sockets re-opened, and failed EVE writes. Like collector it
// reads the counters when Prometheus scrapes.
type hardeningCollector struct {
	eng                               *engine
	limited, full, rebinds, eveFailed *prometheus.Desc
}

func newHardeningCollector(eng *engine) *hardeningCollector {
	return &hardeningCollector{
		eng:       eng,
		limited:   prometheus.NewDesc("afbridge_reject_frames_rate_limited_total", "Reject frames not sent because of the per-worker rate limit.", nil, nil),
		full:      prometheus.NewDesc("afbridge_reject_frames_queue_full_total", "Reject frames dropped because the port's send queue was full.", nil, nil),
		rebinds:   prometheus.NewDesc("afbridge_reject_socket_rebinds_total", "Reject sockets re-opened after their interface was re-created.", nil, nil),
		eveFailed: prometheus.NewDesc("afbridge_eve_events_failed_total", "EVE events lost to write errors.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *hardeningCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.limited, c.full, c.rebinds, c.eveFailed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *hardeningCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.limited, c.eng.rejectsLimited.Load())
	counter(c.full, c.eng.rejectsFull.Load())
	counter(c.rebinds, c.eng.rejectRebinds.Load())
	if c.eng.eve != nil {
		counter(c.eveFailed, c.eng.eve.Failed())
	}
}
