//! FTP control-connection decoder (RFC 959, RFC 2428 EPRT/EPSV, RFC 4217 AUTH TLS).
//!
//! Its place: in-order control-connection bytes, per direction -> ftp.csv rows (a command
//! with its final reply, its preliminary 1xx reply and the data endpoint it announced) and
//! the per-packet `message` lines of packets.csv. It knows nothing of packets or sessions:
//! the caller reassembles the TCP stream, says where bytes are missing (`gap`), links the
//! announced endpoints to data sessions, and hands the bytes after `AUTH TLS` to the TLS
//! decoder (`data` says where the clear text stopped).
//!
//! Pairing is first-in first-out: FTP is lock-step (RFC 959 section 4.2), so the first
//! final reply after a command answers the oldest command still waiting. Nothing here
//! panics or grows without bound on hostile input: lines are capped at 8 KiB, waiting
//! commands at 1000, Telnet sub-negotiations at 64 bytes.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Dir;

/// Longest line kept; the rest of a longer line is dropped and the row marked incomplete.
const MAX_LINE: usize = 8 * 1024;
/// Commands waiting for a reply; beyond this the oldest is written out without one.
const MAX_PENDING: usize = 1000;
/// Characters of trace text in a packets.csv message ("a short human line").
const MAX_MESSAGE: usize = 200;
/// Telnet sub-negotiation bytes before we decide the IAC SB was really text (a server
/// writing a raw 0xFF 0xFA in Latin-1 would otherwise swallow the rest of the stream).
const MAX_SUBNEG: u8 = 64;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// How a data connection was announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataMode {
    /// PORT: the client listens, the server connects from its port 20.
    Active,
    /// PASV answered 227: the server listens.
    Passive,
    /// EPRT (RFC 2428): the client listens.
    ExtendedActive,
    /// EPSV answered 229 (RFC 2428): the server listens on its control address.
    ExtendedPassive,
}

impl DataMode {
    /// The ftp.csv `data_mode` spelling.
    pub fn name(&self) -> &'static str {
        match self {
            DataMode::Active => "active",
            DataMode::Passive => "passive",
            DataMode::ExtendedActive => "extended active",
            DataMode::ExtendedPassive => "extended passive",
        }
    }

    /// True when the server is the listening side (the client opens the data connection).
    pub fn passive(&self) -> bool {
        matches!(self, DataMode::Passive | DataMode::ExtendedPassive)
    }
}

/// A data endpoint announced on the control connection: the address and port the other
/// side is told to connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataEndpoint {
    pub mode: DataMode,
    pub ip: IpAddr,
    pub port: u16,
    /// The announcing command got a 4xx/5xx reply (ftp.csv `data_status` `refused`).
    pub refused: bool,
}

/// One ftp.csv row before the caller adds the session and the data-session columns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Time and packet number of the command (of the packet that completed its line).
    pub time_ns: i64,
    pub frame: u64,
    /// The user name of the latest USER command when this command was sent ("" before any).
    pub user: String,
    /// Upper-cased command verb.
    pub command: String,
    /// Argument as sent, except PASS, which is always `****`.
    pub argument: String,
    /// First 2xx-6xx reply after the command; None when none was seen.
    pub reply_code: Option<u16>,
    /// Text of the last line of that reply, without the code.
    pub reply_message: String,
    /// Packet number that completed the final reply.
    pub reply_frame: Option<u64>,
    /// The 1xx replies before the final one, code included (`150 Opening ...`), joined
    /// with ` | ` if there were several.
    pub preliminary: String,
    /// Data endpoint announced by this command (PORT, EPRT) or by its reply (227, 229).
    pub data: Option<DataEndpoint>,
    /// Bytes of this command or of its reply were missing (capture gap, abbreviated
    /// packet) or cut (line over 8 KiB), or the command was written out without waiting
    /// for its reply because too many were waiting: the pairing may be off.
    pub incomplete: bool,
}

/// Telnet (RFC 854) state of one direction: FTP control connections are Telnet NVT
/// streams, and clients send IAC IP / IAC DM before ABOR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Telnet {
    #[default]
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT: one option byte follows.
    Option,
    /// Inside IAC SB ... (bytes seen so far).
    Sub(u8),
    /// IAC inside a sub-negotiation.
    SubIac(u8),
}

