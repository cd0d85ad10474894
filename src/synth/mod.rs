//! Synthesizer: packet capture (pcap/pcapng) -> z/OS TCP/IP component trace data set.
//!
//! This is the decoder run backwards. It wraps the packets of a real capture into
//! component trace entries (CTEs) with packet trace headers (PTHDRs), packs them into
//! trace buffers and logical records that start with a writer header, and frames the
//! records the way a download from z/OS would (raw, RDW, BDW+RDW, spanned). The binary
//! contract is /work/shared/spec/ctrace-format.md; the synthetic writer header is our
//! own invention, documented in formats/writer-header.md.
//!
//! No real z/OS trace is public, so this module is how the decoder is proven against
//! real packets (capture -> trace -> zctrace -> pcapng, compared with [`Expected`]) and
//! how sample traces are made. It is used by tests, benchmarks and `zctrace synth`,
//! never by the decoding path.
//!
//! Flow: `capture` (read packets, exact times) -> `link` (link layer, IP and transport
//! headers) -> this file (direction, abbreviation, discard codes, PTHDR, CTE,
//! segmentation) -> `writer` (trace buffers, records, writer header, framing).

mod capture;
mod link;
mod writer;

#[cfg(test)]
#[path = "../../tests/unit/synth.rs"]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::IpAddr;

use crate::Error;
use crate::trace::ebcdic::CodePage;
pub use crate::trace::framing::Framing;
use crate::trace::pthdr::{self, DeviceType, Flags, NameField, PtHdr};
use crate::trace::tod::{self, Tod};

use capture::{CaptureReader, Frame, capture_error};
use link::{ETH_HEADER, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IpInfo};
use writer::{Framer, HeaderTemplate, MAX_DESCRIBED, TraceWriter};

/// Discard codes handed out by `discard_every` in packet mode, in this order: one from
/// each stack range (IP, TCP, IP, UDP, RAW) so the decoder's naming by range is covered.
pub const PACKET_DISCARD_CYCLE: [u16; 5] = [4114, 8200, 4102, 12300, 16390];
/// Discard codes handed out by `discard_every` in OSAENTA mode (OSA range 1-4095).
pub const OSAENTA_DISCARD_CYCLE: [u16; 3] = [3, 17, 4095];
/// Interface name used in packet mode when `Options::interface` is empty.
pub const DEFAULT_PACKET_INTERFACE: &str = "OSAQDIO1";
/// Interface name used in OSAENTA mode when `Options::interface` is empty.
pub const DEFAULT_OSAENTA_INTERFACE: &str = "EZANTAOSA1";

