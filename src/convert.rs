//! One input end to end: trace bytes -> packets -> filter -> pcapng or pcap, with the
//! summary the user sees. Library functions take `impl Read`/`impl Write` so tests run
//! them in memory; the binary only adds files, parallelism and exit codes.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};

use crate::Error;
use crate::analyze::path::PathRow;
use crate::analyze::{self, Analyzer, rows::Sink as RowSink};
use crate::net::Filter;
use crate::output::{libpcap, pcapng};
use crate::packet::{self, Assembler, Counts, LastInterface, Packet};
use crate::trace::ahead::{Found, scan_ahead};
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
    /// `convert --sort`: packets still out of time order (displaced by more than the
    /// reorder window).
    pub out_of_order: u64,
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
        if self.out_of_order > 0 {
            let _ = writeln!(
                s,
                "  {} packets still out of time order (displaced by more than {REORDER} packets)",
                self.out_of_order
            );
        }
        if self.left_out > 0 {
            let _ = writeln!(
                s,
                "  {} SMC or data-trace record(s) left out of the classic pcap (Ethernet only; pcapng keeps them, the tables have them)",
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
pub fn convert<R: Read + Send, W: Write>(
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
pub fn convert_analyzed<R: Read + Send, W: Write>(
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
        let (tx, rx) = feed();
        let worker = scope.spawn(move || analyse(sink, aopts, discards, rx));
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

/// The analysis thread: packets in batches from the decoding, rows to `sink`.
fn analyse(
    sink: &mut (dyn RowSink + Send),
    aopts: &analyze::Options,
    discards: &DiscardTable,
    rx: FeedRx,
) -> std::io::Result<analyze::Stats> {
    let mut a = Analyzer::new(sink, aopts.clone(), discards);
    for batch in rx.rx.iter() {
        for o in &batch.items[..batch.len] {
            a.packet(&o.input())?;
        }
        // Back for reuse; dropped when the decoding has enough.
        let _ = rx.back.try_send(batch);
    }
    Ok(a.finish()?.1)
}

/// Packets per batch handed to the analysis thread, and batches queued at most.
const BATCH: usize = 512;
const BATCHES_IN_FLIGHT: usize = 4;

/// The decoding's end of the analysis queue. Full batches go; emptied ones come back
/// with their packets' buffers, so that a steady run allocates nothing per packet and
/// frees nothing on the other thread (which glibc's malloc makes costly).
struct Feed {
    tx: std::sync::mpsc::SyncSender<Batch>,
    back: std::sync::mpsc::Receiver<Batch>,
    batch: Batch,
}

/// The analysis thread's end of the queue.
struct FeedRx {
    rx: std::sync::mpsc::Receiver<Batch>,
    back: std::sync::mpsc::SyncSender<Batch>,
}

/// `items[..len]` are this batch's packets; the rest are buffers kept for reuse.
#[derive(Default)]
struct Batch {
    items: Vec<Owned>,
    len: usize,
}

fn feed() -> (Feed, FeedRx) {
    let (tx, rx) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
    let (back_tx, back) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT + 2);
    (
        Feed {
            tx,
            back,
            batch: Batch::default(),
        },
        FeedRx { rx, back: back_tx },
    )
}

impl Feed {
    /// The next packet's place in the batch (its buffers to be overwritten).
    fn slot(&mut self) -> &mut Owned {
        let b = &mut self.batch;
        if b.len == b.items.len() {
            b.items.push(Owned::default());
        }
        b.len += 1;
        &mut b.items[b.len - 1]
    }

    /// Sends the batch when full (`force`: when not empty). Err: the analysis stopped.
    fn send(&mut self, force: bool) -> Result<(), ()> {
        if self.batch.len < BATCH && !(force && self.batch.len > 0) {
            return Ok(());
        }
        let fresh = self.back.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, fresh);
        self.batch.len = 0;
        self.tx.send(full).map_err(|_| ())
    }
}

/// A packet on its way to the analysis thread.
#[derive(Default)]
struct Owned {
    frame: u64,
    time_ns: i64,
    interface: std::sync::Arc<str>,
    outbound: bool,
    link: Option<crate::packet::Link>,
    data: Vec<u8>,
    orig_len: u32,
    discard: crate::trace::DiscardCode,
    note: String,
    socket: Option<analyze::Socket>,
    system: u8,
    /// Its headers, read here so that the analysis thread need not.
    view: crate::net::Detached,
}

/// `buf` becomes a copy of `data`, in its own memory unless a far bigger packet grew
/// it: then it starts afresh, so that the batches hold about what is in flight, not
/// the biggest packet ever seen in every slot.
fn refill(buf: &mut Vec<u8>, data: &[u8]) {
    if buf.capacity() > 4096 && buf.capacity() > 4 * data.len() {
        *buf = Vec::with_capacity(data.len());
    }
    buf.clear();
    buf.extend_from_slice(data);
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
            // Always set before a batch is sent (`None` only in a fresh slot).
            link: self.link.unwrap_or(crate::packet::Link::Raw),
            data: &self.data,
            orig_len: self.orig_len,
            discard: self.discard,
            note: &self.note,
            socket: self.socket.as_ref(),
            system: self.system,
            view: Some(&self.view),
        }
    }
}