impl Telnet {
    /// Advance by one byte; returns the byte when it is data.
    fn step(&mut self, b: u8) -> Option<u8> {
        let (next, out) = match *self {
            Telnet::Data if b == IAC => (Telnet::Iac, None),
            Telnet::Data => (Telnet::Data, Some(b)),
            // IAC IAC is a literal 0xFF.
            Telnet::Iac if b == IAC => (Telnet::Data, Some(IAC)),
            Telnet::Iac if (WILL..=DONT).contains(&b) => (Telnet::Option, None),
            Telnet::Iac if b == SB => (Telnet::Sub(0), None),
            // IP, DM, AO, AYT, NOP and the other two-byte commands.
            Telnet::Iac if b >= SE => (Telnet::Data, None),
            // Not a Telnet command: the 0xFF was text sent undoubled; keep the byte.
            Telnet::Iac => (Telnet::Data, Some(b)),
            Telnet::Option => (Telnet::Data, None),
            Telnet::Sub(n) if n >= MAX_SUBNEG => (Telnet::Data, Some(b)),
            Telnet::Sub(n) if b == IAC => (Telnet::SubIac(n), None),
            Telnet::Sub(n) => (Telnet::Sub(n + 1), None),
            Telnet::SubIac(_) if b == SE => (Telnet::Data, None),
            Telnet::SubIac(n) => (Telnet::Sub(n.saturating_add(1)), None),
        };
        *self = next;
        out
    }
}

/// Line assembly state of one direction.
#[derive(Debug, Default)]
struct Side {
    buf: Vec<u8>,
    telnet: Telnet,
    /// The current line was longer than MAX_LINE.
    cut: bool,
    /// A gap came before the current line: it may start in the middle of a line.
    resync: bool,
    /// Last packet seen this way, for lines completed by `gap` or `finish`.
    frame: u64,
    time_ns: i64,
}

impl Side {
    fn reset(&mut self) {
        self.buf.clear();
        self.telnet = Telnet::Data;
        self.cut = false;
        self.resync = false;
    }
}

#[derive(Debug)]
struct Pending {
    time_ns: i64,
    frame: u64,
    user: String,
    command: String,
    argument: String,
    preliminary: String,
    data: Option<DataEndpoint>,
    incomplete: bool,
}

impl Pending {
    fn into_row(self) -> Row {
        Row {
            time_ns: self.time_ns,
            frame: self.frame,
            user: self.user,
            command: self.command,
            argument: self.argument,
            reply_code: None,
            reply_message: String::new(),
            reply_frame: None,
            preliminary: self.preliminary,
            data: self.data,
            incomplete: self.incomplete,
        }
    }
}

/// A multi-line reply (`ddd-` ... `ddd `) whose last line has not come yet.
#[derive(Debug)]
struct OpenReply {
    code: u16,
    /// Text of the latest non-empty line, used if the reply never ends.
    last: String,
    /// PASV/EPSV endpoint found on an earlier line.
    endpoint: Option<(Option<IpAddr>, u16)>,
    /// A gap fell inside this reply (its last line may be lost).
    gap: bool,
    incomplete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Login {
    None,
    Ok,
    Failed,
}

/// Decoder state of one FTP control connection.
#[derive(Debug)]
pub struct Ftp {
    server: IpAddr,
    sides: [Side; 2],
    pending: VecDeque<Pending>,
    open: Option<OpenReply>,
    /// First line of the open multi-line reply within the current packet, for its message.
    note: Option<String>,
    rows: Vec<Row>,
    messages: Vec<(u64, String)>,
    user: Option<String>,
    commands: u64,
    login: Login,
    login_failures: u64,
    encrypted: bool,
    /// AUTH TLS/SSL sent and not answered yet.
    auth_tls: bool,
    /// A gap in the client's bytes may have hidden commands: the next one is suspect.
    next_incomplete: bool,
}

impl Ftp {
    /// `server` = the control connection's server address (needed for EPSV 229 `(|||p|)`
    /// and to fill a PASV reply that gives 0.0.0.0).
    pub fn new(server: IpAddr) -> Ftp {
        Ftp {
            server,
            sides: [Side::default(), Side::default()],
            pending: VecDeque::new(),
            open: None,
            note: None,
            rows: Vec::new(),
            messages: Vec::new(),
            user: None,
            commands: 0,
            login: Login::None,
            login_failures: 0,
            encrypted: false,
            auth_tls: false,
            next_incomplete: false,
        }
    }