/// CTE header (16) plus the trailing length (2).
const CTE_OVERHEAD: usize = 16 + 2;
/// The CTE data offset: the PTHDR follows the 16-byte CTE header.
const DATA_OFFSET: u16 = 16;
/// Largest CTE the synthesizer writes (the spec's limit for one CTE).
const MAX_CTE: usize = 65_534;
/// PTH_Tlen is 24 bits; longer captured packets are cut to this.
const MAX_TLEN: usize = 0xFF_FFFF;
/// A record is built in memory; this keeps an absurd `record_len` from allocating.
const MAX_RECORD: usize = 16 << 20;
/// Device type codes (PTH_DevTy).
const DEV_LOOPBACK: u8 = 34;
const DEV_QDIO_V4: u8 = 39;
const DEV_QDIO_V6: u8 = 53;
/// The PTHDR lengths from which a field is present (formats/pthdr.md).
const PTH_HAS_NAME: u16 = 0x18;
const PTH_HAS_TIME: u16 = 0x20;
const PTH_HAS_PLEN: u16 = 0x54;
const PTH_HAS_DROP: u16 = 0x5A;
/// MAC addresses of the Ethernet header given to packets of non-Ethernet captures in
/// OSAENTA mode.
const SYNTH_DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SYNTH_SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// How to write the trace. Where the spec leaves a choice the field's comment says what
/// is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Raw, Rdw or Bdw (default Rdw).
    pub framing: Framing,
    /// Writer header bytes at the start of every logical record (default 64). The
    /// decoder learns header lengths up to 4096 by itself.
    pub header_len: usize,
    /// Logical record length including the writer header, excluding the RDW (default
    /// 4096; must be more than `header_len + 64`).
    pub record_len: usize,
    /// CTEs may continue across record boundaries (split buffers; default false).
    pub straddle: bool,
    /// Trace buffer size when straddling. 0 (the default) means
    /// `4 * (record_len - header_len)`. Ignored without `straddle`, where a buffer is one
    /// record's payload.
    pub buffer_len: usize,
    /// Largest CTE (default 65534; never more than 65534, and never more than a buffer).
    /// Longer packets are segmented.
    pub max_cte: usize,
    /// Trace at most N bytes per packet, but never fewer than the IP and transport
    /// headers (plus the Ethernet header and VLAN tags in OSAENTA mode).
    pub abbrev: Option<usize>,
    /// (1-based packet number among the converted packets, discard code). Numbers
    /// count on through repetitions. Takes precedence over `discard_every`.
    pub discard: Vec<(u64, u16)>,
    /// Packets N, 2N, 3N, ... get the next code of a fixed cycle:
    /// [`PACKET_DISCARD_CYCLE`] or, in OSAENTA mode, [`OSAENTA_DISCARD_CYCLE`].
    pub discard_every: Option<u64>,
    /// The z/OS stack's own addresses: a packet from one of them is outbound. Empty
    /// means the source address of the first IP packet.
    pub hosts: Vec<IpAddr>,
    /// Interface name (at most 16 characters). Empty (the default) means
    /// [`DEFAULT_PACKET_INTERFACE`] or, in OSAENTA mode, [`DEFAULT_OSAENTA_INTERFACE`].
    pub interface: String,
    /// OSAENTA trace: format id 7, component SYSTCPOT, Ethernet frames as data.
    pub osaenta: bool,
    /// 4 (packet trace, default) or 6 (Enterprise Extender) in packet mode; OSAENTA
    /// always writes 7.
    pub format_id: u32,
    /// PTHDR length (default 92). Shorter headers leave out the fields they do not
    /// reach (`PtHdr::with_len`); longer ones end in zero bytes.
    pub pth_len: u16,
    /// System name in the writer header, at most 8 characters (default "ZCTRSYS1").
    pub system: String,
    /// Leap seconds the site's TOD clock includes (default 0).
    pub leap_seconds: i64,
    /// Buffer time = capture time + this (default 1500 ns), so tests can tell the two
    /// times apart.
    pub buffer_delay_ns: i64,
    /// RDW/BDW only: write each logical record longer than N bytes as VBS segments of
    /// at most N body bytes (segment codes first 1, middle 3, last 2 in byte 2 of the
    /// descriptor, byte 3 zero). Records of at most N bytes stay complete (code 0).
    pub spanned: Option<usize>,
    /// BDW framing: largest block including its BDW (default 32760).
    pub block_len: usize,
    /// Write the capture's packets this many times (default 1); repetition k is shifted
    /// later by k * (capture duration + 1 s).
    pub repeat: u32,
    /// Give each repetition its own connections (ephemeral ports moved), as a busy
    /// stack's trace would have, instead of replaying the same ones (benchmarks).
    pub vary_flows: bool,
    /// Write a data trace (format id 5) instead: per TCP/UDP socket a start record,
    /// one record per packet payload, an end record (formats/datatrace.md).
    pub data_trace: bool,
    /// Job name for data-trace records.
    pub job: String,
    /// Keep repeating until at least this many trace bytes are written (benchmarks).
    /// Overrides `repeat`. The first repetition is always written whole.
    pub target_bytes: Option<u64>,
    /// Added to every capture time (default 0). The decoder only accepts buffer times
    /// from 1990 on and a TOD clock ends in September 2042: captures with times outside
    /// that window (e.g. made-up timestamps near 0) need a shift. [`Expected::time_ns`]
    /// includes it.
    pub time_shift_ns: i64,
    /// (capture frame number, discard code): like `discard`, but numbered by the
    /// capture's frames (1-based, every frame counted, converted or not), so that an
    /// OSAENTA trace and a packet trace made from one capture name the same packets.
    /// Takes precedence over `discard` and `discard_every`.
    pub frame_discard: Vec<(u64, u16)>,
    /// Capture frame numbers not written when the packet is inbound / outbound (a
    /// packet dropped before this trace point saw it).
    pub omit_in: Vec<u64>,
    pub omit_out: Vec<u64>,
    /// Added to the time of inbound / outbound packets (the adapter sees an inbound
    /// packet before the stack and an outbound one after it).
    pub delay_in_ns: i64,
    pub delay_out_ns: i64,
}

/// An OSAENTA trace and a packet trace of the same traffic (`synth --pair`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    /// Adapter to stack latency: the OSAENTA record of an inbound packet is this much
    /// earlier than the packet trace's, an outbound one this much later.
    pub delay_ns: i64,
    /// (capture frame number, OSA discard code 1-4095): the adapter discards the packet.
    /// Inbound it then never reaches the stack; outbound the stack trace has it.
    pub drop_osa: Vec<(u64, u16)>,
    /// (capture frame number, stack discard code): the stack discards the packet.
    /// Outbound it then never reaches the adapter; inbound the adapter trace has it.
    pub drop_stack: Vec<(u64, u16)>,
}

impl Pair {
    /// The options of the packet trace and of the OSAENTA trace, from `base` (whose
    /// own `osaenta`, discard and delay settings are replaced).
    pub fn options(&self, base: &Options) -> (Options, Options) {
        let frames = |v: &[(u64, u16)]| v.iter().map(|&(n, _)| n).collect::<Vec<_>>();
        let stack = Options {
            osaenta: false,
            data_trace: false,
            frame_discard: self.drop_stack.clone(),
            omit_in: frames(&self.drop_osa),
            omit_out: Vec::new(),
            delay_in_ns: 0,
            delay_out_ns: 0,
            ..base.clone()
        };
        let osa = Options {
            osaenta: true,
            data_trace: false,
            interface: String::new(),
            frame_discard: self.drop_osa.clone(),
            omit_in: Vec::new(),
            omit_out: frames(&self.drop_stack),
            delay_in_ns: self.delay_ns.saturating_neg(),
            delay_out_ns: self.delay_ns,
            ..base.clone()
        };
        (stack, osa)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            framing: Framing::Rdw,
            header_len: 64,
            record_len: 4096,
            straddle: false,
            buffer_len: 0,
            max_cte: MAX_CTE,
            abbrev: None,
            discard: Vec::new(),
            discard_every: None,
            hosts: Vec::new(),
            interface: String::new(),
            osaenta: false,
            format_id: 4,
            pth_len: PtHdr::CURRENT_LEN,
            system: "ZCTRSYS1".into(),
            leap_seconds: 0,
            buffer_delay_ns: 1500,
            spanned: None,
            block_len: MAX_DESCRIBED,
            repeat: 1,
            vary_flows: false,
            data_trace: false,
            job: "FTPD1".into(),
            target_bytes: None,
            time_shift_ns: 0,
            frame_discard: Vec::new(),
            omit_in: Vec::new(),
            omit_out: Vec::new(),
            delay_in_ns: 0,
            delay_out_ns: 0,
        }
    }
}

