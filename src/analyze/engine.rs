//! The analysis proper: packets in capture order -> sessions (TCP connections, UDP and
//! ICMP flows seen from the z/OS side) with Zeek-style state and history, TCP
//! observations, stream reassembly feeding the FTP and TLS decoders, per-packet
//! messages, FTP data-channel linking and exceptions. Rows go to a `Sink` as soon as
//! they are final, and closed sessions leave memory, so memory follows the number of
//! open sessions, not the size of the trace.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::IpAddr;

use super::rows::{
    self, DataTraceRow, ExceptionRow, FtpRow, PacketRow, SessionRow, Sink, Text, TlsRow,
};
use super::stream::{Chunk, Class, Stream};
use super::{Dir, ftp, msg, tls};
use crate::net::{self, Prefix, Tcp, View};
use crate::packet::Link;
use crate::trace::tod::iso8601_at;
use crate::trace::{DiscardCode, DiscardTable};

/// A fast hasher for the per-packet tables (keys are addresses and ports from the
/// trace; hash flooding is not a concern for a file the user chose to open, and SipHash
/// was a tenth of the analysis time).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// One packet as the analysis sees it.
pub struct Input<'a> {
    pub frame: u64,
    pub time_ns: i64,
    pub interface: &'a str,
    /// Direction seen from z/OS; `None` for captures that do not say (pcap input):
    /// then `Options::local` decides.
    pub outbound: Option<bool>,
    pub link: Link,
    pub data: &'a [u8],
    pub orig_len: u32,
    pub discard: DiscardCode,
    /// abbreviated / reassembled / incomplete, for packets.csv `note`.
    pub note: &'a str,
    /// A data-trace record: the socket its PTHDR describes (the data is application
    /// bytes, no IP header).
    pub socket: Option<&'a Socket>,
    /// Which system's trace it comes from, when a merge holds traces of several
    /// systems (0 otherwise): their sessions are kept apart like the adapter's and the
    /// stack's views of one system.
    pub system: u8,
    /// The headers, when the decoding already read them (`net::view` of this data).
    pub view: Option<&'a net::Detached>,
}

/// The socket of a data-trace record, from its PTHDR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Socket {
    pub job: String,
    /// `start`, `data`, `end` or the number.
    pub state: String,
    pub protocol: u8,
    /// As the record travelled: source = sender.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: u16,
    pub dst_port: u16,
    /// `clear` (AT-TLS clear text included), `withheld`, or empty.
    pub attls: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Addresses that are "local" (the z/OS side) when packets carry no direction. When
    /// empty, the source of the first IP packet is taken to be local.
    pub local: Vec<Prefix>,
    /// Write times at this offset from UTC (seconds) instead of in UTC (`--localtime`).
    pub utc_offset: Option<i32>,
}

/// Closed TCP connections leave memory after this much trace time without packets.
const CLOSED_LINGER_NS: i64 = 30_000_000_000;
/// UDP and ICMP flows idle this long are written out; later packets start a new row.
const FLOW_IDLE_NS: i64 = 600_000_000_000;
/// Closed FTP control sessions wait longer: their data sessions settle their rows.
const CONTROL_LINGER_NS: i64 = 300_000_000_000;
/// A connection that never got past its SYN (a scan, a dead server) after this long.
const HALF_OPEN_IDLE_NS: i64 = 60_000_000_000;
/// Any TCP connection silent this long is written out; a later packet starts a new
/// session (picked up midstream).
const TCP_IDLE_NS: i64 = 7_200_000_000_000;
/// Housekeeping every this many packets.
const SWEEP_EVERY: u64 = 4096;
/// Fragmented datagrams remembered at once (the table starts afresh when full).
const MAX_FRAGMENT_KEYS: usize = 4096;
/// Failed FTP logins from one address that make it a brute-force pattern.
const BRUTE_FORCE_FAILURES: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    proto: u8,
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
    /// ICMP: echo identifier or message type.
    extra: u16,
    /// Whose view: even the stack's (IP packets: packet trace, EE, capture reduced to
    /// IP), odd the adapter's (Ethernet frames: OSAENTA); `Input::system` * 2 added. A merge of an OSAENTA trace with a
    /// packet trace sees every packet twice; kept apart, neither view's sessions count
    /// the other's sightings as retransmissions.
    view: u8,
}

impl Key {
    fn reversed(&self) -> Key {
        Key {
            local: self.remote,
            local_port: self.remote_port,
            remote: self.local,
            remote_port: self.local_port,
            ..*self
        }
    }
}

/// Per-direction TCP facts. Index 0: sent by the remote end (in), 1: by z/OS (out).
#[derive(Default)]
struct TcpSide {
    stream: Stream,
    syn: bool,
    synack: bool,
    fin: bool,
    rst: bool,
    data: bool,
    last_ack: Option<(u32, u16)>,
    wscale: Option<u8>,
    mss: Option<u16>,
    history: u32,
}

#[derive(Default)]
struct TcpConn {
    side: [TcpSide; 2],
    history: String,
    syn_ns: Option<i64>,
    synack_ns: Option<i64>,
    /// The initiator's first ACK after the SYN-ACK (completes the handshake).
    ack_after_synack_ns: Option<i64>,
    established: bool,
}

/// The application decoder running on a connection's stream.
enum App {
    None,
    Ftp {
        ftp: Box<ftp::Ftp>,
        tls: Option<Box<tls::Tls>>,
    },
    Tls(Box<tls::Tls>),
}

struct PendingFtp {
    row: FtpRow,
    refused: bool,
    /// Data session linked, and whether it is finished.
    done: bool,
}

struct Session {
    id: u64,
    /// Offset from UTC for the times written (`Options::utc_offset`).
    tz: Option<i32>,
    key: Key,
    interface: String,
    /// Who started it: true when z/OS did.
    initiator_local: bool,
    start_ns: i64,
    end_ns: i64,
    packets: [u64; 2],
    bytes: [u64; 2],
    payload: [u64; 2],
    retrans: u64,
    ooo: u64,
    dup_acks: u64,
    zero_windows: u64,
    resets: u64,
    discards: BTreeMap<u16, (u64, i64, u64)>,
    app: &'static str,
    tcp: Option<TcpConn>,
    decoder: App,
    /// Stream chunks looked at for a protocol to decode.
    app_checks: u32,
    ftp_role: &'static str,
    ftp_control: Option<u64>,
    /// For a data session: the control session and its pending row.
    /// (control session, row number) of the row whose endpoint this data session used.
    ftp_link: Option<(u64, usize)>,
    /// FTP rows not yet written; the first is row number `ftp_base` of the session.
    pending_ftp: std::collections::VecDeque<PendingFtp>,
    ftp_base: usize,
    ftp_user: String,
    ftp_commands: Option<u64>,
    ftp_login: &'static str,
    ftp_failures: u64,
    tls: Option<TlsRow>,
    /// What the data trace recorded on this connection's socket.
    data: Option<DataTotals>,
}

/// Per-socket data-trace totals (sessions.csv `data_*` columns).
#[derive(Clone, Debug, Default)]
struct DataTotals {
    job: String,
    /// Records of every state (start, data, end).
    records: u64,
    /// Application bytes received and sent by z/OS (true lengths).
    bytes: [u64; 2],
    attls: &'static str,
}

impl DataTotals {
    fn add(&mut self, s: &Socket, outbound: bool, bytes: u32) {
        if self.job.is_empty() {
            self.job = s.job.clone();
        }
        self.records += 1;
        if s.state == "data" {
            self.bytes[usize::from(outbound)] += u64::from(bytes);
        }
        if !s.attls.is_empty() {
            self.attls = s.attls;
        }
    }
}

/// A data-trace socket with no session of the packet trace: its own sessions.csv row.
struct DataSocket {
    id: u64,
    start_ns: i64,
    end_ns: i64,
    totals: DataTotals,
    /// An end record came. The row waits a little longer (as a closed TCP connection
    /// does) for the other end's records on loopback, where both ends are z/OS sockets.
    ended: bool,
}