    /// In-order stream bytes of one packet. `frame` = packet number, `time_ns` = ns since
    /// the epoch. Returns the number of bytes consumed as FTP text: less than
    /// `bytes.len()` only when the channel switched to TLS inside this chunk (after a 234
    /// reply to AUTH TLS/SSL, or a TLS handshake record from the client while that reply
    /// is still awaited); the caller hands the rest to the TLS decoder. Returns 0 while
    /// `encrypted()`.
    pub fn data(&mut self, dir: Dir, bytes: &[u8], frame: u64, time_ns: i64) -> usize {
        if self.encrypted {
            return 0;
        }
        let d = dir.index();
        self.sides[d].frame = frame;
        self.sides[d].time_ns = time_ns;
        if dir == Dir::ToClient {
            self.note = None;
        }
        let mut used = bytes.len();
        for (i, &b) in bytes.iter().enumerate() {
            let side = &mut self.sides[d];
            // A client that begins its TLS handshake (record type 22) at a line start
            // after AUTH TLS has switched, even if the 234 was lost in a gap.
            if dir == Dir::ToServer
                && self.auth_tls
                && b == 0x16
                && side.buf.is_empty()
                && !side.cut
                && side.telnet == Telnet::Data
            {
                self.start_tls();
                used = i;
                break;
            }
            let Some(c) = side.telnet.step(b) else {
                continue;
            };
            if c == b'\n' {
                self.end_line(dir, frame, time_ns, true);
                if self.encrypted {
                    used = i + 1;
                    break;
                }
            } else if side.buf.len() < MAX_LINE {
                side.buf.push(c);
            } else {
                side.cut = true;
            }
        }
        if dir == Dir::ToClient {
            self.flush_note(frame);
        }
        used
    }

    /// `len` bytes are missing in `dir` (abbreviated packet, capture gap). A partial line
    /// is decoded for what it holds (a reply code or a verb keeps the pairing right)
    /// and marked incomplete; the first line after the gap is dropped unless it looks
    /// like the start of a line, and commands waiting now are marked incomplete.
    pub fn gap(&mut self, dir: Dir, len: u64) {
        if len == 0 || self.encrypted {
            return;
        }
        let d = dir.index();
        let (frame, time_ns) = (self.sides[d].frame, self.sides[d].time_ns);
        if dir == Dir::ToClient {
            self.note = None;
        }
        if !self.sides[d].buf.is_empty() {
            self.end_line(dir, frame, time_ns, false);
        }
        if dir == Dir::ToClient {
            self.flush_note(frame);
        }
        // A line salvaged from before the gap may have been the 234 that starts TLS.
        if self.encrypted {
            return;
        }
        let side = &mut self.sides[d];
        side.reset();
        side.resync = true;
        for p in &mut self.pending {
            p.incomplete = true;
        }
        match dir {
            Dir::ToServer => self.next_incomplete = true,
            Dir::ToClient => {
                if let Some(o) = &mut self.open {
                    o.gap = true;
                    o.incomplete = true;
                }
            }
        }
    }

    /// True after AUTH TLS/SSL was answered 234 (the channel is TLS).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// The TLS layer saw clear text again (after CCC, RFC 4217 section 11): decode FTP
    /// from the next bytes on, starting at a line boundary in both directions.
    pub fn clear_again(&mut self) {
        self.encrypted = false;
        for s in &mut self.sides {
            s.reset();
        }
        self.note = None;
    }

    /// Per-packet lines for packets.csv `message` (`ftp command PASV`, `ftp reply 227
    /// Entering Passive Mode (...)`), one per command line and one per reply (or part of
    /// a multi-line reply) in each packet, in stream order per direction.
    pub fn take_messages(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.messages)
    }

