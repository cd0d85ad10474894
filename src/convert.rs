//! One input end to end: trace bytes -> packets -> filter -> pcapng or pcap, with the
//! summary the user sees. Library functions take `impl Read`/`impl Write` so tests run
//! them in memory; the binary only adds files, parallelism and exit codes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};

use crate::Error;
use crate::analyze::{self, Analyzer, rows::Sink as RowSink};
use crate::net::Filter;
use crate::output::{libpcap, pcapng};
use crate::packet::{self, Assembler, Counts, Packet};
use crate::trace::tod::iso8601;
use crate::trace::{DiscardTable, FormatId, Layout, Report, Scanner};

/// What to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Pcapng,
    /// Classic pcap, Ethernet only (raw IP gets a synthetic header).
    Libpcap,
    /// Nothing: decode and count (`zctrace info`).
    None,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub scan: crate::trace::Options,
    pub packet: packet::Options,
    pub filter: Filter,
    pub output: Output,
}

/// What one input gave.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub layout: Layout,
    pub report: Report,
    pub counts: Counts,
    /// Packets written (after filters).
    pub written: u64,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
    /// Packets per interface name (all packets, before filters).
    pub interfaces: BTreeMap<String, u64>,
    /// Discarded packets per code.
    pub discards: BTreeMap<u16, u64>,
    /// Records the output format has no place for (SMC records in a classic pcap).
    pub left_out: u64,
    /// What the analysis counted, when the CSV tables were made.
    pub analysis: Option<analyze::Stats>,
    /// For an ordinary capture (`zctrace analyze`): what was read.
    pub capture: Option<crate::synth::CaptureCounts>,
}

impl Summary {
    /// Nothing skipped, resynchronised, incomplete or left unknown (exit status 0).
    pub fn clean(&self) -> bool {
        !self.capture.as_ref().is_some_and(|c| c.truncated)
            && self.report.clean()
            && self.counts.incomplete == 0
            && self.counts.orphan_segments == 0
    }

    /// The per-file summary printed by `convert` and `info`.
    pub fn render(&self, name: &str, discards: &DiscardTable) -> String {
        let c = &self.counts;
        let r = &self.report;
        let l = &self.layout;
        let mut s = String::new();
        if let Some(cap) = &self.capture {
            let _ = writeln!(
                s,
                "{name}: capture with {} packets, {} frames not usable{}",
                cap.packets,
                cap.skipped,
                if cap.truncated { ", cut short" } else { "" }
            );
            if let Some(a) = &self.analysis {
                let _ = write!(s, "{}", a.render());
            }
            return s;
        }
        let _ = writeln!(
            s,
            "{name}: {} CTEs in {} records, {} packets ({} reassembled, {} incomplete, {} abbreviated, {} discarded), {} written",
            r.ctes.values().sum::<u64>(),
            r.records,
            c.packets,
            c.reassembled,
            c.incomplete,
            c.abbreviated,
            c.discarded,
            self.written
        );
        let _ = writeln!(
            s,
            "  framing {} ({}), writer header {} bytes ({}){}{}",
            l.framing.map_or("?", |f| f.name()),
            if l.framing_forced {
                "forced"
            } else {
                "detected"
            },
            l.header_len,
            if l.header_forced { "forced" } else { "learned" },
            l.fixed_record
                .map_or(String::new(), |n| format!(", raw records of {n} bytes")),
            match (&l.component, &l.system) {
                (Some(c), Some(y)) => format!(", component {c}, system {y}"),
                (Some(c), None) => format!(", component {c}"),
                _ => String::new(),
            }
        );
        if let (Some(a), Some(b)) = (self.first_ns, self.last_ns) {
            let _ = writeln!(s, "  time {} .. {}", iso8601(a), iso8601(b));
        }
        if !self.interfaces.is_empty() {
            let v: Vec<String> = self
                .interfaces
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(s, "  interfaces: {}", v.join(", "));
        }
        let v: Vec<String> = r
            .ctes
            .iter()
            .map(|(f, n)| {
                let not = if c.not_converted.contains_key(f) {
                    ", not converted"
                } else {
                    ""
                };
                format!("{f} {} {n}{not}", f.name())
            })
            .collect();
        if !v.is_empty() {
            let _ = writeln!(s, "  records by format id: {}", v.join("; "));
        }
        if self.left_out > 0 {
            let _ = writeln!(
                s,
                "  {} SMC record(s) left out of the classic pcap (Ethernet only; pcapng keeps them)",
                self.left_out
            );
        }
        if !self.discards.is_empty() {
            let v: Vec<String> = self
                .discards
                .iter()
                .map(|(code, n)| {
                    format!(
                        "{code} {} x{n}",
                        discards.describe(crate::trace::DiscardCode(*code))
                    )
                })
                .collect();
            let _ = writeln!(s, "  discards: {}", v.join("; "));
        }
        if let Some(a) = &self.analysis {
            let _ = write!(s, "{}", a.render());
        }
        let _ = writeln!(
            s,
            "  bytes: {} read, {} skipped, {} resyncs, {} padding, {} writer headers, {} descriptors",
            r.bytes_read,
            r.bytes_skipped,
            r.resyncs,
            r.padding_bytes,
            r.header_bytes,
            r.framing_bytes
        );
        if r.lost_notices > 0 {
            let _ = writeln!(
                s,
                "  the trace itself noted lost records {} times",
                r.lost_notices
            );
        }
        if l.sample_errors > 0 {
            let _ = writeln!(
                s,
                "  writer header learned past {} break(s) in the sampled records' CTE chains (damage; see below)",
                l.sample_errors
            );
        }
        for i in r.issues.iter().take(20) {
            let _ = writeln!(s, "  {i}");
        }
        let more = r.issues.len().saturating_sub(20) as u64 + r.issues_not_kept;
        if more > 0 {
            let _ = writeln!(s, "  ... and {more} more problems");
        }
        let _ = writeln!(
            s,
            "  status: {}",
            if self.clean() {
                "clean: every byte accounted for".to_string()
            } else {
                format!("{} problem(s): see above", r.losses.max(1))
            }
        );
        s
    }
}