/// Everything done with a decoded packet: the summary counts, the filter, the output
/// file, the analysis feed and (merges) the path correlation. Shared by `decode` (one
/// input) and `merge` (several, in time order).
struct Handler<'a, W: Write> {
    opts: &'a Options,
    discards: &'a DiscardTable,
    sink: Sink<W>,
    /// The analysis thread's queue; `None` once it stopped (its error is reported).
    feed: Option<Feed>,
    iface: Option<std::sync::Arc<str>>,
    /// Frames written so far (the pcapng frame number of the last one).
    frames: u64,
    failure: Option<Error>,
    /// Stop decoding: the analysis failed.
    stop: bool,
    filter_all: bool,
    /// Per input: a run of packets on one interface, counted before touching the map.
    runs: Vec<Option<(LastInterface, u64)>>,
    /// Per input: its system's number in a merge of several systems (0 otherwise).
    systems: Vec<u8>,
    path: Option<PathFeed<'a>>,
}

/// The path correlation of a merge and where its rows go.
struct PathFeed<'a> {
    correlator: analyze::path::Correlator,
    rows: &'a mut (dyn FnMut(&PathRow) -> std::io::Result<()> + Send),
    /// By system number: both an OSAENTA and a packet trace of it are merged (only
    /// those systems' packets are correlated).
    paired: Vec<bool>,
}