    /// Completed rows (a command with its final reply), in command order.
    pub fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.rows)
    }

    /// At the end of the connection: decodes unterminated last lines, closes a
    /// multi-line reply that never ended (incomplete), and returns the rows not yet
    /// taken followed by one row per command still waiting (reply fields empty).
    pub fn finish(&mut self) -> Vec<Row> {
        if !self.encrypted {
            for dir in [Dir::ToServer, Dir::ToClient] {
                let d = dir.index();
                if !self.sides[d].buf.is_empty() {
                    let (frame, time_ns) = (self.sides[d].frame, self.sides[d].time_ns);
                    self.note = None;
                    self.end_line(dir, frame, time_ns, false);
                }
            }
        }
        if let Some(o) = self.open.take() {
            let frame = self.sides[Dir::ToClient.index()].frame;
            self.reply(o.code, o.last, o.endpoint, true, frame);
        }
        for s in &mut self.sides {
            s.reset();
        }
        self.note = None;
        let mut rows = std::mem::take(&mut self.rows);
        rows.extend(self.pending.drain(..).map(Pending::into_row));
        rows
    }

    /// Argument of the latest USER command.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Command lines seen.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// `ok` after a 230, `failed` after a 530 to USER/PASS/ACCT with no later 230,
    /// `none` otherwise.
    pub fn login(&self) -> &'static str {
        match self.login {
            Login::None => "none",
            Login::Ok => "ok",
            Login::Failed => "failed",
        }
    }

    /// Number of 530 replies to USER, PASS or ACCT (login failures). A 530 to another
    /// command means "log in first", not a failed attempt, so it is not counted.
    pub fn login_failures(&self) -> u64 {
        self.login_failures
    }

    fn start_tls(&mut self) {
        self.encrypted = true;
        self.auth_tls = false;
        for s in &mut self.sides {
            s.reset();
        }
        self.note = None;
    }

    /// The buffered line of `dir` is complete (`eol`) or cut short by a gap / the end.
    fn end_line(&mut self, dir: Dir, frame: u64, time_ns: i64, eol: bool) {
        let side = &mut self.sides[dir.index()];
        let mut line = std::mem::take(&mut side.buf);
        let complete = eol && !side.cut;
        let resync = side.resync;
        side.cut = false;
        side.resync = false;
        side.telnet = Telnet::Data;
        while line.last() == Some(&b'\r') {
            line.pop();
        }
        // After a gap the first line may be the tail of a lost one: keep it only if it
        // starts like a line of this direction (inside a multi-line reply anything does).
        let keep = !resync
            || match dir {
                Dir::ToServer => looks_like_command(&line),
                Dir::ToClient => self.open.is_some() || reply_code(&line).is_some(),
            };
        if keep && !line.is_empty() {
            match dir {
                Dir::ToServer => self.command(&line, complete, frame, time_ns),
                Dir::ToClient => self.reply_line(&line, complete, frame),
            }
        }
        // Give the allocation back for the next line.
        line.clear();
        self.sides[dir.index()].buf = line;
    }

    fn command(&mut self, line: &[u8], complete: bool, frame: u64, time_ns: i64) {
        let line = trim_start(line);
        if line.is_empty() {
            return;
        }
        let (verb, arg) = match line.iter().position(|&b| b == b' ') {
            Some(p) => (&line[..p], &line[p + 1..]),
            None => (line, &line[line.len()..]),
        };
        let command = text(verb).to_uppercase();
        let mut argument = text(arg);
        self.commands += 1;
        let mut data = None;
        match command.as_str() {
            "USER" => self.user = Some(argument.clone()),
            // Passwords never leave the decoder, anonymous ones included.
            "PASS" => argument = "****".to_string(),
            "PORT" => {
                data = find_h1_p2(&argument, complete).map(|(ip, port)| DataEndpoint {
                    mode: DataMode::Active,
                    ip: IpAddr::V4(ip),
                    port,
                    refused: false,
                })
            }
            "EPRT" => {
                data = parse_eprt(&argument).map(|(ip, port)| DataEndpoint {
                    mode: DataMode::ExtendedActive,
                    ip,
                    port,
                    refused: false,
                })
            }
            // RFC 4217 names TLS; older drafts and clients use SSL, TLS-C, TLS-P.
            "AUTH" => {
                let a = argument.trim().to_ascii_uppercase();
                self.auth_tls = a.starts_with("TLS") || a.starts_with("SSL");
            }
            _ => {}
        }
        let msg = if argument.is_empty() {
            message("ftp command", &[&command])
        } else {
            message("ftp command", &[&command, &argument])
        };
        self.messages.push((frame, msg));
        let incomplete = !complete || std::mem::take(&mut self.next_incomplete);
        self.pending.push_back(Pending {
            time_ns,
            frame,
            user: self.user.clone().unwrap_or_default(),
            command,
            argument,
            preliminary: String::new(),
            data,
            incomplete,
        });
        if self.pending.len() > MAX_PENDING
            && let Some(mut p) = self.pending.pop_front()
        {
            p.incomplete = true;
            self.rows.push(p.into_row());
        }
    }

    fn reply_line(&mut self, line: &[u8], complete: bool, frame: u64) {
        let parsed = reply_code(line);
        if let Some(o) = &mut self.open {
            match parsed {
                Some((code, false, rest)) if code == o.code => {
                    let Some(mut o) = self.open.take() else {
                        return;
                    };
                    let t = text(rest).trim().to_string();
                    if o.endpoint.is_none() {
                        o.endpoint = endpoint_in(o.code, &t, complete);
                    }
                    self.reply(o.code, t, o.endpoint, o.incomplete || !complete, frame);
                    return;
                }
                // RFC 959 ends a multi-line reply only with its own code, and has the
                // server pad continuation lines that start with digits. A final-form line
                // with another code therefore means the framing broke: after a gap the
                // last line was probably lost, so the open reply is closed as it stands;
                // otherwise the server sent an unterminated `ddd-` block (seen in the
                // wild between a 150 and a 226) that answers nothing, so it is dropped.
                Some((code, false, _)) if code != o.code => {
                    if let Some(o) = self.open.take()
                        && o.gap
                    {
                        self.reply(o.code, o.last, o.endpoint, true, frame);
                    }
                    // Fall through to decode this line as a new reply.
                }
                _ => {
                    let t = text(parsed.map_or(line, |(_, _, rest)| rest));
                    let t = t.trim();
                    if o.endpoint.is_none() {
                        o.endpoint = endpoint_in(o.code, t, complete);
                    }
                    if !t.is_empty() {
                        o.last = t.to_string();
                    }
                    o.incomplete |= !complete;
                    let code = o.code;
                    let first = match parsed {
                        Some(_) => short(&text(line)),
                        None if t.is_empty() => format!("{code}-"),
                        None => format!("{code}- {}", short(t)),
                    };
                    if self.note.as_deref().is_none_or(|n| n.len() <= 4) {
                        self.note = Some(first);
                    }
                    return;
                }
            }
        }
        match parsed {
            None => self.messages.push((
                frame,
                format!("ftp reply without code: {}", short(&text(line))),
            )),
            Some((code, true, rest)) => {
                let t = text(rest).trim().to_string();
                self.note = Some(short(&text(line)));
                self.open = Some(OpenReply {
                    code,
                    endpoint: endpoint_in(code, &t, complete),
                    last: t,
                    gap: false,
                    incomplete: !complete,
                });
            }
            Some((code, false, rest)) => {
                let t = text(rest).trim().to_string();
                let endpoint = endpoint_in(code, &t, complete);
                self.reply(code, t, endpoint, !complete, frame);
            }
        }
    }

    /// A whole reply: record its message, then pair it with the oldest waiting command.
    fn reply(
        &mut self,
        code: u16,
        message: String,
        endpoint: Option<(Option<IpAddr>, u16)>,
        incomplete: bool,
        frame: u64,
    ) {
        self.note = None;
        let mut m = String::with_capacity(2 * MAX_MESSAGE);
        m.push_str("ftp reply ");
        let _ = write!(m, "{code}");
        if !message.is_empty() {
            m.push(' ');
            short_into(&mut m, &message);
        }
        self.messages.push((frame, m));
        if code < 200 {
            // Preliminary: the command keeps waiting for its final reply.
            if let Some(p) = self.pending.front_mut() {
                if !p.preliminary.is_empty() {
                    p.preliminary.push_str(" | ");
                }
                if p.preliminary.len() < MAX_LINE {
                    let _ = write!(p.preliminary, "{code} {message}");
                }
                p.incomplete |= incomplete;
            }
            return;
        }
        if code == 230 {
            self.login = Login::Ok;
        }
        // A reply with nobody waiting (the 220 greeting, a 421 before closing, the
        // answer to a command lost in a gap) makes no row.
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        if code == 530 && matches!(p.command.as_str(), "USER" | "PASS" | "ACCT") {
            self.login_failures += 1;
            self.login = Login::Failed;
        }
        let mut data = p.data;
        if let Some(d) = &mut data
            && code >= 400
        {
            d.refused = true;
        }
        if data.is_none()
            && let Some((ip, port)) = endpoint
        {
            let (mode, ip) = if code == 227 {
                // 0.0.0.0 (some servers behind NAT) means "my control address".
                let ip = ip.filter(|ip| !ip.is_unspecified()).unwrap_or(self.server);
                (DataMode::Passive, ip)
            } else {
                (DataMode::ExtendedPassive, ip.unwrap_or(self.server))
            };
            data = Some(DataEndpoint {
                mode,
                ip,
                port,
                refused: false,
            });
        }
        let tls = p.command == "AUTH" && self.auth_tls;
        if p.command == "AUTH" {
            self.auth_tls = false;
        }
        self.rows.push(Row {
            time_ns: p.time_ns,
            frame: p.frame,
            user: p.user,
            command: p.command,
            argument: p.argument,
            reply_code: Some(code),
            reply_message: message,
            reply_frame: Some(frame),
            preliminary: p.preliminary,
            data,
            incomplete: p.incomplete || incomplete,
        });
        if tls && code == 234 {
            self.start_tls();
        }
    }

    /// Message for the part of an open multi-line reply seen in this packet.
    fn flush_note(&mut self, frame: u64) {
        if self.open.is_some()
            && let Some(n) = self.note.take()
        {
            self.messages.push((frame, format!("ftp reply {n}")));
        }
        self.note = None;
    }
}

