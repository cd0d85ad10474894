//! TLS handshake decoder. Place in the flow: the session layer hands it the in-order TCP
//! payload bytes of one connection, per direction; it gives back one row per handshake
//! (tls.csv, and the first handshake for the tls_* columns of sessions.csv) and short
//! per-packet lines for packets.csv `message` (spec outputs.md sections 3, 4 and 6).
//! It knows nothing of packets or sessions: frame numbers and times only label output.
//!
//! Only what travels in clear is read: record headers, the hellos, the server's first
//! certificate (TLS <= 1.2), unencrypted alerts and ChangeCipherSpec. Memory is bounded
//! per direction: one record header, one handshake message of at most 64 KiB, a few
//! bytes of alert. Bodies that cannot be read (application data, encrypted handshake)
//! are counted through, never buffered.

use tls_parser::{
    TlsCipherSuite, TlsExtension, TlsMessageHandshake, parse_tls_client_hello_extension,
    parse_tls_handshake_client_hello, parse_tls_handshake_msg_certificate,
    parse_tls_handshake_msg_hello_retry_request, parse_tls_handshake_server_hello,
    parse_tls_server_hello_extension,
};
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{AttributeTypeAndValue, X509Name, parse_x509_certificate};

use super::Dir;

/// Record content types (RFC 8446 5.1, RFC 6520 for heartbeat).
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const HEARTBEAT: u8 = 24;
/// Internal marker for an SSLv2-compatible ClientHello record (two-byte header).
const SSLV2: u8 = 0x80;

/// Longest record body RFC 5246 6.2.3 allows (TLSCiphertext, 2^14 + 2048). A longer
/// length field means the bytes are not TLS.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// Longest handshake message buffered: a longer one (a huge certificate chain) is
/// decoded from its first MAX_MESSAGE bytes, the rest skipped and the handshake marked
/// truncated, so one connection never holds more than this.
const MAX_MESSAGE: usize = 64 << 10;
/// Alert bytes kept per record: a plaintext alert is 2 bytes, more means encrypted.
const MAX_ALERT: usize = 64;
/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 4.1.3: SHA-256 of
/// "HelloRetryRequest").
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// One TLS handshake: a row of tls.csv (without `session`, which the caller knows).
///
/// Text fields are empty when not seen. `alpn` is the server's choice when it is
/// visible (TLS <= 1.2 ServerHello), otherwise the client's offer, space separated in
/// the client's order (TLS 1.3 sends the choice encrypted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Time and packet number of the handshake's first message (normally ClientHello).
    pub time_ns: i64,
    pub frame: u64,
    /// Version in the header of the record that carried the ClientHello.
    pub record_version: String,
    /// ClientHello legacy_version.
    pub client_version: String,
    /// The client's supported_versions, highest first, space separated.
    pub offered_versions: String,
    pub sni: String,
    pub alpn: String,
    /// Number of cipher suites offered (GREASE values not counted).
    pub offered_ciphers: Option<usize>,
    /// Negotiated version (TLS 1.3 through supported_versions).
    pub server_version: String,
    /// IANA name of the chosen suite, `0xXXXX` when unknown to the table.
    pub cipher: String,
    /// First server certificate (TLS <= 1.2): RFC 4514 order, e.g. `CN=a,O=b,C=US`.
    pub cert_subject: String,
    pub cert_issuer: String,
    /// `2025-01-31T12:00:00Z`
    pub cert_not_after: String,
    /// First alert, e.g. `fatal handshake_failure (server)`; `encrypted (client)` when
    /// it was sent after ChangeCipherSpec, `not traced (server)` when a gap hid it.
    pub alert: String,
    /// `yes`, `no` or `unknown` (spec section 6).
    pub established: &'static str,
    /// TLS <= 1.2: the server took up the session id or ticket (abbreviated
    /// handshake); TLS 1.3: it accepted a pre-shared key.
    pub resumed: bool,
    pub truncated: bool,
}

/// How far a direction's byte stream is understood.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet: the first bytes must be a record header or this is not TLS.
    #[default]
    Start,
    /// At a known position in the record stream.
    Sync,
    /// Lost after a gap: hunting for the next plausible record header.
    Scan,
    /// The bytes stopped looking like TLS; the caller feeds this direction elsewhere.
    Stopped,
}

/// The record whose body is being read.
#[derive(Clone, Copy, Debug)]
struct Rec {
    typ: u8,
    version: u16,
    len: usize,
    got: usize,
    /// The direction had switched to encrypted records when this one began.
    encrypted: bool,
    /// A gap removed part of the body.
    damaged: bool,
}

/// What the handshake-message layer found. Bodies of incomplete messages are the
/// traced prefix, so an abbreviated ClientHello still gives its version and SNI.
enum HsEvent {
    Message(u8, Vec<u8>),
    /// Longer than MAX_MESSAGE: only the first MAX_MESSAGE bytes were kept.
    Skipped(u8, Vec<u8>),
    /// Partly lost in a gap (or cut by the end of the connection).
    Lost(u8, Vec<u8>),
}

/// Handshake messages span records: this reassembles them from the handshake record
/// bodies of one direction.
#[derive(Debug, Default)]
struct HsStream {
    /// Header and body so far of the message being collected (at most 4 + MAX_MESSAGE).
    buf: Vec<u8>,
    /// Bytes of a skipped or damaged message still to drop.
    skip: usize,
    /// Message boundaries unknown (after a gap); resume at the next handshake record.
    desync: bool,
    /// The next header follows a resynchronisation: check it looks like a message.
    check: bool,
}

impl HsStream {
    fn header(&self) -> Option<(u8, usize)> {
        match self.buf[..] {
            [t, a, b, c, ..] => Some((t, u24(a, b, c))),
            _ => None,
        }
    }

    fn lose_sync(&mut self) {
        self.desync = true;
        self.buf.clear();
        self.skip = 0;
    }

    /// The message being collected, as far as it got; the buffer is emptied.
    fn take_prefix(&mut self) -> Option<(u8, usize, Vec<u8>)> {
        let (t, len) = self.header()?;
        let body = self.buf.split_off(4);
        self.buf.clear();
        Some((t, len, body))
    }

