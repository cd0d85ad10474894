//! Second stage: CTE records -> normalized packets. Decodes the PTHDR, picks the time,
//! interface and direction, and joins segmented records (formats/segmentation.md).
//! Records that are not packets (data trace, SMC, legacy, lost-record notices) are
//! counted here and left to `dump`.

use crate::trace::cte::{FormatId, HEADER_LEN, TRAILER_LEN};
use crate::trace::ebcdic::CodePage;
use crate::trace::pthdr::{DeviceType, Flags, PtHdr};
use crate::trace::report::{IssueKind, Report};
use crate::trace::{Cte, DiscardCode};

/// Which clock gives a packet its time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// PTH_Time, when the packet was captured (default).
    #[default]
    Capture,
    /// The CTE buffer time, when the record was moved into the trace buffer.
    Buffer,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub time: TimeSource,
    pub leap_seconds: i64,
    pub code_page: CodePage,
}

/// What lies in a packet's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// An IP packet without link header (format ids 4 and 6).
    Raw,
    /// An Ethernet frame (OSAENTA, format id 7).
    Ethernet,
    /// An SMC trace record (format id 8): not IP, its layout unpublished. Kept whole so
    /// nothing the trace holds is lost (pcapng: LINKTYPE_USER0).
    Smc,
    /// A data-trace record (format id 5): socket data as the application sent or
    /// received it, no IP or TCP header; the PTHDR names the socket (`DataTrace`).
    DataTrace,
}

/// The interface every data-trace record is put on (the 16-byte name field holds the
/// job name and socket description there, not an interface name).
pub const DATA_TRACE_INTERFACE: &str = "datatrace";

/// What a data-trace PTHDR says about its socket (formats/datatrace.md). Offsets 0x08
/// to 0x13 of the PTHDR: job name, then domain, type, protocol and state, one byte each;
/// their values beyond the IP protocol are not published (`state` especially).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataTrace {
    pub job: String,
    pub domain: u8,
    pub socket_type: u8,
    pub protocol: u8,
    pub state: u8,
}

impl DataTrace {
    pub fn from_name(field: &[u8; 16], cp: CodePage) -> DataTrace {
        let mut job = [0u8; 8];
        job.copy_from_slice(&field[..8]);
        DataTrace {
            job: cp.decode_name(&job),
            domain: field[8],
            socket_type: field[9],
            protocol: field[10],
            state: field[11],
        }
    }

    /// The state byte by name where our convention knows it (1 start, 2 data, 3 end:
    /// an assumption, IBM does not publish the values), else the number.
    pub fn state_name(&self) -> String {
        match self.state {
            1 => "start".into(),
            2 => "data".into(),
            3 => "end".into(),
            n => n.to_string(),
        }
    }
}

/// One packet, reassembled when it was segmented.
#[derive(Clone, Debug)]
pub struct Packet {
    /// File offset of the (first) CTE.
    pub offset: u64,
    pub record: u64,
    pub format: FormatId,
    pub link: Link,
    pub time_ns: i64,
    pub interface: String,
    /// Packets with the same non-zero `interface_id` have the same `interface` (a run
    /// of one assembler's packets on one interface), so that the writers can tell a
    /// packet on the last packet's interface without comparing names. 0: not known.
    pub interface_id: u64,
    pub dev_type: DeviceType,
    pub flags: Flags,
    /// Traced bytes.
    pub data: Vec<u8>,
    /// True length of the packet on the wire.
    pub orig_len: u32,
    pub discard: DiscardCode,
    /// CTEs the packet came in (1 = not segmented).
    pub segments: u32,
    /// Segments are missing: `data` holds what was traced.
    pub incomplete: bool,
    /// The header of the first segment.
    pub header: PtHdr,
    /// An OSAENTA record that does not look like an Ethernet frame: why. It is still
    /// written as it is (nothing is dropped), with this as a comment.
    pub not_ethernet: Option<String>,
    /// A data-trace record's socket description.
    pub data_trace: Option<DataTrace>,
}

impl Packet {
    /// A packet with nothing in it (a buffer to decode into).
    pub fn empty() -> Packet {
        Packet {
            offset: 0,
            record: 0,
            format: FormatId(0),
            link: Link::Raw,
            time_ns: 0,
            interface: String::new(),
            interface_id: 0,
            dev_type: DeviceType(0),
            flags: Flags(0),
            data: Vec::new(),
            orig_len: 0,
            discard: DiscardCode(0),
            segments: 0,
            incomplete: false,
            header: PtHdr::default(),
            not_ethernet: None,
            data_trace: None,
        }
    }

