//! Entry points shared by the cargo-fuzz targets (fuzz/fuzz_targets/*.rs, one line
//! each) and the tests that replay their corpus. Each takes arbitrary bytes, must not
//! panic, and checks the decoder's own promises (every byte accounted for) on the way.

use crate::convert::{self, Output};
use crate::packet::{Assembler, Options as PacketOptions};
use crate::trace::cte::{self, CteHeader, FormatId};
use crate::trace::framing::{self, Deframer, Framing};
use crate::trace::pthdr::PtHdr;
use crate::trace::{Cte, DiscardTable, Report, Scanner, Tod};

fn check_accounting(r: &Report, len: usize) {
    assert_eq!(r.bytes_read as usize, len, "bytes read");
    assert_eq!(r.unaccounted(), 0, "bytes not accounted for: {r:?}");
}

/// Framing detection and deframing under every framing.
pub fn framing(data: &[u8]) {
    let _ = framing::detect(data, true);
    for f in [Framing::Raw, Framing::Rdw, Framing::Bdw] {
        let mut d = Deframer::new(data, f, None);
        let mut r = Report::default();
        let mut out = Vec::new();
        let mut total = 0usize;
        while let Ok(Some(p)) = d.next_into(&mut out, &mut r) {
            total += p.len;
        }
        assert_eq!(out.len(), total);
        assert_eq!(d.consumed() as usize, data.len());
    }
}

/// CTE scanning with detected framing and with a forced header length.
pub fn scan(data: &[u8]) {
    for opts in [
        crate::trace::Options::default(),
        crate::trace::Options {
            framing: Some(Framing::Raw),
            header_len: data.first().map(|&b| b as usize),
        },
    ] {
        let Ok(mut s) = Scanner::open(data, &opts) else {
            return;
        };
        while let Ok(Some(c)) = s.next_cte() {
            assert!(cte::check(c.bytes).is_ok());
        }
        check_accounting(s.report(), data.len());
    }
}

/// The CTE predicate and PTHDR decoding on one buffer.
pub fn pthdr(data: &[u8]) {
    let _ = cte::check(data);
    if data.len() >= 18 {
        let _ = cte::check_head(data);
    }
    // The fast reader and the binrw definition agree on every input.
    let fast = PtHdr::parse(data).ok();
    assert_eq!(
        fast,
        PtHdr::read_binrw(data).ok(),
        "PtHdr::parse differs from binrw"
    );
    // Reading into a header that held other fields (all present, a `rest`) leaves
    // nothing of them behind.
    let mut reused = PtHdr::with_len(120);
    reused.seq = 7;
    if reused.read_into(data) {
        assert_eq!(Some(&reused), fast.as_ref(), "read_into differs from parse");
    }
    if let Some(h) = fast {
        // Re-encoding gives the bytes back when the length field is honest.
        if h.len as usize == data.len() {
            assert_eq!(h.to_bytes(), data);
        }
    }
}

/// Segment reassembly: the input is cut into records of (seq, tlen, chunk) and fed to
/// the assembler as packet-trace CTEs.
pub fn reassembly(data: &[u8]) {
    let mut a = Assembler::new(PacketOptions::default());
    let mut r = Report::default();
    let mut rest = data;
    let mut emitted = 0u64;
    while rest.len() >= 4 {
        let (seq, tlen, n) = (
            rest[0],
            u16::from_be_bytes([rest[1], rest[2]]) as u32,
            rest[3] as usize,
        );
        rest = &rest[4..];
        let chunk = &rest[..n.min(rest.len())];
        rest = &rest[chunk.len()..];
        let mut h = PtHdr::with_len(92);
        h.seq = seq;
        h.tlen = tlen;
        h.time = Some(Tod(0xDE6E_758D_DC00_0000));
        let hb = h.to_bytes();
        let len = 16 + hb.len() + chunk.len() + 2;
        let mut b = Vec::with_capacity(len);
        b.extend((len as u16).to_be_bytes());
        b.extend(16u16.to_be_bytes());
        b.extend(4u32.to_be_bytes());
        b.extend(0xDE6E_758D_DC00_0000u64.to_be_bytes());
        b.extend(hb);
        b.extend(chunk);
        b.extend((len as u16).to_be_bytes());
        let header = CteHeader {
            length: len as u16,
            data_offset: 16,
            format_id: FormatId::PACKET,
            buffer_time: Tod(0xDE6E_758D_DC00_0000),
        };
        let c = Cte {
            offset: 0,
            record: 1,
            header,
            bytes: &b,
        };
        a.push(&c, &mut r, &mut |p| {
            emitted += 1;
            assert!(p.orig_len as usize >= p.data.len());
        });
    }
    a.finish(&mut r, &mut |_| emitted += 1);
    assert_eq!(emitted, a.counts.packets);
}