impl<'a, W: Write> Handler<'a, W> {
    fn new(
        out: W,
        section: &pcapng::Section,
        inputs: usize,
        feed: Option<Feed>,
        opts: &'a Options,
        discards: &'a DiscardTable,
    ) -> Result<Handler<'a, W>, Error> {
        Ok(Handler {
            opts,
            discards,
            sink: match opts.output {
                Output::Pcapng => Sink::Pcapng(pcapng::Writer::new(out, section)?),
                Output::Libpcap => Sink::Libpcap(libpcap::Writer::new(out)?),
                Output::None => Sink::None(out),
            },
            feed,
            iface: None,
            frames: 0,
            failure: None,
            stop: false,
            filter_all: opts.filter.is_empty(),
            runs: vec![None; inputs],
            systems: vec![0; inputs],
            path: None,
        })
    }

    /// One packet of input `input`, whose summary is `sum`.
    fn packet(&mut self, p: &Packet, input: usize, sum: &mut Summary) {
        if self.failure.is_some() {
            return;
        }
        sum.first_ns = Some(sum.first_ns.map_or(p.time_ns, |t| t.min(p.time_ns)));
        sum.last_ns = Some(sum.last_ns.map_or(p.time_ns, |t| t.max(p.time_ns)));
        let run = &mut self.runs[input];
        if let Some((last, n)) = run
            && last.matches(p)
        {
            *n += 1;
        } else {
            if let Some((last, n)) = run.take() {
                *sum.interfaces.entry(last.into_name()).or_default() += n;
            }
            *run = Some((LastInterface::of(p), 1));
        }
        if p.discard.is_discard() {
            *sum.discards.entry(p.discard.0).or_default() += 1;
        }
        let keep = self.filter_all || self.opts.filter.matches(p);
        // 0: not in the output file (filtered out, or no place for it in a classic
        // pcap).
        let mut frame = 0;
        if keep {
            let r = match &mut self.sink {
                Sink::Pcapng(w) => w.write(p, self.discards).map(|()| true),
                Sink::Libpcap(w) => w.write(p),
                Sink::None(_) => Ok(true),
            };
            match r {
                Ok(true) => {
                    sum.written += 1;
                    self.frames += 1;
                    frame = self.frames;
                }
                // Left out of a classic pcap (SMC and data-trace records): counted, no
                // frame number used up, still analysed (frame 0: datatrace.csv and the
                // session totals have them, packets.csv does not).
                Ok(false) => sum.left_out += 1,
                Err(e) => {
                    self.failure = Some(e);
                    self.stop = true;
                    return;
                }
            }
        }
        // The path is judged on every packet decoded, so that a filter hiding one view
        // (or cutting between two sightings) does not turn a delivered packet into a
        // lost one; path.csv lists the packets of the output.
        let system = self.systems[input];
        let side = match p.format.0 {
            4 | 6 => Some(analyze::path::Side::Stack),
            7 => Some(analyze::path::Side::Osa),
            _ => None,
        };
        let on_path = side.is_some()
            && self
                .path
                .as_ref()
                .is_some_and(|pf| pf.paired.get(usize::from(system)) == Some(&true));
        // The headers, read once for the path and the analysis.
        let view = (on_path || (keep && self.feed.is_some()))
            .then(|| crate::net::view(p.link, &p.data, p.orig_len));
        if let (Some(pf), Some(side), Some(view)) = (&mut self.path, side, &view)
            && on_path
        {
            let s = analyze::path::Sighting {
                side,
                frame,
                time_ns: p.time_ns,
                outbound: p.outbound(),
                view,
                discard: p.discard,
                system,
            };
            if let Err(e) = pf.correlator.push(&s, self.discards, &mut pf.rows) {
                self.failure = Some(Error::Unlocated(e));
                self.stop = true;
                return;
            }
        }
        if !keep {
            return;
        }
        if let Some(f) = &mut self.feed {
            let name = match &self.iface {
                Some(i) if **i == *p.interface => i.clone(),
                _ => {
                    let i: std::sync::Arc<str> = p.interface.as_str().into();
                    self.iface = Some(i.clone());
                    i
                }
            };
            let o = f.slot();
            o.frame = frame;
            o.time_ns = p.time_ns;
            o.interface = name;
            o.outbound = p.outbound();
            o.link = Some(p.link);
            refill(&mut o.data, &p.data);
            o.orig_len = p.orig_len;
            o.discard = p.discard;
            o.note = packet_note(p);
            o.socket = socket_of(p);
            o.system = system;
            o.view = view
                .as_ref()
                .map_or_else(Default::default, |v| v.detach(&p.data));
            if f.send(false).is_err() {
                // The analysis failed: stop here, its error is the one to report.
                self.feed = None;
                self.stop = true;
            }
        }
    }

    /// Flushes the counts of input `input` into its summary.
    fn close_input(&mut self, input: usize, sum: &mut Summary) {
        if let Some((last, n)) = self.runs[input].take() {
            *sum.interfaces.entry(last.into_name()).or_default() += n;
        }
    }

    /// Ends the output; returns the path statistics (merges) and the writer.
    fn finish(mut self) -> Result<(Option<analyze::path::Stats>, W), Error> {
        if let Some(mut f) = self.feed.take() {
            let _ = f.send(true);
        }
        if let Some(e) = self.failure {
            return Err(e);
        }
        let path = match self.path {
            Some(pf) => Some(
                pf.correlator
                    .finish(self.discards, &mut { pf.rows })
                    .map_err(Error::Unlocated)?,
            ),
            None => None,
        };
        let out = match self.sink {
            Sink::Pcapng(w) => w.finish()?,
            Sink::Libpcap(w) => w.finish(),
            Sink::None(w) => w,
        };
        Ok((path, out))
    }
}

fn section_of(source_name: &str, layout: &Layout) -> pcapng::Section {
    pcapng::Section {
        source: source_name.to_string(),
        framing: layout.framing.map_or("?", |f| f.name()).to_string(),
        header_len: Some(layout.header_len),
        component: layout.component.clone(),
        system: layout.system.clone(),
        parts: Vec::new(),
    }
}