    pub fn outbound(&self) -> bool {
        self.flags.outbound()
    }

    /// Fewer bytes traced than the packet had (ABBREV), not counting missing segments.
    pub fn abbreviated(&self) -> bool {
        !self.incomplete && (self.data.len() as u64) < self.orig_len as u64
    }
}

/// The interface of the packet seen last, with the `interface_id` it came with: tells
/// whether a packet is on it, comparing names only when the ids cannot tell.
#[derive(Clone, Debug)]
pub struct LastInterface {
    name: String,
    id: u64,
}

impl LastInterface {
    pub fn of(p: &Packet) -> LastInterface {
        LastInterface {
            name: p.interface.clone(),
            id: p.interface_id,
        }
    }

    /// Whether `p` is on this interface (then its id is the one to compare next).
    pub fn matches(&mut self, p: &Packet) -> bool {
        let same = (self.id != 0 && self.id == p.interface_id) || self.name == p.interface;
        if same {
            self.id = p.interface_id;
        }
        same
    }

    pub fn into_name(self) -> String {
        self.name
    }
}

/// Counts by record kind, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub packets: u64,
    pub reassembled: u64,
    pub incomplete: u64,
    pub orphan_segments: u64,
    pub abbreviated: u64,
    pub discarded: u64,
    /// Records of kinds this version does not convert (data trace, legacy, lost-record
    /// notices), by format id.
    pub not_converted: std::collections::BTreeMap<FormatId, u64>,
    /// PTHDRs that could not be decoded.
    pub bad_headers: u64,
    /// Packets whose PTH_Time was implausible (the buffer time was used).
    pub bad_times: u64,
    /// OSAENTA records that do not look like Ethernet frames (written as they are).
    pub not_ethernet: u64,
}

/// Joins CTEs into packets. Feed every CTE to `push`, then call `finish`.
pub struct Assembler {
    opts: Options,
    /// The open segmented set, if any.
    open: Option<Packet>,
    /// PTH_Tlen of the open set and the next SeqNum expected.
    want_total: usize,
    next_seq: u8,
    /// The last interface name field and its decoded text.
    last_name: Option<(NameKey, String, u64)>,
    /// The packet being built: a whole packet is read into it and emitted from it, so
    /// that a steady run allocates nothing per packet and moves no packet around.
    slot: Packet,
    pub counts: Counts,
}

/// Where an interface name comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameKey {
    Field([u8; 16]),
    DataTrace,
    None,
}

/// `Packet::interface_id`s, unique across assemblers (a merge runs several at once).
static INTERFACE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Largest packet buffer the slot keeps for the next packet.
const SPARE_MAX: usize = 1 << 16;

fn next_seq(s: u8) -> u8 {
    if s == 255 { 1 } else { s + 1 }
}

/// Why an OSAENTA record is not an Ethernet frame, if it is not: shorter than an
/// Ethernet header, or a type/length field that is neither an EtherType (0x0600 and up)
/// nor an 802.3 length that fits the frame.
fn ethernet_problem(data: &[u8], orig_len: u32) -> Option<String> {
    if data.len() < 14 {
        return Some(format!(
            "{} bytes, shorter than an Ethernet header",
            data.len()
        ));
    }
    let t = u16::from_be_bytes([data[12], data[13]]);
    let room = orig_len.max(data.len() as u32).saturating_sub(14);
    if t < 0x0600 && u32::from(t) > room.max(46) {
        return Some(format!(
            "type/length X'{t:04X}' is no EtherType and longer than the frame"
        ));
    }
    None
}

/// The IP datagram length the packet declares, when it is longer than what was traced.
fn ip_length(data: &[u8]) -> Option<u32> {
    match data.first()? >> 4 {
        4 if data.len() >= 4 => Some(u16::from_be_bytes([data[2], data[3]]) as u32),
        6 if data.len() >= 6 => Some(40 + u16::from_be_bytes([data[4], data[5]]) as u32),
        _ => None,
    }
}

impl Assembler {
    pub fn new(opts: Options) -> Assembler {
        Assembler {
            opts,
            open: None,
            want_total: 0,
            next_seq: 0,
            last_name: None,
            slot: Packet::empty(),
            counts: Counts::default(),
        }
    }