enum Sink<W: Write> {
    Pcapng(pcapng::Writer<W>),
    Libpcap(libpcap::Writer<W>),
    None(W),
}

/// Converts one trace. `progress` is called now and then with the bytes read so far.
/// Returns the summary and the output writer (flushed by the caller).
pub fn convert<R: Read, W: Write>(
    src: R,
    out: W,
    source_name: &str,
    opts: &Options,
    discards: &DiscardTable,
    progress: impl FnMut(u64),
) -> Result<(Summary, W), Error> {
    convert_analyzed(src, out, None, source_name, opts, discards, progress)
}

/// `convert`, also feeding every packet written to the analysis, whose rows go to
/// `tables` (the CSV outputs). Packet numbers are the pcapng frame numbers. The
/// analysis runs on a thread of its own, fed packets in batches, so that decoding and
/// analysis share the work of a two-core machine.
pub fn convert_analyzed<R: Read, W: Write>(
    src: R,
    out: W,
    tables: Option<(&mut (dyn RowSink + Send), &analyze::Options)>,
    source_name: &str,
    opts: &Options,
    discards: &DiscardTable,
    progress: impl FnMut(u64),
) -> Result<(Summary, W), Error> {
    let Some((sink, aopts)) = tables else {
        return decode(src, out, None, source_name, opts, discards, progress);
    };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Owned>>(BATCHES_IN_FLIGHT);
        let worker = scope.spawn(move || -> std::io::Result<analyze::Stats> {
            let mut a = Analyzer::new(sink, aopts.clone(), discards);
            for batch in rx {
                for o in &batch {
                    a.packet(&o.input())?;
                }
            }
            Ok(a.finish()?.1)
        });
        let decoded = decode(src, out, Some(tx), source_name, opts, discards, progress);
        let analysed = worker
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("analysis thread panicked")));
        // A failed analysis stops the decoding early (`decode` sees the channel close):
        // its error is the one to report.
        let stats = analysed.map_err(Error::Unlocated)?;
        let (mut sum, out) = decoded?;
        sum.analysis = Some(stats);
        Ok((sum, out))
    })
}

/// Packets per batch handed to the analysis thread, and batches queued at most.
const BATCH: usize = 512;
const BATCHES_IN_FLIGHT: usize = 4;