impl Options {
    /// The interface name written into the records.
    pub fn interface_name(&self) -> &str {
        match (self.interface.is_empty(), self.osaenta) {
            (false, _) => &self.interface,
            (true, false) => DEFAULT_PACKET_INTERFACE,
            (true, true) => DEFAULT_OSAENTA_INTERFACE,
        }
    }

    /// The trace buffer size actually used.
    pub fn effective_buffer_len(&self) -> usize {
        let payload = self.record_len.saturating_sub(self.header_len);
        match (self.straddle, self.buffer_len) {
            (false, _) => payload,
            (true, 0) => 4 * payload,
            (true, n) => n,
        }
    }

    /// The largest CTE actually written.
    pub fn effective_max_cte(&self) -> usize {
        self.max_cte.min(MAX_CTE).min(self.effective_buffer_len())
    }
}

/// One packet as the decoder must give it back. Equality leaves out `frame`: it is
/// the capture's bookkeeping, which no trace carries, so that a decoded packet equals
/// the one the synthesizer wrote.
#[derive(Clone, Debug)]
pub struct Expected {
    /// Capture time in exact nanoseconds from the capture (plus `time_shift_ns`). With a
    /// PTHDR too short to hold PTH_Time (`pth_len < 32`) it is the buffer time instead,
    /// the decoder's fallback.
    pub time_ns: i64,
    /// Traced bytes: the IP packet (packet mode) or the Ethernet frame (OSAENTA),
    /// abbreviated if `abbrev` says so. In packet mode the padding of short Ethernet
    /// frames is dropped (it is not part of the IP packet); OSAENTA frames keep it.
    pub data: Vec<u8>,
    /// True length as PTH_Plen carries it: the capture's original length minus the
    /// link header removed (plus the synthetic Ethernet header in OSAENTA mode), capped
    /// at 65535. With a PTHDR too short for PTH_Plen: the traced length.
    pub orig_len: u32,
    /// Interface name; empty when the PTHDR is too short to hold it (`pth_len < 24`).
    pub interface: String,
    pub outbound: bool,
    /// Discard reason code, 0 = none (also 0 when the PTHDR is too short to hold it).
    pub discard: u16,
    /// Number of CTEs the packet was split into (1 = not segmented).
    pub segments: u32,
    /// 1-based frame number of the packet in the capture (the one `frame_discard`,
    /// `omit_in` and `omit_out` name); data-trace start and end records give the
    /// number of the packet that opened or closed the socket.
    pub frame: u64,
}

impl PartialEq for Expected {
    fn eq(&self, o: &Expected) -> bool {
        (
            self.time_ns,
            &self.data,
            self.orig_len,
            &self.interface,
            self.outbound,
            self.discard,
            self.segments,
        ) == (
            o.time_ns,
            &o.data,
            o.orig_len,
            &o.interface,
            o.outbound,
            o.discard,
            o.segments,
        )
    }
}

impl Eq for Expected {}

/// What `synthesize` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Packets written (all repetitions).
    pub packets: u64,
    /// Captured frames that could not be converted (counted once, not per repetition).
    pub skipped: u64,
    /// `skipped` by reason.
    pub skipped_reasons: BTreeMap<String, u64>,
    /// Logical records written.
    pub records: u64,
    /// CTEs written (segments count one each).
    pub ctes: u64,
    /// Bytes written, framing included.
    pub bytes: u64,
}

