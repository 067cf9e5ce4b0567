package eve

// Stats is the "stats" object of a stats event, laid out like the part of Suricata's that an
// inline bridge has counters for. Every count is a total since the start.
type Stats struct {
	// Uptime is the number of seconds since the start.
	Uptime int64 `json:"uptime"`
	// Capture is what the kernel reported for the capture sockets.
	Capture StatsCapture `json:"capture"`
	// Decoder counts the frames taken from the capture rings.
	Decoder StatsDecoder `json:"decoder"`
	// IPS counts the verdicts carried out.
	IPS StatsIPS `json:"ips"`
}

// StatsCapture is stats.capture.
type StatsCapture struct {
	// KernelPackets is the frames the kernel handed to the capture sockets, drops included.
	KernelPackets uint64 `json:"kernel_packets"`
	// KernelDrops is the frames the kernel dropped because a capture ring was full.
	KernelDrops uint64 `json:"kernel_drops"`
}

// StatsDecoder is stats.decoder.
type StatsDecoder struct {
	// Pkts and Bytes count the frames taken from the capture rings and their wire length.
	Pkts  uint64 `json:"pkts"`
	Bytes uint64 `json:"bytes"`
}

// StatsIPS is stats.ips.
type StatsIPS struct {
	// Accepted is the frames sent on to the other port.
	Accepted uint64 `json:"accepted"`
	// Blocked is the frames that did not leave, whatever the reason (rejected ones included).
	Blocked uint64 `json:"blocked"`
	// Rejected is the frames a reject rule dropped, each answered with a TCP reset or an ICMP
	// unreachable.
	Rejected uint64 `json:"rejected"`
	// DropReason splits Blocked by reason, with the bridge's reasons ("rules", "port_down",
	// "tx_error", ...) in place of Suricata's.
	DropReason map[string]uint64 `json:"drop_reason,omitempty"`
}
