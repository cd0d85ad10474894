//! The `zctrace` command: parses arguments, runs the library over files (in parallel),
//! prints summaries and maps the results to exit codes 0 / 1 / 2.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use zctrace::convert::{self, Output};
use zctrace::net::{self, Filter, Prefix};
use zctrace::output::dump;
use zctrace::packet::{self, TimeSource};
use zctrace::synth;
use zctrace::trace::ebcdic::CodePage;
use zctrace::trace::tod::{parse_iso8601, parse_offset};
use zctrace::trace::{self, DiscardTable, Framing};

#[derive(Parser)]
#[command(
    name = "zctrace",
    version,
    about = "z/OS TCP/IP component traces (SYSTCPDA, SYSTCPOT) to pcapng"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Convert traces to pcapng (or classic pcap) and print a summary per file.
    Convert {
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(short, long)]
        out: PathBuf,
        /// Write classic pcap (Ethernet; raw IP gets a synthetic header) instead of pcapng.
        #[arg(long)]
        libpcap: bool,
        /// No progress bar and no per-file summary (problems still go to stderr).
        #[arg(short, long)]
        quiet: bool,
        /// Do not write the CSV tables (packets, sessions, ftp, tls, exceptions).
        #[arg(long = "no-csv")]
        no_csv: bool,
        /// Times in the CSV tables at this offset from UTC (+01:00, -0500) instead of UTC.
        #[arg(long, value_parser = parse_offset, allow_hyphen_values = true)]
        localtime: Option<i32>,
        /// Combine all inputs into one time-ordered output (TRCOUTnn data sets, several
        /// stacks, or an OSAENTA trace with the packet trace of the same traffic, which
        /// also gives NAME.path.csv).
        #[arg(long)]
        merge: bool,
        /// Write each output in time order (through a reorder window of 4096 packets;
        /// packets displaced further are counted). --merge always does.
        #[arg(long)]
        sort: bool,
        /// Name of the merged outputs (NAME.pcapng, NAME.*.csv).
        #[arg(long, default_value = "merged", requires = "merge")]
        name: String,
        /// --merge: how far apart (ms) the adapter's and the stack's sightings of one
        /// packet may be.
        #[arg(long = "path-window-ms", default_value_t = 1000, requires = "merge")]
        path_window_ms: u64,
        #[command(flatten)]
        decode: DecodeArgs,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Write only the CSV tables, for z/OS traces and for ordinary pcap/pcapng captures.
    Analyze {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(short, long)]
        out: PathBuf,
        /// For captures: the z/OS side's addresses (repeatable). Default: the source of
        /// the first packet.
        #[arg(long)]
        local: Vec<Prefix>,
        /// Times in the CSV tables at this offset from UTC (+01:00, -0500) instead of UTC.
        #[arg(long, value_parser = parse_offset, allow_hyphen_values = true)]
        localtime: Option<i32>,
        /// No progress bar and no per-file summary (problems still go to stderr).
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        decode: DecodeArgs,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Decode traces and print what they hold: framing, components, interfaces, times, counts.
    Info {
        #[arg(required = true)]
        traces: Vec<PathBuf>,
        #[command(flatten)]
        decode: DecodeArgs,
    },
    /// Print every trace record decoded, with hex and EBCDIC/ASCII (like IPCS FORMAT).
    Dump {
        trace: PathBuf,
        /// Stop after N records.
        #[arg(long)]
        limit: Option<u64>,
        /// Only records of this format id (repeatable): 4 packet, 5 data, 6 EE, 7 OSAENTA, 8 SMC.
        #[arg(long = "format-id", value_parser = convert::parse_format_id)]
        format_ids: Vec<trace::FormatId>,
        #[command(flatten)]
        decode: DecodeArgs,
    },
    /// Wrap the packets of a pcap/pcapng capture into a z/OS CTRACE data set (for tests and samples).
    Synth(SynthArgs),
}