/// Running totals for the statistics summary.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub packets: u64,
    pub sessions: u64,
    pub by_protocol: BTreeMap<String, (u64, u64)>,
    pub by_port: BTreeMap<u16, (u64, u64)>,
    pub by_interface: BTreeMap<String, (u64, u64)>,
    pub by_discard: BTreeMap<u16, u64>,
    pub ftp_commands: u64,
    pub tls_handshakes: u64,
    pub exceptions: u64,
}

impl Stats {
    /// Lines for the per-file summary: totals, then packets and bytes by protocol, by
    /// service port (the ten busiest) and by interface.
    pub fn render(&self) -> String {
        let mut s = format!(
            "  analysis: {} sessions, {} FTP commands, {} TLS handshakes, {} exceptions\n",
            self.sessions, self.ftp_commands, self.tls_handshakes, self.exceptions
        );
        let list = |v: Vec<(String, (u64, u64))>| {
            v.iter()
                .map(|(k, (p, b))| format!("{k} {p} pkts/{b} bytes"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        s += &format!(
            "  by protocol: {}\n",
            list(
                self.by_protocol
                    .iter()
                    .map(|(k, v)| (
                        if k.is_empty() {
                            "other".into()
                        } else {
                            k.clone()
                        },
                        *v
                    ))
                    .collect()
            )
        );
        let mut ports: Vec<_> = self.by_port.iter().map(|(k, v)| (*k, *v)).collect();
        ports.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
        ports.truncate(10);
        if !ports.is_empty() {
            s += &format!(
                "  by port: {}\n",
                list(ports.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            );
        }
        s += &format!(
            "  by interface: {}\n",
            list(
                self.by_interface
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect()
            )
        );
        s
    }
}

pub struct Analyzer<'d, S: Sink> {
    sink: S,
    opts: Options,
    discards: &'d DiscardTable,
    sessions: Map<Key, Session>,
    next_id: u64,
    last_ns: Option<i64>,
    /// FTP data endpoints announced: (view, address, port) -> (control session, row
    /// index).
    expect: Map<(u8, IpAddr, u16), (u64, usize)>,
    /// Control session id -> key (to reach a control session from its data session).
    controls: Map<u64, Key>,
    /// Failed FTP logins by (view, remote address): a merge's adapter and stack views
    /// see the same attempts.
    failures_by_addr: Map<(u8, IpAddr), (u64, i64)>,
    /// Data-trace sockets no packet-trace session matched, until their end record.
    data_sockets: Map<Key, DataSocket>,
    /// Ports of fragmented datagrams by (source, destination, protocol, IP id).
    fragments: Map<(IpAddr, IpAddr, u8, u32), (u16, u16)>,
    packets_seen: u64,
    /// The packets.csv row, reused.
    row: PacketRow,
    chunks: [Chunks; 2],
    pub stats: Stats,
}

impl<'d, S: Sink> Analyzer<'d, S> {
    pub fn new(sink: S, opts: Options, discards: &'d DiscardTable) -> Self {
        Analyzer {
            sink,
            opts,
            discards,
            sessions: Map::default(),
            next_id: 1,
            last_ns: None,
            expect: Map::default(),
            data_sockets: Map::default(),
            controls: Map::default(),
            failures_by_addr: Map::default(),
            fragments: Map::default(),
            packets_seen: 0,
            row: PacketRow::default(),
            chunks: Default::default(),
            stats: Stats::default(),
        }
    }

    /// A data-trace record: its datatrace.csv row, and a packets.csv row so that the
    /// packet numbers stay those of the pcapng.
    fn data_record(&mut self, p: &Input<'_>, s: &Socket) -> io::Result<()> {
        let outbound = p.outbound.unwrap_or(false);
        let (local, lport, remote, rport) = if outbound {
            (s.src, s.src_port, s.dst, s.dst_port)
        } else {
            (s.dst, s.dst_port, s.src, s.src_port)
        };
        let bytes = p.orig_len.max(p.data.len() as u32);
        // The stack's session of the socket, else the adapter's, else a row of the
        // socket's own.
        let session = match (local, remote) {
            (Some(l), Some(r)) => {
                let key = |view| Key {
                    proto: s.protocol,
                    local: l,
                    local_port: lport,
                    remote: r,
                    remote_port: rport,
                    extra: 0,
                    view,
                };
                // Both ends local (loopback): the session may be keyed from the other
                // end, and then in and out swap.
                let stack_view = p.system.wrapping_mul(2);
                let found = [stack_view, stack_view | 1]
                    .into_iter()
                    .flat_map(|view| [(key(view), outbound), (key(view).reversed(), !outbound)])
                    .find(|(k, _)| self.sessions.contains_key(k));
                match found.and_then(|(k, out)| Some((self.sessions.get_mut(&k)?, out))) {
                    Some((sess, out)) => {
                        sess.data
                            .get_or_insert_with(DataTotals::default)
                            .add(s, out, bytes);
                        Some(sess.id)
                    }
                    None => Some(self.data_socket(key(stack_view), p, s, outbound, bytes)?),
                }
            }
            _ => None,
        };
        let text = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let head = &p.data[..p.data.len().min(64)];
        let row = DataTraceRow {
            time: iso8601_at(p.time_ns, self.opts.utc_offset),
            job: Text(s.job.clone()),
            local_ip: text(local),
            local_port: Some(lport),
            remote_ip: text(remote),
            remote_port: Some(rport),
            direction: if outbound { "out" } else { "in" },
            state: s.state.clone(),
            bytes,
            captured: p.data.len(),
            attls: s.attls,
            session,
            preview_ascii: Text(
                head.iter()
                    .map(|&b| crate::trace::ebcdic::ascii_printable(b))
                    .collect(),
            ),
            preview_ebcdic: Text(
                head.iter()
                    .map(|&b| crate::trace::ebcdic::CodePage::Cp037.printable(b))
                    .collect(),
            ),
        };
        self.sink.datatrace(&row)?;
        let mut prow = self.start_row(p);
        prow.direction = row.direction;
        prow.local_ip = local;
        prow.local_port = row.local_port;
        prow.remote_ip = remote;
        prow.remote_port = row.remote_port;
        prow.protocol.push_str("data trace");
        prow.payload = Some(row.bytes);
        prow.session = session;
        let _ = write!(
            prow.message.0,
            "data trace {} record, job {}",
            s.state, s.job
        );
        self.stats.packets += 1;
        self.end_row(p, prow)
    }

    /// The packets.csv row of `p`, begun: the row reused from packet to packet (its
    /// strings keep their capacity, so a row costs no allocation in the common case)
    /// with what every row has.
    fn start_row(&mut self, p: &Input<'_>) -> PacketRow {
        let mut row = std::mem::take(&mut self.row);
        row.reset();
        row.no = p.frame;
        row.time_ns = p.time_ns;
        row.delta_ns = self.last_ns.map_or(0, |t| p.time_ns.saturating_sub(t));
        row.utc_offset = self.opts.utc_offset;
        row.interface.0.push_str(p.interface);
        row.captured = p.data.len();
        row.note.push_str(p.note);
        self.last_ns = Some(p.time_ns);
        row
    }

    /// Writes the row (frame 0: a record the output file has no place for, as in a
    /// classic pcap, has no packets.csv row), keeps it for the next packet, and sweeps
    /// now and then.
    fn end_row(&mut self, p: &Input<'_>, row: PacketRow) -> io::Result<()> {
        let written = if p.frame > 0 {
            self.sink.packet(&row)
        } else {
            Ok(())
        };
        self.row = row;
        written?;
        self.packets_seen += 1;
        if self.packets_seen.is_multiple_of(SWEEP_EVERY) {
            self.sweep(p.time_ns)?;
        }
        Ok(())
    }

    /// A data-trace record of a socket the packet trace has no session for: counted on
    /// the socket's own sessions.csv row, written 30 s (trace time) after its end
    /// record, or at the end.
    /// Returns the row's session id.
    fn data_socket(
        &mut self,
        key: Key,
        p: &Input<'_>,
        s: &Socket,
        outbound: bool,
        bytes: u32,
    ) -> io::Result<u64> {
        // Loopback: the socket's other end may have opened the row.
        let (key, outbound) = if !self.data_sockets.contains_key(&key)
            && self.data_sockets.contains_key(&key.reversed())
        {
            (key.reversed(), !outbound)
        } else {
            (key, outbound)
        };
        // A new socket on the endpoints of one that ended: the old row is complete.
        if s.state == "start" && self.data_sockets.get(&key).is_some_and(|d| d.ended) {
            self.flush_data_socket(&key)?;
        }
        let d = match self.data_sockets.get_mut(&key) {
            Some(d) => d,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.stats.sessions += 1;
                self.data_sockets.entry(key).or_insert(DataSocket {
                    id,
                    start_ns: p.time_ns,
                    end_ns: p.time_ns,
                    totals: DataTotals::default(),
                    ended: false,
                })
            }
        };
        d.end_ns = d.end_ns.max(p.time_ns);
        d.totals.add(s, outbound, bytes);
        d.ended |= s.state == "end";
        Ok(d.id)
    }

    fn flush_data_socket(&mut self, key: &Key) -> io::Result<()> {
        let Some(d) = self.data_sockets.remove(key) else {
            return Ok(());
        };
        let tz = self.opts.utc_offset;
        let with_ports = matches!(key.proto, 6 | 17);
        let row = SessionRow {
            session: d.id,
            protocol: match key.proto {
                6 => "TCP".into(),
                17 => "UDP".into(),
                n => n.to_string(),
            },
            local_ip: key.local.to_string(),
            local_port: with_ports.then_some(key.local_port),
            remote_ip: key.remote.to_string(),
            remote_port: with_ports.then_some(key.remote_port),
            interface: Text(crate::packet::DATA_TRACE_INTERFACE.into()),
            start: iso8601_at(d.start_ns, tz),
            end: iso8601_at(d.end_ns, tz),
            duration: rows::seconds(d.end_ns.saturating_sub(d.start_ns)),
            ..SessionRow::default()
        };
        self.sink.session(&with_data(row, Some(&d.totals)))
    }

    /// Analyses one packet and writes its packets.csv row.
    pub fn packet(&mut self, p: &Input<'_>) -> io::Result<()> {
        if let Some(s) = p.socket {
            return self.data_record(p, s);
        }
        let v = match p.view {
            Some(d) => d.attach(p.data),
            None => net::view(p.link, p.data, p.orig_len),
        };
        let outbound = self.direction(p, &v);
        let mut row = self.start_row(p);
        row.direction = if outbound { "out" } else { "in" };
        if p.discard.is_discard() {
            row.discard_code = Some(p.discard.0);
            row.discard.push_str(&self.discards.describe(p.discard));
            *self.stats.by_discard.entry(p.discard.0).or_default() += 1;
        }
        let (local, remote) = if outbound {
            (v.src, v.dst)
        } else {
            (v.dst, v.src)
        };
        // Fragments belong to the flow of their datagram: the first carries the ports,
        // the others find them by (addresses, protocol, IP id).
        let (mut src_port, mut dst_port) = (v.src_port, v.dst_port);
        if let (Some((off, _)), Some(src), Some(dst), Some(proto)) =
            (v.fragment, v.src, v.dst, v.protocol)
        {
            let fkey = (src, dst, proto, v.frag_id);
            if off == 0 {
                if let (Some(a), Some(b)) = (src_port, dst_port) {
                    if self.fragments.len() >= MAX_FRAGMENT_KEYS {
                        self.fragments.clear();
                    }
                    self.fragments.insert(fkey, (a, b));
                }
            } else if let Some(&(a, b)) = self.fragments.get(&fkey) {
                (src_port, dst_port) = (Some(a), Some(b));
            }
        }
        let (local_port, remote_port) = if outbound {
            (src_port, dst_port)
        } else {
            (dst_port, src_port)
        };
        row.local_ip = local;
        row.remote_ip = remote;
        row.local_port = local_port;
        row.remote_port = remote_port;
        row.protocol.push_str(&protocol_name(&v));
        if v.protocol.is_some() {
            row.ip_len = Some(v.ip_len);
        }
        row.ip_id = v.ip_id;
        row.ttl = v.ttl;
        if let Some(t) = &v.tcp {
            row.tcp_flags = Some(t.flags);
            row.seq = Some(t.seq);
            row.ack = t.has(Tcp::ACK).then_some(t.ack);
            row.window = Some(t.window);
        }
        row.payload = v.payload_len;
        if let Some((off, _)) = v.fragment {
            if !row.note.is_empty() {
                row.note.push_str("; ");
            }
            row.note.push_str("fragment");
            if off > 0 {
                row.local_port = None;
                row.remote_port = None;
            }
        }
        self.stats.packets += 1;
        // Counted without allocating for the usual keys.
        let bytes = u64::from(v.ip_len.max(p.orig_len));
        match self.stats.by_protocol.get_mut(row.protocol.as_str()) {
            Some(st) => *st = (st.0 + 1, st.1 + bytes),
            None => {
                self.stats
                    .by_protocol
                    .insert(row.protocol.clone(), (1, bytes));
            }
        }
        match self.stats.by_interface.get_mut(p.interface) {
            Some(st) => *st = (st.0 + 1, st.1 + u64::from(p.orig_len)),
            None => {
                self.stats
                    .by_interface
                    .insert(p.interface.to_string(), (1, u64::from(p.orig_len)));
            }
        }

        // Per-packet messages for protocols that need no stream.
        let mut message = Vec::new();
        let described = if v.tcp.is_none() && !v.ip.is_empty() {
            msg::describe(v.ip)
        } else {
            None
        };
        if let (Some(local), Some(remote), Some(proto)) = (local, remote, v.protocol) {
            let key = flow_key(
                proto,
                local,
                local_port,
                remote,
                remote_port,
                &v,
                view_of(p),
            );
            if let Some(port) = service_port(local_port, remote_port) {
                let st = self.stats.by_port.entry(port).or_default();
                st.0 += 1;
                st.1 += u64::from(v.ip_len);
            }
            let id = self.session_packet(key, p, &v, outbound, &mut row, &mut message)?;
            row.session = Some(id);
        }
        if p.discard.is_discard() && row.session.is_none() {
            // No session to group it in (ARP, an unreadable packet): on its own.
            let text = format!(
                "packet discarded: {} {}",
                p.discard.0,
                self.discards.describe(p.discard)
            );
            let frame = (p.frame > 0).then_some(p.frame);
            self.exception(p.time_ns, None, frame, "error", "discard", text)?;
        }
        if let Some(m) = described {
            if row.app.is_empty() {
                row.app = m.app;
            }
            message.push(m.text.clone());
            if let Some(e) = m.exception {
                let session = m
                    .quoted
                    .as_ref()
                    .and_then(|q| self.quoted_session(q, view_of(p)))
                    .or(row.session);
                self.exception(
                    p.time_ns,
                    session,
                    (p.frame > 0).then_some(p.frame),
                    e.severity,
                    e.category,
                    e.text,
                )?;
            }
        }
        for (i, m) in message.iter().enumerate() {
            if i > 0 {
                row.message.0.push_str("; ");
            }
            row.message.0.push_str(m);
        }
        self.end_row(p, row)
    }

    /// Whether a packet left z/OS: from the trace, or for pcap input from the local
    /// address list (the first packet's source when none was given).
    fn direction(&mut self, p: &Input<'_>, v: &View<'_>) -> bool {
        if let Some(o) = p.outbound {
            return o;
        }
        if self.opts.local.is_empty()
            && let Some(src) = v.src
        {
            let len = if src.is_ipv4() { 32 } else { 128 };
            self.opts.local.push(Prefix { addr: src, len });
        }
        let is_local =
            |a: Option<IpAddr>| a.is_some_and(|a| self.opts.local.iter().any(|p| p.contains(a)));
        is_local(v.src) || !is_local(v.dst) && v.src.is_none()
    }

    fn quoted_session(&self, q: &msg::Quoted, view: u8) -> Option<u64> {
        let sport = q.src_port.unwrap_or(0);
        let dport = q.dst_port.unwrap_or(0);
        [(q.src, sport, q.dst, dport), (q.dst, dport, q.src, sport)]
            .into_iter()
            .find_map(|(l, lp, r, rp)| {
                let key = Key {
                    proto: q.protocol,
                    local: l,
                    local_port: lp,
                    remote: r,
                    remote_port: rp,
                    extra: 0,
                    view,
                };
                self.sessions.get(&key).map(|s| s.id)
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn exception(
        &mut self,
        time_ns: i64,
        session: Option<u64>,
        packet: Option<u64>,
        severity: &'static str,
        category: &'static str,
        message: String,
    ) -> io::Result<()> {
        self.stats.exceptions += 1;
        self.sink.exception(&ExceptionRow {
            time: iso8601_at(time_ns, self.opts.utc_offset),
            session,
            packet,
            severity,
            category,
            message: Text(message),
        })
    }

    /// Finds or starts the packet's session and updates it. Returns the session id.
    fn session_packet(
        &mut self,
        key: Key,
        p: &Input<'_>,
        v: &View<'_>,
        outbound: bool,
        row: &mut PacketRow,
        message: &mut Vec<String>,
    ) -> io::Result<u64> {
        // Both ends local (loopback): every packet looks outbound; the session is the
        // one already started the other way round, with the initiator's end local.
        let (key, outbound) =
            if !self.sessions.contains_key(&key) && self.sessions.contains_key(&key.reversed()) {
                (key.reversed(), !outbound)
            } else {
                (key, outbound)
            };
        let syn_only = v.tcp.is_some_and(|t| t.has(Tcp::SYN) && !t.has(Tcp::ACK));
        let ends = self.sessions.get(&key).map(|s| match &s.tcp {
            // A flow idle too long ends here, whatever other traffic came in between.
            None => p.time_ns.saturating_sub(s.end_ns) > FLOW_IDLE_NS,
            // A new SYN on a finished connection starts a new session.
            Some(t) => {
                syn_only
                    && t.side.iter().any(|d| d.fin || d.rst)
                    // not a retransmission of the SYN that started it
                    && t.side[usize::from(outbound)].stream.next_seq()
                        != Some(v.tcp.map_or(0, |t| t.seq).wrapping_add(1))
            }
        });
        if ends == Some(true) {
            self.flush(&key)?;
        }
        if ends != Some(false) {
            let s = self.start_session(key, p, v, outbound);
            self.sessions.insert(key, s);
        }
        let mut exceptions = Vec::new();
        let mut ftp_rows = Vec::new();
        let mut tls_rows = Vec::new();
        let Some(s) = self.sessions.get_mut(&key) else {
            return Ok(0);
        };
        let sess = s.id;
        let d = usize::from(outbound);
        s.end_ns = p.time_ns;
        s.packets[d] += 1;
        s.bytes[d] += u64::from(v.ip_len);
        s.payload[d] += u64::from(v.payload_len.unwrap_or(0));
        if p.discard.is_discard() {
            let e = s
                .discards
                .entry(p.discard.0)
                .or_insert((0, p.time_ns, p.frame));
            e.0 += 1;
        }
        row.app = s.app;
        if let Some(t) = v.tcp {
            let mut analysis = Vec::new();
            tcp_packet(
                s,
                &t,
                v,
                d,
                p,
                &mut analysis,
                message,
                &mut ftp_rows,
                &mut tls_rows,
                &mut self.chunks,
            );
            for (i, a) in analysis.iter().enumerate() {
                if i > 0 {
                    row.analysis.push(' ');
                }
                row.analysis.push_str(a);
            }
            row.app = s.app;
        }
        // Rows of a control session wait for the data connection they announce.
        let mut superseded = Vec::new();
        for (mut r, data) in ftp_rows {
            let idx = s.ftp_base + s.pending_ftp.len();
            let refused = data.as_ref().is_some_and(|d| d.refused);
            if refused {
                r.data_status = "refused";
            }
            let waits = data.is_some() && !refused;
            if let Some(d) = data.filter(|_| waits)
                && let Some(old) = self.expect.insert((s.key.view, d.ip, d.port), (s.id, idx))
            {
                superseded.push(old);
            }
            s.pending_ftp.push_back(PendingFtp {
                row: r,
                refused,
                done: !waits,
            });
        }
        // An endpoint announced again: the earlier announcement was never used.
        for (ctl, idx) in superseded {
            if let Some(ck) = self.controls.get(&ctl).copied()
                && let Some(c) = self.sessions.get_mut(&ck)
                && let Some(r) = idx
                    .checked_sub(c.ftp_base)
                    .and_then(|i| c.pending_ftp.get_mut(i))
                && !r.done
            {
                r.row.data_status = "no SYN seen";
                r.done = true;
            }
        }
        for r in tls_rows {
            self.stats.tls_handshakes += 1;
            if !r.alert.is_empty() {
                exceptions.push(("warning", "tls-alert", format!("TLS alert {}", r.alert)));
            } else if r.established == "no" {
                exceptions.push(("warning", "tls-failed", "TLS handshake failed".to_string()));
            }
            let mut r = r;
            r.session = sess;
            self.sink.tls(&r)?;
        }
        for (sev, cat, m) in exceptions {
            let frame = (p.frame > 0).then_some(p.frame);
            self.exception(p.time_ns, Some(sess), frame, sev, cat, m)?;
        }
        self.flush_ftp_rows(&key)?;
        Ok(sess)
    }

    fn start_session(&mut self, key: Key, p: &Input<'_>, v: &View<'_>, outbound: bool) -> Session {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sessions += 1;
        let tcp = v.tcp.map(|_| TcpConn::default());
        // The initiator sent the first SYN, or the first packet. Picked up midstream, a
        // well-known port marks the server.
        let mut initiator_local = outbound;
        if let Some(t) = v.tcp
            && !t.has(Tcp::SYN)
        {
            match (key.local_port < 1024, key.remote_port < 1024) {
                (true, false) => initiator_local = false,
                (false, true) => initiator_local = true,
                _ => {}
            }
        } else if let Some(t) = v.tcp
            && t.has(Tcp::SYN)
            && t.has(Tcp::ACK)
        {
            // SYN-ACK first: the other side initiated.
            initiator_local = !outbound;
        }
        let mut s = Session {
            id,
            tz: self.opts.utc_offset,
            key,
            interface: p.interface.to_string(),
            initiator_local,
            start_ns: p.time_ns,
            end_ns: p.time_ns,
            packets: [0; 2],
            bytes: [0; 2],
            payload: [0; 2],
            retrans: 0,
            ooo: 0,
            dup_acks: 0,
            zero_windows: 0,
            resets: 0,
            discards: BTreeMap::new(),
            app: "",
            tcp,
            decoder: App::None,
            app_checks: 0,
            ftp_role: "",
            ftp_control: None,
            ftp_link: None,
            pending_ftp: Default::default(),
            ftp_base: 0,
            ftp_user: String::new(),
            ftp_commands: None,
            ftp_login: "",
            ftp_failures: 0,
            tls: None,
            data: None,
        };
        let (server, server_port) = if initiator_local {
            (key.remote, key.remote_port)
        } else {
            (key.local, key.local_port)
        };
        match key.proto {
            6 => {
                if let Some(&(ctl, idx)) = self.expect.get(&(key.view, server, server_port)) {
                    self.expect.remove(&(key.view, server, server_port));
                    s.app = "ftp-data";
                    s.ftp_role = "data";
                    s.ftp_control = Some(ctl);
                    s.ftp_link = Some((ctl, idx));
                    if let Some(ck) = self.controls.get(&ctl)
                        && let Some(c) = self.sessions.get_mut(ck)
                        && let Some(r) = idx
                            .checked_sub(c.ftp_base)
                            .and_then(|i| c.pending_ftp.get_mut(i))
                    {
                        r.row.data_session = Some(id);
                    }
                } else if server_port == 21 {
                    s.app = "ftp";
                    s.ftp_role = "control";
                    s.decoder = App::Ftp {
                        ftp: Box::new(ftp::Ftp::new(server)),
                        tls: None,
                    };
                    self.controls.insert(id, key);
                }
            }
            17 => {
                s.app = match (key.local_port, key.remote_port) {
                    (53, _) | (_, 53) | (5353, _) | (_, 5353) => "dns",
                    (67 | 68, _) | (_, 67 | 68) => "dhcp",
                    _ => "",
                }
            }
            1 => s.app = "icmp",
            58 => s.app = "icmpv6",
            _ => {}
        }
        s
    }

    /// Writes the control session's FTP rows whose data channel is settled, in order.
    fn flush_ftp_rows(&mut self, key: &Key) -> io::Result<()> {
        let Some(s) = self.sessions.get_mut(key) else {
            return Ok(());
        };
        while s.pending_ftp.front().is_some_and(|r| r.done) {
            if let Some(r) = s.pending_ftp.pop_front() {
                s.ftp_base += 1;
                self.stats.ftp_commands += 1;
                self.sink.ftp(&r.row)?;
            }
        }
        Ok(())
    }

    /// Writes out sessions that are over: closed TCP connections quiet for a while,
    /// flows idle for long.
    fn sweep(&mut self, now: i64) -> io::Result<()> {
        let done: Vec<Key> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                let idle = now.saturating_sub(s.end_ns);
                match &s.tcp {
                    Some(t) => {
                        let closed = t.side.iter().any(|d| d.rst) || t.side.iter().all(|d| d.fin);
                        let handshake_only = !t.established && !t.side.iter().any(|d| d.data);
                        if s.ftp_role == "control" {
                            // Its data connections finish first; give them time.
                            closed && idle > CONTROL_LINGER_NS
                        } else {
                            (closed && idle > CLOSED_LINGER_NS)
                                || (handshake_only && idle > HALF_OPEN_IDLE_NS)
                                || idle > TCP_IDLE_NS
                        }
                    }
                    None => idle > FLOW_IDLE_NS,
                }
            })
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            self.flush(&k)?;
        }
        // Data-trace sockets: 30 s after their end record, or after a TCP
        // connection's idle time when it never came (wrapped or lost buffers).
        let mut idle: Vec<(u64, Key)> = self
            .data_sockets
            .iter()
            .filter(|(_, d)| {
                let idle = now.saturating_sub(d.end_ns);
                (d.ended && idle > CLOSED_LINGER_NS) || idle > TCP_IDLE_NS
            })
            .map(|(k, d)| (d.id, *k))
            .collect();
        idle.sort();
        for (_, k) in idle {
            self.flush_data_socket(&k)?;
        }
        Ok(())
    }

    /// Finishes the analysis: every session is written, data sessions before their
    /// control sessions so the FTP rows know what became of their data channels.
    pub fn finish(mut self) -> io::Result<(S, Stats)> {
        let mut keys: Vec<(bool, u64, Key)> = self
            .sessions
            .iter()
            .map(|(k, s)| (s.ftp_role == "control", s.id, *k))
            .collect();
        keys.sort();
        for (_, _, k) in keys {
            self.flush(&k)?;
        }
        let mut sockets: Vec<(u64, Key)> =
            self.data_sockets.iter().map(|(k, d)| (d.id, *k)).collect();
        sockets.sort();
        for (_, k) in sockets {
            self.flush_data_socket(&k)?;
        }
        let mut brute: Vec<(IpAddr, u64, i64)> = self
            .failures_by_addr
            .iter()
            .filter(|(_, v)| v.0 >= BRUTE_FORCE_FAILURES)
            .map(|((_, a), v)| (*a, v.0, v.1))
            .collect();
        brute.sort();
        for (addr, n, t) in brute {
            self.exception(
                t,
                None,
                None,
                "error",
                "ftp-brute-force",
                format!("{n} failed FTP logins from {addr}: a brute-force pattern"),
            )?;
        }
        Ok((self.sink, self.stats))
    }

    /// Ends a session: stream decoders finish, FTP links settle, rows are written.
    fn flush(&mut self, key: &Key) -> io::Result<()> {
        let Some(mut s) = self.sessions.remove(key) else {
            return Ok(());
        };
        let mut exceptions: Vec<(i64, Option<u64>, &'static str, &'static str, String)> =
            Vec::new();
        let mut ftp_rows = Vec::new();
        let mut tls_rows = Vec::new();
        let reset = s.tcp.as_ref().is_some_and(|t| t.side.iter().any(|d| d.rst));
        // Held stream data and decoder ends.
        if let Some(t) = &mut s.tcp {
            for d in 0..2 {
                let mut chunks: Vec<(Option<Vec<u8>>, u64, u64)> = Vec::new();
                t.side[d].stream.finish(&mut |c| match c {
                    Chunk::Data(b, f) => chunks.push((Some(b.to_vec()), 0, f)),
                    Chunk::Gap(n) => chunks.push((None, n, 0)),
                });
                let dir = app_dir(s.initiator_local, d);
                for (b, n, f) in chunks {
                    feed(&mut s.decoder, dir, b.as_deref(), n, f, s.end_ns);
                }
            }
        }
        match &mut s.decoder {
            App::None => {}
            App::Ftp { ftp, tls } => {
                for r in ftp.finish() {
                    ftp_rows.push(r);
                }
                if let Some(t) = tls {
                    t.end(reset);
                    tls_rows.extend(t.take_rows());
                }
                ftp.take_messages();
            }
            App::Tls(t) => {
                t.end(reset);
                tls_rows.extend(t.take_rows());
                t.take_messages();
            }
        }
        collect_app_facts(&mut s);
        for r in ftp_rows {
            let data = r.data;
            let row = ftp_row(&r, s.id, &s, s.tz);
            s.pending_ftp.push_back(PendingFtp {
                row,
                refused: data.as_ref().is_some_and(|d| d.refused),
                done: false,
            });
        }
        for r in tls_rows {
            self.stats.tls_handshakes += 1;
            let mut r = tls_row(&r, s.tz);
            r.session = s.id;
            if !r.alert.is_empty() {
                exceptions.push((
                    s.end_ns,
                    Some(s.id),
                    "warning",
                    "tls-alert",
                    format!("TLS alert {}", r.alert),
                ));
            } else if r.established == "no" {
                exceptions.push((
                    s.end_ns,
                    Some(s.id),
                    "warning",
                    "tls-failed",
                    "TLS handshake failed".into(),
                ));
            }
            s.tls.get_or_insert_with(|| r.clone());
            self.sink.tls(&r)?;
        }
        let (state, history) = match &s.tcp {
            Some(t) => (conn_state(t, s.initiator_local), t.history.clone()),
            None => ("", String::new()),
        };
        // Exceptions the session as a whole tells.
        let who = |local: bool| if local { "z/OS" } else { "the remote end" };
        match state {
            "S0" if s.ftp_role != "data" => exceptions.push((
                s.start_ns,
                Some(s.id),
                "warning",
                "syn-unanswered",
                format!(
                    "SYN from {} to {} not answered",
                    who(s.initiator_local),
                    endpoint_text(&s, !s.initiator_local)
                ),
            )),
            "REJ" => exceptions.push((
                s.start_ns,
                Some(s.id),
                "warning",
                "refused",
                format!(
                    "connection to {} refused (RST to SYN)",
                    endpoint_text(&s, !s.initiator_local)
                ),
            )),
            "RSTO" | "RSTR" | "RSTOS0" | "RSTRH" => exceptions.push((
                s.end_ns,
                Some(s.id),
                "note",
                "reset",
                format!(
                    "connection reset by {}",
                    who(if state.starts_with("RSTO") {
                        s.initiator_local
                    } else {
                        !s.initiator_local
                    })
                ),
            )),
            _ => {}
        }
        if s.retrans >= 3 {
            exceptions.push((
                s.end_ns,
                Some(s.id),
                "warning",
                "retransmissions",
                format!("{} retransmissions", s.retrans),
            ));
        }
        if s.zero_windows > 0 {
            exceptions.push((
                s.end_ns,
                Some(s.id),
                "warning",
                "zero-window",
                format!("{} zero-window advertisements", s.zero_windows),
            ));
        }
        for (code, (n, t, _)) in &s.discards {
            exceptions.push((
                *t,
                Some(s.id),
                "error",
                "discard",
                format!(
                    "{n} packet(s) discarded: {} {}",
                    code,
                    self.discards.describe(DiscardCode(*code))
                ),
            ));
        }
        if s.ftp_failures > 0 {
            exceptions.push((
                s.end_ns,
                Some(s.id),
                "warning",
                "ftp-login-failed",
                format!(
                    "{} failed FTP login(s) from {}",
                    s.ftp_failures, s.key.remote
                ),
            ));
            let e = self
                .failures_by_addr
                .entry((s.key.view, s.key.remote))
                .or_insert((0, s.end_ns));
            e.0 += s.ftp_failures;
        }
        // A data session settles its control session's row.
        if let Some((ctl, idx)) = s.ftp_link
            && let Some(ck) = self.controls.get(&ctl).copied()
            && let Some(c) = self.sessions.get_mut(&ck)
            && let Some(r) = idx
                .checked_sub(c.ftp_base)
                .and_then(|i| c.pending_ftp.get_mut(i))
        {
            r.row.data_status = data_status(state);
            r.row.data_bytes = Some(s.payload[0] + s.payload[1]);
            r.done = true;
            if matches!(state, "S0" | "SH" | "RSTOS0") {
                exceptions.push((
                    s.start_ns,
                    Some(ctl),
                    "error",
                    "ftp-data-syn-unanswered",
                    format!(
                        "FTP data connection to {} announced by {} was never answered",
                        endpoint_text(&s, !s.initiator_local),
                        r.row.command.0
                    ),
                ));
            }
        }
        // A control session's rows that still wait: their data never came.
        if s.ftp_role == "control" {
            let id = s.id;
            self.expect.retain(|_, v| v.0 != id);
            self.controls.remove(&id);
            for r in &mut s.pending_ftp {
                // Only rows that announced an endpoint have a data channel to report.
                if !r.done && r.row.data_session.is_none() && !r.row.data_mode.is_empty() {
                    if r.refused {
                        r.row.data_status = "refused";
                    } else if r.row.reply_code.is_some_and(|c| (200..300).contains(&c))
                        || r.row.data_mode == "active"
                        || r.row.data_mode == "extended active"
                    {
                        r.row.data_status = "no SYN seen";
                        exceptions.push((
                            s.end_ns,
                            Some(id),
                            "error",
                            "ftp-data-not-seen",
                            format!(
                                "FTP data connection {}:{} announced by {} never appeared (no SYN seen)",
                                r.row.data_ip,
                                r.row.data_port.unwrap_or(0),
                                r.row.command.0
                            ),
                        ));
                    } else {
                        r.row.data_status = "no SYN seen";
                    }
                }
                r.done = true;
            }
        }
        for r in s.pending_ftp.drain(..) {
            self.stats.ftp_commands += 1;
            self.sink.ftp(&r.row)?;
        }
        // Its announcements that are still open die with it.
        self.expect.retain(|_, v| v.0 != s.id);
        let row = with_data(session_row(&s, state, history, s.tz), s.data.as_ref());
        self.sink.session(&row)?;
        for (t, sess, sev, cat, m) in exceptions {
            self.exception(t, sess, None, sev, cat, m)?;
        }
        // A finished data session may let its control session's rows out.
        if let Some((ctl, _)) = s.ftp_link
            && let Some(ck) = self.controls.get(&ctl).copied()
        {
            self.flush_ftp_rows(&ck)?;
        }
        Ok(())
    }
}

fn endpoint_text(s: &Session, local: bool) -> String {
    let (a, p) = if local {
        (s.key.local, s.key.local_port)
    } else {
        (s.key.remote, s.key.remote_port)
    };
    match a {
        IpAddr::V6(_) => format!("[{a}]:{p}"),
        IpAddr::V4(_) => format!("{a}:{p}"),
    }
}

fn data_status(state: &str) -> &'static str {
    match state {
        "S0" | "SH" | "RSTOS0" => "SYN not answered",
        "REJ" | "RSTRH" => "reset",
        _ => "connected",
    }
}

/// Direction of a TCP side (0 = from remote, 1 = from z/OS) for the app decoders.
fn app_dir(initiator_local: bool, side: usize) -> Dir {
    if (side == 1) == initiator_local {
        Dir::ToServer
    } else {
        Dir::ToClient
    }
}

/// Hands stream bytes (or a gap) to the connection's decoder, switching an FTP control
/// channel to TLS after AUTH TLS and back after CCC.
fn feed(app: &mut App, dir: Dir, bytes: Option<&[u8]>, gap: u64, frame: u64, time_ns: i64) {
    match app {
        App::None => {}
        App::Tls(t) => match bytes {
            Some(b) => {
                t.data(dir, b, frame, time_ns);
            }
            None => t.gap(dir, gap),
        },
        App::Ftp { ftp, tls } => match bytes {
            None => match tls {
                Some(t) if ftp.encrypted() => t.gap(dir, gap),
                _ => ftp.gap(dir, gap),
            },
            Some(mut b) => {
                // At most a few switches per chunk; the bound guards against ping-pong.
                for _ in 0..4 {
                    if b.is_empty() {
                        break;
                    }
                    if ftp.encrypted() {
                        let t = tls.get_or_insert_with(|| Box::new(tls::Tls::new()));
                        let n = t.data(dir, b, frame, time_ns).min(b.len());
                        if n == b.len() {
                            break;
                        }
                        ftp.clear_again();
                        b = &b[n..];
                    } else {
                        let n = ftp.data(dir, b, frame, time_ns).min(b.len());
                        b = &b[n..];
                        if !ftp.encrypted() {
                            break;
                        }
                    }
                }
            }
        },
    }
}

/// Everything a TCP segment tells: history, handshake, observations, stream bytes.
#[allow(clippy::too_many_arguments)]
/// Stream bytes on their way from the reassembler to the decoders, in buffers kept
/// from packet to packet (a copy per chunk was a malloc and a free per data packet).
#[derive(Default)]
struct Chunks {
    bytes: Vec<u8>,
    /// (range of `bytes`, or None for a gap of `.1` bytes; frame of the data).
    list: Vec<(Option<std::ops::Range<usize>>, u64, u64)>,
}

impl Chunks {
    fn clear(&mut self) {
        self.bytes.clear();
        self.list.clear();
    }