    fn push(&mut self, mut c: &[u8], record_start: bool, out: &mut Vec<HsEvent>) {
        if self.desync && record_start {
            // Records usually begin with a message; assume so, but check the header.
            self.desync = false;
            self.check = true;
        }
        if self.desync {
            return;
        }
        while !c.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(c.len());
                self.skip -= n;
                c = c.get(n..).unwrap_or_default();
                continue;
            }
            // Bytes wanted: the header, then the body up to MAX_MESSAGE.
            let want = match self.header() {
                None => 4,
                Some((_, len)) => 4 + len.min(MAX_MESSAGE),
            };
            let n = want.saturating_sub(self.buf.len()).min(c.len());
            let (head, rest) = c.split_at(n);
            self.buf.extend_from_slice(head);
            c = rest;
            let Some((t, len)) = self.header() else {
                continue;
            };
            if self.buf.len() == 4 {
                // After a resynchronisation, reject what cannot be a message header:
                // an unknown type, or longer than any sane message.
                if std::mem::take(&mut self.check) && (handshake_name(t).is_none() || len > 1 << 18)
                {
                    self.lose_sync();
                    return;
                }
                // Exact, so the buffer never grows past header + MAX_MESSAGE.
                self.buf.reserve_exact(len.min(MAX_MESSAGE));
            }
            if self.buf.len() == 4 + len.min(MAX_MESSAGE)
                && let Some((t, len, body)) = self.take_prefix()
            {
                if len > MAX_MESSAGE {
                    self.skip = len - MAX_MESSAGE;
                    out.push(HsEvent::Skipped(t, body));
                } else {
                    out.push(HsEvent::Message(t, body));
                }
            }
        }
    }

    /// `g` bytes of handshake record body were not traced.
    fn gap(&mut self, g: usize, out: &mut Vec<HsEvent>) {
        if self.desync || g == 0 {
            return;
        }
        if self.skip > 0 {
            if g <= self.skip {
                self.skip -= g;
            } else {
                self.lose_sync();
            }
            return;
        }
        match self.take_prefix() {
            Some((t, len, body)) => {
                let left = len - body.len();
                out.push(HsEvent::Lost(t, body));
                if g <= left {
                    self.skip = left - g;
                } else {
                    self.lose_sync();
                }
            }
            // A message began inside the lost bytes: its length is unknown.
            None => self.lose_sync(),
        }
    }
}

/// One direction of the connection.
#[derive(Debug, Default)]
struct Side {
    mode: Mode,
    hdr: [u8; 5],
    hdr_len: usize,
    rec: Option<Rec>,
    /// Alert or SSLv2 record bytes (bounded).
    small: Vec<u8>,
    hs: HsStream,
    /// After ChangeCipherSpec in TLS <= 1.2 this side's handshake records are encrypted.
    encrypted: bool,
    /// Record minor versions seen (bit per minor), to judge candidates after a gap.
    versions: u8,
    /// Packet number of the last bytes fed in this direction.
    last_frame: Option<u64>,
}

/// A handshake in progress (not yet decided).
#[derive(Debug, Default)]
struct Hs {
    row: Row,
    /// A ClientHello or ServerHello (or HelloRetryRequest) was seen.
    hello: bool,
    client_hello: bool,
    client_sid: Vec<u8>,
    hrr: bool,
    server_hello: bool,
    /// Negotiated version when known.
    version: Option<u16>,
    server_cert: bool,
    server_done: bool,
    /// ChangeCipherSpec seen, indexed by Dir::index.
    ccs: [bool; 2],
    /// Application data records after the server's hello, by Dir::index.
    app: [bool; 2],
    /// An alert that ends the handshake was seen (decides `no` at the end).
    failed: bool,
    /// The client offered TLS 1.3 (None: its hello was not traced that far).
    offers_tls13: Option<bool>,
    /// The server sent an encrypted handshake record (its TLS <= 1.2 Finished).
    server_finished: bool,
    /// ServerHello legacy_version, kept for when the hello was cut before its
    /// extensions and later messages show the version is <= 1.2.
    legacy: Option<u16>,
}

impl Hs {
    /// A message TLS 1.3 sends encrypted was seen in clear from the server (or its
    /// TLS <= 1.2 Finished): the legacy version of a cut ServerHello is the version.
    fn tls12_sign(&mut self) {
        if self.version.is_none()
            && let Some(v) = self.legacy
        {
            self.version = Some(v);
            self.row.server_version = version_name(v);
        }
    }
}

/// Streaming TLS handshake decoder for one connection. See the module comment.
#[derive(Debug, Default)]
pub struct Tls {
    sides: [Side; 2],
    hs: Option<Hs>,
    started: u32,
    first: Option<Row>,
    rows: Vec<Row>,
    messages: Vec<(u64, String)>,
    /// Messages of the packet being fed (deduplicated, in order).
    pkt: Vec<String>,
    in_packet: bool,
    frame: u64,
    time_ns: i64,
    seen: bool,
    /// Some ServerHello/HelloRetryRequest chose TLS 1.3: ChangeCipherSpec is then only
    /// middlebox compatibility and does not start encryption (RFC 8446 D.4).
    tls13: bool,
}

impl Tls {
    pub fn new() -> Tls {
        Tls::default()
    }

    /// In-order stream bytes of one packet; `frame` = packet number, `time_ns` = ns
    /// since epoch. Returns how many bytes were consumed as TLS. Less than
    /// `bytes.len()` means the rest does not look like TLS records (e.g. an FTP control
    /// channel back in clear text after CCC, or not TLS at all): the caller hands the
    /// rest elsewhere and stops feeding this direction (later calls return 0).
    pub fn data(&mut self, dir: Dir, bytes: &[u8], frame: u64, time_ns: i64) -> usize {
        let i = dir.index();
        self.frame = frame;
        self.time_ns = time_ns;
        self.in_packet = true;
        self.sides[i].last_frame = Some(frame);
        let mut pos = 0;
        let used = loop {
            let rest = match bytes.get(pos..) {
                Some(r) if !r.is_empty() => r,
                _ => break bytes.len(),
            };
            let side = &mut self.sides[i];
            match side.mode {
                Mode::Stopped => break pos,
                Mode::Scan => {
                    if looks_like_text(rest) {
                        side.mode = Mode::Stopped;
                        break pos;
                    }
                    match find_record(rest, side.versions) {
                        Some(off) => {
                            pos += off;
                            side.mode = Mode::Sync;
                        }
                        None => pos = bytes.len(),
                    }
                }
                Mode::Start | Mode::Sync => {
                    if side.rec.is_some() {
                        pos += self.feed_body(dir, rest);
                        continue;
                    }
                    let Some(&b) = rest.first() else {
                        break bytes.len();
                    };
                    // An SSLv2-compatible ClientHello can only open the client's stream.
                    let sslv2 = side.mode == Mode::Start && dir == Dir::ToServer;
                    let prefix = side.hdr.get(..side.hdr_len).unwrap_or_default();
                    if !header_byte_ok(prefix, b, sslv2) {
                        side.mode = Mode::Stopped;
                        // Header bytes taken from earlier packets cannot be given back.
                        break pos.saturating_sub(side.hdr_len);
                    }
                    if let Some(slot) = side.hdr.get_mut(side.hdr_len) {
                        *slot = b;
                    }
                    side.hdr_len += 1;
                    pos += 1;
                    if side.hdr_len == side.hdr.len() {
                        self.start_record(dir);
                    }
                }
            }
        };
        self.flush_packet();
        self.in_packet = false;
        used
    }