/// A packet on its way to the analysis thread.
struct Owned {
    frame: u64,
    time_ns: i64,
    interface: std::sync::Arc<str>,
    outbound: bool,
    link: crate::packet::Link,
    data: Vec<u8>,
    orig_len: u32,
    discard: crate::trace::DiscardCode,
    note: String,
    socket: Option<analyze::Socket>,
}

/// The socket of a data-trace record, for the analysis.
fn socket_of(p: &Packet) -> Option<analyze::Socket> {
    use crate::trace::pthdr::Flags;
    let d = p.data_trace.as_ref()?;
    let h = &p.header;
    let ports = h.ports.unwrap_or([0, 0]);
    Some(analyze::Socket {
        job: d.job.clone(),
        state: d.state_name(),
        protocol: d.protocol,
        src: h.src_ip(),
        dst: h.dst_ip(),
        src_port: ports[0],
        dst_port: ports[1],
        attls: if p.flags.0 & Flags::ATTLS_CLEAR != 0 {
            "clear"
        } else if p.flags.0 & Flags::ATTLS_WITHHELD != 0 {
            "withheld"
        } else {
            ""
        },
    })
}

impl Owned {
    fn input(&self) -> analyze::Input<'_> {
        analyze::Input {
            frame: self.frame,
            time_ns: self.time_ns,
            interface: &self.interface,
            outbound: Some(self.outbound),
            link: self.link,
            data: &self.data,
            orig_len: self.orig_len,
            discard: self.discard,
            note: self.note.clone(),
            socket: self.socket.clone(),
        }
    }
}