    /// Settles a packet's true length and notes, counts it and hands it to `out`.
    fn emit(
        p: &mut Packet,
        counts: &mut Counts,
        want_total: usize,
        report: &mut Report,
        out: &mut impl FnMut(&Packet),
    ) {
        if p.incomplete {
            counts.incomplete += 1;
            report.issue(
                p.offset,
                Some(p.record),
                IssueKind::Segment,
                0,
                format!(
                    "segmented packet incomplete: {} of {} bytes in {} segment(s)",
                    p.data.len(),
                    want_total.max(p.data.len()),
                    p.segments
                ),
            );
        }
        // The true length: PTH_Plen, else the IP header's own length, never less than
        // what was traced (TSO packets can carry 0 in both).
        let traced = p.data.len().max(if p.incomplete { want_total } else { 0 }) as u32;
        let plen = p.header.plen.map(u32::from).unwrap_or(0);
        let declared = if p.header.plen.is_none() && p.link == Link::Raw {
            ip_length(&p.data).unwrap_or(0)
        } else {
            0
        };
        p.orig_len = traced.max(plen).max(declared);
        if p.link == Link::Ethernet
            && let Some(why) = ethernet_problem(&p.data, p.orig_len)
        {
            counts.not_ethernet += 1;
            report.issue(
                p.offset,
                Some(p.record),
                IssueKind::Warning,
                0,
                format!(
                    "OSAENTA record does not look like an Ethernet frame: {why}; written as it is"
                ),
            );
            p.not_ethernet = Some(why);
        }
        if p.segments > 1 && !p.incomplete {
            counts.reassembled += 1;
        }
        if p.abbreviated() {
            counts.abbreviated += 1;
        }
        if p.discard.is_discard() {
            counts.discarded += 1;
        }
        counts.packets += 1;
        out(p);
    }

    /// Emits the open set as incomplete (something other than its next segment came).
    fn close_open(&mut self, report: &mut Report, out: &mut impl FnMut(&Packet)) {
        if let Some(mut p) = self.open.take() {
            p.incomplete = true;
            Self::emit(&mut p, &mut self.counts, self.want_total, report, out);
        }
    }