/// Trace -> packets -> pcapng/pcap, optionally sending each packet written to the
/// analysis.
fn decode<R: Read + Send, W: Write>(
    src: R,
    out: W,
    feed: Option<Feed>,
    source_name: &str,
    opts: &Options,
    discards: &DiscardTable,
    mut progress: impl FnMut(u64),
) -> Result<(Summary, W), Error> {
    let mut scanner = Scanner::open(src, &opts.scan)?;
    let section = section_of(source_name, scanner.layout());
    let mut h = Handler::new(out, &section, 1, feed, opts, discards)?;
    let mut asm = Assembler::new(opts.packet.clone());
    let mut sum = Summary::default();
    each_packet(
        &mut scanner,
        &mut asm,
        |p| {
            h.packet(p, 0, &mut sum);
            !h.stop
        },
        &mut progress,
    )?;
    h.close_input(0, &mut sum);
    let (_, out) = h.finish()?;
    sum.layout = scanner.layout().clone();
    sum.counts = asm.counts;
    sum.report = scanner.into_report();
    Ok((sum, out))
}

/// What a merge gave: one summary per input (its decoding, and the packets it
/// contributed) and the analyses of the merged stream.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    pub inputs: Vec<(String, Summary)>,
    /// Packets written to the merged output.
    pub written: u64,
    /// Packets written after a later one: displaced in their input by more than the
    /// merge's reorder window ([`REORDER`] packets).
    pub out_of_order: u64,
    pub analysis: Option<analyze::Stats>,
    /// The adapter/stack correlation (path.csv), when asked for and the first packets
    /// of the inputs hold both views (OSAENTA and packet trace).
    pub path: Option<analyze::path::Stats>,
}

impl Merged {
    /// The summary of a merge of one input (`convert --sort`).
    pub fn into_single(mut self) -> Summary {
        let mut s = match self.inputs.pop() {
            Some((_, s)) => s,
            None => Summary::default(),
        };
        s.analysis = self.analysis;
        s.out_of_order = self.out_of_order;
        s
    }

    pub fn clean(&self) -> bool {
        self.inputs.iter().all(|(_, s)| s.clean())
    }

    /// The summary printed by `convert --merge`: each input's, then the merged output's.
    pub fn render(&self, name: &str, discards: &DiscardTable) -> String {
        let mut s = String::new();
        for (n, sum) in &self.inputs {
            let mut one = sum.clone();
            one.analysis = None;
            s += &one.render(n, discards);
        }
        let _ = writeln!(
            s,
            "{name}: {} inputs merged in time order, {} packets written",
            self.inputs.len(),
            self.written
        );
        if self.out_of_order > 0 {
            let _ = writeln!(
                s,
                "  {} packets out of time order (displaced by more than {REORDER} packets in their input)",
                self.out_of_order
            );
        }
        if let Some(p) = &self.path {
            s += &p.render();
        }
        if let Some(a) = &self.analysis {
            s += &a.render();
        }
        s
    }
}

/// Packets a merge holds back to put them in time order: within one input records
/// may be slightly out of order (several processors filling trace buffers; the
/// adapter and stack clocks of a synthesized pair), and a k-way merge alone would keep
/// that disorder.
pub const REORDER: usize = 4096;
/// ... and at most this many bytes of packet data (huge reassembled packets).
pub const REORDER_BYTES: usize = 32 << 20;