    fn data(&mut self, b: &[u8], frame: u64) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        self.list.push((Some(start..self.bytes.len()), 0, frame));
    }

    fn gap(&mut self, n: u64) {
        self.list.push((None, n, 0));
    }

    /// (bytes, or None for a gap; gap length; frame).
    fn iter(&self) -> impl Iterator<Item = (Option<&[u8]>, u64, u64)> {
        self.list
            .iter()
            .map(|(r, n, f)| (r.clone().map(|r| &self.bytes[r]), *n, *f))
    }
}

// The outputs are separate borrows of the analyzer's fields, beside the session.
#[allow(clippy::too_many_arguments)]
fn tcp_packet(
    s: &mut Session,
    t: &Tcp,
    v: &View<'_>,
    d: usize,
    p: &Input<'_>,
    analysis: &mut Vec<&'static str>,
    message: &mut Vec<String>,
    ftp_rows: &mut Vec<(FtpRow, Option<ftp::DataEndpoint>)>,
    tls_rows: &mut Vec<TlsRow>,
    scratch: &mut [Chunks; 2],
) {
    let orig = usize::from(s.initiator_local);
    // Stream bytes are copied out only for a decoder, or while one may still be chosen.
    let want = !matches!(s.decoder, App::None) || s.app_checks < 64;
    let Some(conn) = &mut s.tcp else { return };
    let len = v.payload_len.unwrap_or(0);
    let syn = t.has(Tcp::SYN);
    let fin = t.has(Tcp::FIN);
    let rst = t.has(Tcp::RST);
    let ack = t.has(Tcp::ACK);
    let other = 1 - d;

    // Zeek-style history: one letter per kind and direction, in order of first sight.
    let mark = |c: char, bit: u32, conn: &mut TcpConn| {
        if conn.side[d].history & bit == 0 {
            conn.side[d].history |= bit;
            conn.history
                .push(if d == orig { c } else { c.to_ascii_lowercase() });
        }
    };
    if syn && !ack {
        mark('S', 1, conn);
    } else if syn && ack {
        mark('H', 2, conn);
    }
    if fin {
        mark('F', 4, conn);
    }
    if rst {
        mark('R', 8, conn);
    }
    if len > 0 {
        mark('D', 16, conn);
    } else if ack && !syn && !fin && !rst {
        mark('A', 32, conn);
    }

    let side = &mut conn.side[d];
    if syn && !ack {
        side.syn = true;
        conn.syn_ns.get_or_insert(p.time_ns);
    }
    if syn && ack {
        side.synack = true;
        conn.synack_ns.get_or_insert(p.time_ns);
    }
    let side = &mut conn.side[d];
    if syn {
        side.mss = t.mss.or(side.mss);
        side.wscale = t.wscale.or(side.wscale);
    }
    if fin {
        side.fin = true;
    }
    if rst {
        side.rst = true;
        s.resets += 1;
    }
    if len > 0 {
        side.data = true;
    }
    if !conn.established && ack && !syn && d == orig && conn.synack_ns.is_some() {
        conn.established = true;
        conn.ack_after_synack_ns = Some(p.time_ns);
    }

    // Observations.
    if t.window == 0 && !syn && !fin && !rst {
        analysis.push("zero-window");
        s.zero_windows += 1;
        mark_w(conn, d, orig);
    }
    let side = &mut conn.side[d];
    let is_pure_ack = len == 0 && ack && !syn && !fin && !rst;
    if is_pure_ack
        && let Some((a, w)) = side.last_ack
        && a == t.ack
        && w == t.window
        && conn.side[other].data
    {
        analysis.push("dup-ack");
        s.dup_acks += 1;
    }
    let side = &mut conn.side[d];
    if ack && !syn {
        side.last_ack = Some((t.ack, t.window));
    }
    // Keep-alive: one byte (or none) just before what was already sent.
    let next = side.stream.next_seq();
    let keepalive =
        len <= 1 && !syn && !fin && !rst && next.is_some_and(|n| t.seq == n.wrapping_sub(1));
    let [chunks, other_chunks] = scratch;
    chunks.clear();
    other_chunks.clear();
    // What this ACK says about the other direction: bytes it acknowledges that the
    // trace never showed are a gap in that stream (Zeek's G/g).
    if ack && !rst {
        let gap = conn.side[other].stream.acked(t.ack, &mut |c| match c {
            Chunk::Data(b, f) if want => other_chunks.data(b, f),
            Chunk::Data(..) => {}
            Chunk::Gap(n) => other_chunks.gap(n),
        });
        if gap > 0 && conn.side[other].history & 256 == 0 {
            conn.side[other].history |= 256;
            conn.history.push(if other == orig { 'G' } else { 'g' });
        }
    }
    let side = &mut conn.side[d];
    let class = if keepalive {
        analysis.push("keep-alive");
        Class::Empty
    } else {
        side.stream
            .push(t.seq, syn, fin, v.payload, len, p.frame, &mut |c| match c {
                Chunk::Data(b, f) if want => chunks.data(b, f),
                Chunk::Data(..) => {}
                Chunk::Gap(n) => chunks.gap(n),
            })
    };
    match class {
        Class::Retransmission if len > 0 || syn || fin => {
            analysis.push("retransmission");
            s.retrans += 1;
            if conn.side[d].history & 64 == 0 {
                conn.side[d].history |= 64;
                conn.history.push(if d == orig { 'T' } else { 't' });
            }
        }
        Class::OutOfOrder => {
            analysis.push("out-of-order");
            s.ooo += 1;
        }
        _ => {}
    }
    // Window full: the segment fills the receiver's advertised window.
    if len > 0
        && let Some((a, w)) = conn.side[other].last_ack
    {
        let scale = conn.side[other]
            .wscale
            .filter(|_| conn.side[d].wscale.is_some())
            .unwrap_or(0)
            .min(14);
        let edge = a.wrapping_add((u32::from(w)) << scale);
        if t.seq.wrapping_add(len) == edge && w > 0 {
            analysis.push("window-full");
        }
    }

    // Application: a TLS handshake starting a stream chunk (at the start, or later
    // after a STARTTLS-style upgrade) starts the TLS decoder; HTTP is named by its
    // first bytes. Looked for in the first chunks only.
    if matches!(s.decoder, App::None) && s.app_checks < 64 {
        for (b, _, _) in chunks.iter().chain(other_chunks.iter()) {
            let Some(b) = b else { continue };
            s.app_checks += 1;
            if b.len() >= 6 && b[0] == 0x16 && b[1] == 3 && b[2] <= 4 && b[5] == 1 {
                s.decoder = App::Tls(Box::new(tls::Tls::new()));
                if s.app.is_empty() {
                    s.app = "tls";
                }
                break;
            } else if s.app.is_empty() && s.app_checks == 1 && is_http(b) {
                s.app = "http";
            }
        }
    }
    let odir = app_dir(s.initiator_local, other);
    for (b, n, f) in other_chunks.iter() {
        feed(&mut s.decoder, odir, b, n, f, p.time_ns);
    }
    let dir = app_dir(s.initiator_local, d);
    for (b, n, f) in chunks.iter() {
        feed(&mut s.decoder, dir, b, n, f, p.time_ns);
    }
    match &mut s.decoder {
        App::None => {}
        App::Ftp { ftp, tls } => {
            message.extend(ftp.take_messages().into_iter().map(|m| m.1));
            for r in ftp.take_rows() {
                let row = ftp_row(&r, s.id, &s_ftp_user(ftp), s.tz);
                ftp_rows.push((row, r.data));
            }
            if let Some(t) = tls {
                message.extend(t.take_messages().into_iter().map(|m| m.1));
                tls_rows.extend(t.take_rows().iter().map(|r| tls_row(r, s.tz)));
            }
        }
        App::Tls(t) => {
            message.extend(t.take_messages().into_iter().map(|m| m.1));
            tls_rows.extend(t.take_rows().iter().map(|r| tls_row(r, s.tz)));
        }
    }
}

