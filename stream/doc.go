// Package stream reassembles TCP streams for inspection, never for forwarding.
//
// Matching segment by segment lets "GET /forb" followed by "idden" through. A [Reassembler]
// (one per worker) follows each direction of a connection in sequence-number order and hands the
// caller, for each segment, one contiguous view: the last [Config.Tail] bytes already inspected
// followed by the bytes this segment makes newly in order. With Tail at least the longest
// pattern minus one, a pattern split over two, three or more segments is found in the view of
// the segment that completes it, and the caller drops that segment: the receiver never gets
// the whole pattern.
//
// What could make the IPS see one thing while the host sees another is reported as an
// [Anomaly] and, by default, a drop ([Result.Drop]):
//   - a segment that overlaps bytes already inspected (or held out of order) with different
//     bytes ([OverlapDiffers]); identical retransmissions pass;
//   - a retransmission of bytes no longer retained and not yet acknowledged by the receiver
//     ([Unverifiable]); each direction retains what its receiver has not acknowledged, up to
//     [Config.Retain] and, for all streams of a Reassembler, [Config.MaxMemory];
//   - an out-of-order segment that cannot be held until the gap before it fills ([OutOfOrder]);
//   - urgent data, which most stacks take out of the byte stream ([Urgent]).
//
// Out-of-order segments are copied into a bounded hold and inspected, with everything before
// them, in the view of the segment that fills the gap. The out-of-order segment itself is
// forwarded: the receiver cannot deliver it to the application before the gap is filled, and
// the segment that fills it is judged with it.
//
// A [Stream] is the per-connection state the caller keeps (for example in its flow table). It
// holds no reference to frame memory after a call returns. Once the caller drops a segment for
// its content it should drop the whole connection from then on ([Stream.Block] does this):
// the Stream assumes every segment it inspected reached the receiver.
package stream
