//! The CSV tables (packets, sessions, ftp, tls, exceptions): UTF-8 with a byte-order
//! mark so spreadsheets detect the encoding, a header row even when a table is empty,
//! RFC 4180 quoting (the csv crate), and the formula guard of `analyze::rows::Text`.

use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender};

use serde::Serialize;

use super::background::Worker;
use super::record::{self, push_num, push_str};
use crate::analyze::path::PathRow;
use crate::analyze::rows::{
    DataTraceRow, ExceptionRow, FtpRow, PacketRow, SessionRow, Sink, Text, TlsRow,
};
use crate::trace::tod::iso8601_at;

pub const PACKETS: &[&str] = &[
    "no",
    "time",
    "epoch",
    "delta",
    "interface",
    "direction",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "protocol",
    "ip_len",
    "captured",
    "ip_id",
    "ttl",
    "tcp_flags",
    "seq",
    "ack",
    "window",
    "payload",
    "session",
    "app",
    "message",
    "analysis",
    "discard_code",
    "discard",
    "note",
];
pub const SESSIONS: &[&str] = &[
    "session",
    "protocol",
    "app",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "interface",
    "initiator",
    "start",
    "end",
    "duration",
    "state",
    "history",
    "packets_in",
    "bytes_in",
    "packets_out",
    "bytes_out",
    "payload_in",
    "payload_out",
    "retransmissions",
    "out_of_order",
    "dup_acks",
    "zero_windows",
    "resets",
    "rtt_ms",
    "mss_local",
    "mss_remote",
    "wscale_local",
    "wscale_remote",
    "discards",
    "ftp_role",
    "ftp_control",
    "ftp_user",
    "ftp_commands",
    "ftp_login",
    "tls_version",
    "tls_cipher",
    "tls_sni",
    "tls_alpn",
    "tls_established",
    "data_job",
    "data_records",
    "data_bytes_in",
    "data_bytes_out",
    "data_attls",
];
pub const FTP: &[&str] = &[
    "time",
    "session",
    "user",
    "command",
    "argument",
    "reply_code",
    "reply_message",
    "preliminary",
    "data_mode",
    "data_ip",
    "data_port",
    "data_session",
    "data_status",
    "data_bytes",
];
pub const TLS: &[&str] = &[
    "time",
    "session",
    "record_version",
    "client_version",
    "offered_versions",
    "sni",
    "alpn",
    "offered_ciphers",
    "server_version",
    "cipher",
    "cert_subject",
    "cert_issuer",
    "cert_not_after",
    "alert",
    "established",
    "resumed",
    "truncated",
];
pub const EXCEPTIONS: &[&str] = &[
    "time", "session", "packet", "severity", "category", "message",
];
pub const DATATRACE: &[&str] = &[
    "time",
    "job",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "direction",
    "state",
    "bytes",
    "captured",
    "attls",
    "session",
    "preview_ascii",
    "preview_ebcdic",
];

/// path.csv (`convert --merge`), outputs.md section 10.
pub const PATH: &[&str] = &[
    "no_osa",
    "no_stack",
    "time_osa",
    "time_stack",
    "latency_ns",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "protocol",
    "direction",
    "where",
    "code",
    "discard",
];

/// File name suffix of path.csv.
pub const PATH_NAME: &str = "path";

/// path.csv: the rows of `analyze::path`.
pub struct PathTable<W: Write>(Table<W>);

impl<W: Write> PathTable<W> {
    pub fn new(out: W) -> io::Result<PathTable<W>> {
        Ok(PathTable(Table::new(out, PATH)?))
    }

    pub fn row(&mut self, r: &PathRow) -> io::Result<()> {
        self.0.row(r)
    }

    pub fn finish(self) -> io::Result<W> {
        self.0.finish()
    }
}

/// The file name suffixes, in the order `Tables::new` takes its writers.
pub const NAMES: [&str; 6] = [
    "packets",
    "sessions",
    "ftp",
    "tls",
    "exceptions",
    "datatrace",
];

/// A table of rows written by `record` (the header by the column list, so that an
/// empty table has one too).
struct Table<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Table<W> {
    fn new(mut out: W, columns: &[&str]) -> io::Result<Table<W>> {
        out.write_all("\u{feff}".as_bytes())?;
        let mut buf = Vec::with_capacity(1 << 16);
        for c in columns {
            push_str(&mut buf, c);
        }
        buf.pop();
        buf.push(b'\n');
        Ok(Table { out, buf })
    }