fn mark_w(conn: &mut TcpConn, d: usize, orig: usize) {
    if conn.side[d].history & 128 == 0 {
        conn.side[d].history |= 128;
        conn.history.push(if d == orig { 'W' } else { 'w' });
    }
}

/// The user name an FTP row is tagged with.
struct FtpUser(String);

fn s_ftp_user(f: &ftp::Ftp) -> FtpUser {
    FtpUser(f.user().unwrap_or("").to_string())
}

trait UserOf {
    fn user_name(&self) -> String;
}

impl UserOf for FtpUser {
    fn user_name(&self) -> String {
        self.0.clone()
    }
}

impl UserOf for Session {
    fn user_name(&self) -> String {
        self.ftp_user.clone()
    }
}

fn ftp_row(r: &ftp::Row, session: u64, user: &impl UserOf, tz: Option<i32>) -> FtpRow {
    let user = if r.user.is_empty() {
        user.user_name()
    } else {
        r.user.clone()
    };
    let (mode, ip, port) = match &r.data {
        Some(d) => (d.mode.name(), d.ip.to_string(), Some(d.port)),
        None => ("", String::new(), None),
    };
    FtpRow {
        time: iso8601_at(r.time_ns, tz),
        session,
        user: Text(user),
        command: Text(r.command.clone()),
        argument: Text(r.argument.clone()),
        reply_code: r.reply_code,
        reply_message: Text(r.reply_message.clone()),
        preliminary: Text(r.preliminary.clone()),
        data_mode: mode,
        data_ip: ip,
        data_port: port,
        data_session: None,
        data_status: "",
        data_bytes: None,
    }
}