/// A packet waiting in the merge's reorder heap: earliest time first, then the order
/// in which the inputs gave them.
struct Queued {
    time_ns: i64,
    seq: u64,
    input: usize,
    packet: Packet,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Queued) -> bool {
        (self.time_ns, self.seq) == (o.time_ns, o.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Queued) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Queued {
    fn cmp(&self, o: &Queued) -> std::cmp::Ordering {
        (self.time_ns, self.seq).cmp(&(o.time_ns, o.seq))
    }
}

/// A message from a merge's decoding thread.
enum Decoded {
    Layout(Layout),
    Packets(Vec<Packet>),
    /// The input failed (its error comes from its thread's join): stop the merge.
    Failed,
}

/// Decodes one input of a merge on its own thread: its layout first, then its packets
/// in batches. Returns the input's counts and report.
fn decode_input<R: Read + Send>(
    src: R,
    tx: std::sync::mpsc::SyncSender<Decoded>,
    opts: &Options,
    read: &std::sync::atomic::AtomicU64,
) -> Result<(Layout, Counts, Report), Error> {
    let r = decode_input_to(src, &tx, opts, read);
    if r.is_err() {
        let _ = tx.send(Decoded::Failed);
    }
    r
}

fn decode_input_to<R: Read + Send>(
    src: R,
    tx: &std::sync::mpsc::SyncSender<Decoded>,
    opts: &Options,
    read: &std::sync::atomic::AtomicU64,
) -> Result<(Layout, Counts, Report), Error> {
    use std::sync::atomic::Ordering;
    let mut scanner = Scanner::open(src, &opts.scan)?;
    if tx.send(Decoded::Layout(scanner.layout().clone())).is_err() {
        return Ok((
            scanner.layout().clone(),
            Counts::default(),
            Report::default(),
        ));
    }
    let mut asm = Assembler::new(opts.packet.clone());
    let mut batch = Vec::with_capacity(BATCH);
    let mut gone = false;
    let send = |batch: &mut Vec<Packet>, gone: &mut bool| {
        if !batch.is_empty() && !*gone {
            let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
            *gone = tx.send(Decoded::Packets(full)).is_err();
        }
    };
    each_packet(
        &mut scanner,
        &mut asm,
        |p| {
            batch.push(p.clone());
            if batch.len() >= BATCH {
                send(&mut batch, &mut gone);
            }
            !gone
        },
        |n| read.store(n, Ordering::Relaxed),
    )?;
    send(&mut batch, &mut gone);
    Ok((scanner.layout().clone(), asm.counts, scanner.into_report()))
}

/// The decoding loop of one input: every CTE through the assembler, each packet to
/// `f` until it returns false or the input ends; `progress` now and then, and at the
/// end, with the bytes read. The scan runs ahead on a thread of its own; its issues and
/// the assembler's end up in the scanner's report in the order one thread would have
/// found them.
fn each_packet<R: Read + Send>(
    scanner: &mut Scanner<R>,
    asm: &mut Assembler,
    mut f: impl FnMut(&Packet) -> bool,
    mut progress: impl FnMut(u64),
) -> Result<(), Error> {
    let mut go = true;
    let mut n = 0u64;
    let mut issues = Report::default();
    let scanned = scan_ahead(scanner, |found, read| {
        match found {
            Found::Issue(i) => issues.keep(i),
            Found::Cte(cte) => {
                asm.push(&cte, &mut issues, &mut |p| go = go && f(p));
                n += 1;
                if n.is_multiple_of(4096) {
                    progress(read);
                }
            }
        }
        go
    });
    if scanned.is_ok() {
        asm.finish(&mut issues, &mut |p| go = go && f(p));
    }
    scanner.report_mut().take_issues(issues);
    scanned?;
    progress(scanner.report().bytes_read);
    Ok(())
}

/// Where a merge's path.csv rows go, and the match window.
pub struct PathOutput<'a> {
    pub rows: &'a mut (dyn FnMut(&PathRow) -> std::io::Result<()> + Send),
    /// How far apart in time two sightings of one packet may be.
    pub window_ns: i64,
    /// Offset from UTC for the time columns.
    pub utc_offset: Option<i32>,
}