    /// `len` bytes missing in `dir` (abbreviated packet or capture gap): stays in step
    /// when the loss is inside a record body of known length, otherwise hunts for the
    /// next record header; the handshake in progress is marked truncated. A message
    /// cut by the loss is decoded as far as it was traced (and, when the loss belongs
    /// to the packet just fed, named in that packet's message line).
    pub fn gap(&mut self, dir: Dir, len: u64) {
        let i = dir.index();
        if len == 0 || self.sides[i].mode == Mode::Stopped {
            // Bytes lost after the stream left TLS are none of our business.
            return;
        }
        if let Some(h) = self.hs.as_mut() {
            h.row.truncated = true;
        }
        self.in_packet = self.sides[i].last_frame == Some(self.frame);
        let seen = self.seen;
        let side = &mut self.sides[i];
        let mut events = Vec::new();
        let mut finished = None;
        let mut version = 0;
        match side.mode {
            Mode::Stopped | Mode::Scan => {}
            Mode::Start => {
                // Before any record we cannot tell TLS from anything else after a gap;
                // stay strict unless the other direction already proved it is TLS.
                side.hdr_len = 0;
                if seen {
                    side.mode = Mode::Scan;
                }
            }
            Mode::Sync => {
                if side.hdr_len == 0
                    && let Some(rec) = side.rec.as_mut()
                    && let Ok(g) = usize::try_from(len)
                    && g <= rec.len - rec.got
                {
                    rec.got += g;
                    rec.damaged = true;
                    if rec.typ == HANDSHAKE && !rec.encrypted {
                        side.hs.gap(g, &mut events);
                    }
                    version = rec.version;
                    if rec.got == rec.len {
                        finished = side.rec.take();
                    }
                } else {
                    // The loss reaches past the current record (or into a header):
                    // where the following records begin is unknown.
                    if let Some((t, _, body)) = side.hs.take_prefix() {
                        events.push(HsEvent::Lost(t, body));
                    }
                    version = side.rec.map_or(0, |r| r.version);
                    side.mode = Mode::Scan;
                    side.rec = None;
                    side.hdr_len = 0;
                    side.hs.lose_sync();
                }
            }
        }
        for e in events {
            self.handshake_event(dir, e, version);
        }
        if let Some(r) = finished {
            self.end_record(dir, r);
        }
        if self.in_packet {
            self.flush_packet();
        }
        self.in_packet = false;
    }

    /// The connection ended (reset = by RST), or the trace did: a message cut short is
    /// decoded as far as it came, and the handshake in progress is decided (`no` after
    /// an alert or a reset, otherwise `unknown`).
    pub fn end(&mut self, reset: bool) {
        for dir in [Dir::ToServer, Dir::ToClient] {
            let side = &mut self.sides[dir.index()];
            let version = side.rec.map_or(0, |r| r.version);
            if let Some((t, _, body)) = side.hs.take_prefix() {
                if let Some(h) = self.hs.as_mut() {
                    h.row.truncated = true;
                }
                self.handshake_event(dir, HsEvent::Lost(t, body), version);
            }
        }
        if let Some(h) = &self.hs {
            let how = if reset || h.failed { "no" } else { "unknown" };
            self.close(how);
        }
    }

