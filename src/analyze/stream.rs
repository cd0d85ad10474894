//! TCP stream reassembly for one direction of a connection: turns segments in capture
//! order (retransmitted, reordered, abbreviated, with holes) into the in-order byte
//! stream the protocol decoders read, and says what each segment was.

/// What a segment was, seen from the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Next in order.
    New,
    /// Everything in it was seen before.
    Retransmission,
    /// It filled a hole left by a later segment seen first.
    OutOfOrder,
    /// It starts beyond what was seen: a segment before it is missing (so far).
    Ahead,
    /// No sequence space (a pure ACK).
    Empty,
}

/// A piece of the in-order stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes in order; `frame` is the packet they came in.
    Data(&'a [u8], u64),
    /// Bytes of the stream that the trace does not hold (abbreviated packets, segments
    /// never captured).
    Gap(u64),
}

struct Held {
    /// Offset from `next`'s origin (see `Stream::origin`).
    at: u64,
    data: Vec<u8>,
    /// Bytes of sequence space beyond `data` that were not traced.
    missing: u32,
    frame: u64,
}

/// Out-of-order data is held up to this many bytes; beyond, the hole is declared a gap.
const MAX_HELD: usize = 1 << 20;

#[derive(Default)]
pub struct Stream {
    /// Sequence number of stream offset 0 (the byte after the SYN, or the first byte
    /// seen when the connection was picked up midstream).
    origin: Option<u32>,
    /// Stream offset of the next byte to deliver.
    next: u64,
    /// Highest stream offset seen (end of the furthest segment).
    high: u64,
    held: Vec<Held>,
    held_bytes: usize,
    fin: Option<u64>,
    syn_seen: bool,
}

impl Stream {
    /// Offset of `seq` in the stream, choosing the 32-bit wrap nearest to `next`.
    fn offset(&self, origin: u32, seq: u32) -> i64 {
        let rel = seq.wrapping_sub(origin) as u64;
        let base = self.next & !0xFFFF_FFFF;
        let candidates = [base.wrapping_sub(1 << 32), base, base + (1 << 32)];
        let mut best = (base + rel) as i64;
        for c in candidates {
            let v = c.wrapping_add(rel) as i64;
            if (v - self.next as i64).abs() < (best - self.next as i64).abs() {
                best = v;
            }
        }
        best
    }

    /// One segment: `seq` and flags from its header, `present` the payload bytes in the
    /// trace, `len` the true payload length. In-order data goes to `out`.
    // The segment's fields one by one read better at the call sites than a struct
    // built for this call only.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        present: &[u8],
        len: u32,
        frame: u64,
        out: &mut impl FnMut(Chunk<'_>),
    ) -> Class {
        let present = &present[..present.len().min(len as usize)];
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let origin = *self.origin.get_or_insert(data_seq);
        let at = self.offset(origin, data_seq);
        if at < 0 && syn {
            // A new SYN far behind: nothing to deliver.
            return Class::Retransmission;
        }
        // A segment that starts before the stream's origin (picked up midstream, then
        // an older retransmission): only its bytes from the origin on are stream bytes.
        let (present, len, at) = if at < 0 {
            let cut = at.unsigned_abs().min(u64::from(len)) as u32;
            let p = &present[(cut as usize).min(present.len())..];
            (p, len - cut, 0u64)
        } else {
            (present, len, at as u64)
        };
        let end = at + len as u64;
        let class = if len == 0 {
            if fin {
                match self.fin {
                    Some(f) if f >= at => Class::Retransmission,
                    _ => Class::New,
                }
            } else if syn {
                // A second SYN for the same start: the first was not answered in time.
                if std::mem::replace(&mut self.syn_seen, true) {
                    Class::Retransmission
                } else {
                    Class::New
                }
            } else {
                Class::Empty
            }
        } else if end <= self.next {
            Class::Retransmission
        } else if at > self.next && self.held.iter().any(|h| h.at == at) {
            // The same segment again while it waits behind a hole.
            return Class::Retransmission;
        } else if at > self.next {
            Class::Ahead
        } else if at < self.next && end <= self.high && self.held.is_empty() {
            Class::Retransmission
        } else if !self.held.is_empty() && at <= self.next {
            Class::OutOfOrder
        } else {
            Class::New
        };
        if fin && self.fin.is_none() {
            self.fin = Some(end);
        }
        self.high = self.high.max(end);
        if len == 0 || end <= self.next {
            return class;
        }
        if at > self.next {
            self.hold(at, present, len, frame, out);
            return class;
        }
        self.deliver(at, present, len, frame, out);
        self.drain(out);
        class
    }

    /// Delivers a segment that starts at or before `next`.
    fn deliver(
        &mut self,
        at: u64,
        present: &[u8],
        len: u32,
        frame: u64,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        let skip = (self.next - at) as usize;
        let end = at + len as u64;
        if skip < present.len() {
            out(Chunk::Data(&present[skip..], frame));
        }
        let missing_from = at + present.len().max(skip) as u64;
        if end > missing_from {
            out(Chunk::Gap(end - missing_from));
        }
        self.next = end;
    }