/// Reads a capture (legacy pcap in either byte order with micro- or nanosecond
/// timestamps, or pcapng) and writes a trace.
///
/// `expected`, when given, receives every packet of the **first repetition** as the
/// decoder must return it (later repetitions are the same packets shifted in time; they
/// are not listed, so that a benchmark run with `target_bytes` stays small).
///
/// Memory stays bounded: the capture is read one packet at a time and the output is
/// written one record (one block for BDW) at a time. Only with `repeat > 1` or
/// `target_bytes` are the converted packets of the capture kept in memory (their traced
/// bytes), to be replayed; captures used that way are small.
///
/// Errors: `Error::Usage` for impossible options (checked before anything is read),
/// `Error::Capture` for a malformed capture or a packet time the trace cannot hold,
/// `Error::Unlocated` for I/O errors. A capture that ends inside its last packet
/// record is not an error: the packets before it are written and the cut one is
/// counted in `Summary::skipped_reasons`.
pub fn synthesize<R: Read, W: Write>(
    capture: R,
    out: W,
    opts: &Options,
    mut expected: Option<&mut Vec<Expected>>,
) -> Result<Summary, Error> {
    let plan = Plan::new(opts)?;
    let mut reader = CaptureReader::new(capture)?;
    let framer = Framer::new(out, opts.framing, opts.spanned, opts.block_len);
    let header = HeaderTemplate {
        names: plan.header_names,
        len: opts.header_len,
    };
    let mut em = Emitter {
        plan: &plan,
        opts,
        writer: TraceWriter::new(framer, header, opts.record_len, plan.buffer_len),
        cte: Vec::with_capacity(plan.cte_max),
        number: 0,
        ctes: 0,
    };
    let mut conv = Converter {
        opts,
        hosts: opts.hosts.clone(),
    };
    let replay = opts.target_bytes.is_some() || opts.repeat > 1;
    let mut kept: Vec<Prepared> = Vec::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut summary = Summary::default();
    let mut frame = Frame::default();
    let skip = |summary: &mut Summary, reason: String, n: u64| {
        summary.skipped += n;
        *summary.skipped_reasons.entry(reason).or_default() += n;
    };

    let mut sockets = Sockets::new(opts);
    while reader.next_frame(&mut frame)? {
        frame.number += 1;
        match conv.prepare(&frame)? {
            Ok(p) if opts.data_trace => {
                for r in sockets.records(&p) {
                    em.emit(&r, 0, expected.as_deref_mut())?;
                }
            }
            Ok(p) => {
                em.emit(&p, 0, expected.as_deref_mut())?;
                if replay {
                    first = first.min(p.time_ns);
                    last = last.max(p.time_ns);
                    kept.push(p);
                }
            }
            Err(reason) => skip(&mut summary, reason, 1),
        }
    }
    for r in sockets.close_all() {
        em.emit(&r, 0, expected.as_deref_mut())?;
    }
    if reader.simple_blocks > 0 {
        let reason = "pcapng simple packet block (no timestamp)".to_string();
        skip(&mut summary, reason, reader.simple_blocks);
    }
    if reader.truncated {
        skip(
            &mut summary,
            "capture ends inside a packet record".into(),
            1,
        );
    }

    if replay && !kept.is_empty() {
        // Each repetition starts 1 s after the previous one's last packet.
        let period = last
            .checked_sub(first)
            .and_then(|d| d.checked_add(1_000_000_000))
            .ok_or_else(|| capture_error("capture duration out of range"))?;
        let done = |em: &Emitter<'_, W>, rep: u64| match opts.target_bytes {
            Some(t) => em.writer.bytes() >= t,
            None => rep >= u64::from(opts.repeat),
        };
        let mut rep = 1u64;
        'reps: while !done(&em, rep) {
            let shift = i64::try_from(rep)
                .ok()
                .and_then(|r| period.checked_mul(r))
                .ok_or_else(|| capture_error("repeated packet times out of range"))?;
            for p in &kept {
                if opts.vary_flows {
                    em.emit(&p.with_ports_varied(rep), shift, None)?;
                } else {
                    em.emit(p, shift, None)?;
                }
                if opts.target_bytes.is_some_and(|t| em.writer.bytes() >= t) {
                    break 'reps;
                }
            }
            rep += 1;
        }
    }

    summary.packets = em.number;
    summary.ctes = em.ctes;
    let (_, records, bytes) = em.writer.finish().map_err(Error::Unlocated)?;
    summary.records = records;
    summary.bytes = bytes;
    Ok(summary)
}

/// Options checked and turned into the values the writer needs.
struct Plan {
    format_id: u32,
    /// Component and system name, EBCDIC, for the writer header.
    header_names: [u8; 16],
    /// Interface name, EBCDIC, blank padded.
    name: [u8; 16],
    buffer_len: usize,
    cte_max: usize,
    /// Data bytes per CTE.
    chunk: usize,
    discard: HashMap<u64, u16>,
    frame_discard: HashMap<u64, u16>,
    cycle: &'static [u16],
}

fn usage(msg: String) -> Error {
    Error::Usage(format!("synth: {msg}"))
}

