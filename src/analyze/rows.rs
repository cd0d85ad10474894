//! The rows of the CSV tables (outputs.md sections 3-7), as the analysis produces
//! them. Field names are the column names: they are a contract. `output::csv`
//! serialises them.

use serde::Serialize;

/// Text that came from trace data. Serialised with a `'` in front when it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return, so that a spreadsheet never takes it
/// for a formula (outputs.md section 8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.chars().next() {
            Some('=' | '+' | '-' | '@' | '\t' | '\r') => s.serialize_str(&format!("'{}", self.0)),
            _ => s.serialize_str(&self.0),
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.to_string())
    }
}

/// A packets.csv row, in values rather than text: `output::csv` turns them into text
/// on a thread of its own (times, addresses and flags were a fifth of the analysis).
#[derive(Clone, Debug, Default)]
pub struct PacketRow {
    pub no: u64,
    /// Unix nanoseconds: the `time` and `epoch` columns.
    pub time_ns: i64,
    /// Nanoseconds since the previous packet: `delta`.
    pub delta_ns: i64,
    /// The offset from UTC `time` is shown at (None: UTC).
    pub utc_offset: Option<i32>,
    pub interface: Text,
    pub direction: &'static str,
    pub local_ip: Option<std::net::IpAddr>,
    pub local_port: Option<u16>,
    pub remote_ip: Option<std::net::IpAddr>,
    pub remote_port: Option<u16>,
    pub protocol: String,
    pub ip_len: Option<u32>,
    pub captured: usize,
    /// Shown as four hex digits.
    pub ip_id: Option<u16>,
    pub ttl: Option<u8>,
    /// The TCP flag bits (FIN = 0x01 ... CWR = 0x80), shown by name.
    pub tcp_flags: Option<u8>,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub window: Option<u16>,
    pub payload: Option<u32>,
    pub session: Option<u64>,
    pub app: &'static str,
    pub message: Text,
    pub analysis: String,
    pub discard_code: Option<u16>,
    pub discard: String,
    pub note: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionRow {
    pub session: u64,
    pub protocol: String,
    pub app: &'static str,
    pub local_ip: String,
    pub local_port: Option<u16>,
    pub remote_ip: String,
    pub remote_port: Option<u16>,
    pub interface: Text,
    pub initiator: &'static str,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub state: &'static str,
    pub history: String,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub payload_in: u64,
    pub payload_out: u64,
    pub retransmissions: u64,
    pub out_of_order: u64,
    pub dup_acks: u64,
    pub zero_windows: u64,
    pub resets: u64,
    pub rtt_ms: String,
    pub mss_local: Option<u16>,
    pub mss_remote: Option<u16>,
    pub wscale_local: Option<u8>,
    pub wscale_remote: Option<u8>,
    pub discards: u64,
    pub ftp_role: &'static str,
    pub ftp_control: Option<u64>,
    pub ftp_user: Text,
    pub ftp_commands: Option<u64>,
    pub ftp_login: &'static str,
    pub tls_version: String,
    pub tls_cipher: String,
    pub tls_sni: Text,
    pub tls_alpn: Text,
    pub tls_established: &'static str,
    /// Data trace of the socket (empty without one): job, records, application bytes
    /// received and sent, AT-TLS status.
    pub data_job: Text,
    pub data_records: Option<u64>,
    pub data_bytes_in: Option<u64>,
    pub data_bytes_out: Option<u64>,
    pub data_attls: &'static str,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FtpRow {
    pub time: String,
    pub session: u64,
    pub user: Text,
    pub command: Text,
    pub argument: Text,
    pub reply_code: Option<u16>,
    pub reply_message: Text,
    pub preliminary: Text,
    pub data_mode: &'static str,
    pub data_ip: String,
    pub data_port: Option<u16>,
    pub data_session: Option<u64>,
    pub data_status: &'static str,
    pub data_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsRow {
    pub time: String,
    pub session: u64,
    pub record_version: String,
    pub client_version: String,
    pub offered_versions: String,
    pub sni: Text,
    pub alpn: Text,
    pub offered_ciphers: Option<usize>,
    pub server_version: String,
    pub cipher: String,
    pub cert_subject: Text,
    pub cert_issuer: Text,
    pub cert_not_after: String,
    pub alert: String,
    pub established: &'static str,
    pub resumed: &'static str,
    pub truncated: &'static str,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ExceptionRow {
    pub time: String,
    pub session: Option<u64>,
    pub packet: Option<u64>,
    pub severity: &'static str,
    pub category: &'static str,
    pub message: Text,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DataTraceRow {
    pub time: String,
    pub job: Text,
    pub local_ip: String,
    pub local_port: Option<u16>,
    pub remote_ip: String,
    pub remote_port: Option<u16>,
    pub direction: &'static str,
    pub state: String,
    pub bytes: u32,
    pub captured: usize,
    pub attls: &'static str,
    pub session: Option<u64>,
    pub preview_ascii: Text,
    pub preview_ebcdic: Text,
}

/// Where the analysis puts its rows. `output::csv` writes them; tests collect them.
pub trait Sink {
    fn datatrace(&mut self, r: &DataTraceRow) -> std::io::Result<()>;
    fn packet(&mut self, r: &PacketRow) -> std::io::Result<()>;
    fn session(&mut self, r: &SessionRow) -> std::io::Result<()>;
    fn ftp(&mut self, r: &FtpRow) -> std::io::Result<()>;
    fn tls(&mut self, r: &TlsRow) -> std::io::Result<()>;
    fn exception(&mut self, r: &ExceptionRow) -> std::io::Result<()>;
}

impl<T: Sink + ?Sized> Sink for &mut T {
    fn datatrace(&mut self, r: &DataTraceRow) -> std::io::Result<()> {
        (**self).datatrace(r)
    }
    fn packet(&mut self, r: &PacketRow) -> std::io::Result<()> {
        (**self).packet(r)
    }
    fn session(&mut self, r: &SessionRow) -> std::io::Result<()> {
        (**self).session(r)
    }
    fn ftp(&mut self, r: &FtpRow) -> std::io::Result<()> {
        (**self).ftp(r)
    }
    fn tls(&mut self, r: &TlsRow) -> std::io::Result<()> {
        (**self).tls(r)
    }
    fn exception(&mut self, r: &ExceptionRow) -> std::io::Result<()> {
        (**self).exception(r)
    }
}

/// Collects rows in memory (tests, small inputs).
#[derive(Default, Debug)]
pub struct Collect {
    pub packets: Vec<PacketRow>,
    pub sessions: Vec<SessionRow>,
    pub ftp: Vec<FtpRow>,
    pub tls: Vec<TlsRow>,
    pub exceptions: Vec<ExceptionRow>,
    pub datatrace: Vec<DataTraceRow>,
}

impl Sink for Collect {
    fn datatrace(&mut self, r: &DataTraceRow) -> std::io::Result<()> {
        self.datatrace.push(r.clone());
        Ok(())
    }
    fn packet(&mut self, r: &PacketRow) -> std::io::Result<()> {
        self.packets.push(r.clone());
        Ok(())
    }
    fn session(&mut self, r: &SessionRow) -> std::io::Result<()> {
        self.sessions.push(r.clone());
        Ok(())
    }
    fn ftp(&mut self, r: &FtpRow) -> std::io::Result<()> {
        self.ftp.push(r.clone());
        Ok(())
    }
    fn tls(&mut self, r: &TlsRow) -> std::io::Result<()> {
        self.tls.push(r.clone());
        Ok(())
    }
    fn exception(&mut self, r: &ExceptionRow) -> std::io::Result<()> {
        self.exceptions.push(r.clone());
        Ok(())
    }
}

impl PacketRow {
    /// Becomes a copy of `src`, reusing this row's strings (no allocation once they
    /// are long enough). The pattern names every field, so a new one cannot be missed.
    pub fn copy_from(&mut self, src: &PacketRow) {
        let PacketRow {
            no,
            time_ns,
            delta_ns,
            utc_offset,
            interface,
            direction,
            local_ip,
            local_port,
            remote_ip,
            remote_port,
            protocol,
            ip_len,
            captured,
            ip_id,
            ttl,
            tcp_flags,
            seq,
            ack,
            window,
            payload,
            session,
            app,
            message,
            analysis,
            discard_code,
            discard,
            note,
        } = src;
        self.no = *no;
        self.time_ns = *time_ns;
        self.delta_ns = *delta_ns;
        self.utc_offset = *utc_offset;
        self.interface.0.clone_from(&interface.0);
        self.direction = direction;
        self.local_ip = *local_ip;
        self.local_port = *local_port;
        self.remote_ip = *remote_ip;
        self.remote_port = *remote_port;
        self.protocol.clone_from(protocol);
        self.ip_len = *ip_len;
        self.captured = *captured;
        self.ip_id = *ip_id;
        self.ttl = *ttl;
        self.tcp_flags = *tcp_flags;
        self.seq = *seq;
        self.ack = *ack;
        self.window = *window;
        self.payload = *payload;
        self.session = *session;
        self.app = app;
        self.message.0.clone_from(&message.0);
        self.analysis.clone_from(analysis);
        self.discard_code = *discard_code;
        self.discard.clone_from(discard);
        self.note.clone_from(note);
    }

    /// Empties the row for the next packet, keeping the strings' capacity.
    pub fn reset(&mut self) {
        for s in [
            &mut self.interface.0,
            &mut self.protocol,
            &mut self.message.0,
            &mut self.analysis,
            &mut self.discard,
            &mut self.note,
        ] {
            s.clear();
        }
        self.no = 0;
        self.time_ns = 0;
        self.delta_ns = 0;
        self.utc_offset = None;
        self.direction = "";
        self.local_ip = None;
        self.local_port = None;
        self.remote_ip = None;
        self.remote_port = None;
        self.ip_len = None;
        self.captured = 0;
        self.ip_id = None;
        self.ttl = None;
        self.tcp_flags = None;
        self.seq = None;
        self.ack = None;
        self.window = None;
        self.payload = None;
        self.session = None;
        self.app = "";
        self.discard_code = None;
    }
}

/// Seconds with nine decimals, signed.
pub fn seconds(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    format!("{sign}{}.{:09}", a / 1_000_000_000, a % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_guard_and_seconds() {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize((Text("=cmd()".into()), Text("-1".into()), Text("ok".into())))
            .ok();
        let out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        assert_eq!(out, "'=cmd(),'-1,ok\n");
        assert_eq!(seconds(1_500_000_001), "1.500000001");
        assert_eq!(seconds(-2_000), "-0.000002000");
    }
}