    fn row(&mut self, r: &impl Serialize) -> io::Result<()> {
        record::append(&mut self.buf, r).map_err(io::Error::other)?;
        self.spill()
    }

    /// Writes the buffer out once it is big enough.
    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes the six tables; implements the analysis `Sink`. `P` writes packets.csv: in
/// place (`PacketTable`) or on a thread of its own (`PacketThread`, see `spawn`).
pub struct Tables<W: Write, P: PacketOut<W> = PacketTable<W>> {
    packets: P,
    sessions: Table<W>,
    ftp: Table<W>,
    tls: Table<W>,
    exceptions: Table<W>,
    datatrace: Table<W>,
}

/// The tables with packets.csv written on a thread of its own.
pub type Spawned<W> = Tables<W, PacketThread<W>>;

/// Where packets.csv rows go.
pub trait PacketOut<W> {
    fn row(&mut self, r: &PacketRow) -> io::Result<()>;
    /// Writes what is left and returns the writer.
    fn finish(self) -> io::Result<W>;
}

impl<W: Write> Tables<W> {
    /// Writers in the order of `NAMES`.
    pub fn new([p, s, f, t, e, d]: [W; 6]) -> io::Result<Tables<W>> {
        Ok(Tables {
            packets: PacketTable::new(p)?,
            sessions: Table::new(s, SESSIONS)?,
            ftp: Table::new(f, FTP)?,
            tls: Table::new(t, TLS)?,
            exceptions: Table::new(e, EXCEPTIONS)?,
            datatrace: Table::new(d, DATATRACE)?,
        })
    }
}

impl<W: Write, P: PacketOut<W>> Tables<W, P> {
    /// Writes what is left and returns the writers in the order of `NAMES` (or the
    /// first error).
    pub fn finish(self) -> io::Result<[W; 6]> {
        Ok([
            self.packets.finish()?,
            self.sessions.finish()?,
            self.ftp.finish()?,
            self.tls.finish()?,
            self.exceptions.finish()?,
            self.datatrace.finish()?,
        ])
    }
}

/// Packet rows per batch handed to the packets.csv thread, and batches queued at most.
const ROWS: usize = 1024;
const DEPTH: usize = 4;

/// `Tables` with packets.csv on a thread of its own: the analysis hands its packet
/// rows over in batches and goes on, so that turning them into text and writing it
/// overlap the analysis of the next packets. The rows are copied into rows that come
/// back for reuse, so nothing is allocated per packet once warm, and nothing is freed
/// on another thread than the one that allocated it (which glibc's malloc makes
/// costly; for that reason the other tables, a row per session or command, stay on
/// the caller's thread). Memory: `DEPTH` batches of `ROWS` rows.
pub struct PacketThread<W: Write + Send + 'static> {
    batch: RowBatch,
    worker: Worker<RowBatch, W>,
}

/// `rows[..len]` are this batch's rows; the rest are kept for reuse.
#[derive(Default)]
struct RowBatch {
    rows: Vec<PacketRow>,
    len: usize,
}

impl<W: Write + Send + 'static> Tables<W> {
    /// Moves packets.csv to a thread of its own.
    pub fn spawn(self) -> Spawned<W> {
        let mut packets = self.packets;
        let worker = Worker::spawn(
            DEPTH,
            "packets.csv",
            move |rx: Receiver<RowBatch>, back: SyncSender<RowBatch>| {
                for mut b in rx {
                    for r in &b.rows[..b.len] {
                        packets.row(r)?;
                    }
                    b.len = 0;
                    let _ = back.try_send(b);
                }
                packets.finish()
            },
        );
        Tables {
            packets: PacketThread {
                batch: RowBatch::default(),
                worker,
            },
            sessions: self.sessions,
            ftp: self.ftp,
            tls: self.tls,
            exceptions: self.exceptions,
            datatrace: self.datatrace,
        }
    }
}

impl<W: Write + Send + 'static> PacketThread<W> {
    fn send(&mut self) -> io::Result<()> {
        if self.batch.len == 0 {
            return Ok(());
        }
        let fresh = self.worker.recycled().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, fresh);
        self.worker.send(full)
    }
}

impl<W: Write + Send + 'static> PacketOut<W> for PacketThread<W> {
    fn row(&mut self, r: &PacketRow) -> io::Result<()> {
        let b = &mut self.batch;
        if b.len == b.rows.len() {
            b.rows.push(PacketRow::default());
        }
        b.rows[b.len].copy_from(r);
        b.len += 1;
        if b.len >= ROWS {
            self.send()?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        sent.and(self.worker.finish())
    }
}

