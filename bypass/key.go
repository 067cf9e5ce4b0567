package bypass

// Key is the canonical flow key the fast path's maps are keyed by: 40 bytes, no padding, in the
// host's byte order. It has the layout of flow.Key, field by field, so the two convert directly.
type Key struct {
	// Addr holds the two endpoints' addresses, each word the numeric value of 4 address bytes
	// (binary.BigEndian.Uint32). IPv4 uses word 0; words 1 to 3 are 0.
	Addr [2][4]uint32
	// Port holds the TCP or UDP ports, or the echo identifier twice for ICMP and ICMPv6 echo.
	Port [2]uint16
	// VLAN is the outer VLAN ID (TCI & 0x0fff); 0 when untagged.
	VLAN uint16
	// Proto is the upper-layer protocol.
	Proto uint8
	// Family is 4 or 6.
	Family uint8
}