fn tls_row(r: &tls::Row, tz: Option<i32>) -> TlsRow {
    TlsRow {
        time: iso8601_at(r.time_ns, tz),
        session: 0,
        record_version: r.record_version.clone(),
        client_version: r.client_version.clone(),
        offered_versions: r.offered_versions.clone(),
        sni: Text(r.sni.clone()),
        alpn: Text(r.alpn.clone()),
        offered_ciphers: r.offered_ciphers,
        server_version: r.server_version.clone(),
        cipher: r.cipher.clone(),
        cert_subject: Text(r.cert_subject.clone()),
        cert_issuer: Text(r.cert_issuer.clone()),
        cert_not_after: r.cert_not_after.clone(),
        alert: r.alert.clone(),
        established: r.established,
        resumed: if r.resumed { "yes" } else { "no" },
        truncated: if r.truncated { "yes" } else { "no" },
    }
}

/// Copies what the decoders know into the session (for sessions.csv).
fn collect_app_facts(s: &mut Session) {
    let tls = match &s.decoder {
        App::None => None,
        App::Ftp { ftp, tls } => {
            s.ftp_user = ftp.user().unwrap_or("").to_string();
            s.ftp_commands = Some(ftp.commands());
            s.ftp_login = ftp.login();
            s.ftp_failures = ftp.login_failures();
            tls.as_deref()
        }
        App::Tls(t) => Some(&**t),
    };
    if let Some(t) = tls
        && let Some(r) = t.summary()
    {
        let mut row = tls_row(r, s.tz);
        row.session = s.id;
        s.tls = Some(row);
    }
}