    pub fn push(&mut self, cte: &Cte<'_>, report: &mut Report, out: &mut impl FnMut(&Packet)) {
        let fid = cte.header.format_id;
        let link = match fid {
            FormatId::PACKET | FormatId::EE => Link::Raw,
            FormatId::OSAENTA => Link::Ethernet,
            FormatId::SMC => Link::Smc,
            FormatId::DATA => Link::DataTrace,
            _ => {
                *self.counts.not_converted.entry(fid).or_default() += 1;
                return;
            }
        };
        let off = cte.header.data_offset as usize;
        let b = cte.bytes;
        let end = b.len() - TRAILER_LEN;
        // check_head guaranteed off + PTH_len + 2 <= length and PTH_len >= 8.
        let pth_len = cte.pth_len().unwrap_or(0);
        if !cte.pthdr_into(&mut self.slot.header) {
            // Its bytes are already counted as a CTE's: an issue, not skipped bytes.
            self.counts.bad_headers += 1;
            report.issue(
                cte.offset,
                Some(cte.record),
                IssueKind::UnknownRecord,
                b.len() as u64,
                format!("PTHDR not decodable (PTH_len {pth_len}): record not converted"),
            );
            return;
        }
        let hdr = &self.slot.header;
        let data = &b[(off + pth_len).min(end)..end];
        if off != HEADER_LEN {
            report.issue(
                cte.offset,
                Some(cte.record),
                IssueKind::Warning,
                0,
                format!("CTE data offset {off} instead of {HEADER_LEN}: PTHDR read from there"),
            );
        }
        let time_tod = match (self.opts.time, hdr.time) {
            (TimeSource::Capture, Some(t)) if t.is_plausible() => t,
            (TimeSource::Capture, Some(t)) => {
                self.counts.bad_times += 1;
                report.issue(
                    cte.offset,
                    Some(cte.record),
                    IssueKind::Warning,
                    0,
                    format!(
                        "PTH_Time X'{:016X}' is not a plausible date: buffer time used",
                        t.0
                    ),
                );
                cte.header.buffer_time
            }
            _ => cte.header.buffer_time,
        };
        let time_ns = time_tod.unix_ns(self.opts.leap_seconds);

        if hdr.seq != 0 {
            let seq = hdr.seq;
            if let Some(o) = self.open.as_mut()
                && seq == self.next_seq
                && o.header.time == hdr.time
                && o.format == fid
                && hdr.tlen as usize == self.want_total
            {
                o.data.extend_from_slice(data);
                o.segments += 1;
                self.next_seq = next_seq(seq);
                if o.data.len() >= self.want_total
                    && let Some(mut p) = self.open.take()
                {
                    Self::emit(&mut p, &mut self.counts, self.want_total, report, out);
                }
                return;
            }
            self.close_open(report, out);
            self.counts.orphan_segments += 1;
            report.issue(
                cte.offset,
                Some(cte.record),
                IssueKind::Segment,
                data.len() as u64,
                format!(
                    "segment {seq} ({} bytes) belongs to no segmented packet: not converted",
                    data.len()
                ),
            );
            return;
        }
        // The open set (if any) is emitted from its own packet: the slot, holding this
        // CTE's header, is not touched.
        self.close_open(report, out);
        let p = &mut self.slot;
        p.data.clear();
        p.data.extend_from_slice(data);
        // The same few interfaces over and over: decode each raw name once, and leave
        // the slot's name alone while it stays the same.
        let key = match p.header.name {
            _ if link == Link::DataTrace => NameKey::DataTrace,
            Some(n) => NameKey::Field(n.0),
            None => NameKey::None,
        };
        let (_, text, id) = match &self.last_name {
            Some(last) if last.0 == key => last,
            _ => {
                let text = match key {
                    NameKey::DataTrace => DATA_TRACE_INTERFACE.to_string(),
                    NameKey::Field(raw) => self.opts.code_page.decode_name(&raw),
                    NameKey::None => String::new(),
                };
                let id = INTERFACE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.last_name.insert((key, text, id))
            }
        };
        if p.interface_id != *id {
            p.interface.clear();
            p.interface.push_str(text);
            p.interface_id = *id;
        }
        p.offset = cte.offset;
        p.record = cte.record;
        p.format = fid;
        p.link = link;
        p.time_ns = time_ns;
        p.dev_type = p.header.dev_type;
        p.flags = p.header.flags;
        p.orig_len = 0;
        p.discard = DiscardCode(p.header.discard());
        p.segments = 1;
        p.incomplete = false;
        p.data_trace = match p.header.name {
            Some(n) if link == Link::DataTrace => {
                Some(DataTrace::from_name(&n.0, self.opts.code_page))
            }
            _ => None,
        };
        p.not_ethernet = None;
        let total = p.header.tlen as usize;
        if data.len() < total {
            self.want_total = total;
            self.next_seq = 1;
            self.open = Some(std::mem::replace(&mut self.slot, Packet::empty()));
        } else {
            self.want_total = 0;
            Self::emit(p, &mut self.counts, 0, report, out);
            // A jumbo packet's buffer is not kept.
            if p.data.capacity() > SPARE_MAX {
                p.data = Vec::new();
            }
        }
    }