    /// Per-packet lines for packets.csv `message` (one per packet, several messages
    /// joined with `; `), drained.
    pub fn take_messages(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.messages)
    }

    /// Handshakes that are decided (established, failed) or, after `end()`, all of
    /// them; drained.
    pub fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }

    /// The first handshake's facts so far (for sessions.csv), once a ClientHello or
    /// ServerHello of it was seen.
    pub fn summary(&self) -> Option<&Row> {
        if let Some(r) = &self.first {
            return Some(r);
        }
        self.hs.as_ref().filter(|h| h.hello).map(|h| &h.row)
    }

    /// True if anything seen so far was TLS (a valid record header).
    pub fn seen(&self) -> bool {
        self.seen
    }

    // ----- record layer -----

    fn start_record(&mut self, dir: Dir) {
        self.seen = true;
        let side = &mut self.sides[dir.index()];
        let [h0, h1, h2, h3, h4] = side.hdr;
        side.hdr_len = 0;
        side.small.clear();
        side.mode = Mode::Sync;
        if h0 & 0x80 != 0 {
            // SSLv2 header: 15-bit length, then msg type and version, kept for parsing.
            let len = usize::from(u16::from_be_bytes([h0 & 0x7F, h1]));
            side.small.extend_from_slice(&[h2, h3, h4]);
            side.rec = Some(Rec {
                typ: SSLV2,
                version: 0x0002,
                len: len.saturating_sub(3),
                got: 0,
                encrypted: false,
                damaged: false,
            });
            return;
        }
        let len = usize::from(u16::from_be_bytes([h3, h4]));
        side.versions |= 1 << (h2 & 7);
        let encrypted = side.encrypted;
        side.rec = (len > 0).then_some(Rec {
            typ: h0,
            version: u16::from_be_bytes([h1, h2]),
            len,
            got: 0,
            encrypted,
            damaged: false,
        });
        match h0 {
            APPLICATION_DATA => {
                self.note("TLS Application Data");
                if let Some(h) = self.hs.as_mut()
                    && (h.server_hello || h.row.truncated)
                {
                    h.app[dir.index()] = true;
                    // A ServerHello cut before supported_versions: a server that sends
                    // application data before any sign of TLS <= 1.2 (certificate,
                    // ServerHelloDone, encrypted Finished) speaks TLS 1.3.
                    if dir == Dir::ToClient
                        && h.server_hello
                        && h.version.is_none()
                        && h.offers_tls13 != Some(false)
                        && !h.server_cert
                        && !h.server_done
                        && !h.server_finished
                    {
                        h.version = Some(0x0304);
                        h.row.server_version = version_name(0x0304);
                        self.tls13 = true;
                    }
                    self.check_established();
                }
            }
            HANDSHAKE if encrypted => {
                self.note("TLS Encrypted Handshake Message");
                if let Some(h) = self.hs.as_mut()
                    && dir == Dir::ToClient
                {
                    h.server_finished = true;
                    h.tls12_sign();
                }
            }
            HEARTBEAT => self.note("TLS Heartbeat"),
            _ => {}
        }
    }

    /// Feeds body bytes of the current record; returns how many were used.
    fn feed_body(&mut self, dir: Dir, chunk: &[u8]) -> usize {
        let side = &mut self.sides[dir.index()];
        let Some(rec) = side.rec.as_mut() else {
            return 0;
        };
        if rec.got >= rec.len {
            // Cannot happen (a full record is closed at once); never spin on it.
            side.rec = None;
            return 0;
        }
        let n = (rec.len - rec.got).min(chunk.len());
        let (part, _) = chunk.split_at(n);
        let first = rec.got == 0;
        rec.got += n;
        let r = *rec;
        let mut events = Vec::new();
        match r.typ {
            HANDSHAKE if !r.encrypted => side.hs.push(part, first, &mut events),
            ALERT | CHANGE_CIPHER_SPEC => {
                let room = MAX_ALERT.saturating_sub(side.small.len());
                side.small
                    .extend_from_slice(part.get(..room).unwrap_or(part));
            }
            // Bounded by the 15-bit SSLv2 length.
            SSLV2 => side.small.extend_from_slice(part),
            _ => {}
        }
        if r.got == r.len {
            side.rec = None;
        }
        for e in events {
            self.handshake_event(dir, e, r.version);
        }
        if r.got == r.len {
            self.end_record(dir, r);
        }
        n
    }

    fn end_record(&mut self, dir: Dir, r: Rec) {
        match r.typ {
            CHANGE_CIPHER_SPEC => self.change_cipher_spec(dir),
            ALERT => self.alert(dir, r),
            SSLV2 => self.sslv2_hello(r),
            _ => {}
        }
    }

    fn change_cipher_spec(&mut self, dir: Dir) {
        self.note("TLS Change Cipher Spec");
        let tls13 = self.tls13;
        self.sides[dir.index()].encrypted = !tls13;
        let Some(h) = self.hs.as_mut() else {
            return;
        };
        h.ccs[dir.index()] = true;
        // TLS <= 1.2: a server that goes straight from its hello to ChangeCipherSpec
        // (no certificate, no ServerHelloDone) runs the abbreviated, resumed handshake
        // (RFC 5246 7.3) whether by session id or by session ticket (RFC 5077 3.1).
        // Only when the version is known to be <= 1.2 and no gap could have hidden
        // the certificate.
        if dir == Dir::ToClient
            && h.version.is_some_and(|v| !is_tls13(v))
            && !h.row.truncated
            && h.server_hello
            && !h.server_cert
            && !h.server_done
        {
            h.row.resumed = true;
        }
        self.check_established();
    }

    fn alert(&mut self, dir: Dir, r: Rec) {
        let side = &self.sides[dir.index()];
        let plain = match side.small[..] {
            [level, desc] if !r.encrypted && !r.damaged => Some((level, desc)),
            _ => None,
        };
        // An alert longer than two bytes is encrypted: in TLS <= 1.2 its sender had
        // sent ChangeCipherSpec, even if a gap hid it.
        let implied_ccs = plain.is_none() && !r.damaged && !self.tls13;
        let text = match plain {
            Some((level, desc)) => format!("{} {}", alert_level(level), alert_name(desc)),
            None if r.damaged => "not traced".to_owned(),
            None => "encrypted".to_owned(),
        };
        match plain {
            Some(_) => self.note(&format!("TLS Alert {text}")),
            None if r.damaged => self.note("TLS Alert"),
            None => self.note("TLS Encrypted Alert"),
        }
        if implied_ccs && let Some(h) = self.hs.as_mut() {
            h.ccs[dir.index()] = true;
            self.check_established();
        }
        let Some(h) = self.hs.as_mut() else {
            return;
        };
        if h.row.alert.is_empty() {
            let who = match dir {
                Dir::ToServer => "client",
                Dir::ToClient => "server",
            };
            h.row.alert = format!("{text} ({who})");
        }
        // An encrypted or damaged alert in a handshake with gaps more likely follows
        // a ChangeCipherSpec the gaps hid than ends the handshake.
        h.failed |= plain.is_some() || !h.row.truncated;
        // A fatal alert ends the connection (RFC 8446 6); close_notify and
        // user_canceled end it too. Other warnings (e.g. unrecognized_name) may be
        // followed by a normal handshake.
        if let Some((level, desc)) = plain
            && (level == 2 || desc == 0 || desc == 90)
        {
            self.close("no");
        }
    }

    fn sslv2_hello(&mut self, r: Rec) {
        self.note("SSLv2 Client Hello");
        let facts = match self.sides[Dir::ToServer.index()].small[..] {
            [1, vh, vl, ch, cl, ..] => Some((u16::from_be_bytes([vh, vl]), ch, cl)),
            _ => None,
        };
        self.start(!r.damaged);
        let Some(h) = self.hs.as_mut() else {
            return;
        };
        h.hello = true;
        h.client_hello = true;
        h.row.record_version = "SSLv2".to_owned();
        if let Some((version, ch, cl)) = facts {
            h.row.client_version = version_name(version);
            // SSLv2 cipher specs are 3 bytes each.
            h.row.offered_ciphers = Some(usize::from(u16::from_be_bytes([ch, cl])) / 3);
        }
    }

    // ----- handshake layer -----

    fn handshake_event(&mut self, dir: Dir, e: HsEvent, record_version: u16) {
        let (t, bytes, complete) = match e {
            HsEvent::Message(t, body) => (t, body, true),
            HsEvent::Skipped(t, prefix) | HsEvent::Lost(t, prefix) => (t, prefix, false),
        };
        let body = Body {
            bytes: &bytes,
            complete,
        };
        self.handshake(dir, t, body, record_version);
        if !complete && let Some(h) = self.hs.as_mut() {
            h.row.truncated = true;
        }
    }

    /// One handshake message, whole or as far as it was traced.
    fn handshake(&mut self, dir: Dir, t: u8, body: Body, record_version: u16) {
        match (t, dir) {
            (1, Dir::ToServer) => self.client_hello(body, record_version),
            (2, Dir::ToClient) => self.server_hello(body),
            (6, Dir::ToClient) => self.draft_hello_retry(body),
            (11, Dir::ToClient) => self.server_certificate(body),
            _ => {
                let m = match t {
                    11 => certificate_message(body, first_certificate(body).as_ref()),
                    _ => format!("TLS {}", type_name(t)),
                };
                self.note(&m);
                // A handshake seen from its middle (capture started late) still gets a
                // row; after a decided one only a new ClientHello starts another.
                if t != 0 && self.hs.is_none() && self.started == 0 {
                    self.start(false);
                }
                if let Some(h) = self.hs.as_mut()
                    && t == 14
                    && dir == Dir::ToClient
                {
                    h.server_done = true;
                    h.row.resumed = false;
                    h.tls12_sign();
                }
            }
        }
    }

    fn client_hello(&mut self, body: Body, record_version: u16) {
        // After a HelloRetryRequest the second ClientHello belongs to the same
        // handshake; so does a ClientHello reported after the ServerHello because a
        // gap held back its end (the handshake had none yet).
        let continuing = matches!(&self.hs,
            Some(h) if (h.hrr && !h.server_hello) || !h.client_hello);
        if !continuing {
            if let Some(h) = &self.hs {
                // A new ClientHello replaces a handshake that never finished.
                let how = if h.failed { "no" } else { "unknown" };
                self.close(how);
            }
            self.start(body.complete);
        }
        let facts = client_hello_facts(body);
        let Some(h) = self.hs.as_mut() else {
            return;
        };
        h.hello = true;
        h.client_hello = true;
        set_if_empty(&mut h.row.record_version, version_name(record_version));
        let Some(ch) = facts else {
            self.note("TLS Client Hello (malformed)");
            return;
        };
        if let Some(v) = ch.version {
            set_if_empty(&mut h.row.client_version, version_name(v));
        }
        if h.row.offered_ciphers.is_none() {
            h.row.offered_ciphers = ch.ciphers;
        }
        if h.client_sid.is_empty()
            && let Some(sid) = ch.sid
        {
            h.client_sid = sid.to_vec();
        }
        for raw in extensions(ch.ext) {
            match parse_tls_client_hello_extension(raw) {
                Ok((_, TlsExtension::SNI(names))) => {
                    // host_name is the only name type defined (RFC 6066 3).
                    if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                        set_if_empty(&mut h.row.sni, printable(name));
                    }
                }
                Ok((_, TlsExtension::ALPN(protocols))) => {
                    let list: Vec<String> = protocols.iter().map(|p| printable(p)).collect();
                    set_if_empty(&mut h.row.alpn, list.join(" "));
                }
                Ok((_, TlsExtension::SupportedVersions(versions))) => {
                    h.offers_tls13 = Some(versions.iter().any(|v| is_tls13(v.0)));
                    let mut v: Vec<u16> = versions
                        .iter()
                        .map(|v| v.0)
                        .filter(|&v| !is_grease(v))
                        .collect();
                    v.sort_by_key(|&v| std::cmp::Reverse(version_rank(v)));
                    v.dedup();
                    let names: Vec<String> = v.into_iter().map(version_name).collect();
                    set_if_empty(&mut h.row.offered_versions, names.join(" "));
                }
                _ => {}
            }
        }
        if body.complete && h.offers_tls13.is_none() {
            // A whole hello without supported_versions offers TLS <= 1.2 only.
            h.offers_tls13 = Some(false);
        }
        let m = match h.row.sni.as_str() {
            "" => "TLS Client Hello".to_owned(),
            sni => format!("TLS Client Hello, SNI {sni}"),
        };
        self.note(&m);
    }

    fn server_hello(&mut self, body: Body) {
        if self.hs.is_none() {
            // The ClientHello was not seen (capture began later, or a gap hid it).
            self.start(false);
        }
        let Some(h) = self.hs.as_mut() else {
            return;
        };
        h.hello = true;
        let Some(sh) = parse_server_hello(body) else {
            self.note("TLS Server Hello (malformed)");
            return;
        };
        if !sh.hrr {
            h.legacy = Some(sh.legacy);
        }
        if let Some(v) = sh.version() {
            h.version = Some(v);
            h.row.server_version = version_name(v);
        }
        // After a HelloRetryRequest its version stands if the ServerHello is cut.
        let tls13 = h.version.is_some_and(is_tls13);
        if let Some(c) = sh.cipher {
            h.row.cipher = cipher_name(c);
        }
        let message = if sh.hrr {
            h.hrr = true;
            "TLS Hello Retry Request".to_owned()
        } else {
            h.server_hello = true;
            h.row.resumed = match h.version {
                // RFC 8446 4.2.11: the server accepts a PSK by sending pre_shared_key.
                Some(v) if is_tls13(v) => sh.psk,
                // RFC 5246 7.4.1.3: an echoed non-empty session id resumes it.
                Some(_) => sh
                    .sid
                    .is_some_and(|s| !s.is_empty() && *s == h.client_sid[..]),
                // Version unknown (hello cut): a TLS 1.3 server echoes the session id
                // too (RFC 8446 4.1.3), so the echo proves nothing.
                None => false,
            };
            if let Some(a) = sh.alpn {
                h.row.alpn = a;
            }
            let mut m = "TLS Server Hello".to_owned();
            for part in [&h.row.server_version, &h.row.cipher] {
                if !part.is_empty() {
                    m.push(' ');
                    m.push_str(part);
                }
            }
            m
        };
        self.tls13 |= tls13;
        self.note(&message);
    }

    /// TLS 1.3 drafts before 22 had a HelloRetryRequest message type of its own.
    fn draft_hello_retry(&mut self, body: Body) {
        if self.hs.is_none() {
            self.start(false);
        }
        let parsed = match parse_tls_handshake_msg_hello_retry_request(body.bytes) {
            Ok((_, TlsMessageHandshake::HelloRetryRequest(r))) if body.complete => {
                Some((r.version.0, r.cipher.0))
            }
            _ => None,
        };
        if let Some(h) = self.hs.as_mut() {
            h.hello = true;
            h.hrr = true;
            if let Some((version, cipher)) = parsed {
                h.version = Some(version);
                h.row.server_version = version_name(version);
                h.row.cipher = cipher_name(cipher);
                self.tls13 |= is_tls13(version);
            }
        }
        self.note("TLS Hello Retry Request");
    }

    fn server_certificate(&mut self, body: Body) {
        if self.hs.is_none() && self.started == 0 {
            self.start(false);
        }
        let facts = first_certificate(body);
        if let Some(h) = self.hs.as_mut() {
            h.server_cert = true;
            // A certificate means a full handshake, whatever the session id said.
            h.row.resumed = false;
            h.tls12_sign();
            if let Some(c) = facts.as_ref()
                && h.row.cert_subject.is_empty()
                && h.row.cert_issuer.is_empty()
            {
                h.row.cert_subject.clone_from(&c.subject);
                h.row.cert_issuer.clone_from(&c.issuer);
                h.row.cert_not_after.clone_from(&c.not_after);
            }
        }
        self.note(&certificate_message(body, facts.as_ref()));
    }

    // ----- handshake bookkeeping -----

    fn start(&mut self, complete: bool) {
        self.started = self.started.saturating_add(1);
        self.hs = Some(Hs {
            row: Row {
                time_ns: self.time_ns,
                frame: self.frame,
                established: "unknown",
                truncated: !complete,
                ..Row::default()
            },
            ..Hs::default()
        });
    }

    fn check_established(&mut self) {
        let Some(h) = &self.hs else {
            return;
        };
        // Spec section 6: both ChangeCipherSpec in TLS <= 1.2 (also when the version was
        // not seen); in TLS 1.3 ChangeCipherSpec is only for middleboxes, so application
        // data records from both sides after the server's hello count instead (they also
        // prove it in TLS <= 1.2 when a ChangeCipherSpec was lost).
        // A HelloRetryRequest exists only in TLS 1.3.
        let by_ccs = h.ccs[0] && h.ccs[1] && !h.hrr && !h.version.is_some_and(is_tls13);
        if by_ccs || (h.app[0] && h.app[1]) {
            self.close("yes");
        }
    }

    fn close(&mut self, established: &'static str) {
        let Some(mut h) = self.hs.take() else {
            return;
        };
        h.row.established = established;
        if self.first.is_none() && h.hello {
            self.first = Some(h.row.clone());
        }
        self.rows.push(h.row);
    }

    fn note(&mut self, m: &str) {
        if self.in_packet && !self.pkt.iter().any(|p| p == m) {
            self.pkt.push(m.to_owned());
        }
    }

    fn flush_packet(&mut self) {
        if self.pkt.is_empty() {
            return;
        }
        let pkt = std::mem::take(&mut self.pkt);
        match self.messages.last_mut() {
            // The same packet fed in several calls still gets one line.
            Some((f, line)) if *f == self.frame => {
                for m in pkt {
                    if !line.split("; ").any(|p| p == m) {
                        line.push_str("; ");
                        line.push_str(&m);
                    }
                }
            }
            _ => self.messages.push((self.frame, pkt.join("; "))),
        }
    }
}