impl Plan {
    fn new(o: &Options) -> Result<Plan, Error> {
        let pth = usize::from(o.pth_len);
        if !(8..=4096).contains(&pth) {
            return Err(usage(format!(
                "pth_len {pth} out of range: a PTHDR is 8 to 4096 bytes (current releases: 92)"
            )));
        }
        if o.record_len <= o.header_len + 64 {
            return Err(usage(format!(
                "record_len {} must be more than header_len {} + 64",
                o.record_len, o.header_len
            )));
        }
        if o.record_len > MAX_RECORD {
            return Err(usage(format!(
                "record_len {} is larger than {} MiB",
                o.record_len,
                MAX_RECORD >> 20
            )));
        }
        if o.data_trace && (o.osaenta || o.repeat > 1 || o.target_bytes.is_some()) {
            return Err(usage(
                "a data trace is written from one pass over a packet capture: \
                 not with OSAENTA, --repeat or --target-size"
                    .into(),
            ));
        }
        if !o.osaenta && ![4, 6, 8].contains(&o.format_id) {
            return Err(usage(format!(
                "format_id {} is not a packet trace: use 4 (packet), 6 (Enterprise Extender) \
                 or 8 (SMC: the packet's bytes as an opaque record); OSAENTA always writes 7",
                o.format_id
            )));
        }
        if o.system.chars().count() > 8 {
            return Err(usage(format!(
                "system name {:?} is longer than 8",
                o.system
            )));
        }
        let interface = o.interface_name();
        if interface.chars().count() > 16 {
            return Err(usage(format!(
                "interface name {interface:?} is longer than 16"
            )));
        }
        match (o.framing, o.spanned) {
            (Framing::Raw, Some(_)) => {
                return Err(usage(
                    "spanned records need RDW or BDW framing (raw files carry no segment descriptors)"
                        .into(),
                ));
            }
            (_, Some(0)) => return Err(usage("spanned segment length must be at least 1".into())),
            (_, Some(n)) if n + 4 > MAX_DESCRIBED => {
                return Err(usage(format!(
                    "spanned segment length {n} too long: a segment with its RDW is at most {MAX_DESCRIBED} bytes"
                )));
            }
            (Framing::Rdw, None) if o.record_len + 4 > MAX_DESCRIBED => {
                return Err(usage(format!(
                    "record_len {} too long for an RDW (at most {}): set spanned to write VBS segments",
                    o.record_len,
                    MAX_DESCRIBED - 4
                )));
            }
            _ => {}
        }
        if o.framing == Framing::Bdw {
            if !(9..=MAX_DESCRIBED).contains(&o.block_len) {
                return Err(usage(format!(
                    "block_len {} out of range 9..={MAX_DESCRIBED}",
                    o.block_len
                )));
            }
            let piece = o.spanned.map_or(o.record_len, |n| n.min(o.record_len));
            if piece + 8 > o.block_len {
                return Err(usage(match o.spanned {
                    None => format!(
                        "record_len {} with its RDW does not fit a block of block_len {} \
                         (BDW included): set spanned to at most {} to write VBS segments",
                        o.record_len,
                        o.block_len,
                        o.block_len.saturating_sub(8)
                    ),
                    Some(n) => format!(
                        "spanned segment length {n} with its RDW does not fit a block of \
                         block_len {} (BDW included): use at most {}",
                        o.block_len,
                        o.block_len.saturating_sub(8)
                    ),
                }));
            }
        }
        let min_cte = CTE_OVERHEAD + pth + 1;
        if o.max_cte < min_cte {
            return Err(usage(format!(
                "max_cte {} too small: a CTE with a {pth}-byte PTHDR and one data byte needs {min_cte}",
                o.max_cte
            )));
        }
        let buffer_len = o.effective_buffer_len();
        let cte_max = o.effective_max_cte();
        if cte_max < min_cte {
            return Err(usage(if o.straddle {
                format!(
                    "buffer_len {buffer_len} is smaller than the smallest CTE ({min_cte} bytes)"
                )
            } else {
                format!(
                    "record_len {} - header_len {} leaves {buffer_len} bytes per record, less than \
                     the smallest CTE ({min_cte} bytes); use a longer record or straddle",
                    o.record_len, o.header_len
                )
            }));
        }
        if o.discard.iter().any(|&(n, _)| n == 0) {
            return Err(usage("discard packet numbers start at 1".into()));
        }
        if o.discard_every == Some(0) {
            return Err(usage("discard_every must be at least 1".into()));
        }
        if o.repeat == 0 && o.target_bytes.is_none() {
            return Err(usage("repeat must be at least 1".into()));
        }
        let cp = CodePage::Cp037;
        let mut header_names = [0u8; 16];
        let component = if o.osaenta { "SYSTCPOT" } else { "SYSTCPDA" };
        header_names[..8].copy_from_slice(&cp.encode_name(component, 8));
        header_names[8..].copy_from_slice(&cp.encode_name(&o.system, 8));
        let mut name = [0u8; 16];
        name.copy_from_slice(&cp.encode_name(interface, 16));
        Ok(Plan {
            format_id: match (o.osaenta, o.data_trace) {
                (true, _) => 7,
                (false, true) => 5,
                _ => o.format_id,
            },
            header_names,
            name,
            buffer_len,
            cte_max,
            chunk: cte_max - CTE_OVERHEAD - pth,
            discard: o.discard.iter().copied().collect(),
            frame_discard: o.frame_discard.iter().copied().collect(),
            cycle: if o.osaenta {
                &OSAENTA_DISCARD_CYCLE
            } else {
                &PACKET_DISCARD_CYCLE
            },
        })
    }

    /// Discard code of packet `number` (1-based).
    fn discard_for(&self, number: u64, every: Option<u64>) -> u16 {
        if let Some(&c) = self.discard.get(&number) {
            return c;
        }
        match every {
            Some(n) if n > 0 && number.is_multiple_of(n) => {
                let k = (number / n - 1) % self.cycle.len() as u64;
                self.cycle[k as usize]
            }
            _ => 0,
        }
    }
}

/// A captured packet ready to be written.
impl Prepared {
    /// A copy whose ephemeral TCP/UDP ports (1024 and up) are moved for repetition
    /// `rep`, the same way in both directions, so each repetition is a new set of
    /// connections (in OSAENTA mode too, so that a pair stays a pair).
    fn with_ports_varied(&self, rep: u64) -> Prepared {
        let mut p = Prepared {
            data: self.data.clone(),
            ip: self.ip,
            ..*self
        };
        let at = p.net + p.ip.map_or(0, |i| i.hdr_len);
        if let Some(ip) = &mut p.ip
            && ip.ports != [0, 0]
            && let Some(b) = p.data.get_mut(at..at + 4)
        {
            for (i, port) in ip.ports.iter_mut().enumerate() {
                if *port >= 1024 {
                    let moved = 1024 + ((u64::from(*port) - 1024 + rep * 7919) % 64_512) as u16;
                    *port = moved;
                    b[2 * i..2 * i + 2].copy_from_slice(&moved.to_be_bytes());
                }
            }
        }
        p
    }
}

struct Prepared {
    /// 1-based frame number in the capture (0 for data-trace start and end records).
    frame: u64,
    /// Where the IP header starts in `data` (after the Ethernet header in OSAENTA
    /// mode).
    net: usize,
    /// The 16-byte name field, when it is not the interface name (data trace: job
    /// name and socket description).
    name: Option<[u8; 16]>,
    /// Capture time (with `time_shift_ns`).
    time_ns: i64,
    /// The traced bytes (abbreviated).
    data: Vec<u8>,
    /// True length of the packet or frame.
    orig_len: u64,
    ip: Option<IpInfo>,
    flags: u8,
    dev_type: u8,
}

/// Data-trace mode: the sockets seen so far, for their start and end records.
struct Sockets {
    job: [u8; 8],
    /// Open sockets (local, local port, remote, remote port, protocol) -> the last
    /// record, for the end record written at the end of the capture.
    open: std::collections::HashMap<(IpAddr, u16, IpAddr, u16, u8), Prepared>,
    /// In the order they were opened, so end records come out in a stable order.
    order: Vec<(IpAddr, u16, IpAddr, u16, u8)>,
    /// Sockets whose end record is written.
    closed: std::collections::HashSet<(IpAddr, u16, IpAddr, u16, u8)>,
}