fn session_row(s: &Session, state: &'static str, history: String, tz: Option<i32>) -> SessionRow {
    let (pin, pout) = (0, 1);
    let tcp_side = |i: usize| s.tcp.as_ref().map(|t| &t.side[i]);
    // Handshake round trip seen from z/OS: SYN to SYN-ACK when z/OS initiated, our
    // SYN-ACK to the remote's ACK when the remote did.
    let rtt = s.tcp.as_ref().and_then(|t| {
        if s.initiator_local {
            Some(t.synack_ns?.saturating_sub(t.syn_ns?))
        } else {
            Some(t.ack_after_synack_ns?.saturating_sub(t.synack_ns?))
        }
    });
    let tls = s.tls.as_ref();
    SessionRow {
        session: s.id,
        protocol: match s.key.proto {
            6 => "TCP".into(),
            17 => "UDP".into(),
            1 => "ICMP".into(),
            58 => "ICMPv6".into(),
            n => n.to_string(),
        },
        app: s.app,
        local_ip: s.key.local.to_string(),
        local_port: matches!(s.key.proto, 6 | 17).then_some(s.key.local_port),
        remote_ip: s.key.remote.to_string(),
        remote_port: matches!(s.key.proto, 6 | 17).then_some(s.key.remote_port),
        interface: Text(s.interface.clone()),
        initiator: if s.initiator_local { "local" } else { "remote" },
        start: iso8601_at(s.start_ns, tz),
        end: iso8601_at(s.end_ns, tz),
        duration: rows::seconds(s.end_ns.saturating_sub(s.start_ns)),
        state,
        history,
        packets_in: s.packets[pin],
        bytes_in: s.bytes[pin],
        packets_out: s.packets[pout],
        bytes_out: s.bytes[pout],
        payload_in: s.payload[pin],
        payload_out: s.payload[pout],
        retransmissions: s.retrans,
        out_of_order: s.ooo,
        dup_acks: s.dup_acks,
        zero_windows: s.zero_windows,
        resets: s.resets,
        rtt_ms: rtt
            .map(|ns| format!("{:.3}", ns as f64 / 1e6))
            .unwrap_or_default(),
        mss_local: tcp_side(1).and_then(|x| x.mss),
        mss_remote: tcp_side(0).and_then(|x| x.mss),
        wscale_local: tcp_side(1).and_then(|x| x.wscale),
        wscale_remote: tcp_side(0).and_then(|x| x.wscale),
        discards: s.discards.values().map(|v| v.0).sum(),
        ftp_role: s.ftp_role,
        ftp_control: s.ftp_control,
        ftp_user: Text(s.ftp_user.clone()),
        ftp_commands: s.ftp_commands,
        ftp_login: s.ftp_login,
        tls_version: tls.map(|t| t.server_version.clone()).unwrap_or_default(),
        tls_cipher: tls.map(|t| t.cipher.clone()).unwrap_or_default(),
        tls_sni: tls.map(|t| t.sni.clone()).unwrap_or_default(),
        tls_alpn: tls.map(|t| t.alpn.clone()).unwrap_or_default(),
        tls_established: tls.map(|t| t.established).unwrap_or(""),
        ..SessionRow::default()
    }
}