/// Whether `b` may follow `prefix` in a record header: content type 20..24, major
/// version 3, minor 0..4, length within MAX_RECORD (zero only for application data,
/// RFC 8446 5.1). With `sslv2`, also the header of an SSLv2-compatible ClientHello
/// (RFC 5246 E.2: high bit set, msg_type 1, version 0x0002 or 3.x, length >= 9).
fn header_byte_ok(prefix: &[u8], b: u8, sslv2: bool) -> bool {
    match *prefix {
        [] => (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&b) || (sslv2 && b & 0x80 != 0),
        [t] if t & 0x80 != 0 => usize::from(u16::from_be_bytes([t & 0x7F, b])) >= 9,
        [t, _] if t & 0x80 != 0 => b == 1,
        [t, _, _] if t & 0x80 != 0 => b == 0 || b == 3,
        [t, _, _, major] if t & 0x80 != 0 => {
            if major == 3 {
                b <= 4
            } else {
                b == 2
            }
        }
        [_] => b == 3,
        [_, _] => b <= 4,
        [_, _, _] => usize::from(b) << 8 <= MAX_RECORD,
        [t, _, _, hi] => {
            let len = usize::from(u16::from_be_bytes([hi, b]));
            len <= MAX_RECORD && (len > 0 || t == APPLICATION_DATA)
        }
        _ => false,
    }
}