#[derive(Args, Clone)]
struct DecodeArgs {
    /// Framing of the download: raw, rdw or bdw (default: detected).
    #[arg(long)]
    framing: Option<Framing>,
    /// Writer header length in bytes at the start of each record (default: learned).
    #[arg(long = "record-header")]
    record_header: Option<usize>,
    /// EBCDIC code page for names: 037 (default), 1047, 500, 1140, 273.
    #[arg(long = "code-page", default_value = "037")]
    code_page: CodePage,
    /// Packet time: capture (PTH_Time, default) or buffer (CTE buffer time).
    #[arg(long, default_value = "capture", value_parser = parse_time_source)]
    time: TimeSource,
    /// Leap seconds included in the site's TOD clock (27 since 2017 where configured).
    #[arg(long = "leap-seconds", default_value_t = 0)]
    leap_seconds: i64,
    /// Extra discard code names: CSV with code,name,meaning (overrides built-in rows).
    #[arg(long = "discard-codes")]
    discard_codes: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct FilterArgs {
    /// Only packets at or after this UTC time (2024-01-31T10:00:00[.fraction]Z).
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// Only packets at or before this UTC time.
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Only packets from or to this address or prefix (repeatable).
    #[arg(long)]
    host: Vec<Prefix>,
    /// Only packets from or to this TCP/UDP port (repeatable).
    #[arg(long)]
    port: Vec<u16>,
    /// Only packets of this interface name (repeatable).
    #[arg(long)]
    interface: Vec<String>,
    /// Only this IP protocol: tcp, udp, icmp, icmpv6 or a number (repeatable).
    #[arg(long, value_parser = net::parse_protocol)]
    protocol: Vec<u8>,
    /// Only records of this format id (repeatable).
    #[arg(long = "format-id", value_parser = convert::parse_format_id)]
    format_id: Vec<trace::FormatId>,
    /// Only packets the stack or OSA discarded.
    #[arg(long = "discarded-only")]
    discarded_only: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Input capture (pcap or pcapng).
    capture: PathBuf,
    /// Output trace file.
    #[arg(short, long)]
    out: PathBuf,
    /// raw, rdw or bdw.
    #[arg(long, default_value = "rdw")]
    framing: Framing,
    /// Writer header bytes at the start of each record.
    #[arg(long = "record-header", default_value_t = 64)]
    record_header: usize,
    /// Logical record length, header included, descriptors excluded.
    #[arg(long = "record-length", default_value_t = 4096)]
    record_length: usize,
    /// Let CTEs continue across record boundaries (split buffers).
    #[arg(long)]
    straddle: bool,
    /// Trace buffer size when straddling (default 4 records' payload).
    #[arg(long = "buffer-length")]
    buffer_length: Option<usize>,
    /// Largest CTE; longer packets are segmented.
    #[arg(long = "max-cte", default_value_t = 65534)]
    max_cte: usize,
    /// Trace at most N bytes of each packet (never below its IP and transport headers).
    #[arg(long)]
    abbrev: Option<usize>,
    /// Mark packet N (1-based) discarded with CODE: N=CODE (repeatable).
    #[arg(long, value_parser = parse_discard)]
    discard: Vec<(u64, u16)>,
    /// Mark every Nth packet discarded, cycling through sample codes.
    #[arg(long = "discard-every")]
    discard_every: Option<u64>,
    /// The z/OS host's own addresses (decide direction); default: source of the first packet.
    #[arg(long = "zos-host")]
    hosts: Vec<IpAddr>,
    /// Interface name written into the records.
    #[arg(long)]
    interface: Option<String>,
    /// Write OSAENTA records (format 7, SYSTCPOT, Ethernet frames).
    #[arg(long)]
    osaenta: bool,
    /// Format id for packet records: 4 (packet trace), 6 (Enterprise Extender) or 8 (SMC,
    /// the packet's bytes as an opaque record).
    #[arg(long = "format-id", default_value_t = 4)]
    format_id: u32,
    /// PTHDR length (92 today; shorter headers leave out the later fields).
    #[arg(long = "pth-len", default_value_t = 92)]
    pth_len: u16,
    /// System name for the writer header.
    #[arg(long, default_value = "ZCTRSYS1")]
    system: String,
    /// Leap seconds to add into the TOD values.
    #[arg(long = "leap-seconds", default_value_t = 0)]
    leap_seconds: i64,
    /// Write records as VBS segments of at most N bytes (RDW/BDW).
    #[arg(long)]
    spanned: Option<usize>,
    /// BDW block size.
    #[arg(long = "block-length", default_value_t = 32760)]
    block_length: usize,
    /// Write the capture's packets N times (later each time).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// Repeat until the trace has at least this many bytes (for benchmarks); accepts K, M, G suffixes.
    #[arg(long = "target-size", value_parser = parse_size)]
    target_size: Option<u64>,
    /// Give every repetition new connections (ephemeral ports moved), like a busy stack.
    #[arg(long = "vary-flows")]
    vary_flows: bool,
    /// Write a data trace (format id 5): per TCP/UDP socket a start record, the payload
    /// of each packet, an end record.
    #[arg(long = "data-trace")]
    data_trace: bool,
    /// Job name of the data-trace records.
    #[arg(long, default_value = "FTPD1")]
    job: String,
    /// Also write an OSAENTA trace of the same packets to this file (the adapter's view
    /// beside the stack's, for `convert --merge`).
    #[arg(long)]
    pair: Option<PathBuf>,
    /// --pair: adapter to stack latency in ns (the OSAENTA record is earlier inbound,
    /// later outbound).
    #[arg(long = "osa-delay-ns", default_value_t = 20_000, requires = "pair")]
    osa_delay_ns: i64,
    /// --pair: capture frame N is discarded by the adapter with OSA code CODE: N=CODE
    /// (repeatable).
    #[arg(long = "drop-osa", value_parser = parse_discard, requires = "pair")]
    drop_osa: Vec<(u64, u16)>,
    /// --pair: capture frame N is discarded by the stack with CODE: N=CODE (repeatable).
    #[arg(long = "drop-stack", value_parser = parse_discard, requires = "pair")]
    drop_stack: Vec<(u64, u16)>,
}

fn parse_time_source(s: &str) -> Result<TimeSource, String> {
    match s {
        "capture" => Ok(TimeSource::Capture),
        "buffer" => Ok(TimeSource::Buffer),
        _ => Err("use capture or buffer".into()),
    }
}

fn parse_time(s: &str) -> Result<i64, String> {
    parse_iso8601(s).ok_or_else(|| format!("{s:?} is not a time like 2024-01-31T10:00:00.5Z"))
}

fn parse_discard(s: &str) -> Result<(u64, u16), String> {
    let (n, c) = s.split_once('=').ok_or("use N=CODE, e.g. 5=4114")?;
    Ok((
        n.parse()
            .map_err(|_| format!("{n:?} is not a packet number"))?,
        c.parse()
            .map_err(|_| format!("{c:?} is not a discard code 0-65535"))?,
    ))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mul)
        .map_err(|_| format!("{s:?} is not a size like 1G"))
}