/// The one table with a row per packet is written without the csv crate's per-field
/// machinery, which cost a quarter of the analysis time: numbers and fixed words go
/// out as they are, text is quoted the way the crate would (RFC 4180: when it holds a
/// comma, a quote, CR or LF). A test compares the result with the crate's.
pub struct PacketTable<W: Write> {
    table: Table<W>,
    text: Cells,
}

/// What turns a row's values into text, with the caches that make it cheap.
#[derive(Default)]
struct Cells {
    clock: Clock,
    names: AddrNames,
    scratch: String,
}

impl<W: Write> PacketTable<W> {
    fn new(out: W) -> io::Result<PacketTable<W>> {
        Ok(PacketTable {
            table: Table::new(out, PACKETS)?,
            text: Cells::default(),
        })
    }
}

impl<W: Write> PacketOut<W> for PacketTable<W> {
    fn row(&mut self, r: &PacketRow) -> io::Result<()> {
        push_packet(&mut self.table.buf, r, &mut self.text);
        self.table.spill()
    }

    fn finish(self) -> io::Result<W> {
        self.table.finish()
    }
}

/// Addresses as text, remembered: a trace repeats few addresses many times, and
/// formatting one costs more than the rest of its packets.csv cells.
struct AddrNames {
    slots: Vec<Option<(IpAddr, String)>>,
}

impl Default for AddrNames {
    fn default() -> Self {
        AddrNames {
            slots: vec![None; 256],
        }
    }
}

