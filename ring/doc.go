// Package ring maps the receive and transmit rings of an AF_PACKET socket (packet(7), PACKET_MMAP)
// and moves frames through them without copying, allocating or locking.
//
// New sets the ring version, creates the rings and maps them with one mmap(2) on a socket that
// its owner has opened, bound and configured (PACKET_VNET_HDR included); the ring package knows
// nothing of interfaces. The RX ring hands out received frames in place:
//
//	for {
//		for rx.Next(&f) {
//			use(f.Data) // valid until Release
//		}
//		rx.Release() // give the slots back to the kernel
//		if err := rx.Wait(); err != nil {
//			return err // os.ErrClosed after Close, os.ErrDeadlineExceeded at the read deadline
//		}
//	}
//
// The TX ring lets the caller build frames in place and sends a whole batch with one syscall:
//
//	buf, ok := tx.Reserve() // the data area of the next free slot
//	n := copy(buf, frame)
//	tx.Commit(n) // or don't, and the slot is reused by the next Reserve
//	...
//	tx.Flush() // one send(2) for every committed slot
//
// Both rings come in TPACKET_V2 (fixed-size frames, each handed over as soon as it is written)
// and TPACKET_V3 (variable-size frames packed into blocks, handed over a block at a time). A ring
// has a single owner: one goroutine at a time calls its methods, except Map.Close, which any
// goroutine may call at any time to wake and stop the owner.
//
// Every status word the kernel and the process share (tp_status, block_status) is read with a
// load-acquire before the frame behind it is read, and written with a store-release after the
// process is done with the frame, through sync/atomic; nothing else synchronises the two sides.
package ring