/// Data-trace state values as our synthesizer writes them (IBM does not publish them;
/// the decoder names these three and shows any other as a number).
const DT_START: u8 = 1;
const DT_DATA: u8 = 2;
const DT_END: u8 = 3;

impl Sockets {
    fn new(o: &Options) -> Sockets {
        let mut job = [0x40u8; 8];
        let enc = CodePage::Cp037.encode(&o.job);
        for (d, s) in job.iter_mut().zip(enc) {
            *d = s;
        }
        Sockets {
            job,
            open: std::collections::HashMap::new(),
            order: Vec::new(),
            closed: std::collections::HashSet::new(),
        }
    }

    fn record(&self, p: &Prepared, proto: u8, state: u8, data: &[u8], true_len: u32) -> Prepared {
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(&self.job);
        let v6 = p.ip.is_some_and(|i| i.v6);
        name[8] = if v6 { 19 } else { 2 }; // AF_INET6 / AF_INET as z/OS numbers them
        name[9] = if proto == 6 { 1 } else { 2 }; // stream / datagram
        name[10] = proto;
        name[11] = state;
        Prepared {
            frame: p.frame,
            net: 0,
            name: Some(name),
            time_ns: p.time_ns,
            data: data.to_vec(),
            orig_len: u64::from(true_len),
            ip: p.ip,
            flags: p.flags,
            dev_type: p.dev_type,
        }
    }

    /// The data-trace records one captured packet gives: a start record for a new
    /// socket, a data record for its payload, an end record for its first FIN or RST.
    fn records(&mut self, p: &Prepared) -> Vec<Prepared> {
        let v = crate::net::view(crate::packet::Link::Raw, &p.data, p.orig_len as u32);
        let (Some(src), Some(dst), Some(proto), Some(sp), Some(dp)) =
            (v.src, v.dst, v.protocol, v.src_port, v.dst_port)
        else {
            return Vec::new();
        };
        if !matches!(proto, 6 | 17) || v.fragment.is_some_and(|(off, _)| off > 0) {
            return Vec::new();
        }
        let outbound = p.flags & Flags::OUTBOUND != 0;
        let key = if outbound {
            (src, sp, dst, dp, proto)
        } else {
            (dst, dp, src, sp, proto)
        };
        let tcp = v.tcp;
        let fresh_syn =
            tcp.is_some_and(|t| t.has(crate::net::Tcp::SYN) && !t.has(crate::net::Tcp::ACK));
        if fresh_syn {
            // The same ports again after a close: a new socket.
            self.closed.remove(&key);
        }
        let mut out = Vec::new();
        let len = v.payload_len.unwrap_or(0);
        if self.closed.contains(&key) {
            // Data after the end record (a late retransmission): data only.
            if len > 0 {
                out.push(self.record(p, proto, DT_DATA, v.payload, len));
            }
            return out;
        }
        if !self.open.contains_key(&key) {
            out.push(self.record(p, proto, DT_START, &[], 0));
            self.order.push(key);
        }
        if len > 0 {
            out.push(self.record(p, proto, DT_DATA, v.payload, len));
        }
        let end = self.record(p, proto, DT_END, &[], 0);
        if tcp.is_some_and(|t| t.has(crate::net::Tcp::FIN | crate::net::Tcp::RST)) {
            self.open.remove(&key);
            self.order.retain(|k| *k != key);
            self.closed.insert(key);
            out.push(end);
        } else {
            self.open.insert(key, end);
        }
        out
    }

    /// End records for the sockets still open when the capture ends.
    fn close_all(&mut self) -> Vec<Prepared> {
        let mut out = Vec::new();
        for k in std::mem::take(&mut self.order) {
            if let Some(mut r) = self.open.remove(&k) {
                r.time_ns += 1_000;
                out.push(r);
            }
        }
        out
    }
}

/// Captured frames -> packets as the trace holds them.
struct Converter<'a> {
    opts: &'a Options,
    /// The stack's own addresses; learned from the first IP packet when not given.
    hosts: Vec<IpAddr>,
}