/// `convert --merge`: several traces (TRCOUTnn data sets, several stacks, or an
/// OSAENTA trace beside a packet trace) decoded each on a thread of its own and
/// written as one output in time order: at every step the input whose next packet is
/// earliest goes first (ties: the earlier input), through a reorder heap of
/// [`REORDER`] packets that also straightens small disorder within an input. Larger
/// displacements (a wrapped data set) stay as they are and are counted. Frame numbers
/// (CSV `no`, path.csv) are those of the merged output. With `path`, every OSAENTA
/// packet is matched with its packet-trace sighting (`analyze::path`). Memory: a few
/// batches per input and the reorder heap.
#[allow(clippy::too_many_arguments)]
pub fn merge<R: Read + Send, W: Write>(
    inputs: Vec<(String, R)>,
    out: W,
    tables: Option<(&mut (dyn RowSink + Send), &analyze::Options)>,
    path: Option<PathOutput<'_>>,
    opts: &Options,
    discards: &DiscardTable,
    mut progress: impl FnMut(u64),
) -> Result<(Merged, W), Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let names: Vec<String> = inputs.iter().map(|(n, _)| n.clone()).collect();
    let read: Vec<AtomicU64> = names.iter().map(|_| AtomicU64::new(0)).collect();
    std::thread::scope(|scope| {
        let mut rxs = Vec::new();
        let mut workers = Vec::new();
        for ((name, src), read) in inputs.into_iter().zip(&read) {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Decoded>(BATCHES_IN_FLIGHT);
            rxs.push(rx);
            workers.push(
                scope.spawn(move || decode_input(src, tx, opts, read).map_err(|e| (name, e))),
            );
        }
        let (feed, analysis) = match tables {
            Some((sink, aopts)) => {
                let (tx, rx) = feed();
                let worker = scope.spawn(move || analyse(sink, aopts, discards, rx));
                (Some(tx), Some(worker))
            }
            None => (None, None),
        };
        // The layouts first (a failed input sends none: its error comes from its join).
        let mut parts = Vec::new();
        let mut systems: Vec<Option<String>> = Vec::new();
        for (rx, name) in rxs.iter().zip(&names) {
            if let Ok(Decoded::Layout(l)) = rx.recv() {
                parts.push(section_of(name, &l));
                systems.push(l.system.clone());
            }
        }
        type Run<W> = (Vec<Summary>, Option<analyze::path::Stats>, W, u64);
        let merged_run = (|| -> Result<Run<W>, Error> {
            if parts.len() < names.len() {
                // An input could not be opened: its thread's error says why.
                return Err(Error::Unlocated(std::io::Error::other("input failed")));
            }
            // One input (`convert --sort`): its own section header.
            let section = match <[pcapng::Section; 1]>::try_from(parts) {
                Ok([one]) => one,
                Err(parts) => pcapng::Section {
                    source: names.join(", "),
                    framing: String::new(),
                    header_len: None,
                    component: None,
                    system: None,
                    parts,
                },
            };
            let mut h = Handler::new(out, &section, names.len(), feed, opts, discards)?;
            // Traces of several systems (as their writer headers name them): each
            // system's packets are a view of their own (sessions kept apart) and their
            // interface names say whose they are. An input that names no system joins
            // the first one named.
            let mut distinct: Vec<&String> = Vec::new();
            for y in systems.iter().flatten() {
                if !distinct.contains(&y) {
                    distinct.push(y);
                }
            }
            if distinct.len() > 127 {
                return Err(Error::Usage(format!(
                    "{} systems in one merge: at most 127",
                    distinct.len()
                )));
            }
            let prefixes: Vec<Option<String>> = if distinct.len() > 1 {
                for (i, y) in systems.iter().enumerate() {
                    let n = y
                        .as_ref()
                        .and_then(|y| distinct.iter().position(|d| *d == y))
                        .unwrap_or(0);
                    h.systems[i] = n as u8;
                }
                h.systems
                    .iter()
                    .map(|&n| Some(format!("{}/", distinct[usize::from(n)])))
                    .collect()
            } else {
                vec![None; names.len()]
            };
            let mut sums = vec![Summary::default(); names.len()];
            let mut queues: Vec<std::collections::VecDeque<Packet>> =
                names.iter().map(|_| Default::default()).collect();
            let mut open: Vec<bool> = vec![true; names.len()];
            // The first batch of every input says which views there are: path.csv
            // only when an OSAENTA trace meets a packet trace.
            for (i, rx) in rxs.iter().enumerate() {
                match rx.recv() {
                    Ok(Decoded::Packets(b)) => queues[i].extend(b),
                    Ok(Decoded::Failed) => {
                        open[i] = false;
                        h.stop = true;
                    }
                    Ok(Decoded::Layout(_)) | Err(_) => open[i] = false,
                }
            }
            // Per system: are both its views there?
            let mut views = [[false; 2]; 128];
            for (i, q) in queues.iter().enumerate() {
                let y = usize::from(h.systems[i]);
                for p in q {
                    match p.format.0 {
                        7 => views[y][0] = true,
                        4 | 6 => views[y][1] = true,
                        _ => {}
                    }
                }
            }
            let paired: Vec<bool> = views.iter().map(|v| v[0] && v[1]).collect();
            if let Some(p) = path.filter(|_| paired.contains(&true)) {
                h.path = Some(PathFeed {
                    correlator: analyze::path::Correlator::new(p.window_ns, p.utc_offset),
                    rows: p.rows,
                    paired,
                });
            }
            let mut steps = 0u64;
            let mut reorder = std::collections::BinaryHeap::<Reverse<Queued>>::new();
            let mut last_ns = i64::MIN;
            let mut out_of_order = 0u64;
            // Bytes of packet data in the heap.
            let mut held = 0usize;
            let mut emit = |mut q: Queued, h: &mut Handler<'_, W>, sums: &mut [Summary]| {
                if q.time_ns < last_ns {
                    out_of_order += 1;
                }
                if let Some(prefix) = &prefixes[q.input] {
                    q.packet.interface.insert_str(0, prefix);
                }
                last_ns = last_ns.max(q.time_ns);
                h.packet(&q.packet, q.input, &mut sums[q.input]);
            };
            loop {
                // Refill empty queues; an input whose channel closed is done.
                for i in 0..queues.len() {
                    while open[i] && queues[i].is_empty() {
                        match rxs[i].recv() {
                            Ok(Decoded::Packets(b)) => queues[i].extend(b),
                            Ok(Decoded::Layout(_)) => {}
                            Ok(Decoded::Failed) => {
                                open[i] = false;
                                h.stop = true;
                            }
                            Err(_) => open[i] = false,
                        }
                    }
                }
                let next = queues
                    .iter()
                    .enumerate()
                    .filter_map(|(i, q)| q.front().map(|p| (p.time_ns, i)))
                    .min();
                let Some((_, i)) = next else { break };
                if h.stop {
                    break;
                }
                if let Some(p) = queues[i].pop_front() {
                    let queued_len = p.data.len();
                    reorder.push(Reverse(Queued {
                        time_ns: p.time_ns,
                        seq: steps,
                        input: i,
                        packet: p,
                    }));
                    held += queued_len;
                    while reorder.len() > REORDER || held > REORDER_BYTES {
                        let Some(Reverse(q)) = reorder.pop() else {
                            break;
                        };
                        held = held.saturating_sub(q.packet.data.len());
                        emit(q, &mut h, &mut sums);
                    }
                }
                steps += 1;
                if steps.is_multiple_of(4096) {
                    progress(read.iter().map(|r| r.load(Ordering::Relaxed)).sum());
                }
            }
            while let Some(Reverse(q)) = reorder.pop() {
                if h.stop {
                    break;
                }
                emit(q, &mut h, &mut sums);
            }
            for (i, s) in sums.iter_mut().enumerate() {
                h.close_input(i, s);
            }
            let (path, out) = h.finish()?;
            Ok((sums, path, out, out_of_order))
        })();
        // Unblock the decoders (a failure above leaves them waiting to send).
        drop(rxs);
        let mut decoded = Vec::new();
        let mut first_error = None;
        for w in workers {
            match w.join() {
                Ok(Ok(x)) => decoded.push(x),
                Ok(Err((name, e))) => {
                    first_error.get_or_insert(Error::Input(name, Box::new(e)));
                }
                Err(_) => {
                    first_error.get_or_insert(Error::Unlocated(std::io::Error::other(
                        "decoding thread panicked",
                    )));
                }
            }
        }
        let stats = analysis.map(|w| {
            w.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("analysis thread panicked")))
                .map_err(Error::Unlocated)
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some(Err(e)) = stats {
            return Err(e);
        }
        let (sums, path, out, out_of_order) = merged_run?;
        progress(read.iter().map(|r| r.load(Ordering::Relaxed)).sum());
        let mut m = Merged {
            path,
            out_of_order,
            analysis: stats.and_then(Result::ok),
            ..Merged::default()
        };
        for ((name, mut sum), (layout, counts, report)) in names.into_iter().zip(sums).zip(decoded)
        {
            m.written += sum.written;
            sum.layout = layout;
            sum.counts = counts;
            sum.report = report;
            m.inputs.push((name, sum));
        }
        Ok((m, out))
    })
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
            note: "",
            socket: None,
            system: 0,
            view: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot that carried a jumbo packet does not keep its memory for small ones.
    #[test]
    fn batch_buffers_shrink_after_a_jumbo_packet() {
        let mut buf = Vec::new();
        refill(&mut buf, &[7u8; 60_000]);
        assert_eq!(buf.len(), 60_000);
        refill(&mut buf, &[1u8; 60]);
        assert_eq!(buf, vec![1u8; 60]);
        assert!(buf.capacity() <= 4096, "{}", buf.capacity());
        // Sizes close to each other keep the buffer (no allocation per packet).
        refill(&mut buf, &[2u8; 1500]);
        let cap = buf.capacity();
        refill(&mut buf, &[3u8; 1400]);
        assert_eq!((buf.len(), buf.capacity()), (1400, cap));
    }
}