/// Whether `bytes` (up to 5) can begin a TLS record header.
fn prefix_ok(bytes: &[u8]) -> bool {
    bytes.iter().take(5).enumerate().all(|(i, &b)| {
        bytes
            .get(..i)
            .is_some_and(|prefix| header_byte_ok(prefix, b, false))
    })
}

/// After a gap: the first offset in `chunk` that holds a plausible record header, one
/// whose version was seen before on this side and whose end (when inside the chunk)
/// is followed by another plausible header.
fn find_record(chunk: &[u8], versions: u8) -> Option<usize> {
    (0..chunk.len()).find(|&p| {
        let Some(&[_, _, minor, hi, lo]) = chunk.get(p..p + 5) else {
            return false;
        };
        if !prefix_ok(chunk.get(p..p + 5).unwrap_or_default()) {
            return false;
        }
        if versions != 0 && versions & (1 << (minor & 7)) == 0 {
            return false;
        }
        let end = p + 5 + usize::from(u16::from_be_bytes([hi, lo]));
        prefix_ok(chunk.get(end..).unwrap_or_default())
    })
}

/// Printable ASCII lines: the stream went back to clear text (FTP after CCC), which
/// ciphertext practically never looks like.
fn looks_like_text(b: &[u8]) -> bool {
    b.len() >= 4
        && b.ends_with(b"\n")
        && b.iter()
            .all(|&c| c == b'\r' || c == b'\n' || c == b'\t' || (0x20..0x7F).contains(&c))
}

fn u24(a: u8, b: u8, c: u8) -> usize {
    (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c)
}

fn set_if_empty(field: &mut String, value: String) {
    if field.is_empty() {
        *field = value;
    }
}

/// Splits an extensions block into whole extensions (type, length, data); stops at the
/// first one that does not fit, so each can be parsed on its own and one malformed
/// extension does not hide the others.
fn extensions(mut b: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let &[_, _, hi, lo, ..] = b else {
            return None;
        };
        let n = 4 + usize::from(u16::from_be_bytes([hi, lo]));
        let one = b.get(..n)?;
        b = b.get(n..).unwrap_or_default();
        Some(one)
    })
}

/// A handshake message body: whole, or the traced prefix of one.
#[derive(Clone, Copy)]
struct Body<'a> {
    bytes: &'a [u8],
    complete: bool,
}

/// Reads big-endian fields off a possibly cut message; None once the bytes run out.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        match *self.take(2)? {
            [a, b] => Some(u16::from_be_bytes([a, b])),
            _ => None,
        }
    }
}

