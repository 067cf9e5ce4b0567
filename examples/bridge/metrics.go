//go:build linux

package main

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// counterMetric is one peer.Counters field exported per direction and worker.
type counterMetric struct {
	desc *prometheus.Desc
	get  func(*peer.Counters) uint64
}

// collector reads every bridge's counters when Prometheus scrapes: nothing is kept or updated
// between scrapes, and the hot path does not know it exists.
type collector struct {
	bridges  []*bridge
	eng      *engine
	app      *app
	counters []counterMetric
	bytes    *prometheus.Desc

	alerts, eveWritten, eveDropped, rejects, rejectErrs *prometheus.Desc
	rulesLoaded, reloads                                *prometheus.Desc

	ports portMetrics
}

func newCollector(a *app) *collector {
	labels := []string{"direction", "worker"}
	c := &collector{bridges: a.bridges, eng: a.eng, app: a}
	for _, m := range []struct {
		name, help string
		get        func(*peer.Counters) uint64
	}{
		{"received_frames_total", "Frames taken from the ingress ring.", func(c *peer.Counters) uint64 { return c.Received }},
		{"forwarded_frames_total", "Frames sent out of the egress port.", func(c *peer.Counters) uint64 { return c.Forwarded }},
		{"dropped_frames_total", "Frames dropped by the rules (ips mode).", func(c *peer.Counters) uint64 { return c.Dropped }},
		{"would_drop_frames_total", "Frames the rules would have dropped, forwarded in tap mode.", func(c *peer.Counters) uint64 { return c.WouldDrop }},
		{"truncated_frames_total", "Frames captured shorter than on the wire, never sent.", func(c *peer.Counters) uint64 { return c.Truncated }},
		{"malformed_frames_total", "Frames too short or with a checksum that could not be completed.", func(c *peer.Counters) uint64 { return c.Malformed }},
		{"oversize_frames_total", "Frames too large for the egress MTU.", func(c *peer.Counters) uint64 { return c.Oversize }},
		{"fragments_sent_total", "IPv4 fragments sent for reassembled datagrams above the egress MTU.", func(c *peer.Counters) uint64 { return c.Fragments }},
		{"tx_errors_total", "Frames the kernel refused to send.", func(c *peer.Counters) uint64 { return c.TXErrors }},
		{"tx_ring_full_total", "Times the egress TX ring was full (backpressure).", func(c *peer.Counters) uint64 { return c.TXRingFull }},
		{"flush_errors_total", "Failed TX ring flushes (retried).", func(c *peer.Counters) uint64 { return c.FlushErrors }},
		{"verdict_panics_total", "Verdicts that panicked.", func(c *peer.Counters) uint64 { return c.Panics }},
		{"outgoing_frames_total", "Frames the host itself sent out of the ingress port (never bridged).", func(c *peer.Counters) uint64 { return c.Outgoing }},
		{"kernel_frames_total", "Frames the kernel handed to the ingress socket (PACKET_STATISTICS).", func(c *peer.Counters) uint64 { return c.KernelPackets }},
		{"kernel_drops_total", "Frames the kernel dropped because the ingress ring was full.", func(c *peer.Counters) uint64 { return c.KernelDrops }},
		{"kernel_freezes_total", "TPACKET_V3 queue freezes.", func(c *peer.Counters) uint64 { return c.Freezes }},
	} {
		c.counters = append(c.counters, counterMetric{
			desc: prometheus.NewDesc("afbridge_"+m.name, m.help, labels, nil),
			get:  m.get,
		})
	}
	c.bytes = prometheus.NewDesc("afbridge_received_bytes_total", "Bytes of the frames received (wire length).", labels, nil)
	c.alerts = prometheus.NewDesc("afbridge_alerts_total", "Rule matches raised as alerts (alert, drop and reject rules).", nil, nil)
	c.eveWritten = prometheus.NewDesc("afbridge_eve_events_written_total", "EVE events written.", nil, nil)
	c.eveDropped = prometheus.NewDesc("afbridge_eve_events_dropped_total", "EVE events dropped because the writer's queue was full.", nil, nil)
	c.rejects = prometheus.NewDesc("afbridge_reject_frames_sent_total", "TCP resets and ICMP unreachables sent for reject rules.", nil, nil)
	c.rejectErrs = prometheus.NewDesc("afbridge_reject_frames_failed_total", "Reject frames the kernel refused to send.", nil, nil)
	c.rulesLoaded = prometheus.NewDesc("afbridge_rules_loaded", "Rules in force.", nil, nil)
	c.reloads = prometheus.NewDesc("afbridge_rule_reloads_total", "Rule reloads (SIGHUP), by result.", []string{"result"}, nil)
	c.ports = newPortMetrics()
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.counters {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{c.bytes, c.alerts, c.eveWritten, c.eveDropped, c.rejects, c.rejectErrs, c.rulesLoaded, c.reloads} {
		ch <- d
	}
	c.ports.describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.bridges {
		st := b.br.Stats()
		for w := range st.Workers {
			worker := strconv.Itoa(w)
			for d := range st.Workers[w] {
				dir := b.dirName(verdict.Direction(d))
				for _, m := range c.counters {
					ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(m.get(&st.Workers[w][d])), dir, worker)
				}
				ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(st.Workers[w][d].Bytes), dir, worker)
			}
		}
		c.ports.collect(ch, b, &st)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.alerts, c.eng.alerts.Load())
	if c.eng.eve != nil {
		counter(c.eveWritten, c.eng.eve.Written())
		counter(c.eveDropped, c.eng.eve.Dropped())
	}
	counter(c.rejects, c.eng.rejects.Load())
	counter(c.rejectErrs, c.eng.rejectErrs.Load())
	ch <- prometheus.MustNewConstMetric(c.rulesLoaded, prometheus.GaugeValue, float64(c.app.ruleCount.Load()))
	counter(c.reloads, c.app.reloadsOK.Load(), "ok")
	counter(c.reloads, c.app.reloadsFailed.Load(), "error")
}