impl Converter<'_> {
    /// The outer `Err` is fatal; the inner one is the reason the frame is skipped.
    fn prepare(&mut self, f: &Frame) -> Result<Result<Prepared, String>, Error> {
        let time_ns = f
            .time_ns
            .checked_add(self.opts.time_shift_ns)
            .ok_or_else(|| capture_error("packet time plus time_shift_ns out of range"))?;
        let link = match link::parse_link(f.linktype, &f.data) {
            Ok(l) => l,
            Err(reason) => return Ok(Err(reason)),
        };
        let is_ip = link.problem.is_none()
            && (link.ethertype == ETHERTYPE_IPV4 || link.ethertype == ETHERTYPE_IPV6);
        // `bytes`: the traced candidate; `net`: where the IP packet starts in it;
        // `orig`: the true length of `bytes`' packet or frame.
        let (mut bytes, net, orig, ip) = if self.opts.osaenta {
            let (bytes, net, orig) = if link.ethernet {
                (f.data.clone(), link.net_start, f.orig_len)
            } else {
                // Not Ethernet: give it an Ethernet II header. The link's own type
                // (possibly a VLAN TPID followed by tags, for SLL) becomes the EtherType.
                let mut v = Vec::with_capacity(ETH_HEADER + f.data.len() - link.l2_len);
                v.extend_from_slice(&SYNTH_DST_MAC);
                v.extend_from_slice(&SYNTH_SRC_MAC);
                v.extend_from_slice(&link.outer_type.to_be_bytes());
                v.extend_from_slice(&f.data[link.l2_len..]);
                let net = link.net_start - link.l2_len + ETH_HEADER;
                let orig = (f.orig_len - link.l2_len as u64) + ETH_HEADER as u64;
                (v, net, orig)
            };
            let ip = if is_ip {
                link::parse_ip(&bytes[net..])
            } else {
                None
            };
            (bytes, net, orig, ip)
        } else {
            if let Some(problem) = link.problem {
                return Ok(Err(problem));
            }
            if !is_ip {
                return Ok(Err(link::ethertype_reason(link.ethertype)));
            }
            let pkt = &f.data[link.net_start..];
            let Some(ip) = link::parse_ip(pkt) else {
                return Ok(Err(match pkt.first().map(|b| b >> 4) {
                    None => "no IP packet after the link header".into(),
                    Some(v @ (4 | 6)) => format!("too short for an IPv{v} header"),
                    Some(v) => format!("IP EtherType but IP version {v}"),
                }));
            };
            let mut orig = f.orig_len - link.net_start as u64;
            // A packet trace holds IP packets: the padding of a short Ethernet frame is
            // not part of one (its IP length says where it ends), so it is dropped, as
            // z/OS would never see it. IPv4 length 0 (offloaded segments) is kept as is.
            let declared = match (ip.v6, pkt.get(2..6)) {
                (false, Some(b)) => u16::from_be_bytes([b[0], b[1]]) as usize,
                (true, Some(b)) => 40 + u16::from_be_bytes([b[2], b[3]]) as usize,
                _ => 0,
            };
            let mut pkt = pkt;
            if declared >= ip.hdr_len.min(40) && declared > 0 {
                if declared < pkt.len() {
                    pkt = &pkt[..declared];
                }
                orig = orig.min(declared as u64).max(pkt.len() as u64);
            }
            (pkt.to_vec(), 0, orig, Some(ip))
        };

        // Abbreviation never cuts the (link,) IP and transport headers.
        let keep = net + ip.map_or(0, |i| i.keep());
        let mut traced = bytes.len();
        if let Some(a) = self.opts.abbrev {
            traced = traced.min(a.max(keep));
        }
        bytes.truncate(traced.min(MAX_TLEN));

        if self.hosts.is_empty()
            && let Some(i) = ip
        {
            self.hosts.push(i.src);
        }
        let (mut flags, mut dev_type) = (0u8, DEV_QDIO_V4);
        if let Some(i) = ip {
            let src_local = self.hosts.contains(&i.src);
            if src_local {
                flags |= Flags::OUTBOUND;
                if self.hosts.contains(&i.dst) {
                    flags |= Flags::BOTH_LOCAL;
                }
            }
            dev_type = match (i.loopback(), i.v6) {
                (true, _) => DEV_LOOPBACK,
                (false, true) => DEV_QDIO_V6,
                (false, false) => DEV_QDIO_V4,
            };
        }
        Ok(Ok(Prepared {
            frame: f.number,
            net,
            name: None,
            time_ns,
            data: bytes,
            orig_len: orig,
            ip,
            flags,
            dev_type,
        }))
    }
}

/// Packets -> CTEs -> the trace writer.
struct Emitter<'a, W: Write> {
    plan: &'a Plan,
    opts: &'a Options,
    writer: TraceWriter<W>,
    /// Reused CTE buffer.
    cte: Vec<u8>,
    /// Packets written so far (the last one's 1-based number).
    number: u64,
    ctes: u64,
}

/// PTH_SeqNum of segment `k`: 0, 1, ..., 255, then 1 again (0 only starts a record).
fn seq_num(k: usize) -> u8 {
    if k == 0 { 0 } else { ((k - 1) % 255 + 1) as u8 }
}