/// `ddd ` / `ddd` (final line) or `ddd-` (first line of a multi-line reply); the code's
/// first digit is 1-5 (RFC 959) or 6 (RFC 2228 protected replies).
fn reply_code(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let d = line.get(..3)?;
    if !d.iter().all(u8::is_ascii_digit) || !(b'1'..=b'6').contains(&d[0]) {
        return None;
    }
    let code = d.iter().fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'));
    match line.get(3) {
        None => Some((code, false, &line[3..])),
        Some(b' ') => Some((code, false, &line[4..])),
        Some(b'-') => Some((code, true, &line[4..])),
        Some(_) => None,
    }
}

/// After a gap: RFC 959 verbs are three or four letters, followed by a space or nothing.
fn looks_like_command(line: &[u8]) -> bool {
    let verb = line.split(|&b| b == b' ').next().unwrap_or_default();
    (3..=4).contains(&verb.len()) && verb.iter().all(u8::is_ascii_alphabetic)
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

/// Trace bytes as text: invalid UTF-8 replaced, control characters too (they have no
/// business in a CSV cell).
fn text(b: &[u8]) -> String {
    // Printable ASCII, nearly every FTP line, is already its own text.
    if b.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\t') {
        return std::str::from_utf8(b)
            .map(str::to_owned)
            .unwrap_or_default();
    }
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Message form: whitespace runs collapsed, at most MAX_MESSAGE characters.
fn short(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_MESSAGE + 3));
    short_into(&mut out, s);
    out
}

