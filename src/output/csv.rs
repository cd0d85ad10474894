//! The CSV tables (packets, sessions, ftp, tls, exceptions): UTF-8 with a byte-order
//! mark so spreadsheets detect the encoding, a header row even when a table is empty,
//! RFC 4180 quoting (the csv crate), and the formula guard of `analyze::rows::Text`.

use std::io::{self, Write};

use serde::Serialize;

use crate::analyze::rows::{ExceptionRow, FtpRow, PacketRow, SessionRow, Sink, Text, TlsRow};

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

/// The file name suffixes, in the order `Tables::new` takes its writers.
pub const NAMES: [&str; 5] = ["packets", "sessions", "ftp", "tls", "exceptions"];

struct Table<W: Write> {
    w: ::csv::Writer<W>,
}

impl<W: Write> Table<W> {
    fn new(mut out: W, columns: &[&str]) -> io::Result<Table<W>> {
        out.write_all("\u{feff}".as_bytes())?;
        let mut w = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        w.write_record(columns)?;
        Ok(Table { w })
    }

    fn row(&mut self, r: &impl Serialize) -> io::Result<()> {
        self.w.serialize(r).map_err(io::Error::other)
    }

    fn finish(self) -> io::Result<W> {
        self.w
            .into_inner()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Writes the five tables; implements the analysis `Sink`.
pub struct Tables<W: Write> {
    packets: Table<W>,
    sessions: Table<W>,
    ftp: Table<W>,
    tls: Table<W>,
    exceptions: Table<W>,
}

impl<W: Write> Tables<W> {
    /// Writers in the order of `NAMES`.
    pub fn new([p, s, f, t, e]: [W; 5]) -> io::Result<Tables<W>> {
        Ok(Tables {
            packets: Table::new(p, PACKETS)?,
            sessions: Table::new(s, SESSIONS)?,
            ftp: Table::new(f, FTP)?,
            tls: Table::new(t, TLS)?,
            exceptions: Table::new(e, EXCEPTIONS)?,
        })
    }

    pub fn finish(self) -> io::Result<[W; 5]> {
        Ok([
            self.packets.finish()?,
            self.sessions.finish()?,
            self.ftp.finish()?,
            self.tls.finish()?,
            self.exceptions.finish()?,
        ])
    }
}

/// Field-by-field writing for the one table with a row per packet: the serde path
/// costs a tenth of the analysis time there. Same cells as `serialize` would write
/// (tests compare the two).
struct Fields<'a, W: Write> {
    w: &'a mut ::csv::Writer<W>,
    num: [u8; 20],
    guarded: Vec<u8>,
}

impl<W: Write> Fields<'_, W> {
    fn s(&mut self, v: &str) -> io::Result<()> {
        self.w.write_field(v).map_err(io::Error::other)
    }

    fn text(&mut self, v: &Text) -> io::Result<()> {
        if matches!(
            v.0.as_bytes().first(),
            Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
        ) {
            self.guarded.clear();
            self.guarded.push(b'\'');
            self.guarded.extend_from_slice(v.0.as_bytes());
            self.w.write_field(&self.guarded).map_err(io::Error::other)
        } else {
            self.s(&v.0)
        }
    }

    fn n(&mut self, v: Option<u64>) -> io::Result<()> {
        let Some(mut v) = v else {
            return self.s("");
        };
        let mut i = self.num.len();
        loop {
            i -= 1;
            self.num[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.w.write_field(&self.num[i..]).map_err(io::Error::other)
    }
}

fn write_packet<W: Write>(w: &mut ::csv::Writer<W>, r: &PacketRow) -> io::Result<()> {
    let mut f = Fields {
        w,
        num: [0; 20],
        guarded: Vec::new(),
    };
    f.n(Some(r.no))?;
    f.s(&r.time)?;
    f.s(&r.epoch)?;
    f.s(&r.delta)?;
    f.text(&r.interface)?;
    f.s(r.direction)?;
    f.s(&r.local_ip)?;
    f.n(r.local_port.map(u64::from))?;
    f.s(&r.remote_ip)?;
    f.n(r.remote_port.map(u64::from))?;
    f.s(&r.protocol)?;
    f.n(r.ip_len.map(u64::from))?;
    f.n(Some(r.captured as u64))?;
    f.s(&r.ip_id)?;
    f.n(r.ttl.map(u64::from))?;
    f.s(&r.tcp_flags)?;
    f.n(r.seq.map(u64::from))?;
    f.n(r.ack.map(u64::from))?;
    f.n(r.window.map(u64::from))?;
    f.n(r.payload.map(u64::from))?;
    f.n(r.session)?;
    f.s(r.app)?;
    f.text(&r.message)?;
    f.s(&r.analysis)?;
    f.n(r.discard_code.map(u64::from))?;
    f.s(&r.discard)?;
    f.s(&r.note)?;
    w.write_record(None::<&[u8]>).map_err(io::Error::other)
}

impl<W: Write> Sink for Tables<W> {
    fn packet(&mut self, r: &PacketRow) -> io::Result<()> {
        write_packet(&mut self.packets.w, r)
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
        assert_eq!(header_of(&PacketRow::default()), PACKETS.join(","));
        assert_eq!(header_of(&SessionRow::default()), SESSIONS.join(","));
        assert_eq!(header_of(&FtpRow::default()), FTP.join(","));
        assert_eq!(header_of(&TlsRow::default()), TLS.join(","));
        assert_eq!(header_of(&ExceptionRow::default()), EXCEPTIONS.join(","));
    }

    #[test]
    fn packet_rows_written_by_hand_equal_serde() {
        let r = PacketRow {
            no: 7,
            time: "2011-01-25T14:13:05.687445000Z".into(),
            interface: Text("=LINK".into()),
            direction: "out",
            local_ip: "10.0.0.1".into(),
            local_port: Some(21),
            protocol: "TCP".into(),
            ip_len: Some(0),
            ttl: Some(255),
            seq: Some(u32::MAX),
            message: Text("ftp reply 227 \"x\", y".into()),
            session: Some(3),
            ..Default::default()
        };
        let mut serde = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        serde.serialize(&r).ok();
        let mut hand = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        write_packet(&mut hand, &r).ok();
        let a = serde.into_inner().unwrap_or_default();
        let b = hand.into_inner().unwrap_or_default();
        assert_eq!(String::from_utf8_lossy(&b), String::from_utf8_lossy(&a));
        assert!(String::from_utf8_lossy(&b).contains(",'=LINK,"));
    }

    #[test]
    fn bom_header_and_quoting() {
        let mut t = Tables::new([Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()])
            .unwrap_or_else(|_| unreachable!());
        let r = ExceptionRow {
            message: "a, \"quoted\" =x".into(),
            ..Default::default()
        };
        t.exception(&r).ok();
        let [_, s, _, _, e] = t.finish().unwrap_or_else(|_| unreachable!());
        let s = String::from_utf8(s).unwrap_or_default();
        assert!(s.starts_with("\u{feff}session,protocol,"));
        assert_eq!(s.lines().count(), 1, "an empty table still has its header");
        let e = String::from_utf8(e).unwrap_or_default();
        assert!(e.ends_with(",,,,,\"a, \"\"quoted\"\" =x\"\n"), "{e}");
    }
}