impl<W: Write> Emitter<'_, W> {
    /// Writes packet `p` shifted by `shift` ns as one CTE or a set of segments.
    fn emit(
        &mut self,
        p: &Prepared,
        shift: i64,
        expected: Option<&mut Vec<Expected>>,
    ) -> Result<(), Error> {
        let o = self.opts;
        let outbound = p.flags & Flags::OUTBOUND != 0;
        let omitted = if outbound { &o.omit_out } else { &o.omit_in };
        if p.frame > 0 && omitted.contains(&p.frame) {
            return Ok(());
        }
        let number = self.number + 1;
        let time = p
            .time_ns
            .checked_add(shift)
            .and_then(|t| {
                t.checked_add(if outbound {
                    o.delay_out_ns
                } else {
                    o.delay_in_ns
                })
            })
            .ok_or_else(|| capture_error("packet time out of range"))?;
        let (cap_tod, buf_tod) = checked_tods(time, o, number)?;
        let discard = match self.plan.frame_discard.get(&p.frame) {
            Some(&c) if p.frame > 0 => c,
            _ => self.plan.discard_for(number, o.discard_every),
        };
        let plen = p.orig_len.min(u64::from(u16::MAX)) as u16;

        let mut h = PtHdr::with_len(o.pth_len);
        h.flags = Flags(p.flags);
        h.dev_type = DeviceType(p.dev_type);
        h.tlen = p.data.len() as u32;
        if let Some(n) = h.name.as_mut() {
            *n = NameField(p.name.unwrap_or(self.plan.name));
        }
        if let Some(t) = h.time.as_mut() {
            *t = cap_tod;
        }
        if let Some(ip) = p.ip {
            if let Some(s) = h.src.as_mut() {
                *s = pthdr::addr_bytes(ip.src);
            }
            if let Some(d) = h.dst.as_mut() {
                *d = pthdr::addr_bytes(ip.dst);
            }
            if let Some(ports) = h.ports.as_mut() {
                *ports = ip.ports;
            }
        }
        if let Some(l) = h.plen.as_mut() {
            *l = plen;
        }
        if let Some(i) = h.if_index.as_mut() {
            *i = 1;
        }
        if let Some(d) = h.drop_reason.as_mut() {
            *d = discard;
        }
        let mut pth = h.to_bytes();
        // `with_len` makes the encoding exactly `pth_len` long; this only guards the
        // CTE length arithmetic below should that ever change.
        pth.resize(usize::from(o.pth_len), 0);

        let chunk = self.plan.chunk;
        let segments = p.data.len().div_ceil(chunk).max(1);
        for k in 0..segments {
            let part = &p.data[(k * chunk).min(p.data.len())..((k + 1) * chunk).min(p.data.len())];
            let len = (16 + pth.len() + part.len() + 2) as u16;
            pth[2] = seq_num(k);
            let c = &mut self.cte;
            c.clear();
            c.extend_from_slice(&len.to_be_bytes());
            c.extend_from_slice(&DATA_OFFSET.to_be_bytes());
            c.extend_from_slice(&self.plan.format_id.to_be_bytes());
            c.extend_from_slice(&buf_tod.0.to_be_bytes());
            c.extend_from_slice(&pth);
            c.extend_from_slice(part);
            c.extend_from_slice(&len.to_be_bytes());
            self.writer.put_cte(c).map_err(Error::Unlocated)?;
        }
        self.ctes += segments as u64;
        self.number = number;

        if let Some(exp) = expected {
            exp.push(Expected {
                time_ns: if o.pth_len >= PTH_HAS_TIME {
                    time
                } else {
                    time + o.buffer_delay_ns
                },
                data: p.data.clone(),
                orig_len: if o.pth_len >= PTH_HAS_PLEN {
                    u32::from(plen)
                } else {
                    p.data.len() as u32
                },
                interface: if o.data_trace {
                    crate::packet::DATA_TRACE_INTERFACE.to_string()
                } else if o.pth_len >= PTH_HAS_NAME {
                    o.interface_name().to_string()
                } else {
                    String::new()
                },
                outbound: p.flags & Flags::OUTBOUND != 0,
                discard: if o.pth_len >= PTH_HAS_DROP {
                    discard
                } else {
                    0
                },
                segments: segments as u32,
                frame: p.frame,
            });
        }
        Ok(())
    }
}

/// The capture and buffer TODs of a packet time, or an error when the trace cannot
/// carry it: the decoder rejects CTEs whose buffer time is before 1990, and the TOD
/// clock ends in 2042.
fn checked_tods(ns: i64, o: &Options, number: u64) -> Result<(Tod, Tod), Error> {
    let buf_ns = ns.checked_add(o.buffer_delay_ns);
    let cap = Tod::from_unix_ns(ns, o.leap_seconds);
    let ok = buf_ns.is_some_and(|b| {
        let buf = Tod::from_unix_ns(b, o.leap_seconds);
        buf.is_plausible() && buf.unix_ns(o.leap_seconds) == b
    }) && cap.unix_ns(o.leap_seconds) == ns;
    match buf_ns {
        Some(b) if ok => Ok((cap, Tod::from_unix_ns(b, o.leap_seconds))),
        _ => Err(capture_error(format!(
            "packet {number} at {} cannot be traced: trace times must lie between 1990 and \
             2042 (set time_shift_ns to move the capture)",
            tod::iso8601(ns)
        ))),
    }
}

/// A packet of an ordinary capture, for `zctrace analyze`: Ethernet frames as they are,
/// any other link type reduced to its IP packet.
pub struct Captured<'a> {
    pub time_ns: i64,
    pub link: crate::packet::Link,
    pub data: &'a [u8],
    pub orig_len: u32,
}

/// What `read_packets` saw.
#[derive(Clone, Debug, Default)]
pub struct CaptureCounts {
    pub packets: u64,
    /// Frames of link types or contents that hold no packet we can use.
    pub skipped: u64,
    /// The capture ended inside a record.
    pub truncated: bool,
}

/// Reads a pcap or pcapng capture, calling `f` for each packet in file order. The
/// capture reader of the synthesizer is reused: it already knows both formats, every
/// timestamp resolution and the common link types.
pub fn read_packets<R: Read>(
    src: R,
    mut f: impl FnMut(&Captured<'_>) -> std::io::Result<()>,
) -> Result<CaptureCounts, Error> {
    let mut reader = CaptureReader::new(src)?;
    let mut frame = Frame::default();
    let mut counts = CaptureCounts::default();
    while reader.next_frame(&mut frame)? {
        let Ok(l) = link::parse_link(frame.linktype, &frame.data) else {
            counts.skipped += 1;
            continue;
        };
        let orig = u32::try_from(frame.orig_len).unwrap_or(u32::MAX);
        let (link, data, orig_len) = if l.ethernet {
            (crate::packet::Link::Ethernet, &frame.data[..], orig)
        } else {
            let start = l.net_start.min(frame.data.len());
            (
                crate::packet::Link::Raw,
                &frame.data[start..],
                orig.saturating_sub(start as u32),
            )
        };
        counts.packets += 1;
        f(&Captured {
            time_ns: frame.time_ns,
            link,
            data,
            orig_len,
        })
        .map_err(Error::Unlocated)?;
    }
    counts.truncated = reader.truncated;
    Ok(counts)
}
