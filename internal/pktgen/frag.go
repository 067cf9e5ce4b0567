//go:build linux

package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Datagram returns an Ethernet frame carrying one UDP datagram from src to dst (both IPv4 or both
// IPv6) with payload bytes derived from seq, a correct UDP checksum, and, for IPv4, seq's low 16
// bits as the IP identification and a correct header checksum.
func Datagram(dstMAC, srcMAC net.HardwareAddr, src, dst netip.AddrPort, seq uint32, payload int) []byte {
	v6 := src.Addr().Is6()
	ipLen := 20
	etype := uint16(0x0800)
	if v6 {
		ipLen, etype = 40, 0x86dd
	}
	f := make([]byte, 14+ipLen+8+payload)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], etype)
	ip := f[14:]
	udp := ip[ipLen:]
	fill(udp[8:], seq)
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payload))
	var pseudo uint32
	if v6 {
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(8+payload))
		ip[6], ip[7] = 17, 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		pseudo = csum(csum(0, ip[8:40]), []byte{0, 0, byte((8 + payload) >> 8), byte(8 + payload), 0, 0, 0, 17})
	} else {
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
		binary.BigEndian.PutUint16(ip[4:], uint16(seq))
		ip[8], ip[9] = 64, 17
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold16(csum(0, ip[:20])))
		pseudo = csum(csum(0, ip[12:20]), []byte{0, 17, byte((8 + payload) >> 8), byte(8 + payload)})
	}
	c := ^fold16(csum(pseudo, udp))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return f
}

// Fragments splits the untagged IPv4 or IPv6 datagram in frame (as Datagram builds it) into
// fragments whose IP packets are at most mtu bytes, in order. IPv4 fragments keep the header's
// identification and get DF if df is set (a sender may do that, though RFC 791 says not to); IPv6
// fragments get a fragment header with identification id. Each fragment is a new slice.
func Fragments(frame []byte, mtu int, id uint32, df bool) [][]byte {
	var out [][]byte
	if binary.BigEndian.Uint16(frame[12:]) == 0x86dd {
		hdr := frame[:14+40]
		payload := frame[14+40:]
		chunk := (mtu - 48) &^ 7
		for off := 0; off < len(payload); off += chunk {
			n := min(chunk, len(payload)-off)
			f := make([]byte, 0, 14+48+n)
			f = append(f, hdr...)
			binary.BigEndian.PutUint16(f[14+4:], uint16(8+n))
			f[14+6] = 44 // next header: fragment
			fo := uint16(off)
			if off+n < len(payload) {
				fo |= 1
			}
			f = append(f, 17, 0, byte(fo>>8), byte(fo))
			f = binary.BigEndian.AppendUint32(f, id)
			out = append(out, append(f, payload[off:off+n]...))
		}
		return out
	}
	hdr := frame[:14+20]
	payload := frame[14+20:]
	chunk := (mtu - 20) &^ 7
	for off := 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		f := make([]byte, 0, 14+20+n)
		f = append(f, hdr...)
		ip := f[14:]
		binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
		fo := uint16(off / 8)
		if off+n < len(payload) {
			fo |= 0x2000
		}
		if df {
			fo |= 0x4000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^fold16(csum(0, ip[:20])))
		out = append(out, append(f, payload[off:off+n]...))
	}
	return out
}

func csum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold16(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