impl DecodeArgs {
    fn discards(&self) -> Result<DiscardTable> {
        let mut t = DiscardTable::default();
        if let Some(p) = &self.discard_codes {
            let f = File::open(p).with_context(|| format!("{}: cannot open", p.display()))?;
            t.extend_from(f)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        }
        Ok(t)
    }

    fn options(&self, filter: &FilterArgs, output: Output) -> convert::Options {
        convert::Options {
            scan: trace::Options {
                framing: self.framing,
                header_len: self.record_header,
            },
            packet: packet::Options {
                time: self.time,
                leap_seconds: self.leap_seconds,
                code_page: self.code_page,
            },
            filter: Filter {
                from_ns: filter.from,
                to_ns: filter.to,
                hosts: filter.host.clone(),
                ports: filter.port.clone(),
                interfaces: filter.interface.clone(),
                protocols: filter.protocol.clone(),
                formats: filter.format_id.clone(),
                discarded_only: filter.discarded_only,
            },
            output,
        }
    }
}

/// Exit status of a batch: 2 if any input failed, else 1 if any was not clean.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Clean = 0,
    Problems = 1,
    Fatal = 2,
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(s) => ExitCode::from(s as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zctrace: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<Status> {
    match cli.cmd {
        Cmd::Convert {
            traces,
            out,
            libpcap,
            quiet,
            no_csv,
            localtime,
            merge,
            sort,
            name,
            path_window_ms,
            decode,
            filter,
        } => {
            let c = ConvertArgs {
                sort,
                out,
                libpcap,
                csv: !no_csv,
                localtime,
                quiet,
            };
            if merge {
                let window =
                    i64::try_from(path_window_ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
                convert_merged(&traces, &c, &name, window, &decode, &filter)
            } else {
                convert_files(&traces, &c, &decode, &filter)
            }
        }
        Cmd::Analyze {
            inputs,
            out,
            local,
            localtime,
            quiet,
            decode,
            filter,
        } => {
            let a = zctrace::analyze::Options {
                local,
                utc_offset: localtime,
            };
            analyze_files(&inputs, &out, &a, quiet, &decode, &filter)
        }
        Cmd::Info { traces, decode } => info_files(&traces, &decode),
        Cmd::Dump {
            trace,
            limit,
            format_ids,
            decode,
        } => {
            let discards = decode.discards()?;
            let f =
                File::open(&trace).with_context(|| format!("{}: cannot open", trace.display()))?;
            let o = dump::Options {
                scan: trace::Options {
                    framing: decode.framing,
                    header_len: decode.record_header,
                },
                code_page: decode.code_page,
                leap_seconds: decode.leap_seconds,
                limit,
                formats: format_ids,
            };
            let stdout = io::stdout().lock();
            let mut w = BufWriter::with_capacity(1 << 16, stdout);
            let report = dump::dump(f, &mut w, &o, &discards)?;
            w.flush()?;
            Ok(if report.clean() {
                Status::Clean
            } else {
                Status::Problems
            })
        }
        Cmd::Synth(a) => synth_file(a),
    }
}

/// Output file names: NAME.pcapng per input; a repeated name gets -2, -3, ...
fn output_names(traces: &[PathBuf], out: &Path, ext: &str) -> Vec<PathBuf> {
    let mut seen = std::collections::HashMap::<String, u32>::new();
    traces
        .iter()
        .map(|t| {
            let name = t
                .file_name()
                .map_or_else(|| "trace".to_string(), |n| n.to_string_lossy().into_owned());
            let k = seen.entry(name.clone()).or_insert(0);
            *k += 1;
            let name = if *k == 1 { name } else { format!("{name}-{k}") };
            out.join(format!("{name}.{ext}"))
        })
        .collect()
}

/// An output file: written from a thread of its own (see `output::background`).
type Out = zctrace::output::background::Writer<zctrace::output::file::Reserved>;

/// Output files written under temporary names and renamed together when all is done.
struct Outputs {
    tmps: Vec<PathBuf>,
    dests: Vec<PathBuf>,
}

impl Outputs {
    fn create(dests: Vec<PathBuf>) -> Result<(Outputs, Vec<Out>)> {
        let mut o = Outputs {
            tmps: Vec::new(),
            dests,
        };
        let mut writers = Vec::new();
        for d in &o.dests {
            let tmp = d.with_file_name(format!(
                ".{}.{}.tmp",
                d.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                std::process::id()
            ));
            let w = match File::create(&tmp) {
                Ok(w) => w,
                Err(e) => {
                    o.abort();
                    return Err(
                        anyhow::Error::new(e).context(format!("{}: cannot create", tmp.display()))
                    );
                }
            };
            o.tmps.push(tmp);
            writers.push(Out::new(zctrace::output::file::Reserved::new(w)));
        }
        Ok((o, writers))
    }

    fn commit(self, writers: Vec<Out>) -> Result<()> {
        for (w, t) in writers.into_iter().zip(&self.tmps) {
            if let Err(e) = w.finish() {
                self.abort();
                return Err(anyhow::Error::new(e).context(format!("{}: cannot write", t.display())));
            }
        }
        for (t, d) in self.tmps.iter().zip(&self.dests) {
            if let Err(e) = std::fs::rename(t, d) {
                self.abort();
                return Err(anyhow::Error::new(e).context(format!(
                    "{}: cannot rename to {}",
                    t.display(),
                    d.display()
                )));
            }
        }
        Ok(())
    }

    /// Leaves the last output out (its temporary file removed).
    fn forget_last(&mut self) {
        if let Some(t) = self.tmps.pop() {
            let _ = std::fs::remove_file(t);
        }
        self.dests.pop();
    }

    fn abort(&self) {
        for t in &self.tmps {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// The CSV file names for an output whose main file is `dest` (NAME.pcapng): NAME.packets.csv ...
fn csv_names(dest: &Path) -> Vec<PathBuf> {
    zctrace::output::csv::NAMES
        .iter()
        .map(|n| csv_name(dest, n))
        .collect()
}

/// NAME.TABLE.csv beside `dest` (NAME.pcapng).
fn csv_name(dest: &Path, table: &str) -> PathBuf {
    let mut p = dest.with_extension("").into_os_string();
    p.push(format!(".{table}.csv"));
    PathBuf::from(p)
}

/// The CSV tables, written from a thread of their own (see `output::csv::Spawned`).
fn csv_tables(writers: Vec<Out>) -> Result<zctrace::output::csv::Spawned<Out>> {
    let ws: [Out; 6] = match writers.try_into() {
        Ok(ws) => ws,
        Err(_) => bail!("internal: one writer per CSV table expected"),
    };
    Ok(zctrace::output::csv::Tables::new(ws)?.spawn())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[allow(clippy::too_many_arguments)]
fn convert_one(
    trace: &Path,
    dest: &Path,
    csv: bool,
    sort: bool,
    analysis: &zctrace::analyze::Options,
    opts: &convert::Options,
    discards: &DiscardTable,
    bar: &ProgressBar,
) -> Result<convert::Summary> {
    let mut dests = vec![dest.to_path_buf()];
    if csv {
        dests.extend(csv_names(dest));
    }
    if dests.iter().any(|d| same_file(trace, d)) {
        bail!("{}: output would overwrite the input", trace.display());
    }
    let f = File::open(trace).with_context(|| format!("{}: cannot open", trace.display()))?;
    if let Ok(m) = f.metadata() {
        bar.set_length(m.len());
    }
    let (outs, mut writers) = Outputs::create(dests)?;
    let main = writers.remove(0);
    let name = trace.display().to_string();
    let mut tables = if csv {
        match csv_tables(std::mem::take(&mut writers)) {
            Ok(t) => Some(t),
            Err(e) => {
                outs.abort();
                return Err(e);
            }
        }
    } else {
        None
    };
    let tables_in = tables.as_mut().map(|t| {
        (
            t as &mut (dyn zctrace::analyze::rows::Sink + Send),
            analysis,
        )
    });
    let result = if sort {
        // A merge of one input: its reorder heap puts the packets in time order.
        convert::merge(
            vec![(name.clone(), f)],
            main,
            tables_in,
            None,
            opts,
            discards,
            |n| bar.set_position(n),
        )
        .map(|(m, w)| (m.into_single(), w))
    } else {
        convert::convert_analyzed(f, main, tables_in, &name, opts, discards, |n| {
            bar.set_position(n)
        })
    };
    let (summary, main) = match result {
        Ok(x) => x,
        Err(e) => {
            outs.abort();
            return Err(anyhow::Error::new(e).context(name));
        }
    };
    let mut all = vec![main];
    if let Some(t) = tables {
        match t.finish() {
            Ok(ws) => all.extend(ws),
            Err(e) => {
                outs.abort();
                return Err(anyhow::Error::new(e).context(name));
            }
        }
    }
    outs.commit(all)?;
    bar.finish_and_clear();
    Ok(summary)
}

/// `analyze` on one input: a z/OS trace (decoded as by `convert`, no pcapng) or an
/// ordinary capture.
fn analyze_one(
    input: &Path,
    dest: &Path,
    analysis: &zctrace::analyze::Options,
    opts: &convert::Options,
    discards: &DiscardTable,
) -> Result<convert::Summary> {
    let dests = csv_names(dest);
    if dests.iter().any(|d| same_file(input, d)) {
        bail!("{}: output would overwrite the input", input.display());
    }
    let mut f = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
    let mut magic = [0u8; 4];
    let n = io::Read::read(&mut f, &mut magic).unwrap_or(0);
    let src = io::Read::chain(io::Cursor::new(magic[..n].to_vec()), f);
    let (outs, writers) = Outputs::create(dests)?;
    let mut tables = match csv_tables(writers) {
        Ok(t) => t,
        Err(e) => {
            outs.abort();
            return Err(e);
        }
    };
    let name = input.display().to_string();
    let result = if convert::is_capture(&magic[..n]) {
        convert::analyze_capture(src, &mut tables, analysis, discards).map(|(c, stats)| {
            let mut s = convert::Summary {
                written: c.packets,
                analysis: Some(stats),
                ..Default::default()
            };
            s.capture = Some(c);
            s
        })
    } else {
        convert::convert_analyzed(
            src,
            io::sink(),
            Some((&mut tables, analysis)),
            &name,
            opts,
            discards,
            |_| {},
        )
        .map(|(s, _)| s)
    };
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            outs.abort();
            return Err(anyhow::Error::new(e).context(name));
        }
    };
    match tables.finish() {
        Ok(ws) => outs.commit(ws.into())?,
        Err(e) => {
            outs.abort();
            return Err(anyhow::Error::new(e).context(name));
        }
    }
    Ok(summary)
}

fn analyze_files(
    inputs: &[PathBuf],
    out: &Path,
    analysis: &zctrace::analyze::Options,
    quiet: bool,
    decode: &DecodeArgs,
    filter: &FilterArgs,
) -> Result<Status> {
    let discards = decode.discards()?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create directory", out.display()))?;
    let opts = decode.options(filter, Output::None);
    let dests = output_names(inputs, out, "csv");
    let results: Vec<Result<convert::Summary>> = inputs
        .par_iter()
        .zip(dests.par_iter())
        .map(|(i, d)| analyze_one(i, d, analysis, &opts, &discards))
        .collect();
    let shown: Vec<PathBuf> = dests
        .iter()
        .map(|d| {
            csv_names(d)[0].with_file_name(
                d.with_extension("")
                    .file_name()
                    .map_or_else(String::new, |n| format!("{}.*.csv", n.to_string_lossy())),
            )
        })
        .collect();
    report_batch(inputs, &results, &shown, quiet, &discards)
}

/// The `convert` options shared by separate and merged conversion.
struct ConvertArgs {
    sort: bool,
    out: PathBuf,
    libpcap: bool,
    csv: bool,
    localtime: Option<i32>,
    quiet: bool,
}

fn progress_bars(quiet: bool) -> (MultiProgress, ProgressStyle) {
    let multi = MultiProgress::with_draw_target(if quiet || !io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style =
        ProgressStyle::with_template("{prefix:>20} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    (multi, style)
}

fn convert_files(
    traces: &[PathBuf],
    c: &ConvertArgs,
    decode: &DecodeArgs,
    filter: &FilterArgs,
) -> Result<Status> {
    let ConvertArgs {
        sort,
        out,
        libpcap,
        csv,
        localtime,
        quiet,
    } = c;
    let (out, libpcap, csv, quiet, sort) = (out.as_path(), *libpcap, *csv, *quiet, *sort);
    let localtime = *localtime;
    let discards = decode.discards()?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create directory", out.display()))?;
    let output = if libpcap {
        Output::Libpcap
    } else {
        Output::Pcapng
    };
    let opts = decode.options(filter, output);
    let analysis = zctrace::analyze::Options {
        local: Vec::new(),
        utc_offset: localtime,
    };
    let dests = output_names(traces, out, if libpcap { "pcap" } else { "pcapng" });
    let (multi, style) = progress_bars(quiet);
    let results: Vec<Result<convert::Summary>> = traces
        .par_iter()
        .zip(dests.par_iter())
        .map(|(t, d)| {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(
                t.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            );
            convert_one(t, d, csv, sort, &analysis, &opts, &discards, &bar)
        })
        .collect();
    report_batch(traces, &results, &dests, quiet, &discards)
}

/// `convert --merge`: all inputs into one output NAME.pcapng (or .pcap) with its CSV
/// tables and NAME.path.csv.
fn convert_merged(
    traces: &[PathBuf],
    c: &ConvertArgs,
    name: &str,
    window_ns: i64,
    decode: &DecodeArgs,
    filter: &FilterArgs,
) -> Result<Status> {
    let discards = decode.discards()?;
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        bail!("--name {name:?}: give a file name without directories, not starting with '.'");
    }
    for (i, a) in traces.iter().enumerate() {
        if traces[..i].iter().any(|b| same_file(a, b)) {
            bail!(
                "{}: given twice; a merge would hold every packet twice",
                a.display()
            );
        }
    }
    std::fs::create_dir_all(&c.out)
        .with_context(|| format!("{}: cannot create directory", c.out.display()))?;
    let opts = decode.options(
        filter,
        if c.libpcap {
            Output::Libpcap
        } else {
            Output::Pcapng
        },
    );
    let analysis = zctrace::analyze::Options {
        local: Vec::new(),
        utc_offset: c.localtime,
    };
    let dest = c.out.join(format!(
        "{name}.{}",
        if c.libpcap { "pcap" } else { "pcapng" }
    ));
    let mut dests = vec![dest.clone()];
    if c.csv {
        dests.extend(csv_names(&dest));
        dests.push(csv_name(&dest, zctrace::output::csv::PATH_NAME));
    }
    for t in traces {
        if dests.iter().any(|d| same_file(t, d)) {
            bail!("{}: output would overwrite the input", t.display());
        }
    }
    let mut inputs = Vec::new();
    let mut total = 0u64;
    for t in traces {
        let f = File::open(t).with_context(|| format!("{}: cannot open", t.display()))?;
        total += f.metadata().map_or(0, |m| m.len());
        inputs.push((t.display().to_string(), f));
    }
    let (multi, style) = progress_bars(c.quiet);
    let bar = multi.add(ProgressBar::new(total).with_style(style));
    bar.set_prefix(name.to_string());
    let (mut outs, mut writers) = Outputs::create(dests)?;
    let main = writers.remove(0);
    let mut path_table = None;
    let mut tables = None;
    if c.csv {
        let path_w = writers.pop();
        let made = csv_tables(std::mem::take(&mut writers)).and_then(|t| {
            let p = path_w.ok_or_else(|| anyhow::anyhow!("internal: no path.csv writer"))?;
            Ok((t, zctrace::output::csv::PathTable::new(p)?))
        });
        match made {
            Ok((t, p)) => {
                tables = Some(t);
                path_table = Some(p);
            }
            Err(e) => {
                outs.abort();
                return Err(e);
            }
        }
    }
    let mut rows = |r: &zctrace::analyze::path::PathRow| match &mut path_table {
        Some(t) => t.row(r),
        None => Ok(()),
    };
    let result = convert::merge(
        inputs,
        main,
        tables.as_mut().map(|t| {
            (
                t as &mut (dyn zctrace::analyze::rows::Sink + Send),
                &analysis,
            )
        }),
        c.csv.then_some(convert::PathOutput {
            rows: &mut rows,
            window_ns,
            utc_offset: c.localtime,
        }),
        &opts,
        &discards,
        |n| bar.set_position(n),
    );
    let (merged, main) = match result {
        Ok(x) => x,
        Err(e) => {
            outs.abort();
            return Err(anyhow::Error::new(e));
        }
    };
    let mut all = vec![main];
    if let Some(t) = tables {
        let finished = t.finish().map_err(anyhow::Error::new).and_then(|ws| {
            let p = path_table
                .take()
                .ok_or_else(|| anyhow::anyhow!("internal: no path table"))?;
            Ok((ws, p.finish()?))
        });
        match finished {
            Ok((ws, p)) => {
                all.extend(ws);
                if merged.path.is_some() {
                    all.push(p);
                } else {
                    // No adapter and stack views to relate: no path.csv.
                    let _ = p.finish();
                    outs.forget_last();
                }
            }
            Err(e) => {
                outs.abort();
                return Err(e);
            }
        }
    }
    outs.commit(all)?;
    bar.finish_and_clear();
    if !c.quiet {
        let mut stdout = io::stdout().lock();
        write!(stdout, "{}", merged.render(name, &discards))?;
        writeln!(stdout, "  wrote {}", dest.display())?;
        stdout.flush()?;
    } else {
        for (n, s) in merged.inputs.iter().filter(|(_, s)| !s.clean()) {
            eprintln!(
                "{n}: {} problem(s), {} bytes skipped (run without --quiet for details)",
                s.report.losses, s.report.bytes_skipped
            );
        }
    }
    Ok(if merged.clean() {
        Status::Clean
    } else {
        Status::Problems
    })
}

fn report_batch(
    traces: &[PathBuf],
    results: &[Result<convert::Summary>],
    dests: &[PathBuf],
    quiet: bool,
    discards: &DiscardTable,
) -> Result<Status> {
    let mut status = Status::Clean;
    let mut stdout = io::stdout().lock();
    for (i, (t, r)) in traces.iter().zip(results).enumerate() {
        match r {
            Ok(s) => {
                if !s.clean() {
                    status = status.max(Status::Problems);
                }
                if !quiet {
                    write!(stdout, "{}", s.render(&t.display().to_string(), discards))?;
                    if let Some(d) = dests.get(i) {
                        writeln!(stdout, "  wrote {}", d.display())?;
                    }
                } else if !s.clean() {
                    eprintln!(
                        "{}: {} problem(s), {} bytes skipped (run without --quiet for details)",
                        t.display(),
                        s.report.losses,
                        s.report.bytes_skipped
                    );
                }
            }
            Err(e) => {
                status = Status::Fatal;
                eprintln!("zctrace: {e:#}");
            }
        }
    }
    stdout.flush()?;
    Ok(status)
}

fn info_files(traces: &[PathBuf], decode: &DecodeArgs) -> Result<Status> {
    let discards = decode.discards()?;
    let opts = decode.options(&FilterArgs::default(), Output::None);
    let results: Vec<Result<convert::Summary>> = traces
        .par_iter()
        .map(|t| {
            let f = File::open(t).with_context(|| format!("{}: cannot open", t.display()))?;
            let (s, _) = convert::convert(
                f,
                io::sink(),
                &t.display().to_string(),
                &opts,
                &discards,
                |_| {},
            )
            .with_context(|| t.display().to_string())?;
            Ok(s)
        })
        .collect();
    report_batch(traces, &results, &[], false, &discards)
}

fn synth_file(a: SynthArgs) -> Result<Status> {
    let o = synth::Options {
        framing: a.framing,
        header_len: a.record_header,
        record_len: a.record_length,
        straddle: a.straddle,
        buffer_len: a
            .buffer_length
            .unwrap_or(4 * a.record_length.saturating_sub(a.record_header)),
        max_cte: a.max_cte,
        abbrev: a.abbrev,
        discard: a.discard,
        discard_every: a.discard_every,
        hosts: a.hosts,
        interface: a
            .interface
            .unwrap_or_else(|| if a.osaenta { "EZANTAOSA1" } else { "OSAQDIO1" }.to_string()),
        osaenta: a.osaenta,
        format_id: a.format_id,
        pth_len: a.pth_len,
        system: a.system,
        leap_seconds: a.leap_seconds,
        spanned: a.spanned,
        block_len: a.block_length,
        repeat: a.repeat,
        vary_flows: a.vary_flows,
        data_trace: a.data_trace,
        job: a.job,
        target_bytes: a.target_size,
        ..synth::Options::default()
    };
    let mut runs = vec![(a.out.clone(), o.clone())];
    if let Some(pair_out) = &a.pair {
        if a.osaenta || a.data_trace {
            bail!(
                "--pair writes a packet trace and an OSAENTA trace: leave out --osaenta and --data-trace"
            );
        }
        let pair = synth::Pair {
            delay_ns: a.osa_delay_ns,
            drop_osa: a.drop_osa.clone(),
            drop_stack: a.drop_stack.clone(),
        };
        let (stack, osa) = pair.options(&o);
        runs = vec![(a.out.clone(), stack), (pair_out.clone(), osa)];
    }
    for (out, o) in &runs {
        synth_one(&a.capture, out, o)?;
    }
    Ok(Status::Clean)
}

fn synth_one(capture: &Path, out: &Path, o: &synth::Options) -> Result<()> {
    let f = File::open(capture).with_context(|| format!("{}: cannot open", capture.display()))?;
    let tmp = out.with_extension("synth.tmp");
    let w = BufWriter::with_capacity(
        1 << 20,
        File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?,
    );
    let s = synth::synthesize(io::BufReader::with_capacity(1 << 20, f), w, o, None)
        .with_context(|| capture.display().to_string())?;
    std::fs::rename(&tmp, out)?;
    println!(
        "{}: {} packets in {} CTEs, {} records, {} bytes; {} frames not convertible{}",
        out.display(),
        s.packets,
        s.ctes,
        s.records,
        s.bytes,
        s.skipped,
        if s.skipped_reasons.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                s.skipped_reasons
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(())
}
