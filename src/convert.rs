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
/// `tables` (the CSV outputs). Packet numbers are the pcapng frame numbers.
pub fn convert_analyzed<R: Read, W: Write>(
    src: R,
    out: W,
    tables: Option<(&mut dyn RowSink, &analyze::Options)>,
    source_name: &str,
    opts: &Options,
    discards: &DiscardTable,
    mut progress: impl FnMut(u64),
) -> Result<(Summary, W), Error> {
    let mut analyzer = tables.map(|(sink, o)| Analyzer::new(sink, o.clone(), discards));
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
    let filter_all = opts.filter.is_empty();
    let mut handle = |p: &Packet, sum: &mut Summary| {
        if failure.is_some() {
            return;
        }
        sum.first_ns = Some(sum.first_ns.map_or(p.time_ns, |t| t.min(p.time_ns)));
        sum.last_ns = Some(sum.last_ns.map_or(p.time_ns, |t| t.max(p.time_ns)));
        if let Some(n) = sum.interfaces.get_mut(&p.interface) {
            *n += 1;
        } else {
            sum.interfaces.insert(p.interface.clone(), 1);
        }
        if p.discard.is_discard() {
            *sum.discards.entry(p.discard.0).or_default() += 1;
        }
        if !filter_all && !opts.filter.matches(p) {
            return;
        }
        let r = match &mut sink {
            Sink::Pcapng(w) => w.write(p, discards),
            Sink::Libpcap(w) => w.write(p),
            Sink::None(_) => Ok(()),
        };
        match r {
            Ok(()) => sum.written += 1,
            Err(e) => failure = Some(e),
        }
        frames += 1;
        if let Some(a) = &mut analyzer {
            let input = analyze::Input {
                frame: frames,
                time_ns: p.time_ns,
                interface: &p.interface,
                outbound: Some(p.outbound()),
                link: p.link,
                data: &p.data,
                orig_len: p.orig_len,
                discard: p.discard,
                note: packet_note(p),
            };
            if let Err(e) = a.packet(&input) {
                failure = Some(Error::Unlocated(e));
            }
        }
    };
    let mut n = 0u64;
    loop {
        let (cte, report) = scanner.next_split()?;
        let Some(cte) = cte else { break };
        asm.push(&cte, report, &mut |p| handle(p, &mut sum));
        n += 1;
        if n.is_multiple_of(4096) {
            progress(report.bytes_read);
        }
    }
    asm.finish(scanner.report_mut(), &mut |p| handle(p, &mut sum));
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(a) = analyzer {
        let (_, stats) = a.finish().map_err(Error::Unlocated)?;
        sum.analysis = Some(stats);
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
    let mut v = Vec::new();
    if p.abbreviated() {
        v.push(format!(
            "abbreviated: {} of {} bytes traced",
            p.data.len(),
            p.orig_len
        ));
    }
    if p.incomplete {
        v.push("incomplete: segments missing".to_string());
    } else if p.segments > 1 {
        v.push(format!("reassembled from {} trace records", p.segments));
    }
    v.join("; ")
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