/// `short`, appended to `out`.
fn short_into(out: &mut String, s: &str) {
    let start = out.len();
    for (n, w) in s.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    // Fewer bytes than the limit: fewer characters too.
    if out.len() - start > MAX_MESSAGE && out[start..].chars().count() > MAX_MESSAGE {
        let cut = out[start..]
            .char_indices()
            .nth(MAX_MESSAGE)
            .map_or(out.len(), |(i, _)| start + i);
        out.truncate(cut);
        out.push('…');
    }
}

/// `prefix` and the message forms of `parts`, space separated.
fn message(prefix: &str, parts: &[&str]) -> String {
    let mut m = String::with_capacity(prefix.len() + 2 * MAX_MESSAGE);
    m.push_str(prefix);
    for p in parts {
        m.push(' ');
        short_into(&mut m, p);
    }
    m
}

/// The endpoint a 227 or 229 reply line announces.
fn endpoint_in(code: u16, text: &str, complete: bool) -> Option<(Option<IpAddr>, u16)> {
    match code {
        227 => find_h1_p2(text, complete).map(|(ip, p)| (Some(IpAddr::V4(ip)), p)),
        229 => parse_epsv(text),
        _ => None,
    }
}

/// The first `h1,h2,h3,h4,p1,p2` in `s` (PORT argument, or anywhere in a 227 reply, with
/// or without parentheses; RFC 1123 section 4.1.2.6 tells clients to scan for it). When
/// the line was cut, digits running to its end may be cut too, so they do not count.
fn find_h1_p2(s: &str, complete: bool) -> Option<(Ipv4Addr, u16)> {
    let b = s.as_bytes();
    (0..b.len())
        .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
        .find_map(|i| six_numbers(b, i, complete))
}