/// The `data_*` columns of a sessions.csv row.
fn with_data(mut r: SessionRow, d: Option<&DataTotals>) -> SessionRow {
    if let Some(d) = d {
        r.data_job = Text(d.job.clone());
        r.data_records = Some(d.records);
        r.data_bytes_in = Some(d.bytes[0]);
        r.data_bytes_out = Some(d.bytes[1]);
        r.data_attls = d.attls;
    }
    r
}

/// Zeek's conn_state from what each side did. `orig` is the initiator.
fn conn_state(t: &TcpConn, initiator_local: bool) -> &'static str {
    let o = &t.side[usize::from(initiator_local)];
    let r = &t.side[usize::from(!initiator_local)];
    let o_syn = o.syn;
    let r_synack = r.synack;
    if !o_syn && !r_synack {
        return "OTH";
    }
    if o_syn && !r_synack {
        if r.rst {
            return "REJ";
        }
        if o.rst {
            return "RSTOS0";
        }
        if o.fin {
            return "SH";
        }
        if r.data || r.fin {
            return "OTH";
        }
        return "S0";
    }
    if !o_syn && r_synack {
        if r.rst {
            return "RSTRH";
        }
        if r.fin {
            return "SHR";
        }
        return "OTH";
    }
    // Established. Both FINs make a normal close even if a RST follows (as Zeek).
    if o.fin && r.fin {
        return "SF";
    }
    if o.rst {
        return "RSTO";
    }
    if r.rst {
        return "RSTR";
    }
    match (o.fin, r.fin) {
        (true, false) => "S2",
        (false, true) => "S3",
        _ => "S1",
    }
}