    fn hold(
        &mut self,
        at: u64,
        present: &[u8],
        len: u32,
        frame: u64,
        out: &mut impl FnMut(Chunk<'_>),
    ) {
        self.held.push(Held {
            at,
            data: present.to_vec(),
            missing: len - present.len() as u32,
            frame,
        });
        self.held_bytes += present.len();
        self.held.sort_by_key(|h| h.at);
        if self.held_bytes > MAX_HELD {
            // Give up on the hole: it is a gap in the stream.
            let first = self.held[0].at;
            out(Chunk::Gap(first - self.next));
            self.next = first;
            self.drain(out);
        }
    }

    fn drain(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(h) = self.held.first() {
            if h.at > self.next {
                break;
            }
            let h = self.held.remove(0);
            self.held_bytes -= h.data.len();
            let len = h.data.len() as u32 + h.missing;
            if h.at + len as u64 > self.next {
                self.deliver(h.at, &h.data, len, h.frame, out);
            }
        }
    }

    /// The receiver acknowledged up to `ack`: bytes before it that were never seen were
    /// sent but not captured, so the hole is a gap now rather than at the end (a
    /// decoder waiting behind it would otherwise see everything late). Returns the gap
    /// length declared, 0 if none.
    pub fn acked(&mut self, ack: u32, out: &mut impl FnMut(Chunk<'_>)) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let at = self.offset(origin, ack);
        if at <= self.next as i64 {
            return 0;
        }
        let mut at = at as u64;
        // The FIN takes a sequence number but is no data.
        if self.fin.is_some_and(|f| at == f + 1) {
            at -= 1;
        }
        // Far beyond: not an acknowledgement of this stream (a reused port, garbage).
        if at <= self.next || at - self.next > 4 * MAX_HELD as u64 {
            return 0;
        }
        let upto = at.min(self.held.first().map_or(u64::MAX, |h| h.at));
        if upto <= self.next {
            return 0;
        }
        let gap = upto - self.next;
        out(Chunk::Gap(gap));
        self.next = upto;
        self.high = self.high.max(upto);
        self.drain(out);
        gap
    }

    /// End of the connection: holes before held data become gaps and the held data is
    /// delivered.
    pub fn finish(&mut self, out: &mut impl FnMut(Chunk<'_>)) {
        while let Some(first) = self.held.first().map(|h| h.at) {
            if first > self.next {
                out(Chunk::Gap(first - self.next));
                self.next = first;
            }
            self.drain(out);
        }
    }

    /// Bytes delivered or declared missing so far.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Sequence number expected next, if the stream has started.
    pub fn next_seq(&self) -> Option<u32> {
        self.origin.map(|o| o.wrapping_add(self.next as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(segs: &[(u32, bool, &[u8], u32)]) -> (Vec<Class>, Vec<String>) {
        let mut s = Stream::default();
        let mut got = Vec::new();
        let mut classes = Vec::new();
        for (i, &(seq, syn, data, len)) in segs.iter().enumerate() {
            let c = s.push(seq, syn, false, data, len, i as u64 + 1, &mut |c| {
                got.push(match c {
                    Chunk::Data(d, f) => format!("{}@{f}", String::from_utf8_lossy(d)),
                    Chunk::Gap(n) => format!("gap{n}"),
                })
            });
            classes.push(c);
        }
        s.finish(&mut |c| {
            got.push(match c {
                Chunk::Data(d, f) => format!("{}@{f}", String::from_utf8_lossy(d)),
                Chunk::Gap(n) => format!("gap{n}"),
            })
        });
        (classes, got)
    }

    #[test]
    fn in_order_retransmitted_and_reordered() {
        let (c, got) = run(&[
            (100, true, b"", 0),
            (101, false, b"abc", 3),
            (101, false, b"abc", 3),
            (107, false, b"ghi", 3),
            (104, false, b"def", 3),
        ]);
        use Class::*;
        assert_eq!(c, [New, New, Retransmission, Ahead, OutOfOrder]);
        assert_eq!(got, ["abc@2", "def@5", "ghi@4"]);
    }

    #[test]
    fn abbreviated_segments_leave_gaps_and_overlaps_are_trimmed() {
        let (_, got) = run(&[(1, false, b"ab", 5), (4, false, b"defgh", 5)]);
        // First segment: seq 1-5, 2 bytes traced of 5; the second (seq 4-8) overlaps
        // its last 2 bytes, so only seq 6-8 are new.
        assert_eq!(got, ["ab@1", "gap3", "fgh@2"]);
    }

    #[test]
    fn held_segments_retransmitted_and_bytes_before_the_origin() {
        let (c, got) = run(&[
            (10, false, b"a", 1),
            (20, false, b"b", 1),
            (20, false, b"b", 1),
            // Before the origin (10): only seq 10.. belongs to the stream, and it was seen.
            (8, false, b"xya", 3),
        ]);
        use Class::*;
        assert_eq!(c, [New, Ahead, Retransmission, Retransmission]);
        assert_eq!(got, ["a@1", "gap9", "b@2"]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (c, got) = run(&[(u32::MAX - 1, false, b"xy", 2), (0, false, b"z", 1)]);
        assert_eq!(c, [Class::New, Class::New]);
        assert_eq!(got, ["xy@1", "z@2"]);
    }

    #[test]
    fn an_ack_beyond_a_hole_declares_the_gap_at_once() {
        let mut s = Stream::default();
        let mut got = Vec::new();
        let mut push = |s: &mut Stream, seq, d: &[u8]| {
            s.push(seq, false, false, d, d.len() as u32, 1, &mut |c| {
                got.push(format!("{c:?}"))
            });
        };
        push(&mut s, 10, b"a");
        push(&mut s, 20, b"b");
        let mut acked = Vec::new();
        assert_eq!(s.acked(21, &mut |c| acked.push(format!("{c:?}"))), 9);
        assert_eq!(acked, ["Gap(9)", "Data([98], 1)"]);
        // Nothing more to declare.
        assert_eq!(s.acked(21, &mut |_| {}), 0);
    }

    #[test]
    fn a_hole_never_filled_is_a_gap_at_the_end() {
        let (_, got) = run(&[(10, false, b"a", 1), (20, false, b"b", 1)]);
        assert_eq!(got, ["a@1", "gap9", "b@2"]);
    }
}