// portMetrics are the link state and history of each bridged port, the frames kept back
// because a port was down, and every frame that did not leave the bridge, by reason.
type portMetrics struct {
	up, downs, ups, removals, rebinds *prometheus.Desc
	portDown, drops                   *prometheus.Desc
}

func newPortMetrics() portMetrics {
	port := []string{"interface"}
	return portMetrics{
		up:       prometheus.NewDesc("afbridge_port_up", "1 while the port's link is up (IFF_UP and IFF_RUNNING), 0 while it is down or missing.", port, nil),
		downs:    prometheus.NewDesc("afbridge_port_downs_total", "Times the port's link went down.", port, nil),
		ups:      prometheus.NewDesc("afbridge_port_ups_total", "Times the port's link came back up.", port, nil),
		removals: prometheus.NewDesc("afbridge_port_removals_total", "Times the interface disappeared or was replaced under its name.", port, nil),
		rebinds:  prometheus.NewDesc("afbridge_port_rebinds_total", "Times the bridge bound to a new interface of the port's name.", port, nil),
		portDown: prometheus.NewDesc("afbridge_port_down_frames_total", "Frames kept from being forwarded because a port was down (the link policy).", []string{"direction", "worker"}, nil),
		drops: prometheus.NewDesc("afbridge_drops_total",
			"Frames that did not leave the bridge, by reason: rules, verdict-panic (fail-closed), port-down, tx-error, truncated, malformed, oversize, kernel-ring-full (lost before the bridge received them). Each frame counts under one reason.",
			[]string{"direction", "reason"}, nil),
	}
}

func (m *portMetrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.up, m.downs, m.ups, m.removals, m.rebinds, m.portDown, m.drops} {
		ch <- d
	}
}

// collect sends the port metrics of bridge b from its snapshot st.
func (m *portMetrics) collect(ch chan<- prometheus.Metric, b *bridge, st *peer.Stats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i, p := range [2]peer.Port{st.A, st.B} {
		name := b.ifname[i]
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, name)
		counter(m.downs, p.Downs, name)
		counter(m.ups, p.Ups, name)
		counter(m.removals, p.Removals, name)
		counter(m.rebinds, p.Rebinds, name)
	}
	for w := range st.Workers {
		for d := range st.Workers[w] {
			counter(m.portDown, st.Workers[w][d].PortDown, b.dirName(verdict.Direction(d)), strconv.Itoa(w))
		}
	}
	for d := range st.Total {
		for _, r := range b.dropReasons(&st.Total[d]) {
			counter(m.drops, r.n, b.dirName(verdict.Direction(d)), r.name)
		}
	}
}

// Limits of the metrics server. A scraper makes one request every few seconds over one
// keep-alive connection; anything beyond these bounds is not a scraper. Connections past
// metricsMaxConns wait in the kernel's accept queue, holding no descriptor of the bridge, so a
// flood of idle connections can neither exhaust the bridge's file limit (which SIGHUP needs to
// reopen the EVE log and read the rules) nor its memory.
const (
	metricsMaxConns          = 32
	metricsReadHeaderTimeout = 5 * time.Second
	metricsReadTimeout       = 10 * time.Second
	metricsWriteTimeout      = 30 * time.Second // a scrape of many workers, on a slow link
	metricsIdleTimeout       = 30 * time.Second // between two requests of a keep-alive connection
	metricsMaxHeaderBytes    = 8 << 10
)

// metricsServer serves /metrics on a listener opened up front, so a bad address fails before
// any socket of the bridge is opened.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
	err atomic.Pointer[error]
}

// metricsAddr is addr with 127.0.0.1 as its host when it names only a port (":9101"): the
// metrics name the interfaces and describe the process, which is nobody else's business unless
// the operator says so with an explicit address (0.0.0.0:9101, [::]:9101).
func metricsAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

func listenMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", metricsAddr(addr))
	if err != nil {
		return nil, err
	}
	return &metricsServer{ln: netutil.LimitListener(ln, metricsMaxConns)}, nil
}

// serve starts serving the collector's metrics, with the Go runtime's and the process's.
func (m *metricsServer) serve(c *collector) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, newHardeningCollector(c.eng), newBypassCollector(c.bridges), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "afbridge bridge: metrics are at /metrics", http.StatusNotFound)
	})
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
	}
	go func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.err.Store(&err)
		}
	}()
}

// close stops the server, or just the listener when serve was never called.
func (m *metricsServer) close() {
	if m.srv != nil {
		m.srv.Close()
		return
	}
	m.ln.Close()
}