/// The whole conversion to pcapng and to pcap, in memory.
pub fn convert(data: &[u8]) {
    let d = DiscardTable::default();
    for output in [Output::Pcapng, Output::Libpcap] {
        let o = convert::Options {
            output,
            ..Default::default()
        };
        if let Ok((s, _)) = convert::convert(data, Vec::new(), "fuzz", &o, &d, |_| {}) {
            check_accounting(&s.report, data.len());
            assert!(s.written <= s.counts.packets);
            // The scan ran ahead on a thread of its own: what it and the assembler
            // reported is what one thread doing both reports.
            if let Ok(mut sc) = Scanner::open(data, &Default::default()) {
                let mut a = Assembler::new(PacketOptions::default());
                while let Ok((Some(c), r)) = sc.next_split() {
                    a.push(&c, r, &mut |_| {});
                }
                a.finish(sc.report_mut(), &mut |_| {});
                assert_eq!(s.report, sc.into_report(), "report of the scan ahead");
                assert_eq!(s.counts, a.counts, "counts of the scan ahead");
            }
        }
    }
    let _ = crate::output::dump::dump(data, std::io::sink(), &Default::default(), &d);
}

/// The FTP control-channel decoder on arbitrary bytes, both directions.
pub fn ftp(data: &[u8]) {
    crate::analyze::ftp::fuzz(data);
}

/// The TLS handshake decoder on arbitrary bytes, both directions.
pub fn tls(data: &[u8]) {
    crate::analyze::tls::fuzz(data);
}

/// Per-packet messages (DNS, DHCP, ICMP) on an arbitrary IP packet.
pub fn msg(data: &[u8]) {
    crate::analyze::msg::fuzz(data);
}

/// TCP stream reassembly on arbitrary segments: `[seq u32][flags u8][len u16][n u8][n
/// bytes]...`. What comes out is in order and adds up: delivered plus gaps is the
/// stream position.
pub fn stream(data: &[u8]) {
    use crate::analyze::stream::{Chunk, Stream};
    let mut s = Stream::default();
    let mut total = 0u64;
    let mut rest = data;
    let mut frame = 0;
    while rest.len() >= 8 {
        let seq = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let flags = rest[4];
        let len = u32::from(u16::from_be_bytes([rest[5], rest[6]]));
        let n = usize::from(rest[7]).min(rest.len() - 8);
        let present = &rest[8..8 + n];
        rest = &rest[8 + n..];
        frame += 1;
        let mut count = |c: Chunk<'_>| match c {
            Chunk::Data(b, _) => total += b.len() as u64,
            Chunk::Gap(g) => total += g,
        };
        if flags & 0x80 != 0 {
            s.acked(seq, &mut count);
        } else {
            s.push(
                seq,
                flags & 2 != 0,
                flags & 1 != 0,
                present,
                len,
                frame,
                &mut count,
            );
        }
    }
    s.finish(&mut |c| match c {
        Chunk::Data(b, _) => total += b.len() as u64,
        Chunk::Gap(g) => total += g,
    });
    assert_eq!(
        total,
        s.position(),
        "delivered bytes and gaps add up to the position"
    );
}

/// Packets of the `analysis` and `path` targets' input: `[len u16][direction u8][len
/// bytes]...`, the last one cut to what is left.
fn packets(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (head, tail) = rest.split_at_checked(3)?;
        let n = usize::from(u16::from_be_bytes([head[0], head[1]])).min(tail.len());
        let (pkt, after) = tail.split_at(n);
        rest = after;
        Some((head[2], pkt))
    })
}