/// What a ClientHello says, as far as it was traced.
#[derive(Default)]
struct ClientHelloFacts<'a> {
    version: Option<u16>,
    sid: Option<&'a [u8]>,
    /// Suites offered, GREASE not counted.
    ciphers: Option<usize>,
    /// The extensions block (or its traced part: `extensions` stops at a cut one).
    ext: &'a [u8],
}

fn client_hello_facts(body: Body) -> Option<ClientHelloFacts> {
    if body.complete {
        let (_, ch) = parse_tls_handshake_client_hello(body.bytes).ok()?;
        let n = ch.ciphers.iter().filter(|c| !is_grease(c.0)).count();
        return Some(ClientHelloFacts {
            version: Some(ch.version.0),
            sid: Some(ch.session_id.unwrap_or_default()),
            ciphers: Some(n),
            ext: ch.ext.unwrap_or_default(),
        });
    }
    // Cut short: tls-parser wants the whole message, so read the fields in order
    // (RFC 8446 4.1.2) until the bytes run out.
    let mut f = ClientHelloFacts::default();
    let mut r = Fields(body.bytes);
    let _ = (|| {
        f.version = Some(r.u16()?);
        r.take(32)?;
        let n = r.u8()?;
        f.sid = Some(r.take(usize::from(n))?);
        let n = r.u16()?;
        let suites = r.take(usize::from(n))?;
        f.ciphers = Some(
            suites
                .chunks_exact(2)
                .filter(|c| !matches!(**c, [a, b] if is_grease(u16::from_be_bytes([a, b]))))
                .count(),
        );
        let n = r.u8()?;
        r.take(usize::from(n))?;
        r.u16()?;
        f.ext = r.0;
        Some(())
    })();
    Some(f)
}

/// What a ServerHello (or the HelloRetryRequest that shares its format) says, as far
/// as it was traced.
struct ServerHello<'a> {
    legacy: u16,
    hrr: bool,
    sid: Option<&'a [u8]>,
    cipher: Option<u16>,
    /// supported_versions (TLS 1.3).
    selected: Option<u16>,
    /// The extensions were all seen, so a missing supported_versions means <= 1.2.
    ext_complete: bool,
    psk: bool,
    alpn: Option<String>,
}

impl ServerHello<'_> {
    /// The negotiated version; a TLS 1.3 server writes 0x0303 in the legacy field, so
    /// that field alone is trusted only when the extensions were all traced.
    fn version(&self) -> Option<u16> {
        self.selected
            .or(Some(self.legacy).filter(|&v| self.ext_complete || v != 0x0303))
    }
}

fn parse_server_hello(body: Body) -> Option<ServerHello> {
    let mut r = Fields(body.bytes);
    let legacy = r.u16()?;
    let mut out = ServerHello {
        legacy,
        hrr: false,
        sid: None,
        cipher: None,
        selected: None,
        ext_complete: false,
        psk: false,
        alpn: None,
    };
    let mut ext: &[u8] = &[];
    if body.complete && legacy >> 8 != 0x7F {
        let (_, sh) = parse_tls_handshake_server_hello(body.bytes).ok()?;
        out.hrr = sh.random == HRR_RANDOM;
        out.sid = Some(sh.session_id.unwrap_or_default());
        out.cipher = Some(sh.cipher.0);
        out.ext_complete = true;
        ext = sh.ext.unwrap_or_default();
    } else {
        // TLS 1.3 drafts (0x7fNN in the hello) have no session id and no compression;
        // and a cut hello is read field by field.
        let draft = legacy >> 8 == 0x7F;
        let _ = (|| {
            out.hrr = r.take(32)? == HRR_RANDOM;
            if !draft {
                let n = r.u8()?;
                out.sid = Some(r.take(usize::from(n))?);
            }
            out.cipher = Some(r.u16()?);
            if !draft {
                r.u8()?;
            }
            if r.0.is_empty() && body.complete {
                // No extensions at all (allowed before TLS 1.3).
                out.ext_complete = true;
                return Some(());
            }
            let n = usize::from(r.u16()?);
            out.ext_complete = body.complete && r.0.len() >= n;
            ext = r.0.get(..n).unwrap_or(r.0);
            Some(())
        })();
    }
    for raw in extensions(ext) {
        match parse_tls_server_hello_extension(raw) {
            Ok((_, TlsExtension::SupportedVersions(v))) => {
                out.selected = v.first().map(|v| v.0);
            }
            Ok((_, TlsExtension::PreSharedKey(_))) => out.psk = true,
            Ok((_, TlsExtension::ALPN(p))) => {
                let list: Vec<String> = p.iter().map(|p| printable(p)).collect();
                out.alpn = Some(list.join(" "));
            }
            _ => {}
        }
    }
    Some(out)
}

struct CertFacts {
    subject: String,
    issuer: String,
    not_after: String,
    common_name: Option<String>,
}

/// The first certificate of a TLS <= 1.2 Certificate message (RFC 5246 7.4.2); from a
/// cut message when that certificate was traced whole.
fn first_certificate(body: Body) -> Option<CertFacts> {
    let der = if body.complete {
        let (_, msg) = parse_tls_handshake_msg_certificate(body.bytes).ok()?;
        let TlsMessageHandshake::Certificate(c) = msg else {
            return None;
        };
        c.cert_chain.first()?.data
    } else {
        let mut r = Fields(body.bytes);
        r.take(3)?;
        let &[a, b, c] = r.take(3)? else {
            return None;
        };
        r.take(u24(a, b, c))?
    };
    let (_, x) = parse_x509_certificate(der).ok()?;
    let common_name = x
        .subject()
        .iter_common_name()
        .next()
        .map(|a| escape_dn(&attribute_text(a)));
    Some(CertFacts {
        subject: distinguished_name(x.subject()),
        issuer: distinguished_name(x.issuer()),
        not_after: iso_seconds(x.validity().not_after.timestamp()),
        common_name,
    })
}

fn certificate_message(body: Body, facts: Option<&CertFacts>) -> String {
    match facts {
        Some(c) => match &c.common_name {
            Some(cn) => format!("TLS Certificate CN={cn}"),
            None => format!("TLS Certificate {}", c.subject),
        },
        None => match parse_tls_handshake_msg_certificate(body.bytes) {
            Ok((_, TlsMessageHandshake::Certificate(c)))
                if body.complete && c.cert_chain.is_empty() =>
            {
                "TLS Certificate (empty)".to_owned()
            }
            _ => "TLS Certificate".to_owned(),
        },
    }
}