    /// End of input: an open set is emitted as incomplete.
    pub fn finish(&mut self, report: &mut Report, out: &mut impl FnMut(&Packet)) {
        self.close_open(report, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::cte::CteHeader;
    use crate::trace::tod::Tod;

    fn cte_bytes(seq: u8, tlen: u32, plen: u16, data: &[u8], time: u64) -> Vec<u8> {
        let mut h = PtHdr::with_len(92);
        h.seq = seq;
        h.tlen = tlen;
        h.plen = Some(plen);
        h.time = Some(Tod(time));
        h.flags = Flags(1);
        h.name = Some(crate::trace::pthdr::NameField(
            CodePage::Cp037
                .encode_name("OSAQDIO1", 16)
                .try_into()
                .unwrap(),
        ));
        let hb = h.to_bytes();
        let len = (16 + hb.len() + data.len() + 2) as u16;
        let mut v = Vec::new();
        v.extend(len.to_be_bytes());
        v.extend(16u16.to_be_bytes());
        v.extend(4u32.to_be_bytes());
        v.extend(0xDE6E_758D_DC00_0000u64.to_be_bytes());
        v.extend(hb);
        v.extend(data);
        v.extend(len.to_be_bytes());
        v
    }

    fn run(ctes: &[Vec<u8>]) -> (Vec<Packet>, Report, Counts) {
        let mut a = Assembler::new(Options::default());
        let mut r = Report::default();
        let mut out = Vec::new();
        for (i, b) in ctes.iter().enumerate() {
            let c = Cte {
                offset: i as u64 * 1000,
                record: 1,
                header: crate::trace::cte::check(b).unwrap(),
                bytes: b,
            };
            let _: CteHeader = c.header;
            a.push(&c, &mut r, &mut |p| out.push(p.clone()));
        }
        a.finish(&mut r, &mut |p| out.push(p.clone()));
        (out, r, a.counts)
    }

    /// `cte_bytes` with another interface name.
    fn on(name: &str, mut cte: Vec<u8>) -> Vec<u8> {
        cte[24..40].copy_from_slice(&CodePage::Cp037.encode_name(name, 16));
        cte
    }

    #[test]
    fn interface_ids_follow_the_name_and_differ_between_assemblers() {
        let c = |name| {
            on(
                name,
                cte_bytes(0, 20, 20, &[0x45; 20], 0xDE6E_758D_DC00_1000),
            )
        };
        let ctes = [c("OSA1"), c("OSA1"), c("OSA2"), c("OSA1"), c("OSA1")];
        let (v, _, _) = run(&ctes);
        let names: Vec<_> = v.iter().map(|p| p.interface.as_str()).collect();
        assert_eq!(names, ["OSA1", "OSA1", "OSA2", "OSA1", "OSA1"]);
        let ids: Vec<_> = v.iter().map(|p| p.interface_id).collect();
        assert!(ids.iter().all(|&i| i != 0));
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_ne!(ids[2], ids[3]);
        assert_eq!(ids[3], ids[4]);
        // Another assembler (another input of a merge) never reuses an id.
        let (w, _, _) = run(&ctes);
        assert!(w.iter().all(|p| !ids.contains(&p.interface_id)));
        // The id decides only when it is known and equal; else the names do.
        let last = |name: &str, id| LastInterface {
            name: name.into(),
            id,
        };
        assert!(last("other", ids[0]).matches(&v[0]));
        assert!(last("OSA1", 0).matches(&v[0]));
        assert!(!last("OSA2", ids[2]).matches(&v[0]));
    }

    #[test]
    fn whole_packet_keeps_header_fields() {
        let (v, r, _) = run(&[cte_bytes(0, 20, 20, &[0x45; 20], 0xDE6E_758D_DC00_1000)]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].interface, "OSAQDIO1");
        assert!(v[0].outbound());
        assert_eq!(v[0].orig_len, 20);
        assert_eq!(v[0].time_ns, Tod(0xDE6E_758D_DC00_1000).unix_ns(0));
        assert!(r.clean());
    }

    #[test]
    fn segments_join_across_the_255_to_1_wrap() {
        // 300 segments of 2 bytes: seq 0, 1..=255, 1..=44.
        let total = 600u32;
        let mut ctes = Vec::new();
        let mut seq = 0u8;
        for i in 0..300u32 {
            ctes.push(cte_bytes(
                seq,
                total,
                600,
                &[(i % 251) as u8; 2],
                0xDE6E_758D_DC00_0000,
            ));
            seq = if i == 0 { 1 } else { next_seq(seq) };
        }
        let (v, r, c) = run(&ctes);
        assert_eq!(v.len(), 1, "{:?}", r.issues);
        assert_eq!(v[0].data.len(), 600);
        assert_eq!(v[0].segments, 300);
        assert_eq!(v[0].data[598], (299 % 251) as u8);
        assert_eq!(c.reassembled, 1);
        assert!(r.clean());
    }

    #[test]
    fn cut_set_is_kept_incomplete_with_true_length_and_orphans_are_counted() {
        let t = 0xDE6E_758D_DC00_0000;
        let ctes = vec![
            cte_bytes(0, 30, 1500, &[1; 10], t),
            cte_bytes(1, 30, 1500, &[2; 10], t),
            // segment 2 lost; a new packet starts
            cte_bytes(0, 5, 5, &[3; 5], t + 1),
            cte_bytes(4, 30, 1500, &[4; 10], t),
        ];
        let (v, r, c) = run(&ctes);
        assert_eq!(v.len(), 2);
        assert!(v[0].incomplete);
        assert_eq!(v[0].data.len(), 20);
        assert_eq!(v[0].orig_len, 1500);
        assert!(!v[0].abbreviated());
        assert!(!v[1].incomplete);
        assert_eq!(c.orphan_segments, 1);
        assert_eq!(c.incomplete, 1);
        assert!(!r.clean());
    }

    #[test]
    fn abbreviated_packet_keeps_original_length() {
        let (v, _, c) = run(&[cte_bytes(0, 200, 1500, &[0x45; 200], 0xDE6E_758D_DC00_0000)]);
        assert_eq!(v[0].orig_len, 1500);
        assert!(v[0].abbreviated());
        assert_eq!(c.abbreviated, 1);
    }
}