/// The whole analysis on arbitrary packets: `[len u16][direction u8][len bytes]...`,
/// each a raw IP packet (odd direction byte: Ethernet frame).
pub fn analysis(data: &[u8]) {
    use crate::analyze::{Analyzer, Input, rows::Collect};
    let d = DiscardTable::default();
    let mut a = Analyzer::new(Collect::default(), Default::default(), &d);
    let mut frame = 0;
    for (dir, pkt) in packets(data) {
        let n = pkt.len();
        frame += 1;
        let link = if dir & 1 != 0 {
            crate::packet::Link::Ethernet
        } else {
            crate::packet::Link::Raw
        };
        let orig_len = n as u32 + u32::from(dir >> 4);
        let detached = crate::net::view(link, pkt, orig_len).detach(pkt);
        // Some records as data-trace records, their socket from the packet's bytes.
        let socket = (dir & 0x40 != 0).then(|| crate::analyze::Socket {
            job: "FUZZ".into(),
            state: "data".into(),
            protocol: pkt.first().copied().unwrap_or(6),
            src: Some(std::net::IpAddr::from([10, 0, 0, pkt.len() as u8])),
            dst: Some(std::net::IpAddr::from([10, 0, 0, 2])),
            src_port: 21,
            dst_port: u16::from(dir),
            attls: "",
        });
        let input = Input {
            frame,
            time_ns: frame as i64 * 1_000_000,
            interface: "FUZZ",
            outbound: Some(dir & 2 != 0),
            link,
            data: pkt,
            orig_len,
            discard: crate::trace::DiscardCode(u16::from(dir & 0x0C)),
            note: "",
            socket: socket.as_ref(),
            system: dir >> 7,
            // Every other packet's headers read ahead and handed over, as `convert`
            // does: both ways must hold.
            view: (frame % 2 == 0).then_some(&detached),
        };
        let _ = a.packet(&input);
    }
    if let Ok((rows, _)) = a.finish() {
        assert_eq!(
            rows.packets.len() as u64,
            frame,
            "one packets.csv row per packet"
        );
    }
}

/// The adapter/stack correlation on arbitrary packets, in the `analysis` target's
/// format; the direction byte also picks the side (bit 0: adapter, Ethernet) and moves
/// the time back and forth. Every sighting ends in exactly one row.
pub fn path(data: &[u8]) {
    use crate::analyze::path::{Correlator, Side, Sighting};
    let d = DiscardTable::default();
    let mut c = Correlator::new(5_000_000, None);
    let mut frame = 0u64;
    let mut seen = 0u64;
    let mut count = |r: &crate::analyze::path::PathRow| {
        seen += u64::from(r.no_osa.is_some()) + u64::from(r.no_stack.is_some());
        assert!(r.no_osa.is_some() || r.no_stack.is_some());
        Ok(())
    };
    for (dir, pkt) in packets(data) {
        let n = pkt.len();
        frame += 1;
        let osa = dir & 1 != 0;
        let link = if osa {
            crate::packet::Link::Ethernet
        } else {
            crate::packet::Link::Raw
        };
        let view = crate::net::view(link, pkt, n as u32);
        let s = Sighting {
            side: if osa { Side::Osa } else { Side::Stack },
            frame,
            time_ns: frame as i64 * 1_000_000 + i64::from(dir >> 4) * 700_000 - 5_000_000,
            outbound: dir & 2 != 0,
            view: &view,
            discard: crate::trace::DiscardCode(u16::from(dir & 0x0C)),
            system: dir >> 7,
        };
        let _ = c.push(&s, &d, &mut count);
    }
    if let Ok(stats) = c.finish(&d, &mut count) {
        assert_eq!(stats.osa + stats.stack, frame);
        assert_eq!(seen, frame, "every sighting in one row");
        assert_eq!(stats.places.values().sum::<u64>() + stats.matched, frame);
    }
}

/// `convert --merge` of two traces made of the input's two halves (split where the
/// first byte says), with path correlation: never panics, and every packet decoded is
/// written once.
pub fn merge(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(cut) / 255;
    let (a, b) = rest.split_at(at);
    let d = DiscardTable::default();
    let mut rows = 0u64;
    let mut sink = |_: &crate::analyze::path::PathRow| {
        rows += 1;
        Ok(())
    };
    let r = convert::merge(
        vec![("a".to_string(), a), ("b".to_string(), b)],
        Vec::new(),
        None,
        Some(convert::PathOutput {
            rows: &mut sink,
            window_ns: 1_000_000,
            utc_offset: None,
        }),
        &Default::default(),
        &d,
        |_| {},
    );
    if let Ok((m, _)) = r {
        let decoded: u64 = m.inputs.iter().map(|(_, s)| s.counts.packets).sum();
        assert_eq!(m.written, decoded);
        for ((_, s), part) in m.inputs.iter().zip([a, b]) {
            check_accounting(&s.report, part.len());
        }
    }
}