/// Trace -> packets -> pcapng/pcap, optionally sending each packet written to the
/// analysis.
fn decode<R: Read, W: Write>(
    src: R,
    out: W,
    feed: Option<std::sync::mpsc::SyncSender<Vec<Owned>>>,
    source_name: &str,
    opts: &Options,
    discards: &DiscardTable,
    mut progress: impl FnMut(u64),
) -> Result<(Summary, W), Error> {
    let mut batch: Vec<Owned> = Vec::with_capacity(BATCH);
    let mut iface: Option<std::sync::Arc<str>> = None;
    let mut frames = 0u64;
    let mut scanner = Scanner::open(src, &opts.scan)?;
    let layout = scanner.layout().clone();
    let section = pcapng::Section {
        source: source_name.to_string(),
        framing: layout.framing.map_or("?", |f| f.name()).to_string(),
        header_len: Some(layout.header_len),
        component: layout.component.clone(),
        system: layout.system.clone(),
    };
    let mut sink = match opts.output {
        Output::Pcapng => Sink::Pcapng(pcapng::Writer::new(out, &section)?),
        Output::Libpcap => Sink::Libpcap(libpcap::Writer::new(out)?),
        Output::None => Sink::None(out),
    };
    let mut asm = Assembler::new(opts.packet.clone());
    let mut sum = Summary::default();
    let mut failure: Option<Error> = None;
    // The analysis stopped (its error comes from its thread): stop feeding it.
    let mut feed = feed;
    let stop = std::cell::Cell::new(false);
    let mut run: Option<(String, u64)> = None;
    let filter_all = opts.filter.is_empty();
    let mut handle = |p: &Packet, sum: &mut Summary| {
        if failure.is_some() {
            return;
        }
        sum.first_ns = Some(sum.first_ns.map_or(p.time_ns, |t| t.min(p.time_ns)));
        sum.last_ns = Some(sum.last_ns.map_or(p.time_ns, |t| t.max(p.time_ns)));
        // Runs of packets on one interface are counted before touching the map.
        match &mut run {
            Some((name, n)) if *name == p.interface => *n += 1,
            _ => {
                if let Some((name, n)) = run.take() {
                    *sum.interfaces.entry(name).or_default() += n;
                }
                run = Some((p.interface.clone(), 1));
            }
        }
        if p.discard.is_discard() {
            *sum.discards.entry(p.discard.0).or_default() += 1;
        }
        if !filter_all && !opts.filter.matches(p) {
            return;
        }
        let r = match &mut sink {
            Sink::Pcapng(w) => w.write(p, discards).map(|()| true),
            Sink::Libpcap(w) => w.write(p),
            Sink::None(_) => Ok(true),
        };
        match r {
            Ok(true) => sum.written += 1,
            Ok(false) => {
                // Left out of a classic pcap (SMC records): counted, and no frame
                // number is used up.
                sum.left_out += 1;
                return;
            }
            Err(e) => failure = Some(e),
        }
        frames += 1;
        if let Some(tx) = &feed {
            let name = match &iface {
                Some(i) if **i == *p.interface => i.clone(),
                _ => {
                    let i: std::sync::Arc<str> = p.interface.as_str().into();
                    iface = Some(i.clone());
                    i
                }
            };
            batch.push(Owned {
                frame: frames,
                time_ns: p.time_ns,
                interface: name,
                outbound: p.outbound(),
                link: p.link,
                data: p.data.clone(),
                orig_len: p.orig_len,
                discard: p.discard,
                note: packet_note(p),
                socket: socket_of(p),
            });
            if batch.len() >= BATCH
                && tx
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .is_err()
            {
                // The analysis failed: stop here, its error is the one to report.
                feed = None;
                stop.set(true);
            }
        }
    };
    let mut n = 0u64;
    loop {
        if stop.get() {
            break;
        }
        let (cte, report) = scanner.next_split()?;
        let Some(cte) = cte else { break };
        asm.push(&cte, report, &mut |p| handle(p, &mut sum));
        n += 1;
        if n.is_multiple_of(4096) {
            progress(report.bytes_read);
        }
    }
    asm.finish(scanner.report_mut(), &mut |p| handle(p, &mut sum));
    if let Some((name, n)) = run {
        *sum.interfaces.entry(name).or_default() += n;
    }
    if let Some(tx) = feed
        && !batch.is_empty()
    {
        let _ = tx.send(batch);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    progress(scanner.report().bytes_read);
    let out = match sink {
        Sink::Pcapng(w) => w.finish()?,
        Sink::Libpcap(w) => w.finish(),
        Sink::None(w) => w,
    };
    sum.layout = scanner.layout().clone();
    sum.counts = asm.counts;
    sum.report = scanner.into_report();
    Ok((sum, out))
}

/// packets.csv `note`: what the pcapng comments say, discards aside (they have columns).
fn packet_note(p: &Packet) -> String {
    if !(p.abbreviated() || p.incomplete || p.segments > 1) {
        return String::new();
    }
    crate::output::packet_notes(p).join("; ")
}

/// Format ids given on the command line.
pub fn parse_format_id(s: &str) -> Result<FormatId, String> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    v.map(FormatId)
        .map_err(|_| format!("format id {s:?} is not a number"))
}

/// `zctrace analyze` on an ordinary capture (pcap or pcapng): every packet through the
/// analysis, rows to `tables`. Direction comes from `opts.local`.
pub fn analyze_capture<R: Read>(
    src: R,
    tables: &mut dyn RowSink,
    opts: &analyze::Options,
    discards: &DiscardTable,
) -> Result<(crate::synth::CaptureCounts, analyze::Stats), Error> {
    let mut a = Analyzer::new(tables, opts.clone(), discards);
    let mut frame = 0u64;
    let counts = crate::synth::read_packets(src, |c| {
        frame += 1;
        a.packet(&analyze::Input {
            frame,
            time_ns: c.time_ns,
            interface: "capture",
            outbound: None,
            link: c.link,
            data: c.data,
            orig_len: c.orig_len,
            discard: crate::trace::DiscardCode(0),
            note: String::new(),
            socket: None,
        })
    })?;
    let (_, stats) = a.finish().map_err(Error::Unlocated)?;
    Ok((counts, stats))
}

/// Whether a file starts like a pcap or pcapng capture rather than a z/OS trace.
pub fn is_capture(prefix: &[u8]) -> bool {
    matches!(
        prefix.get(..4),
        Some(
            [0xA1, 0xB2, 0xC3, 0xD4]
                | [0xD4, 0xC3, 0xB2, 0xA1]
                | [0xA1, 0xB2, 0x3C, 0x4D]
                | [0x4D, 0x3C, 0xB2, 0xA1]
                | [0x0A, 0x0D, 0x0D, 0x0A]
        )
    )
}