fn is_http(b: &[u8]) -> bool {
    const STARTS: [&[u8]; 8] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"HTTP/1.",
    ];
    STARTS.iter().any(|s| b.starts_with(s))
}

fn protocol_name(v: &View<'_>) -> std::borrow::Cow<'static, str> {
    if v.arp {
        return "ARP".into();
    }
    match v.protocol {
        Some(6) => "TCP".into(),
        Some(17) => "UDP".into(),
        Some(1) => "ICMP".into(),
        Some(58) => "ICMPv6".into(),
        Some(n) => n.to_string().into(),
        None => "".into(),
    }
}

/// The port that names the service: the lower of the two (well-known side).
fn service_port(a: Option<u16>, b: Option<u16>) -> Option<u16> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

fn flow_key(
    proto: u8,
    local: IpAddr,
    local_port: Option<u16>,
    remote: IpAddr,
    remote_port: Option<u16>,
    v: &View<'_>,
    view: u8,
) -> Key {
    let mut extra = 0;
    if matches!(proto, 1 | 58) && !v.ip.is_empty() {
        // Echo request/reply pairs by identifier; other ICMP messages by type.
        let hl = if proto == 1 {
            usize::from(v.ip[0] & 0x0F) * 4
        } else {
            40
        };
        if let Some(icmp) = v.ip.get(hl..hl + 6) {
            extra = match (proto, icmp[0]) {
                (1, 0 | 8) | (58, 128 | 129) => u16::from_be_bytes([icmp[4], icmp[5]]),
                (_, ty) => 0x8000 | u16::from(ty),
            };
        }
    }
    Key {
        proto,
        local,
        local_port: local_port.unwrap_or(0),
        remote,
        remote_port: remote_port.unwrap_or(0),
        extra,
        view,
    }
}

/// `Key::view` of a packet: its system's number, and whether it is the adapter's
/// view (Ethernet frames) or the stack's.
fn view_of(p: &Input<'_>) -> u8 {
    p.system.wrapping_mul(2) | u8::from(p.link == Link::Ethernet)
}