fn six_numbers(b: &[u8], mut i: usize, complete: bool) -> Option<(Ipv4Addr, u16)> {
    let mut n = [0u8; 6];
    for (k, slot) in n.iter_mut().enumerate() {
        if k > 0 {
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
            if b.get(i) != Some(&b',') {
                return None;
            }
            i += 1;
            while b.get(i) == Some(&b' ') {
                i += 1;
            }
        }
        let start = i;
        let mut v = 0u32;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            v = v * 10 + u32::from(c - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        if i == start {
            return None;
        }
        *slot = u8::try_from(v).ok()?;
    }
    if i >= b.len() && !complete {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some((ip, (u16::from(n[4]) << 8) | u16::from(n[5])))
}

/// EPRT `<d>proto<d>addr<d>port<d>` (RFC 2428 section 2): proto 1 = IPv4, 2 = IPv6, the
/// delimiter any printable character. The closing delimiter must be there, so a cut
/// line cannot yield a shortened port.
fn parse_eprt(arg: &str) -> Option<(IpAddr, u16)> {
    let s = arg.trim();
    let d = s.chars().next()?;
    if !d.is_ascii_graphic() || d.is_ascii_alphanumeric() {
        return None;
    }
    let f: Vec<&str> = s[d.len_utf8()..].split(d).collect();
    if f.len() < 4 {
        return None;
    }
    let addr = f[1].trim();
    let ip = match f[0].trim() {
        "1" => IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?),
        "2" => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        _ => addr.parse::<IpAddr>().ok()?,
    };
    let port = f[2].trim().parse::<u16>().ok()?;
    Some((ip, port))
}

/// EPSV reply `(<d><d><d>port<d>)` (RFC 2428 section 3): the address is normally
/// omitted (None: the control connection's server address).
fn parse_epsv(text: &str) -> Option<(Option<IpAddr>, u16)> {
    text.match_indices('(').find_map(|(i, _)| {
        let inner = &text[i + 1..];
        let inner = &inner[..inner.find(')')?];
        let d = inner.chars().next()?;
        if !d.is_ascii_graphic() || d.is_ascii_alphanumeric() {
            return None;
        }
        let f: Vec<&str> = inner[d.len_utf8()..].split(d).collect();
        if f.len() < 4 {
            return None;
        }
        let port = f[2].trim().parse::<u16>().ok()?;
        let ip = f[1].trim().parse::<IpAddr>().ok();
        Some((ip, port))
    })
}

/// Fuzz entry: the input drives a conversation. Each control byte says the direction
/// (bit 6), whether this is a gap (bit 7) and a length (bits 0-5); data chunks follow
/// their control byte. Bytes left after a switch to TLS make the "TLS layer" report
/// clear text at once. Checks the promises the caller relies on.
pub fn fuzz(data: &[u8]) {
    let mut f = Ftp::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21)));
    let mut rest = data;
    let mut frame = 0u64;
    let mut rows = Vec::new();
    while let Some((&ctl, tail)) = rest.split_first() {
        frame += 1;
        let dir = if ctl & 0x40 != 0 {
            Dir::ToClient
        } else {
            Dir::ToServer
        };
        let len = usize::from(ctl & 0x3f);
        if ctl & 0x80 != 0 {
            f.gap(dir, len as u64);
            rest = tail;
            continue;
        }
        let (chunk, after) = tail.split_at(len.min(tail.len()));
        rest = after;
        let mut chunk = chunk;
        loop {
            let was_encrypted = f.encrypted();
            let used = f.data(dir, chunk, frame, frame as i64);
            assert!(used <= chunk.len());
            if was_encrypted {
                assert_eq!(used, 0);
            }
            if used < chunk.len() {
                assert!(f.encrypted());
                f.clear_again();
                chunk = &chunk[used..];
            } else {
                break;
            }
        }
        if frame.is_multiple_of(7) {
            rows.extend(f.take_rows());
            assert!(f.take_messages().iter().all(|(n, _)| *n <= frame));
        }
        assert!(f.pending.len() <= MAX_PENDING);
    }
    rows.extend(f.finish());
    assert!(f.pending.is_empty());
    for r in &rows {
        assert!(r.reply_code.is_none_or(|c| (200..700).contains(&c)));
        if r.command == "PASS" {
            assert_eq!(r.argument, "****");
        }
        assert!(r.argument.len() <= 4 * MAX_LINE);
    }
}

#[cfg(test)]
#[path = "../../tests/unit/analyze_ftp.rs"]
mod tests;
