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
        let by_ccs = h.ccs[0] && h.ccs[1] && !h.version.is_some_and(is_tls13);
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
mod tests {
    use super::*;

    // ----- builders for hand-made streams -----

    fn record(typ: u8, minor: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![typ, 3, minor];
        v.extend((body.len() as u16).to_be_bytes());
        v.extend(body);
        v
    }

    fn message(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend(body);
        v
    }

    fn ext(t: u16, data: &[u8]) -> Vec<u8> {
        let mut v = t.to_be_bytes().to_vec();
        v.extend((data.len() as u16).to_be_bytes());
        v.extend(data);
        v
    }

    #[derive(Default)]
    struct Ch<'a> {
        sni: Option<&'a str>,
        versions: &'a [u16],
        sid: &'a [u8],
        ciphers: &'a [u16],
        alpn: &'a [&'a str],
        ticket: &'a [u8],
    }

    fn client_hello(c: &Ch) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend([7u8; 32]);
        b.push(c.sid.len() as u8);
        b.extend(c.sid);
        b.extend(((c.ciphers.len() * 2) as u16).to_be_bytes());
        for x in c.ciphers {
            b.extend(x.to_be_bytes());
        }
        b.extend([1, 0]);
        let mut e = Vec::new();
        if let Some(name) = c.sni {
            let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
            d.push(0);
            d.extend((name.len() as u16).to_be_bytes());
            d.extend(name.as_bytes());
            e.extend(ext(0, &d));
        }
        if !c.alpn.is_empty() {
            let mut l = Vec::new();
            for p in c.alpn {
                l.push(p.len() as u8);
                l.extend(p.as_bytes());
            }
            let mut d = (l.len() as u16).to_be_bytes().to_vec();
            d.extend(l);
            e.extend(ext(16, &d));
        }
        if !c.versions.is_empty() {
            let mut d = vec![(c.versions.len() * 2) as u8];
            for v in c.versions {
                d.extend(v.to_be_bytes());
            }
            e.extend(ext(43, &d));
        }
        if !c.ticket.is_empty() {
            e.extend(ext(35, c.ticket));
        }
        b.extend((e.len() as u16).to_be_bytes());
        b.extend(e);
        message(1, &b)
    }

    fn server_hello(random: [u8; 32], sid: &[u8], cipher: u16, exts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend(random);
        b.push(sid.len() as u8);
        b.extend(sid);
        b.extend(cipher.to_be_bytes());
        b.push(0);
        let e: Vec<u8> = exts.concat();
        b.extend((e.len() as u16).to_be_bytes());
        b.extend(e);
        message(2, &b)
    }

    const C: Dir = Dir::ToServer;
    const S: Dir = Dir::ToClient;

    /// Feeds (direction, bytes) steps as packets numbered from 1.
    fn run(t: &mut Tls, steps: &[(Dir, Vec<u8>)]) {
        for (i, (d, b)) in steps.iter().enumerate() {
            let used = t.data(*d, b, i as u64 + 1, 1_000 * (i as i64 + 1));
            assert_eq!(used, b.len(), "step {i} consumed");
        }
    }

    fn tls12_full(sid_client: &[u8], sid_server: &[u8]) -> Vec<(Dir, Vec<u8>)> {
        let ch = client_hello(&Ch {
            sni: Some("www.example.com"),
            sid: sid_client,
            ciphers: &[0x0A0A, 0xC02F, 0x009C, 0x00FF],
            alpn: &["h2", "http/1.1"],
            ..Ch::default()
        });
        let alpn = ext(16, &[0, 3, 2, b'h', b'2']);
        let sh = server_hello([1; 32], sid_server, 0xC02F, &[alpn]);
        let mut flight = record(22, 3, &sh);
        flight.extend(record(
            22,
            3,
            &[message(11, &[0, 0, 0]), message(14, &[])].concat(),
        ));
        let mut client2 = record(22, 3, &message(16, &[1, 2, 3]));
        client2.extend(record(20, 3, &[1]));
        client2.extend(record(22, 3, &[0x55; 40]));
        let mut server2 = record(20, 3, &[1]);
        server2.extend(record(22, 3, &[0x66; 40]));
        vec![
            (C, record(22, 1, &ch)),
            (S, flight),
            (C, client2),
            (S, server2),
            (C, record(23, 3, &[9; 30])),
        ]
    }

    #[test]
    fn tls12_full_handshake() {
        let mut t = Tls::new();
        run(&mut t, &tls12_full(&[], &[5; 32]));
        assert!(t.seen());
        let rows = t.take_rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.frame, 1);
        assert_eq!(r.time_ns, 1_000);
        assert_eq!(r.record_version, "TLSv1.0");
        assert_eq!(r.client_version, "TLSv1.2");
        assert_eq!(r.offered_versions, "");
        assert_eq!(r.sni, "www.example.com");
        assert_eq!(r.alpn, "h2", "the server's choice wins over the offer");
        assert_eq!(r.offered_ciphers, Some(3), "GREASE not counted");
        assert_eq!(r.server_version, "TLSv1.2");
        assert_eq!(r.cipher, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        assert_eq!(r.established, "yes");
        assert!(!r.resumed && !r.truncated);
        assert_eq!(r.alert, "");
        assert_eq!(t.summary(), Some(r));
        let m = t.take_messages();
        assert_eq!(
            m,
            vec![
                (1, "TLS Client Hello, SNI www.example.com".to_owned()),
                (
                    2,
                    "TLS Server Hello TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; \
                     TLS Certificate (empty); TLS Server Hello Done"
                        .to_owned()
                ),
                (
                    3,
                    "TLS Client Key Exchange; TLS Change Cipher Spec; \
                     TLS Encrypted Handshake Message"
                        .to_owned()
                ),
                (
                    4,
                    "TLS Change Cipher Spec; TLS Encrypted Handshake Message".to_owned()
                ),
                (5, "TLS Application Data".to_owned()),
            ]
        );
        t.end(false);
        assert!(t.take_rows().is_empty(), "already taken");
    }

    #[test]
    fn any_split_gives_the_same_result() {
        let steps = tls12_full(&[], &[5; 32]);
        let mut whole = Tls::new();
        run(&mut whole, &steps);
        let want = whole.take_rows();
        let want_msgs = whole.take_messages();
        for size in [1, 2, 3, 5, 7, 13] {
            let mut t = Tls::new();
            for (i, (d, b)) in steps.iter().enumerate() {
                for c in b.chunks(size) {
                    assert_eq!(t.data(*d, c, i as u64 + 1, 1_000 * (i as i64 + 1)), c.len());
                }
            }
            assert_eq!(t.take_rows(), want, "chunks of {size}");
            assert_eq!(t.take_messages(), want_msgs, "chunks of {size}");
        }
    }

    #[test]
    fn resumed_by_session_id() {
        let sid = [9u8; 32];
        let ch = client_hello(&Ch {
            sid: &sid,
            ciphers: &[0x002F],
            ..Ch::default()
        });
        let sh = server_hello([1; 32], &sid, 0x002F, &[]);
        let mut s = record(22, 3, &sh);
        s.extend(record(20, 3, &[1]));
        s.extend(record(22, 3, &[0x44; 40]));
        let mut c = record(20, 3, &[1]);
        c.extend(record(22, 3, &[0x45; 40]));
        let mut t = Tls::new();
        run(&mut t, &[(C, record(22, 1, &ch)), (S, s), (C, c)]);
        let rows = t.take_rows();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].resumed);
        assert_eq!(rows[0].established, "yes");
    }

    #[test]
    fn resumed_by_ticket_and_not_resumed_with_certificate() {
        // A ticket resumption: new session id from the server, but no certificate and
        // no ServerHelloDone before its ChangeCipherSpec.
        let ch = client_hello(&Ch {
            ciphers: &[0x002F],
            ticket: &[1, 2, 3, 4],
            ..Ch::default()
        });
        let mut s = record(22, 3, &server_hello([1; 32], &[3; 32], 0x002F, &[]));
        s.extend(record(22, 3, &message(4, &[0, 0, 0, 1, 0, 0])));
        s.extend(record(20, 3, &[1]));
        let mut t = Tls::new();
        run(&mut t, &[(C, record(22, 1, &ch)), (S, s)]);
        assert!(t.summary().is_some_and(|r| r.resumed));

        // The same session id echoed but then a certificate: a full handshake.
        let mut t = Tls::new();
        let sid = [9u8; 32];
        let ch = client_hello(&Ch {
            sid: &sid,
            ciphers: &[0x002F],
            ..Ch::default()
        });
        let mut s = record(22, 3, &server_hello([1; 32], &sid, 0x002F, &[]));
        s.extend(record(22, 3, &message(11, &[0, 0, 0])));
        run(&mut t, &[(C, record(22, 1, &ch)), (S, s)]);
        assert!(t.summary().is_some_and(|r| !r.resumed));
    }

    #[test]
    fn tls13_with_hello_retry_request_is_one_handshake() {
        let ch = client_hello(&Ch {
            sni: Some("a.example"),
            versions: &[0x3A3A, 0x0303, 0x0304, 0x7F17],
            ciphers: &[0x1301, 0x1302],
            alpn: &["h2"],
            ..Ch::default()
        });
        let tls13 = ext(43, &[3, 4]);
        let hrr = server_hello(HRR_RANDOM, &[], 0x1302, std::slice::from_ref(&tls13));
        let mut s1 = record(22, 3, &hrr);
        s1.extend(record(20, 3, &[1]));
        let mut c2 = record(20, 3, &[1]);
        c2.extend(record(22, 3, &ch));
        let sh = server_hello([2; 32], &[], 0x1302, &[tls13, ext(41, &[0, 0])]);
        let mut s2 = record(22, 3, &sh);
        s2.extend(record(23, 3, &[0x77; 100]));
        let mut t = Tls::new();
        run(
            &mut t,
            &[(C, record(22, 1, &ch)), (S, s1), (C, c2), (S, s2.clone())],
        );
        assert!(
            t.take_rows().is_empty(),
            "not decided before the client's data"
        );
        let r = t.summary().cloned();
        run(&mut t, &[(C, record(23, 3, &[0x78; 50]))]);
        let rows = t.take_rows();
        assert_eq!(rows.len(), 1);
        let r2 = &rows[0];
        assert_eq!(r2.server_version, "TLSv1.3");
        assert_eq!(r2.cipher, "TLS_AES_256_GCM_SHA384");
        assert_eq!(r2.offered_versions, "TLSv1.3 TLSv1.3-draft23 TLSv1.2");
        assert_eq!(r2.alpn, "h2");
        assert_eq!(r2.sni, "a.example");
        assert!(r2.resumed, "pre_shared_key in the ServerHello");
        assert_eq!(r2.established, "yes");
        assert_eq!(r.map(|r| r.established), Some("unknown"));
        let m = t.take_messages();
        assert_eq!(m[1].1, "TLS Hello Retry Request; TLS Change Cipher Spec");
        assert_eq!(
            m[3].1,
            "TLS Server Hello TLSv1.3 TLS_AES_256_GCM_SHA384; TLS Application Data"
        );
    }

    #[test]
    fn tls13_compat_change_cipher_spec_is_not_establishment() {
        let ch = client_hello(&Ch {
            versions: &[0x0304],
            ciphers: &[0x1301],
            ..Ch::default()
        });
        let sh = server_hello([2; 32], &[], 0x1301, &[ext(43, &[3, 4])]);
        let mut s = record(22, 3, &sh);
        s.extend(record(20, 3, &[1]));
        let mut t = Tls::new();
        run(
            &mut t,
            &[(C, record(22, 1, &ch)), (S, s), (C, record(20, 3, &[1]))],
        );
        assert!(t.take_rows().is_empty());
        t.end(false);
        let rows = t.take_rows();
        assert_eq!(rows[0].established, "unknown");
        assert!(!rows[0].resumed);
    }

    #[test]
    fn fatal_alert_fails_the_handshake() {
        let ch = client_hello(&Ch {
            ciphers: &[0x002F],
            ..Ch::default()
        });
        let mut t = Tls::new();
        run(
            &mut t,
            &[(C, record(22, 1, &ch)), (S, record(21, 3, &[2, 40]))],
        );
        let rows = t.take_rows();
        assert_eq!(rows.len(), 1, "decided at once");
        assert_eq!(rows[0].alert, "fatal handshake_failure (server)");
        assert_eq!(rows[0].established, "no");
        assert_eq!(
            t.take_messages()[1],
            (2, "TLS Alert fatal handshake_failure".to_owned())
        );
    }

    #[test]
    fn warning_then_reset_and_plain_end() {
        let ch = record(22, 1, &client_hello(&Ch::default()));
        let mut t = Tls::new();
        run(&mut t, &[(C, ch.clone()), (S, record(21, 3, &[1, 112]))]);
        assert!(t.take_rows().is_empty(), "a warning does not end it");
        t.end(false);
        let rows = t.take_rows();
        assert_eq!(rows[0].alert, "warning unrecognized_name (server)");
        assert_eq!(rows[0].established, "no");

        let mut t = Tls::new();
        run(&mut t, &[(C, ch.clone())]);
        t.end(true);
        assert_eq!(t.take_rows()[0].established, "no");

        let mut t = Tls::new();
        run(&mut t, &[(C, ch)]);
        t.end(false);
        assert_eq!(t.take_rows()[0].established, "unknown");
    }

    #[test]
    fn clear_text_is_not_tls() {
        let mut t = Tls::new();
        assert_eq!(t.data(C, b"220 FTP server ready\r\n", 1, 0), 0);
        assert!(!t.seen());
        assert_eq!(
            t.data(C, &record(23, 3, &[1; 10]), 2, 0),
            0,
            "stays stopped"
        );
        t.end(false);
        assert!(t.take_rows().is_empty());
        assert!(t.summary().is_none());

        // TLS, then back to clear text (CCC) inside the same packet.
        let mut t = Tls::new();
        let mut b = record(21, 3, &[0x11; 26]);
        let n = b.len();
        b.extend(b"200 CCC ok\r\n");
        assert_eq!(t.data(S, &b, 1, 0), n);
        assert!(t.seen());
        // A header cut by the packet boundary and then proven wrong: what came
        // before this packet cannot be returned, the rest can.
        let mut t = Tls::new();
        assert_eq!(t.data(S, &[23, 3, 3], 1, 0), 3);
        assert_eq!(t.data(S, b"\xFF\xFFabc", 2, 0), 0);
    }

    #[test]
    fn header_limits() {
        let mut t = Tls::new();
        // Length 2^14 + 2049 is over the limit.
        assert_eq!(t.data(S, &[23, 3, 3, 0x48, 0x01], 1, 0), 0);
        let mut t = Tls::new();
        assert_eq!(t.data(S, &[23, 3, 3, 0x48, 0x00], 1, 0), 5);
        let mut t = Tls::new();
        assert_eq!(
            t.data(S, &[22, 3, 3, 0, 0], 1, 0),
            0,
            "empty handshake record"
        );
        let mut t = Tls::new();
        assert_eq!(t.data(S, &[22, 2, 0], 1, 0), 0);
        let mut t = Tls::new();
        assert_eq!(
            t.data(S, &[0x80, 0x2E, 0x01, 0x03, 0x01], 1, 0),
            0,
            "SSLv2 only from the client"
        );
    }

    #[test]
    fn sslv2_compatible_client_hello() {
        // msg type 1, version 3.1, 6 bytes of cipher specs, no session id, 16 bytes of
        // challenge.
        let mut body = vec![1, 3, 1, 0, 6, 0, 0, 0, 16];
        body.extend([0, 0, 0x2F, 0, 0, 0x35]);
        body.extend([0xAB; 16]);
        let mut b = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        b.extend(body);
        let mut t = Tls::new();
        assert_eq!(t.data(C, &b, 1, 0), b.len());
        let sh = server_hello([1; 32], &[], 0x002F, &[]);
        assert!(t.data(S, &record(22, 1, &sh), 2, 0) > 0);
        let r = t.summary().cloned().unwrap_or_default();
        assert_eq!(r.record_version, "SSLv2");
        assert_eq!(r.client_version, "TLSv1.0");
        assert_eq!(r.offered_ciphers, Some(2));
        assert_eq!(r.cipher, "TLS_RSA_WITH_AES_128_CBC_SHA");
        assert!(!r.truncated);
        assert_eq!(t.take_messages()[0].1, "SSLv2 Client Hello");
    }

    #[test]
    fn gap_inside_a_record_keeps_step() {
        let ch = record(22, 1, &client_hello(&Ch::default()));
        let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
        let app = record(23, 3, &[5; 100]);
        let mut t = Tls::new();
        run(&mut t, &[(C, ch), (S, sh)]);
        // 30 bytes of a 105-byte record traced, 70 missing, the rest follows.
        assert_eq!(t.data(S, &app[..30], 3, 0), 30);
        t.gap(S, 70);
        let mut rest = app[100..].to_vec();
        rest.extend(record(20, 3, &[1]));
        assert_eq!(t.data(S, &rest, 4, 0), rest.len());
        assert_eq!(
            t.take_messages().last().map(|m| m.1.as_str()),
            Some("TLS Change Cipher Spec")
        );
        assert!(t.summary().is_some_and(|r| r.truncated));
    }

    #[test]
    fn gap_across_records_resynchronises() {
        let ch = record(22, 1, &client_hello(&Ch::default()));
        let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
        let mut t = Tls::new();
        run(&mut t, &[(C, ch)]);
        t.gap(S, 300);
        // The packet after the gap starts inside some record; the scan finds the
        // ServerHello record after 17 bytes of noise.
        let mut b = vec![0x33; 17];
        b.extend(&sh);
        b.extend(record(20, 3, &[1]));
        assert_eq!(t.data(S, &b, 2, 0), b.len());
        let r = t.summary().cloned().unwrap_or_default();
        assert!(r.truncated);
        assert_eq!(r.server_version, "TLSv1.2");
        // Clear text while still hunting is not taken.
        let mut t = Tls::new();
        run(&mut t, &[(C, record(23, 3, &[1; 8]))]);
        t.gap(C, 10);
        assert_eq!(t.data(C, b"CCC\r\n", 2, 0), 0);
    }

    #[test]
    fn client_hello_cut_and_reported_late() {
        // The ClientHello's packet was abbreviated but the loss is only learnt when the
        // next client bytes come, after the ServerHello: still one handshake.
        let ch = record(
            22,
            1,
            &client_hello(&Ch {
                sni: Some("late.example"),
                ciphers: &[0x002F, 0x0035],
                // The last extension, and the one cut.
                ticket: &[7; 20],
                ..Ch::default()
            }),
        );
        let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
        let mut t = Tls::new();
        let cut = ch.len() - 10;
        assert_eq!(t.data(C, &ch[..cut], 1, 0), cut);
        assert_eq!(t.data(S, &sh, 2, 0), sh.len());
        t.gap(C, 10);
        t.end(false);
        let rows = t.take_rows();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            r.sni, "late.example",
            "the traced part of the hello is read"
        );
        assert_eq!(r.offered_ciphers, Some(2));
        assert_eq!(r.server_version, "TLSv1.2");
        assert!(r.truncated);
        assert_eq!(r.frame, 2, "first message seen: the ServerHello");
    }

    #[test]
    fn cut_server_hello_version_from_what_follows() {
        // TLS 1.3: the ServerHello is cut before supported_versions, and the session
        // id echo (middlebox compatibility) must not read as a resumption.
        let sid = [4u8; 32];
        let ch = record(
            22,
            1,
            &client_hello(&Ch {
                sid: &sid,
                versions: &[0x0304, 0x0303],
                ciphers: &[0x1301],
                ..Ch::default()
            }),
        );
        let key_share = ext(51, &[0; 36]);
        let sh = record(
            22,
            3,
            &server_hello([2; 32], &sid, 0x1301, &[key_share, ext(43, &[3, 4])]),
        );
        let cut = sh.len() - 8;
        let mut t = Tls::new();
        run(&mut t, &[(C, ch.clone())]);
        assert_eq!(t.data(S, &sh[..cut], 2, 0), cut);
        t.gap(S, 8);
        let mut s = record(20, 3, &[1]);
        s.extend(record(23, 3, &[0; 60]));
        run(&mut t, &[(C, vec![]), (S, s), (C, record(23, 3, &[0; 40]))]);
        let rows = t.take_rows();
        assert_eq!(rows[0].server_version, "TLSv1.3");
        assert_eq!(rows[0].cipher, "TLS_AES_128_GCM_SHA256");
        assert!(!rows[0].resumed);
        assert_eq!(rows[0].established, "yes");

        // TLS 1.2: the same cut, then a certificate in clear.
        let sh = record(22, 3, &server_hello([2; 32], &[], 0x002F, &[ext(23, &[])]));
        let mut t = Tls::new();
        run(&mut t, &[(C, ch)]);
        assert_eq!(t.data(S, &sh[..sh.len() - 2], 2, 0), sh.len() - 2);
        t.gap(S, 2);
        assert!(t.summary().is_some_and(|r| r.server_version.is_empty()));
        run(
            &mut t,
            &[(C, vec![]), (S, record(22, 3, &message(11, &[0, 0, 0])))],
        );
        assert!(t.summary().is_some_and(|r| r.server_version == "TLSv1.2"));
    }

    #[test]
    fn handshake_message_gap_and_oversize() {
        // A certificate message of 70000 bytes (over the 64 KiB cap) in 5 records.
        let mut cert = message(11, &vec![0; 70_000]);
        cert.extend(message(14, &[]));
        let ch = record(22, 1, &client_hello(&Ch::default()));
        let mut t = Tls::new();
        run(&mut t, &[(C, ch)]);
        for (frame, piece) in (2..).zip(cert.chunks(16_000)) {
            let r = record(22, 3, piece);
            assert_eq!(t.data(S, &r, frame, 0), r.len());
            assert!(t.sides[1].hs.buf.capacity() <= 4 + MAX_MESSAGE);
        }
        let r = t.summary().cloned().unwrap_or_default();
        assert!(r.truncated);
        let m = t.take_messages();
        // Announced once its first 64 KiB are in (frame 6), with the next message.
        assert_eq!(
            m.last(),
            Some(&(6, "TLS Certificate; TLS Server Hello Done".to_owned()))
        );

        // A gap inside a handshake message: the message is lost, the next one read.
        let sh = server_hello([1; 32], &[], 0x002F, &[]);
        let mut body = message(11, &[0; 50]);
        body.extend(message(14, &[]));
        let r1 = record(22, 3, &[sh, body].concat());
        let mut t = Tls::new();
        run(&mut t, &[(C, record(22, 1, &client_hello(&Ch::default())))]);
        let cut = r1.len() - 30;
        assert_eq!(t.data(S, &r1[..cut], 2, 0), cut);
        t.gap(S, 20);
        assert_eq!(t.data(S, &r1[cut + 20..], 3, 0), 10);
        // The cut certificate is named in the packet that carried its start.
        let m = t.take_messages();
        assert_eq!(
            m[1..],
            [
                (
                    2,
                    "TLS Server Hello TLSv1.2 TLS_RSA_WITH_AES_128_CBC_SHA; TLS Certificate"
                        .to_owned()
                ),
                (3, "TLS Server Hello Done".to_owned())
            ]
        );
        assert!(
            t.hs.as_ref()
                .is_some_and(|h| h.server_cert && h.server_done)
        );
    }

    #[test]
    fn text_helpers() {
        assert_eq!(iso_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_seconds(1_365_639_277), "2013-04-11T00:14:37Z");
        assert_eq!(iso_seconds(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(iso_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_seconds(-1), "1969-12-31T23:59:59Z");
        assert_eq!(escape_dn("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_dn(" #x "), "\\ #x\\ ");
        assert_eq!(escape_dn("#x"), "\\#x");
        assert_eq!(escape_dn("#0A1B"), "#0A1B");
        assert_eq!(escape_dn("a\nb"), "a\\0Ab");
        assert_eq!(printable(b"h2\x00\\"), "h2\\x00\\x5C");
        assert!(is_grease(0x0A0A) && is_grease(0xFAFA) && !is_grease(0x0A1A));
        assert_eq!(version_name(0x7F0E), "TLSv1.3-draft14");
        assert_eq!(version_name(0x0300), "SSLv3");
        assert_eq!(version_name(0x1234), "0x1234");
        assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(cipher_name(0xEEEE), "0xEEEE");
        assert_eq!(alert_name(250), "alert250");
    }

    /// A tiny deterministic generator, so the random tests repeat.
    fn lcg(state: &mut u64) -> u8 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 33) as u8
    }

    #[test]
    fn fuzz_entry_survives_noise_and_mutations() {
        let mut st = 1u64;
        for len in [0, 1, 3, 10, 100, 1000, 5000] {
            let noise: Vec<u8> = (0..len).map(|_| lcg(&mut st)).collect();
            fuzz(&noise);
        }
        // Real-looking streams with bytes flipped: framed as fuzz operations.
        let steps = tls12_full(&[1; 32], &[1; 32]);
        for round in 0..400 {
            let mut input = Vec::new();
            for (d, b) in &steps {
                let mut b = b.clone();
                for _ in 0..(round % 5) {
                    if !b.is_empty() {
                        let i = usize::from(lcg(&mut st)) * 31 % b.len();
                        b[i] = lcg(&mut st);
                    }
                }
                let op = if *d == C { 2 } else { 3 };
                input.push(op | (lcg(&mut st) & 0x30));
                input.extend((b.len() as u16).to_be_bytes());
                input.extend(b);
                if round % 3 == 0 {
                    input.extend([u8::from(*d == S), 0, lcg(&mut st)]);
                }
            }
            fuzz(&input);
        }
    }

    // ----- real captures -----

    mod captures {
        use super::super::*;
        use std::collections::HashMap;
        use std::net::IpAddr;
        use std::path::{Path, PathBuf};

        use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

        fn dir() -> Option<PathBuf> {
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures");
            if d.is_dir() {
                Some(d)
            } else {
                eprintln!("skipped: {} is absent", d.display());
                None
            }
        }

        struct Seg {
            frame: u64,
            time: i64,
            seq: u32,
            data: Vec<u8>,
            /// Payload length on the wire (more than `data` when abbreviated).
            orig: usize,
        }

        #[derive(Default)]
        struct Conn {
            client: Option<(IpAddr, u16)>,
            server: Option<(IpAddr, u16)>,
            segs: [Vec<Seg>; 2],
            isn: [Option<u32>; 2],
            rst: bool,
        }

        /// TCP connections of a pcap (Ethernet or raw IP), payloads per direction.
        fn load(path: &Path) -> Vec<Conn> {
            let bytes = std::fs::read(path).expect("capture readable");
            let (_, cap) = pcap_parser::parse_pcap(&bytes).expect("a legacy pcap");
            let linktype = cap.header.network.0;
            let ns = cap.header.is_nanosecond_precision();
            let mut conns: Vec<Conn> = Vec::new();
            let mut index: HashMap<[(IpAddr, u16); 2], usize> = HashMap::new();
            for (i, b) in cap.blocks.iter().enumerate() {
                let frame = i as u64 + 1;
                let time = i64::from(b.ts_sec) * 1_000_000_000
                    + i64::from(b.ts_usec) * if ns { 1 } else { 1000 };
                let sliced = match linktype {
                    1 => LaxSlicedPacket::from_ethernet(b.data).ok(),
                    101 => LaxSlicedPacket::from_ip(b.data).ok(),
                    other => panic!("linktype {other} not handled by this helper"),
                };
                let Some(p) = sliced else { continue };
                let (src, dst) = match &p.net {
                    Some(LaxNetSlice::Ipv4(v4)) => (
                        IpAddr::V4(v4.header().source_addr()),
                        IpAddr::V4(v4.header().destination_addr()),
                    ),
                    Some(LaxNetSlice::Ipv6(v6)) => (
                        IpAddr::V6(v6.header().source_addr()),
                        IpAddr::V6(v6.header().destination_addr()),
                    ),
                    _ => continue,
                };
                let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                    continue;
                };
                let a = (src, tcp.source_port());
                let z = (dst, tcp.destination_port());
                let mut key = [a, z];
                key.sort();
                let n = *index.entry(key).or_insert_with(|| {
                    conns.push(Conn::default());
                    conns.len() - 1
                });
                let c = &mut conns[n];
                if c.client.is_none() {
                    // The SYN's sender, else the first packet's.
                    let client_is_src = !(tcp.syn() && tcp.ack());
                    c.client = Some(if client_is_src { a } else { z });
                    c.server = Some(if client_is_src { z } else { a });
                }
                let d = if Some(a) == c.client { 0 } else { 1 };
                if tcp.syn() {
                    c.isn[d] = Some(tcp.sequence_number().wrapping_add(1));
                }
                c.rst |= tcp.rst();
                if !tcp.payload().is_empty() {
                    c.segs[d].push(Seg {
                        frame,
                        time,
                        seq: tcp.sequence_number(),
                        data: tcp.payload().to_vec(),
                        orig: tcp.payload().len(),
                    });
                }
            }
            conns
        }

        enum Piece {
            Data(Vec<u8>),
            Gap(u64),
        }

        /// One direction in sequence order without retransmitted bytes; each piece is
        /// delivered with the latest frame needed to have everything before it.
        fn in_order(segs: &[Seg], isn: Option<u32>) -> Vec<(u64, i64, Piece)> {
            let Some(base) = isn.or(segs.first().map(|s| s.seq)) else {
                return Vec::new();
            };
            let mut v: Vec<(u64, &Seg)> = segs
                .iter()
                .map(|s| (u64::from(s.seq.wrapping_sub(base)), s))
                .collect();
            v.sort_by_key(|(rel, s)| (*rel, s.frame));
            let (mut expected, mut deliver) = (0u64, 0u64);
            let mut out = Vec::new();
            for (rel, s) in v {
                let end = rel + s.orig as u64;
                if end <= expected {
                    continue;
                }
                deliver = deliver.max(s.frame);
                if rel > expected {
                    out.push((deliver, s.time, Piece::Gap(rel - expected)));
                }
                let skip = expected.saturating_sub(rel) as usize;
                if let Some(d) = s.data.get(skip..).filter(|d| !d.is_empty()) {
                    out.push((deliver, s.time, Piece::Data(d.to_vec())));
                }
                // An abbreviated packet: the untraced rest is reported with it, as the
                // session layer does.
                let traced_end = (rel + s.data.len() as u64).max(expected);
                if end > traced_end {
                    out.push((deliver, s.time, Piece::Gap(end - traced_end)));
                }
                expected = end;
            }
            out
        }

        /// Drops the bytes before the first `16 03` (FTPS: the clear-text FTP before
        /// AUTH TLS / 234).
        fn skip_clear_prefix(pieces: &mut Vec<(u64, i64, Piece)>) {
            while let Some((_, _, Piece::Data(b))) = pieces.first_mut() {
                if let Some(i) = b.windows(2).position(|w| w == [0x16, 0x03]) {
                    b.drain(..i);
                    return;
                }
                pieces.remove(0);
            }
        }

        struct Fed {
            client: (IpAddr, u16),
            server: (IpAddr, u16),
            rows: Vec<Row>,
            messages: Vec<(u64, String)>,
            stopped: [bool; 2],
        }

        fn feed(c: &Conn, skip_prefix: bool, chunk: usize) -> Fed {
            let mut all = Vec::new();
            for (d, dir) in [(0, Dir::ToServer), (1, Dir::ToClient)] {
                let mut p = in_order(&c.segs[d], c.isn[d]);
                if skip_prefix {
                    skip_clear_prefix(&mut p);
                }
                all.extend(p.into_iter().map(|(f, t, piece)| (f, t, dir, piece)));
            }
            // Stable: each direction's pieces keep their sequence order.
            all.sort_by_key(|(f, ..)| *f);
            let mut t = Tls::new();
            let mut stopped = [false; 2];
            for (frame, time, dir, piece) in &all {
                match piece {
                    Piece::Gap(n) => t.gap(*dir, *n),
                    Piece::Data(b) => {
                        for part in b.chunks(chunk) {
                            if stopped[dir.index()] {
                                break;
                            }
                            let used = t.data(*dir, part, *frame, *time);
                            stopped[dir.index()] = used < part.len();
                        }
                    }
                }
            }
            t.end(c.rst);
            Fed {
                client: c.client.expect("conn has a client"),
                server: c.server.expect("conn has a server"),
                rows: t.take_rows(),
                messages: t.take_messages(),
                stopped,
            }
        }

        fn run(name: &str, skip_prefix: bool) -> Option<Vec<Fed>> {
            let d = dir()?;
            let conns = load(&d.join(name));
            let fed: Vec<Fed> = conns
                .iter()
                .map(|c| feed(c, skip_prefix, usize::MAX))
                .collect();
            // Byte by byte the same rows come out (messages too).
            for (c, f) in conns.iter().zip(&fed) {
                let small = feed(c, skip_prefix, 1);
                assert_eq!(small.rows, f.rows, "{name}: fed byte by byte");
                assert_eq!(small.messages, f.messages, "{name}: fed byte by byte");
            }
            for f in &fed {
                assert!(!f.stopped[0] && !f.stopped[1], "{name}: all of it is TLS");
                for r in &f.rows {
                    assert!(!r.truncated, "{name}: nothing missing in these captures");
                }
            }
            Some(fed)
        }

        /// Rows of the Zeek ssl.log baseline(s) of a capture, as field maps.
        fn zeek_log(stem: &str, suffix: &str) -> Vec<HashMap<String, String>> {
            let Some(base) = dir().map(|d| d.join("baselines").join(stem)) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&base)
                .expect("baseline dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect();
            files.sort();
            for f in files {
                let text = std::fs::read_to_string(&f).expect("baseline text");
                let mut fields: Vec<String> = Vec::new();
                for line in text.lines() {
                    if let Some(h) = line.strip_prefix("#fields\t") {
                        fields = h.split('\t').map(str::to_owned).collect();
                    } else if !line.starts_with('#') && !fields.is_empty() {
                        out.push(
                            fields
                                .iter()
                                .cloned()
                                .zip(line.split('\t').map(str::to_owned))
                                .collect(),
                        );
                    }
                }
            }
            out
        }

        /// Zeek's `TLSv12` is Wireshark's `TLSv1.2`; `-` is unset.
        fn zeek_version(v: &str) -> String {
            match v.strip_prefix("TLSv1") {
                _ if v == "-" => String::new(),
                Some(rest) => format!("TLSv1.{rest}"),
                None => v.to_owned(),
            }
        }

        fn unset(v: &str) -> &str {
            if v == "-" { "" } else { v }
        }

        /// Compares every handshake with its ssl.log line (matched by the 4-tuple).
        /// `unknown_is_f`: our `unknown` stands for Zeek's F (the trace ends before the
        /// handshake does; Zeek's boolean cannot say "not seen").
        fn compare_zeek(stem: &str, fed: &[Fed], unknown_is_f: bool) -> usize {
            let log = zeek_log(stem, "ssl.log");
            let log = if log.is_empty() {
                zeek_log(stem, "ssl-out.log")
            } else {
                log
            };
            let mut compared = 0;
            for f in fed {
                let z = log.iter().find(|z| {
                    z["id.orig_h"] == f.client.0.to_string()
                        && z["id.orig_p"] == f.client.1.to_string()
                        && z["id.resp_h"] == f.server.0.to_string()
                        && z["id.resp_p"] == f.server.1.to_string()
                });
                let Some(z) = z else {
                    assert!(f.rows.is_empty(), "{stem}: a handshake Zeek did not log");
                    continue;
                };
                assert_eq!(f.rows.len(), 1, "{stem}: one handshake per connection");
                let r = &f.rows[0];
                assert_eq!(
                    r.server_version,
                    zeek_version(&z["version"]),
                    "{stem} version"
                );
                assert_eq!(r.cipher, unset(&z["cipher"]), "{stem} cipher");
                assert_eq!(r.sni, unset(&z["server_name"]), "{stem} server_name");
                assert_eq!(r.resumed, z["resumed"] == "T", "{stem} resumed");
                let want: &[&str] = match (z["established"].as_str(), unknown_is_f) {
                    ("T", _) => &["yes"],
                    ("F", false) => &["no"],
                    ("F", true) => &["unknown"],
                    (other, _) => panic!("{stem}: established {other}"),
                };
                assert!(
                    want.contains(&r.established),
                    "{stem} established {}",
                    r.established
                );
                match unset(&z["last_alert"]) {
                    "" => assert_eq!(r.alert, "", "{stem} alert"),
                    a => assert!(r.alert.contains(a), "{stem}: alert {} vs {a}", r.alert),
                }
                compared += 1;
            }
            // Every line of the baseline that belongs to this capture was matched.
            assert!(compared > 0, "{stem}: nothing compared");
            compared
        }

        /// The server certificate against the first line of Zeek's x509.log.
        fn compare_x509(stem: &str, r: &Row) {
            let log = zeek_log(stem, "x509.log");
            let Some(z) = log.first() else {
                panic!("{stem}: no x509.log");
            };
            assert_eq!(r.cert_subject, z["certificate.subject"], "{stem} subject");
            assert_eq!(r.cert_issuer, z["certificate.issuer"], "{stem} issuer");
            let secs: f64 = z["certificate.not_valid_after"].parse().expect("epoch");
            assert_eq!(
                r.cert_not_after,
                iso_seconds(secs as i64),
                "{stem} not_after"
            );
        }

        fn only_row(fed: &[Fed]) -> &Row {
            let rows: Vec<&Row> = fed.iter().flat_map(|f| &f.rows).collect();
            assert_eq!(rows.len(), 1);
            rows[0]
        }

        fn messages_of(fed: &[Fed], frame: u64) -> String {
            fed.iter()
                .flat_map(|f| &f.messages)
                .filter(|(n, _)| *n == frame)
                .map(|(_, m)| m.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        }

        /// tshark (when installed): the SNIs of its ClientHellos and the suites of its
        /// ServerHellos must be ours.
        fn compare_tshark(name: &str, fed: &[Fed]) {
            let Some(d) = dir() else { return };
            let out = std::process::Command::new("tshark")
                .arg("-r")
                .arg(d.join(name))
                .args(["-Y", "tls.handshake", "-T", "fields"])
                .args(["-e", "tcp.srcport", "-e", "tcp.dstport"])
                .args(["-e", "tls.handshake.type"])
                .args(["-e", "tls.handshake.extensions_server_name"])
                .args(["-e", "tls.handshake.ciphersuite"])
                .output();
            let Some(out) = out.ok().filter(|o| o.status.success()) else {
                eprintln!("tshark not available: {name} not compared with it");
                return;
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let mut checked = 0;
            for line in text.lines() {
                let f: Vec<&str> = line.split('\t').collect();
                let [sport, dport, types, sni, suites, ..] = f[..] else {
                    continue;
                };
                let types: Vec<&str> = types.split(',').collect();
                let row_for = |client_port: &str| {
                    fed.iter()
                        .find(|c| c.client.1.to_string() == client_port)
                        .and_then(|c| c.rows.first())
                };
                if types.contains(&"1") && !sni.is_empty() {
                    let r = row_for(sport).expect("row for the ClientHello");
                    assert_eq!(r.sni, sni, "{name}: tshark SNI");
                    checked += 1;
                }
                if types.contains(&"2") {
                    let r = row_for(dport).expect("row for the ServerHello");
                    let id = u16::from_str_radix(suites.trim_start_matches("0x"), 16)
                        .expect("hex suite");
                    assert_eq!(r.cipher, cipher_name(id), "{name}: tshark suite");
                    checked += 1;
                }
            }
            assert!(checked > 0, "{name}: tshark showed no hello");
        }

        #[test]
        fn tls10_sni_extensions() {
            let name = "tls10_sni_extensions__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            compare_zeek("tls10_sni_extensions__zeek", &fed, false);
            let r = only_row(&fed);
            compare_x509("tls10_sni_extensions__zeek", r);
            assert_eq!(r.record_version, "TLSv1.0");
            assert_eq!(r.client_version, "TLSv1.0");
            assert_eq!(r.offered_ciphers, Some(36), "tshark lists 36 suites");
            assert_eq!(
                messages_of(&fed, 4),
                "TLS Client Hello, SNI ssl.gstatic.com"
            );
            assert_eq!(
                messages_of(&fed, 6),
                "TLS Server Hello TLSv1.0 TLS_ECDHE_RSA_WITH_RC4_128_SHA"
            );
            assert_eq!(
                messages_of(&fed, 7),
                "TLS Certificate CN=*.gstatic.com; TLS Server Key Exchange; \
                 TLS Server Hello Done"
            );
            assert_eq!(
                messages_of(&fed, 12),
                "TLS New Session Ticket; TLS Change Cipher Spec; \
                 TLS Encrypted Handshake Message"
            );
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls11() {
            let name = "tls11__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            compare_zeek("tls11__zeek", &fed, false);
            let r = only_row(&fed);
            compare_x509("tls11__zeek", r);
            assert_eq!(r.client_version, "TLSv1.1");
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls12() {
            let name = "tls12__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            compare_zeek("tls12__zeek", &fed, false);
            let r = only_row(&fed);
            // The subject has street= and postalCode= attributes, spelled as Zeek does.
            compare_x509("tls12__zeek", r);
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls12_handshake_failure_alert() {
            let name = "tls12_handshake_failure_alert__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            compare_zeek("tls12_handshake_failure_alert__zeek", &fed, false);
            let r = only_row(&fed);
            assert_eq!(r.alert, "fatal handshake_failure (server)");
            assert_eq!(r.established, "no");
            assert_eq!(r.client_version, "TLSv1.2");
            let alert: Vec<&String> = fed[0]
                .messages
                .iter()
                .map(|(_, m)| m)
                .filter(|m| m.contains("Alert"))
                .collect();
            assert_eq!(alert, ["TLS Alert fatal handshake_failure"]);
        }

        #[test]
        fn tls12_rawip_dlt101() {
            let name = "tls12_rawip_dlt101__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            // The trace ends after the server's Certificate: Zeek writes F (its field
            // is a boolean), the spec asks for `unknown`.
            compare_zeek("tls12_rawip_dlt101__zeek", &fed, true);
            let r = only_row(&fed);
            // An ML-DSA-44 certificate: x509-parser reads names and validity of
            // certificates whose key algorithm it does not know.
            compare_x509("tls12_rawip_dlt101__zeek", r);
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls13_ech_sni() {
            let name = "tls13_ech_sni__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            // Three connections: the first is traced from its middle (application
            // data only), so it has no handshake row, as in Zeek's log.
            assert_eq!(fed.len(), 3);
            assert!(fed[0].rows.is_empty());
            assert_eq!(compare_zeek("tls13_ech_sni__zeek", &fed, false), 2);
            for f in &fed[1..] {
                let r = &f.rows[0];
                // The outer (public) SNI of Encrypted Client Hello.
                assert_eq!(r.sni, "cloudflare-ech.com");
                assert_eq!(r.offered_ciphers, Some(15), "16 in tshark, one is GREASE");
                assert!(r.offered_versions.starts_with("TLSv1.3 TLSv1.2"));
            }
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls13_hello_retry_request() {
            let name = "tls13_hello_retry_request__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            // Zeek's tls13 ssl-out.log concatenates several traces; the 4-tuple picks
            // this one's line (ssl_history CjiICs).
            compare_zeek("tls13_hello_retry_request__zeek", &fed, false);
            let r = only_row(&fed);
            assert_eq!(r.offered_ciphers, Some(4));
            assert_eq!(r.server_version, "TLSv1.3");
            let m: Vec<&str> = fed[0].messages.iter().map(|(_, m)| m.as_str()).collect();
            assert!(
                m.contains(&"TLS Hello Retry Request; TLS Change Cipher Spec"),
                "{m:?}"
            );
            // The server's second flight arrives out of order (frame 9 before frame
            // 11); the helper delivers it in sequence with frame 11.
            assert!(messages_of(&fed, 11).starts_with("TLS Server Hello TLSv1.3"));
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls13_sni_chrome_x25519kyber() {
            let name = "tls13_sni_chrome_x25519kyber__zeek.pcap";
            let Some(fed) = run(name, false) else { return };
            compare_zeek("tls13_sni_chrome_x25519kyber__zeek", &fed, false);
            let r = only_row(&fed);
            // The ClientHello spans two TCP segments.
            assert_eq!(r.sni, "lh3.google.com");
            assert_eq!(r.alpn, "h2 http/1.1");
            compare_tshark(name, &fed);
        }

        #[test]
        fn tls13_split_client_hello_sni() {
            let name = "tls13_split_client_hello_sni__arkime.pcap";
            let Some(fed) = run(name, false) else { return };
            let r = only_row(&fed);
            // Arkime's baseline: TLSv1.3, TLS_AES_128_GCM_SHA256, host
            // clients2.google.com, JA4 t13d1516h2 (15 suites, ALPN h2 first).
            let base = dir()
                .map(|d| d.join("baselines/tls13_split_client_hello_sni__arkime"))
                .and_then(|d| {
                    std::fs::read_to_string(d.join("arkime__tls-split-client-hello.test")).ok()
                })
                .unwrap_or_default();
            for want in [
                "\"TLSv1.3\"",
                "\"TLS_AES_128_GCM_SHA256\"",
                "\"clients2.google.com\"",
                "t13d1516h2_",
            ] {
                assert!(base.contains(want), "baseline has {want}");
            }
            assert_eq!(r.server_version, "TLSv1.3");
            assert_eq!(r.cipher, "TLS_AES_128_GCM_SHA256");
            assert_eq!(r.sni, "clients2.google.com");
            assert_eq!(r.offered_ciphers, Some(15));
            assert!(r.alpn.starts_with("h2"));
            assert_eq!(r.established, "yes");
            compare_tshark(name, &fed);
        }

        #[test]
        fn sslv3_openssl() {
            let name = "sslv3_openssl__arkime.pcap";
            let Some(fed) = run(name, false) else { return };
            let r = only_row(&fed);
            let base = dir()
                .map(|d| d.join("baselines/sslv3_openssl__arkime/arkime__openssl-ssl3.test"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            // Arkime: version SSLv3, TLS_ECDHE_RSA_WITH_RC4_128_SHA, JA4 ts3i46 (46
            // suites), certificate *.google.com issued by Google Internet Authority G2.
            for want in ["\"SSLv3\"", "\"TLS_ECDHE_RSA_WITH_RC4_128_SHA\"", "ts3i46"] {
                assert!(base.contains(want), "baseline has {want}");
            }
            assert_eq!(r.record_version, "SSLv3");
            assert_eq!(r.client_version, "SSLv3");
            assert_eq!(r.server_version, "SSLv3");
            assert_eq!(r.cipher, "TLS_ECDHE_RSA_WITH_RC4_128_SHA");
            assert_eq!(r.offered_ciphers, Some(46));
            assert!(
                r.cert_subject.starts_with("CN=*.google.com,"),
                "{}",
                r.cert_subject
            );
            assert!(
                r.cert_issuer
                    .starts_with("CN=Google Internet Authority G2,")
            );
            // Arkime's notAfter 1419292800000 ms.
            assert_eq!(r.cert_not_after, iso_seconds(1_419_292_800));
            assert_eq!(r.established, "yes");
            compare_tshark(name, &fed);
        }

        #[test]
        fn ftps_explicit_auth_tls() {
            let name = "ftps_explicit_auth_tls__zeek.pcap";
            let Some(fed) = run(name, true) else { return };
            compare_zeek("ftps_explicit_auth_tls__zeek", &fed, false);
            let r = only_row(&fed);
            // An IP literal as SNI (RFC 6066 forbids it; the client sent it anyway).
            assert_eq!(r.sni, "127.0.0.1");
            assert_eq!(r.offered_ciphers, Some(29));
            compare_tshark(name, &fed);
            // Without skipping the FTP prefix the decoder refuses the stream at once.
            let conns = load(&dir().expect("dir").join(name));
            let plain = feed(&conns[0], false, usize::MAX);
            assert!(plain.stopped[0] && plain.stopped[1] && plain.rows.is_empty());
        }
        /// Every capture again with each packet abbreviated to its first `keep` bytes
        /// (the gap reported with the packet, as z/OS traces with a snap length do):
        /// the same handshakes come out, each field either right or empty, never
        /// wrong; `resumed` may only fall to false, `established` only to unknown.
        #[test]
        fn abbreviated_packets_give_partial_but_right_rows() {
            let Some(d) = dir() else { return };
            let all = [
                ("tls10_sni_extensions__zeek.pcap", false),
                ("tls11__zeek.pcap", false),
                ("tls12__zeek.pcap", false),
                ("tls12_handshake_failure_alert__zeek.pcap", false),
                ("tls12_rawip_dlt101__zeek.pcap", false),
                ("tls13_ech_sni__zeek.pcap", false),
                ("tls13_hello_retry_request__zeek.pcap", false),
                ("tls13_sni_chrome_x25519kyber__zeek.pcap", false),
                ("tls13_split_client_hello_sni__arkime.pcap", false),
                ("sslv3_openssl__arkime.pcap", false),
                ("ftps_explicit_auth_tls__zeek.pcap", true),
            ];
            let mut sni_found = 0;
            for (name, skip) in all {
                let conns = load(&d.join(name));
                let full: Vec<Fed> = conns.iter().map(|c| feed(c, skip, usize::MAX)).collect();
                for keep in [40, 120, 300, 1000] {
                    let mut cut = load(&d.join(name));
                    for s in cut.iter_mut().flat_map(|c| c.segs.iter_mut().flatten()) {
                        s.data.truncate(keep);
                    }
                    for (c, f) in cut.iter().zip(&full) {
                        let a = feed(c, skip, usize::MAX);
                        let at = format!("{name} cut to {keep}");
                        assert_eq!(a.stopped, [false, false], "{at}");
                        assert_eq!(a.rows.len(), f.rows.len(), "{at}: handshakes");
                        for (r, w) in a.rows.iter().zip(&f.rows) {
                            for (got, want, what) in [
                                (&r.record_version, &w.record_version, "record_version"),
                                (&r.client_version, &w.client_version, "client_version"),
                                (&r.offered_versions, &w.offered_versions, "offered"),
                                (&r.sni, &w.sni, "sni"),
                                (&r.server_version, &w.server_version, "server_version"),
                                (&r.cipher, &w.cipher, "cipher"),
                                (&r.cert_subject, &w.cert_subject, "cert_subject"),
                                (&r.cert_not_after, &w.cert_not_after, "not_after"),
                            ] {
                                assert!(got.is_empty() || got == want, "{at}: {what} {got}");
                            }
                            // ALPN: the client's list may be cut to its first names.
                            assert!(w.alpn.starts_with(r.alpn.as_str()), "{at}: alpn");
                            assert!(
                                r.offered_ciphers.is_none()
                                    || r.offered_ciphers == w.offered_ciphers
                            );
                            assert!(!r.resumed || w.resumed, "{at}: resumed");
                            assert!(
                                r.established == w.established || r.established == "unknown",
                                "{at}: established {}",
                                r.established
                            );
                            assert!(w.alert.is_empty() || r.alert == w.alert, "{at}: alert");
                            sni_found += usize::from(!r.sni.is_empty());
                        }
                    }
                }
            }
            assert!(sni_found > 5, "SNI survives in many abbreviated hellos");
        }
    }
}