impl AddrNames {
    fn push(&mut self, out: &mut String, a: IpAddr) {
        // A multiplicative hash of the address's 128 bits (IPv4 mapped) picks the slot.
        let bits = match a {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let h = ((bits >> 64) as u64 ^ bits as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(h >> 56) as usize];
        match slot {
            Some((k, text)) if *k == a => out.push_str(text),
            _ => {
                let text = a.to_string();
                out.push_str(&text);
                *slot = Some((a, text));
            }
        }
    }
}

/// ISO 8601 times for consecutive packets: the date and time of day change once a
/// second, so they are formatted once a second and only the nanoseconds per packet.
#[derive(Default)]
struct Clock {
    second: Option<(i64, Option<i32>)>,
    head: String,
    tail: String,
}

impl Clock {
    /// The time as a cell (then `,`).
    fn push(&mut self, b: &mut Vec<u8>, ns: i64, tz: Option<i32>) {
        let sec = ns.div_euclid(1_000_000_000);
        if self.second != Some((sec, tz)) {
            let Some(start) = ns.checked_sub(ns.rem_euclid(1_000_000_000)) else {
                // The first second of the i64 range: not worth a cache.
                b.extend_from_slice(iso8601_at(ns, tz).as_bytes());
                b.push(b',');
                return;
            };
            let full = iso8601_at(start, tz);
            // `YYYY-MM-DDTHH:MM:SS.` + 9 digits + `Z` or `+HH:MM`.
            let (head, rest) = full.split_at(20);
            self.head = head.to_string();
            self.tail = rest[9..].to_string();
            self.second = Some((sec, tz));
        }
        b.extend_from_slice(self.head.as_bytes());
        push_digits(b, ns.rem_euclid(1_000_000_000) as u64, 9);
        b.extend_from_slice(self.tail.as_bytes());
        b.push(b',');
    }
}

/// Decimal digits of `v`, at least `width` of them (zero padded).
fn push_digits(b: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut d = [b'0'; 20];
    let mut i = d.len();
    while v > 0 || d.len() - i < width {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b.extend_from_slice(&d[i..]);
}

/// Seconds with nine decimals, signed, as a cell (then `,`): `rows::seconds` in bytes.
fn push_seconds(b: &mut Vec<u8>, ns: i64) {
    if ns < 0 {
        b.push(b'-');
    }
    let a = ns.unsigned_abs();
    push_digits(b, a / 1_000_000_000, 1);
    b.push(b'.');
    push_digits(b, a % 1_000_000_000, 9);
    b.push(b',');
}

fn push_text(b: &mut Vec<u8>, t: &Text) {
    if matches!(
        t.0.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) {
        push_str(b, &format!("'{}", t.0));
    } else {
        push_str(b, &t.0);
    }
}

/// Text that never needs quoting (numbers, times, addresses, flag names), then `,`.
fn push_plain(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(b',');
}

fn push_packet(b: &mut Vec<u8>, r: &PacketRow, c: &mut Cells) {
    let t = &mut c.scratch;
    push_num(b, Some(r.no));
    c.clock.push(b, r.time_ns, r.utc_offset);
    push_seconds(b, r.time_ns);
    push_seconds(b, r.delta_ns);
    push_text(b, &r.interface);
    push_str(b, r.direction);
    t.clear();
    if let Some(a) = r.local_ip {
        c.names.push(t, a);
    }
    push_plain(b, t);
    push_num(b, r.local_port.map(u64::from));
    t.clear();
    if let Some(a) = r.remote_ip {
        c.names.push(t, a);
    }
    push_plain(b, t);
    push_num(b, r.remote_port.map(u64::from));
    push_str(b, &r.protocol);
    push_num(b, r.ip_len.map(u64::from));
    push_num(b, Some(r.captured as u64));
    if let Some(i) = r.ip_id {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for shift in [12, 8, 4, 0] {
            b.push(HEX[usize::from((i >> shift) & 0xF)]);
        }
    }
    b.push(b',');
    push_num(b, r.ttl.map(u64::from));
    t.clear();
    if let Some(f) = r.tcp_flags {
        crate::net::push_flag_names(t, f);
    }
    push_plain(b, t);
    push_num(b, r.seq.map(u64::from));
    push_num(b, r.ack.map(u64::from));
    push_num(b, r.window.map(u64::from));
    push_num(b, r.payload.map(u64::from));
    push_num(b, r.session);
    push_str(b, r.app);
    push_text(b, &r.message);
    push_str(b, &r.analysis);
    push_num(b, r.discard_code.map(u64::from));
    push_str(b, &r.discard);
    push_str(b, &r.note);
    // The last field ends the record, not a separator.
    b.pop();
    b.push(b'\n');
}

impl<W: Write, P: PacketOut<W>> Sink for Tables<W, P> {
    fn datatrace(&mut self, r: &DataTraceRow) -> io::Result<()> {
        self.datatrace.row(r)
    }
    fn packet(&mut self, r: &PacketRow) -> io::Result<()> {
        self.packets.row(r)
    }
    fn session(&mut self, r: &SessionRow) -> io::Result<()> {
        self.sessions.row(r)
    }
    fn ftp(&mut self, r: &FtpRow) -> io::Result<()> {
        self.ftp.row(r)
    }
    fn tls(&mut self, r: &TlsRow) -> io::Result<()> {
        self.tls.row(r)
    }
    fn exception(&mut self, r: &ExceptionRow) -> io::Result<()> {
        self.exceptions.row(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::rows;

    /// The column lists are the structs' field names, in order (the header row is
    /// written from the lists so that empty tables have one too).
    fn header_of(r: &impl Serialize) -> String {
        let mut w = ::csv::Writer::from_writer(Vec::new());
        w.serialize(r).ok();
        let out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        out.lines().next().unwrap_or_default().to_string()
    }

    #[test]
    fn column_lists_match_the_rows() {
        assert_eq!(header_of(&SessionRow::default()), SESSIONS.join(","));
        assert_eq!(header_of(&FtpRow::default()), FTP.join(","));
        assert_eq!(header_of(&TlsRow::default()), TLS.join(","));
        assert_eq!(header_of(&ExceptionRow::default()), EXCEPTIONS.join(","));
        assert_eq!(header_of(&DataTraceRow::default()), DATATRACE.join(","));
        assert_eq!(header_of(&PathRow::default()), PATH.join(","));
    }

    /// A packets.csv row has one cell per column, in text the way the csv crate
    /// would quote it, with times, addresses, IP id and flags rendered from values.
    #[test]
    fn packet_rows_written_by_hand_equal_the_crate() {
        let mut r = PacketRow {
            no: 7,
            time_ns: 1_295_964_785_687_445_000,
            delta_ns: -1000,
            interface: Text("=LINK".into()),
            direction: "out",
            local_ip: Some("10.0.0.1".parse().unwrap_or_else(|_| unreachable!())),
            local_port: Some(21),
            remote_ip: Some("2001:db8::1".parse().unwrap_or_else(|_| unreachable!())),
            protocol: "TCP".into(),
            ip_len: Some(0),
            ip_id: Some(0x0a1f),
            ttl: Some(255),
            tcp_flags: Some(0x18),
            seq: Some(u32::MAX),
            message: Text("ftp reply 227 \"x\", y".into()),
            note: "line\r\nbreak".into(),
            session: Some(3),
            ..Default::default()
        };
        let expect = |r: &PacketRow, time: &str| {
            let cells = [
                "7",
                time,
                "1295964785.687445000",
                "-0.000001000",
                "'=LINK",
                "out",
                "10.0.0.1",
                "21",
                "2001:db8::1",
                "",
                "TCP",
                "0",
                "0",
                "0A1F",
                "255",
                "ACK PSH",
                "4294967295",
                "",
                "",
                "",
                "3",
                "",
                &r.message.0,
                "",
                "",
                "",
                &r.note,
            ];
            assert_eq!(cells.len(), PACKETS.len());
            let mut w = ::csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            w.write_record(cells).ok();
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        };
        let mut c = Cells::default();
        let mut b = Vec::new();
        push_packet(&mut b, &r, &mut c);
        assert_eq!(
            String::from_utf8_lossy(&b),
            expect(&r, "2011-01-25T14:13:05.687445000Z")
        );
        // The same second at another offset: the clock's cache must not answer.
        r.utc_offset = Some(3600);
        b.clear();
        push_packet(&mut b, &r, &mut c);
        assert_eq!(
            String::from_utf8_lossy(&b),
            expect(&r, "2011-01-25T15:13:05.687445000+01:00")
        );
    }

    /// Cells written from bytes equal the text forms the other tables use.
    #[test]
    fn seconds_cells_equal_rows_seconds() {
        for ns in [
            0,
            1,
            -1,
            999_999_999,
            1_000_000_000,
            -2_000,
            1_295_964_785_687_445_000,
            i64::MAX,
            i64::MIN,
        ] {
            let mut b = Vec::new();
            push_seconds(&mut b, ns);
            assert_eq!(
                String::from_utf8_lossy(&b),
                format!("{},", rows::seconds(ns))
            );
        }
    }

    /// Tables on their own thread write what they write in place, in the same order,
    /// across many batches and reused rows.
    #[test]
    fn spawned_tables_write_what_tables_write() {
        let feed = |sink: &mut dyn Sink| {
            for i in 0..3000u64 {
                let r = PacketRow {
                    no: i + 1,
                    time_ns: i as i64 * 1_000_003,
                    message: Text(if i % 3 == 0 {
                        "x".repeat(i as usize % 50)
                    } else {
                        String::new()
                    }),
                    seq: (i % 2 == 0).then_some(i as u32),
                    ..Default::default()
                };
                sink.packet(&r).ok();
                if i % 100 == 0 {
                    let e = ExceptionRow {
                        message: format!("exception {i}").into(),
                        ..Default::default()
                    };
                    sink.exception(&e).ok();
                }
            }
        };
        let mut direct =
            Tables::<Vec<u8>>::new(Default::default()).unwrap_or_else(|_| unreachable!());
        feed(&mut direct);
        let want = direct.finish().unwrap_or_else(|_| unreachable!());
        let mut spawned = Tables::<Vec<u8>>::new(Default::default())
            .unwrap_or_else(|_| unreachable!())
            .spawn();
        feed(&mut spawned);
        let got = spawned.finish().unwrap_or_else(|_| unreachable!());
        assert_eq!(got, want);
        assert_eq!(String::from_utf8_lossy(&got[0]).lines().count(), 3001);
    }

    /// Remembered address texts never answer for another address of the same slot.
    #[test]
    fn address_cache_is_exact() {
        let mut n = AddrNames::default();
        for i in 0..2000u32 {
            for a in [
                IpAddr::from(std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761))),
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) << 64 | 1)),
            ] {
                for _ in 0..2 {
                    let mut t = String::new();
                    n.push(&mut t, a);
                    assert_eq!(t, a.to_string());
                }
            }
        }
    }

    #[test]
    fn bom_header_and_quoting() {
        let mut t = Tables::new(Default::default()).unwrap_or_else(|_| unreachable!());
        let r = ExceptionRow {
            message: "a, \"quoted\" =x".into(),
            ..Default::default()
        };
        t.exception(&r).ok();
        let [_, s, _, _, e, _] = t.finish().unwrap_or_else(|_| unreachable!());
        let s = String::from_utf8(s).unwrap_or_default();
        assert!(s.starts_with("\u{feff}session,protocol,"));
        assert_eq!(s.lines().count(), 1, "an empty table still has its header");
        let e = String::from_utf8(e).unwrap_or_default();
        assert!(e.ends_with(",,,,,\"a, \"\"quoted\"\" =x\"\n"), "{e}");
    }
}