/// RFC 4514 string: RDNs from last to first (so CN usually leads), `,` between them,
/// `+` inside a multi-valued RDN; attribute names as OpenSSL and Zeek print them.
fn distinguished_name(name: &X509Name) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|a| format!("{}={}", attribute_name(a), escape_dn(&attribute_text(a))))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute_name(a: &AttributeTypeAndValue) -> String {
    let oid = a.attr_type().to_id_string();
    let short = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        // RFC 4514 2.3: otherwise the dotted OID.
        _ => return oid,
    };
    short.to_owned()
}

fn attribute_text(a: &AttributeTypeAndValue) -> String {
    if let Ok(s) = a.as_str() {
        return s.to_owned();
    }
    let any = a.attr_value();
    let data = any.data;
    match any.tag() {
        Tag::BmpString => {
            let units = data.chunks_exact(2).map(|c| match *c {
                [a, b] => u16::from_be_bytes([a, b]),
                _ => 0xFFFD,
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| match *c {
                [a, b, d, e] => char::from_u32(u32::from_be_bytes([a, b, d, e]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
                _ => char::REPLACEMENT_CHARACTER,
            })
            .collect(),
        // Teletex and friends: in practice Latin-1.
        Tag::T61String | Tag::VisibleString | Tag::GeneralString | Tag::GraphicString => {
            data.iter().map(|&b| char::from(b)).collect()
        }
        // RFC 4514 2.4: a value with no string form is written as # and hex.
        _ => {
            let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
            format!("#{hex}")
        }
    }
}

/// RFC 4514 2.4 escaping (and control characters as \XX so a cell stays one line).
fn escape_dn(v: &str) -> String {
    if v.starts_with('#') && v.len() > 1 && v[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        // Already the hex form from attribute_text.
        return v.to_owned();
    }
    let n = v.chars().count();
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (certificates reach year 9999,
/// beyond what nanoseconds in an i64 can hold).
fn iso_seconds(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days to civil date in the proleptic Gregorian calendar (400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// SNI and ALPN bytes as text: printable ASCII kept, anything else as \xNN.
fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7F).contains(&c) && c != b'\\' {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("\\x{c:02X}"));
        }
    }
    s
}

/// GREASE values (RFC 8701): 0x0A0A, 0x1A1A, ... 0xFAFA.
fn is_grease(v: u16) -> bool {
    v & 0x0F0F == 0x0A0A && v >> 8 == v & 0xFF
}

fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v >> 8 == 0x7F
}

/// Orders versions: drafts of 1.3 (0x7fNN) between 1.2 and 1.3.
fn version_rank(v: u16) -> u32 {
    if v >> 8 == 0x7F {
        (0x0303 << 16) | (1 + u32::from(v & 0xFF))
    } else {
        u32::from(v) << 16
    }
}

/// Wireshark's spelling.
fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSLv2".to_owned(),
        0x0300 => "SSLv3".to_owned(),
        0x0301 => "TLSv1.0".to_owned(),
        0x0302 => "TLSv1.1".to_owned(),
        0x0303 => "TLSv1.2".to_owned(),
        0x0304 => "TLSv1.3".to_owned(),
        v if v >> 8 == 0x7F => format!("TLSv1.3-draft{}", v & 0xFF),
        v => format!("0x{v:04X}"),
    }
}

fn cipher_name(id: u16) -> String {
    match TlsCipherSuite::from_id(id) {
        Some(c) => c.name.to_owned(),
        None => format!("0x{id:04X}"),
    }
}

/// Handshake message names (IANA TLS HandshakeType registry), as Wireshark words them.
fn handshake_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "Hello Request",
        1 => "Client Hello",
        2 => "Server Hello",
        3 => "Hello Verify Request",
        4 => "New Session Ticket",
        5 => "End Of Early Data",
        6 => "Hello Retry Request",
        8 => "Encrypted Extensions",
        11 => "Certificate",
        12 => "Server Key Exchange",
        13 => "Certificate Request",
        14 => "Server Hello Done",
        15 => "Certificate Verify",
        16 => "Client Key Exchange",
        20 => "Finished",
        21 => "Certificate URL",
        22 => "Certificate Status",
        23 => "Supplemental Data",
        24 => "Key Update",
        25 => "Compressed Certificate",
        67 => "Next Protocol",
        254 => "Message Hash",
        _ => return None,
    })
}

fn type_name(t: u8) -> String {
    match handshake_name(t) {
        Some(n) => n.to_owned(),
        None => format!("Handshake type {t}"),
    }
}

fn alert_level(level: u8) -> String {
    match level {
        1 => "warning".to_owned(),
        2 => "fatal".to_owned(),
        l => format!("level{l}"),
    }
}

/// Alert descriptions (IANA TLS Alerts registry).
fn alert_name(desc: u8) -> String {
    let name = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        52 => "too_many_cids_requested",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        117 => "general_error",
        120 => "no_application_protocol",
        121 => "ech_required",
        d => return format!("alert{d}"),
    };
    name.to_owned()
}

/// Fuzz entry: cuts arbitrary bytes into operations on both directions (3-byte
/// headers: direction and operation, then a 16-bit length) and checks the promises
/// of the API on the way. Must never panic.
pub fn fuzz(data: &[u8]) {
    let mut t = Tls::new();
    let mut stopped = [false; 2];
    let mut rest = data;
    let mut frame = 0u64;
    while let [c, hi, lo, tail @ ..] = rest {
        frame += 1;
        let dir = if c & 1 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let n = u16::from_be_bytes([*hi, *lo]);
        rest = tail;
        match (c >> 1) & 7 {
            0 => t.gap(dir, u64::from(n)),
            1 if c & 0x80 != 0 => t.end(c & 0x40 != 0),
            _ => {
                let (chunk, r) = tail.split_at(usize::from(n).min(tail.len()));
                rest = r;
                let used = t.data(dir, chunk, frame, frame as i64);
                assert!(used <= chunk.len());
                if stopped[dir.index()] {
                    assert_eq!(used, 0, "a stopped direction takes nothing");
                }
                stopped[dir.index()] |= used < chunk.len();
            }
        }
        if frame.is_multiple_of(7) {
            let _ = t.take_messages();
            let _ = t.take_rows();
        }
        if let Some(r) = t.summary() {
            assert!(["yes", "no", "unknown"].contains(&r.established));
        }
    }
    t.end(false);
    for r in t.take_rows() {
        assert!(["yes", "no", "unknown"].contains(&r.established));
    }
    assert!(t.hs.is_none(), "end() decides every handshake");
}

#[cfg(test)]
#[path = "../../tests/unit/analyze_tls.rs"]
mod tests;
