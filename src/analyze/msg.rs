//! Per-packet messages: one IP packet -> a one-line description for the `app` and
//! `message` columns of packets.csv (DNS, mDNS, LLMNR, DHCP, DHCPv6, ICMP, ICMPv6), and an
//! exception for exceptions.csv when the packet itself reports that something went wrong
//! (ICMP errors, DNS error replies, DHCP declines and naks).
//!
//! It works on the IP bytes alone, so it needs no session state. Traced packets are often
//! abbreviated (only the first N bytes are kept): every reader here takes what is present,
//! marks the line `(incomplete)` when it had to stop early, and never indexes past the end.
//! Bytes that contradict their own headers give `(malformed)` instead.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What one packet says, for packets.csv (`app`, `message`) and exceptions.csv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `dns`, `mdns`, `llmnr`, `dhcp`, `dhcpv6`, `icmp` or `icmpv6`.
    pub app: &'static str,
    /// One human line, e.g. `dns query A www.example.com`.
    pub text: String,
    pub exception: Option<Exception>,
    /// For ICMP/ICMPv6 errors: the quoted packet's protocol number and endpoints, so the
    /// lead can tie it to the session it concerns.
    pub quoted: Option<Quoted>,
}

impl Message {
    fn new(app: &'static str, text: String) -> Message {
        Message {
            app,
            text,
            exception: None,
            quoted: None,
        }
    }
}

/// One row for exceptions.csv (time, session and packet are the caller's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// `error`, `warning` or `note`.
    pub severity: &'static str,
    /// `icmp-unreachable`, `fragmentation-needed`, `time-exceeded`, `parameter-problem`,
    /// `source-quench`, `icmp-redirect`, `dns-error`, `dhcp-decline` or `dhcp-nak`.
    pub category: &'static str,
    pub text: String,
}

/// The packet an ICMP/ICMPv6 error quotes: as it was sent, so `src` is the side that
/// sent the offending packet and the ICMP error travels back to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quoted {
    pub protocol: u8,
    pub src: IpAddr,
    /// Ports for TCP, UDP, SCTP, DCCP and UDP-Lite when the quoted bytes hold them.
    pub src_port: Option<u16>,
    pub dst: IpAddr,
    pub dst_port: Option<u16>,
}

/// `UDP 10.0.0.1:5353 -> 10.0.0.2:53`, `TCP [2001:db8::1]:80 -> [2001:db8::2]:1025`,
/// `ICMP 10.0.0.1 -> 10.0.0.2`.
impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", proto_name(self.protocol))?;
        write_endpoint(f, self.src, self.src_port)?;
        f.write_str(" -> ")?;
        write_endpoint(f, self.dst, self.dst_port)
    }
}

fn write_endpoint(f: &mut fmt::Formatter<'_>, ip: IpAddr, port: Option<u16>) -> fmt::Result {
    match (ip, port) {
        // Brackets keep the port apart from an IPv6 address's own colons.
        (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
        (a, Some(p)) => write!(f, "{a}:{p}"),
        (a, None) => write!(f, "{a}"),
    }
}

/// IP protocol number as the name packets.csv uses, or `proto N`.
pub fn proto_name(p: u8) -> Cow<'static, str> {
    Cow::Borrowed(match p {
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPIP",
        6 => "TCP",
        17 => "UDP",
        33 => "DCCP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        89 => "OSPF",
        132 => "SCTP",
        136 => "UDP-Lite",
        n => return Cow::Owned(format!("proto {n}")),
    })
}

/// Describes one IP packet (IPv4 or IPv6, starting at the IP header, possibly truncated).
/// None when it is none of DNS (UDP/TCP 53, TCP with the 2-byte length prefix when the
/// message starts in this segment), mDNS (UDP 5353), LLMNR (UDP/TCP 5355), DHCP (UDP
/// 67/68), DHCPv6 (UDP 546/547), ICMP or ICMPv6, and for non-first fragments (they carry
/// no upper-layer header).
pub fn describe(ip: &[u8]) -> Option<Message> {
    let v = ip_view(ip)?;
    if v.later_fragment {
        return None;
    }
    match v.protocol {
        1 => Some(describe_icmp(&v)),
        58 => Some(describe_icmpv6(&v)),
        17 => describe_udp(&v),
        6 => describe_tcp(&v),
        _ => None,
    }
}

/// One-line fuzz entry: the decoders on arbitrary bytes must never panic.
pub fn fuzz(data: &[u8]) {
    let _ = (describe(data), icmp_type_text(data), icmpv6_type_text(data));
}

// ---------------------------------------------------------------------------------------
// Bytes and IP

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?.first_chunk().map(|a| u16::from_be_bytes(*a))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk().map(|a| u32::from_be_bytes(*a))
}

fn v4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    b.get(at..)?.first_chunk::<4>().map(|a| Ipv4Addr::from(*a))
}

fn v6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    b.get(at..)?.first_chunk::<16>().map(|a| Ipv6Addr::from(*a))
}

/// An IPv6 extension-header chain longer than this is hostile; we stop looking.
const MAX_EXT_HEADERS: usize = 16;

/// The IP layer as far as this module needs it. Shared by the packet itself and by the
/// packet an ICMP error quotes (which is cut short by design).
struct IpView<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// Upper-layer protocol after any IPv6 extension headers (or the extension header
    /// where the chain could not be followed, which no decoder here takes).
    protocol: u8,
    /// Fragment offset is not zero: the bytes are the middle of someone else's payload.
    later_fragment: bool,
    /// Upper-layer bytes present, cut to the datagram length the header claims.
    payload: &'a [u8],
    /// All of the datagram is here: not abbreviated, not a first fragment of several.
    complete: bool,
}

fn ip_view(ip: &[u8]) -> Option<IpView<'_>> {
    let b0 = *ip.first()?;
    match b0 >> 4 {
        4 => {
            let src = v4_at(ip, 12)?;
            let dst = v4_at(ip, 16)?;
            let ihl = usize::from(b0 & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            let total = usize::from(be16(ip, 2)?);
            let frag = be16(ip, 6)?;
            let protocol = *ip.get(9)?;
            // A total length below the header is a lie (or offload left it 0): trust the
            // bytes we have instead.
            let end = if total >= ihl {
                total.min(ip.len())
            } else {
                ip.len()
            };
            Some(IpView {
                src: IpAddr::V4(src),
                dst: IpAddr::V4(dst),
                protocol,
                later_fragment: frag & 0x1fff != 0,
                payload: ip.get(ihl..end).unwrap_or_default(),
                complete: total >= ihl && total <= ip.len() && frag & 0x2000 == 0,
            })
        }
        6 => {
            let src = v6_at(ip, 8)?;
            let dst = v6_at(ip, 24)?;
            let plen = usize::from(be16(ip, 4)?);
            // Payload length 0 is a jumbogram (or unset by offload): use what is there.
            let end = if plen == 0 {
                ip.len()
            } else {
                (40 + plen).min(ip.len())
            };
            let mut complete = plen == 0 || 40 + plen <= ip.len();
            let mut next = *ip.get(6)?;
            let mut pos = 40usize;
            let mut later_fragment = false;
            let mut chain_ok = true;
            for _ in 0..MAX_EXT_HEADERS {
                let len = match next {
                    // Hop-by-hop, routing, destination options, mobility, HIP, shim6:
                    // length in 8-octet units, not counting the first 8.
                    0 | 43 | 60 | 135 | 139 | 140 => {
                        ip.get(pos + 1).map(|&l| (usize::from(l) + 1) * 8)
                    }
                    44 => be16(ip, pos + 2).map(|off| {
                        later_fragment = off & 0xfff8 != 0;
                        if off & 1 != 0 {
                            complete = false;
                        }
                        8
                    }),
                    // AH counts 4-octet units, not counting the first 8.
                    51 => ip.get(pos + 1).map(|&l| (usize::from(l) + 2) * 4),
                    _ => break,
                };
                match (len, ip.get(pos)) {
                    (Some(len), Some(&n)) => {
                        next = n;
                        pos += len;
                    }
                    _ => {
                        chain_ok = false;
                        break;
                    }
                }
                // After the fragment header of a later fragment come payload bytes, not
                // headers.
                if later_fragment {
                    break;
                }
            }
            Some(IpView {
                src: IpAddr::V6(src),
                dst: IpAddr::V6(dst),
                protocol: next,
                later_fragment,
                payload: if chain_ok {
                    ip.get(pos..end).unwrap_or_default()
                } else {
                    &[]
                },
                complete: complete && chain_ok,
            })
        }
        _ => None,
    }
}

/// Up to `max` characters of text from the wire, with anything unprintable replaced so
/// the CSV cell stays one clean line.
fn printable(b: &[u8], max: usize) -> String {
    let b = match b.iter().rposition(|&c| c != 0) {
        Some(last) => &b[..=last],
        None => &[],
    };
    let mut s: String = b
        .iter()
        .take(max)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                char::from(c)
            } else {
                '.'
            }
        })
        .collect();
    if b.len() > max {
        s.push_str("...");
    }
    s
}

fn hex_colons(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

// ---------------------------------------------------------------------------------------
// UDP and TCP: which application

fn describe_udp(v: &IpView) -> Option<Message> {
    let sport = be16(v.payload, 0)?;
    let dport = be16(v.payload, 2)?;
    let ulen = usize::from(be16(v.payload, 4)?);
    be16(v.payload, 6)?;
    let end = if ulen >= 8 {
        ulen.min(v.payload.len())
    } else {
        v.payload.len()
    };
    let data = v.payload.get(8..end).unwrap_or_default();
    let complete = v.complete && ulen >= 8 && ulen <= v.payload.len();
    let has = |p: u16| sport == p || dport == p;
    if has(53) {
        dns_udp(Flavor::Dns, data, complete)
    } else if has(67) || has(68) {
        Some(describe_dhcp(data, complete))
    } else if has(546) || has(547) {
        Some(describe_dhcpv6(data))
    } else if has(5353) {
        dns_udp(Flavor::Mdns, data, complete)
    } else if has(5355) {
        dns_udp(Flavor::Llmnr, data, complete)
    } else {
        None
    }
}

fn dns_udp(flavor: Flavor, data: &[u8], complete: bool) -> Option<Message> {
    if data.is_empty() {
        return None;
    }
    Some(match parse_dns(data, complete) {
        Some(d) => dns_message(flavor, &d),
        None => {
            let what = if complete { "malformed" } else { "incomplete" };
            Message::new(flavor.app(), format!("{} ({what})", flavor.app()))
        }
    })
}

fn describe_tcp(v: &IpView) -> Option<Message> {
    let sport = be16(v.payload, 0)?;
    let dport = be16(v.payload, 2)?;
    let off = usize::from(*v.payload.get(12)? >> 4) * 4;
    if off < 20 {
        return None;
    }
    let data = v.payload.get(off..)?;
    let has = |p: u16| sport == p || dport == p;
    let flavor = if has(53) {
        Flavor::Dns
    } else if has(5355) {
        Flavor::Llmnr
    } else {
        return None;
    };
    // RFC 1035 4.2.2: over TCP each message has a 2-byte length prefix. A segment that
    // continues an earlier message has no such prefix; the plausibility test below
    // keeps its bytes from being read as a header.
    let len = usize::from(be16(data, 0)?);
    if len < 12 {
        return None;
    }
    let rest = data.get(2..)?;
    let complete = rest.len() >= len;
    let msg = rest.get(..len).unwrap_or(rest);
    let d = parse_dns(msg, complete)?;
    d.plausible_over_tcp().then(|| dns_message(flavor, &d))
}

// ---------------------------------------------------------------------------------------
// DNS (RFC 1035), mDNS (RFC 6762) and LLMNR (RFC 4795) share the message format.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Dns,
    Mdns,
    Llmnr,
}

impl Flavor {
    fn app(self) -> &'static str {
        match self {
            Flavor::Dns => "dns",
            Flavor::Mdns => "mdns",
            Flavor::Llmnr => "llmnr",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Flavor::Dns => "DNS",
            Flavor::Mdns => "mDNS",
            Flavor::Llmnr => "LLMNR",
        }
    }
}

/// Why reading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bad {
    /// Ran out of bytes.
    Cut,
    /// The bytes contradict the format (bad label type, pointer loop, name too long).
    Malformed,
}

/// A name's wire length, length bytes and the root included (RFC 1035 3.1).
const MAX_NAME: usize = 255;
/// A name has at most 127 labels, so more jumps than that can only be a trap.
const MAX_JUMPS: usize = 128;

/// Reads a possibly compressed name at `start`: the name as text (`.` for the root) and
/// where the record continues after it.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), Bad> {
    let mut out = String::new();
    let mut pos = start;
    // Where the record continues: after the first pointer, or after the final 0.
    let mut resume = None;
    // Every pointer must go below the start of the run of labels that led to it, so
    // the runs start ever lower and no loop can form, whatever the bytes say.
    let mut floor = start;
    let mut jumps = 0;
    let mut wire = 1;
    loop {
        let len = *msg.get(pos).ok_or(Bad::Cut)?;
        match len >> 6 {
            0 if len == 0 => {
                if out.is_empty() {
                    out.push('.');
                }
                return Ok((out, resume.unwrap_or(pos + 1)));
            }
            0 => {
                let n = usize::from(len);
                wire += n + 1;
                if wire > MAX_NAME {
                    return Err(Bad::Malformed);
                }
                let label = msg.get(pos + 1..pos + 1 + n).ok_or(Bad::Cut)?;
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + n;
            }
            3 => {
                let lo = *msg.get(pos + 1).ok_or(Bad::Cut)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                if target >= floor || jumps >= MAX_JUMPS {
                    return Err(Bad::Malformed);
                }
                jumps += 1;
                resume.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            // 0x40 and 0x80: extended label types (RFC 6891 retired them).
            _ => return Err(Bad::Malformed),
        }
    }
}

/// Label bytes as presentation text: dots and backslashes inside a label escaped,
/// anything outside printable ASCII as `\DDD` (RFC 4343 style), so one line stays one line.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' => out.push_str("\\."),
            b'\\' => out.push_str("\\\\"),
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
}

/// Resource record type mnemonic, or `TYPEn` (RFC 3597).
pub fn dns_type_name(t: u16) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        n => return Cow::Owned(format!("TYPE{n}")),
    })
}

/// Response code as text; with EDNS (RFC 6891) it may exceed 15.
pub fn dns_rcode_name(r: u16) -> Cow<'static, str> {
    Cow::Borrowed(match r {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure",
        3 => "Name Error",
        4 => "Not Implemented",
        5 => "Refused",
        n => return Cow::Owned(format!("rcode {n}")),
    })
}

fn dns_class_suffix(c: u16) -> Cow<'static, str> {
    // mDNS uses the top bit for unicast-response / cache-flush (RFC 6762 5.4, 10.2).
    Cow::Borrowed(match c & 0x7fff {
        1 | 255 => "",
        3 => " CH",
        4 => " HS",
        n => return Cow::Owned(format!(" CLASS{n}")),
    })
}

/// What a DNS message says, as far as its bytes go.
#[derive(Debug, Default)]
struct Dns {
    qr: bool,
    opcode: u8,
    tc: bool,
    z: bool,
    /// Header rcode, widened by the OPT record's upper bits when there is one.
    rcode: u16,
    qdcount: u16,
    ancount: u16,
    /// First question: name, type, class.
    question: Option<(String, u16, u16)>,
    /// The question was there but could not be read.
    question_bad: bool,
    /// First answer's name and type.
    first_answer: Option<(String, u16)>,
    /// Up to 3 A/AAAA/CNAME answers as text.
    listed: Vec<String>,
    /// The walk got past the questions.
    in_answers: bool,
    /// Why the walk ended early, if it did.
    stop: Option<Bad>,
}

impl Dns {
    /// Over TCP a segment may continue an earlier message; its bytes then are no header.
    /// Real messages start with an opcode in use, a zero Z bit, at most one question
    /// (RFC 9619) that reads well, and queries carry rcode 0.
    fn plausible_over_tcp(&self) -> bool {
        matches!(self.opcode, 0 | 1 | 2 | 4 | 5 | 6)
            && !self.z
            && self.qdcount <= 1
            && !self.question_bad
            && (self.qr || self.rcode == 0)
    }
}

/// Parses a DNS message; None when even the 12-byte header is missing. `complete` says
/// all of the message is here, so running out of bytes means malformed, not cut.
fn parse_dns(msg: &[u8], complete: bool) -> Option<Dns> {
    let flags = be16(msg, 2)?;
    let mut d = Dns {
        qr: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        tc: flags & 0x0200 != 0,
        z: flags & 0x0040 != 0,
        rcode: flags & 0x000f,
        qdcount: be16(msg, 4)?,
        ancount: be16(msg, 6)?,
        ..Dns::default()
    };
    let nscount = be16(msg, 8)?;
    let arcount = be16(msg, 10)?;
    if let Err(e) = walk_dns(msg, &mut d, nscount, arcount) {
        let e = if complete { Bad::Malformed } else { e };
        if d.question.is_none() && d.qdcount > 0 && e == Bad::Malformed {
            d.question_bad = true;
        }
        d.stop = Some(e);
    }
    Some(d)
}

/// Fixed part of a resource record.
struct RrHead {
    name: String,
    rtype: u16,
    ttl: u32,
    rdata: usize,
    rdlen: usize,
}

fn read_rr_head(msg: &[u8], pos: usize) -> Result<RrHead, Bad> {
    let (name, p) = read_name(msg, pos)?;
    Ok(RrHead {
        name,
        rtype: be16(msg, p).ok_or(Bad::Cut)?,
        ttl: be32(msg, p + 4).ok_or(Bad::Cut)?,
        rdlen: usize::from(be16(msg, p + 8).ok_or(Bad::Cut)?),
        rdata: p + 10,
    })
}

/// Walks the sections. Every record moves forward by at least 11 bytes (5 for a
/// question), so the counts, whatever they say, cannot make this loop long.
fn walk_dns(msg: &[u8], d: &mut Dns, nscount: u16, arcount: u16) -> Result<(), Bad> {
    let mut pos = 12;
    for i in 0..d.qdcount {
        let (name, p) = read_name(msg, pos)?;
        let qtype = be16(msg, p).ok_or(Bad::Cut)?;
        let qclass = be16(msg, p + 2).ok_or(Bad::Cut)?;
        if i == 0 {
            d.question = Some((name, qtype, qclass));
        }
        pos = p + 4;
    }
    d.in_answers = true;
    for i in 0..d.ancount {
        let rr = read_rr_head(msg, pos)?;
        let rd = msg
            .get(rr.rdata..rr.rdata + rr.rdlen)
            .ok_or(Bad::Cut)
            .inspect_err(|_| {
                if i == 0 {
                    d.first_answer = Some((rr.name.clone(), rr.rtype));
                }
            })?;
        if d.listed.len() < 3 {
            match (rr.rtype, rd.len()) {
                (1, 4) => d.listed.extend(v4_at(rd, 0).map(|a| a.to_string())),
                (28, 16) => d.listed.extend(v6_at(rd, 0).map(|a| a.to_string())),
                (5, _) => {
                    let (target, _) = read_name(msg, rr.rdata)?;
                    d.listed.push(format!("CNAME {target}"));
                }
                _ => {}
            }
        }
        if i == 0 {
            d.first_answer = Some((rr.name, rr.rtype));
        }
        pos = rr.rdata + rr.rdlen;
    }
    for _ in 0..nscount {
        let rr = read_rr_head(msg, pos)?;
        pos = rr.rdata + rr.rdlen;
    }
    for _ in 0..arcount {
        let rr = read_rr_head(msg, pos)?;
        // RFC 6891 6.1.3: the OPT record's TTL carries the upper 8 bits of a 12-bit
        // rcode. It counts even when its own data is cut off.
        if rr.rtype == 41 {
            d.rcode = (d.rcode & 0x0f) | (((rr.ttl >> 24) as u16) << 4);
        }
        pos = rr.rdata + rr.rdlen;
        if pos > msg.len() {
            return Err(Bad::Cut);
        }
    }
    Ok(())
}

fn dns_verb(opcode: u8, qr: bool) -> Cow<'static, str> {
    let name: Cow<'static, str> = match opcode {
        0 => return Cow::Borrowed(if qr { "response" } else { "query" }),
        1 => "inverse query".into(),
        2 => "status".into(),
        4 => "notify".into(),
        5 => "update".into(),
        6 => "dso".into(),
        n => format!("opcode {n}").into(),
    };
    if qr {
        Cow::Owned(format!("{name} response"))
    } else {
        name
    }
}

fn dns_message(flavor: Flavor, d: &Dns) -> Message {
    let mut text = format!("{} {}", flavor.app(), dns_verb(d.opcode, d.qr));
    let error = d.qr && d.rcode != 0;
    if error {
        text.push(' ');
        text.push_str(&dns_rcode_name(d.rcode));
    }
    // What the message is about: the question, or for mDNS announcements (no question)
    // the first answer.
    let subject = match (&d.question, &d.first_answer) {
        (Some((name, t, c)), _) => Some(format!(
            "{}{} {name}",
            dns_type_name(*t),
            dns_class_suffix(*c)
        )),
        (None, Some((name, t))) if d.qdcount == 0 => Some(format!("{} {name}", dns_type_name(*t))),
        _ => None,
    };
    if let Some(s) = &subject {
        text.push(' ');
        text.push_str(s);
    }
    // Answers mean something for standard queries only (UPDATE reuses the sections).
    if d.qr && !error && d.opcode == 0 && d.in_answers {
        if !d.listed.is_empty() {
            text.push_str(": ");
            text.push_str(&d.listed.join(", "));
            let more = usize::from(d.ancount).saturating_sub(d.listed.len());
            if more > 0 {
                let _ = write!(text, " (+{more} more)");
            }
        } else if d.ancount == 0 {
            text.push_str(": no answer");
        } else {
            let s = if d.ancount == 1 { "" } else { "s" };
            let _ = write!(text, ": {} answer{s}", d.ancount);
            if let Some((_, t)) = &d.first_answer {
                let _ = write!(text, " ({})", dns_type_name(*t));
            }
        }
    }
    if d.tc {
        // The answer did not fit; the client is expected to retry over TCP.
        text.push_str(" (TC)");
    }
    match d.stop {
        Some(Bad::Cut) => text.push_str(" (incomplete)"),
        Some(Bad::Malformed) => text.push_str(" (malformed)"),
        None => {}
    }
    let exception = error.then(|| {
        let mut t = format!("{} {}", flavor.label(), dns_rcode_name(d.rcode));
        if let Some(s) = &subject {
            let _ = write!(t, " for {s}");
        }
        Exception {
            // A failing server is an error; a name that does not exist, or a refusal,
            // is often expected (resolver search lists try names that do not exist).
            severity: if d.rcode == 2 { "error" } else { "warning" },
            category: "dns-error",
            text: t,
        }
    });
    Message {
        app: flavor.app(),
        text,
        exception,
        quoted: None,
    }
}

// ---------------------------------------------------------------------------------------
// DHCP (RFC 2131, 2132) and DHCPv6 (RFC 8415)

/// DHCP message type (option 53) as text.
pub fn dhcp_type_name(t: u8) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        1 => "Discover",
        2 => "Offer",
        3 => "Request",
        4 => "Decline",
        5 => "Ack",
        6 => "Nak",
        7 => "Release",
        8 => "Inform",
        9 => "Force Renew",
        10 => "Lease Query",
        11 => "Lease Unassigned",
        12 => "Lease Unknown",
        13 => "Lease Active",
        14 => "Bulk Lease Query",
        15 => "Lease Query Done",
        16 => "Active Lease Query",
        17 => "Lease Query Status",
        18 => "TLS",
        n => return Cow::Owned(format!("type {n}")),
    })
}

const DHCP_COOKIE: [u8; 4] = [99, 130, 83, 99];

#[derive(Default)]
struct DhcpOptions {
    msg_type: Option<u8>,
    requested: Option<Ipv4Addr>,
    message: Option<String>,
    overload: u8,
    /// The main option area ended at its end option.
    ended: bool,
}

/// Reads one option area. Returns whether the end option (255) was reached.
fn dhcp_options(area: &[u8], o: &mut DhcpOptions) -> bool {
    let mut pos = 0;
    while let Some(&code) = area.get(pos) {
        match code {
            0 => {
                pos += 1;
                continue;
            }
            255 => return true,
            _ => {}
        }
        let Some(&len) = area.get(pos + 1) else {
            return false;
        };
        let len = usize::from(len);
        let Some(val) = area.get(pos + 2..pos + 2 + len) else {
            return false;
        };
        match code {
            53 => o.msg_type = val.first().copied(),
            50 if len == 4 => o.requested = v4_at(val, 0),
            56 => o.message = Some(printable(val, 100)),
            52 => o.overload = val.first().copied().unwrap_or(0),
            _ => {}
        }
        pos += 2 + len;
    }
    false
}

fn describe_dhcp(p: &[u8], complete: bool) -> Message {
    let bootp = match p.first() {
        Some(1) => Cow::Borrowed("BOOTP Request"),
        Some(2) => Cow::Borrowed("BOOTP Reply"),
        Some(n) => Cow::Owned(format!("BOOTP op {n}")),
        None => Cow::Borrowed("DHCP"),
    };
    if p.len() < 240 && !complete {
        return Message::new("dhcp", "DHCP (incomplete)".into());
    }
    if p.get(236..240) != Some(&DHCP_COOKIE[..]) {
        let bad = if p.len() < 236 { " (malformed)" } else { "" };
        return Message::new("dhcp", format!("{bootp}{bad}"));
    }
    let mut o = DhcpOptions::default();
    o.ended = dhcp_options(p.get(240..).unwrap_or_default(), &mut o);
    // RFC 2132 9.3: options may continue in the file field, then in sname.
    if o.overload & 1 != 0 {
        dhcp_options(p.get(108..236).unwrap_or_default(), &mut o);
    }
    if o.overload & 2 != 0 {
        dhcp_options(p.get(44..108).unwrap_or_default(), &mut o);
    }
    let Some(t) = o.msg_type else {
        let cut = if o.ended || complete {
            ""
        } else {
            " (incomplete)"
        };
        return Message::new("dhcp", format!("{bootp}{cut}"));
    };
    let nonzero = |at| v4_at(p, at).filter(|a| !a.is_unspecified());
    let (ciaddr, yiaddr) = (nonzero(12), nonzero(16));
    // The address the message is about: what the server hands out, or what the client
    // asks for, declines, or gives back.
    let addr = match t {
        2 | 5 => yiaddr.or(ciaddr),
        3 | 4 => o.requested.or(ciaddr),
        7 | 8 => ciaddr.or(o.requested),
        _ => None,
    };
    let mut text = format!("DHCP {}", dhcp_type_name(t));
    if let Some(a) = addr {
        let _ = write!(text, " {a}");
    }
    if let Some(m) = &o.message {
        let _ = write!(text, ": {m}");
    }
    if !o.ended && !complete {
        text.push_str(" (incomplete)");
    }
    let hlen = usize::from(p.get(2).copied().unwrap_or(0)).min(16);
    let client = match p.get(28..28 + hlen) {
        Some(hw) if !hw.is_empty() => format!("client {}", hex_colons(hw)),
        _ => "client".to_string(),
    };
    let exception = match t {
        // RFC 2131 3.1 (5): the client found the offered address already in use.
        4 => Some(Exception {
            severity: "warning",
            category: "dhcp-decline",
            text: {
                let mut s = String::from("DHCP Decline");
                if let Some(a) = addr {
                    let _ = write!(s, " of {a}");
                }
                let _ = write!(s, " by {client}: address already in use");
                if let Some(m) = &o.message {
                    let _ = write!(s, " ({m})");
                }
                s
            },
        }),
        6 => Some(Exception {
            severity: "warning",
            category: "dhcp-nak",
            text: {
                let mut s = format!("DHCP Nak to {client}");
                if let Some(m) = &o.message {
                    let _ = write!(s, ": {m}");
                }
                s
            },
        }),
        _ => None,
    };
    Message {
        app: "dhcp",
        text,
        exception,
        quoted: None,
    }
}

/// DHCPv6 message type as text.
pub fn dhcpv6_type_name(t: u8) -> Cow<'static, str> {
    Cow::Borrowed(match t {
        1 => "Solicit",
        2 => "Advertise",
        3 => "Request",
        4 => "Confirm",
        5 => "Renew",
        6 => "Rebind",
        7 => "Reply",
        8 => "Release",
        9 => "Decline",
        10 => "Reconfigure",
        11 => "Information-request",
        12 => "Relay-forw",
        13 => "Relay-repl",
        n => return Cow::Owned(format!("type {n}")),
    })
}

/// DHCPv6 options: 2-byte code, 2-byte length, value. Stops at the first option that
/// does not fit.
struct V6Options<'a>(&'a [u8]);

impl<'a> Iterator for V6Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let code = be16(self.0, 0)?;
        let len = usize::from(be16(self.0, 2)?);
        let Some(val) = self.0.get(4..4 + len) else {
            self.0 = &[];
            return None;
        };
        self.0 = self.0.get(4 + len..).unwrap_or_default();
        Some((code, val))
    }
}

/// The first address (IA_NA / IA_TA) or delegated prefix (IA_PD) a message carries.
fn dhcpv6_lease(opts: &[u8]) -> Option<String> {
    V6Options(opts).find_map(|(code, val)| {
        let (sub, want) = match code {
            3 => (val.get(12..)?, 5),
            4 => (val.get(4..)?, 5),
            25 => (val.get(12..)?, 26),
            _ => return None,
        };
        V6Options(sub).find_map(|(c, v)| match c {
            5 if c == want => v6_at(v, 0).map(|a| a.to_string()),
            26 if c == want => Some(format!("{}/{}", v6_at(v, 9)?, v.get(8)?)),
            _ => None,
        })
    })
}

/// Relay messages nest; RFC 8415 limits the hop count to 8, so deeper is hostile.
const MAX_RELAY_DEPTH: usize = 8;

fn dhcpv6_text(p: &[u8], depth: usize) -> (String, Option<u8>, Option<String>) {
    let Some(&t) = p.first() else {
        return ("(incomplete)".into(), None, None);
    };
    let mut text = dhcpv6_type_name(t).into_owned();
    if t == 12 || t == 13 {
        // Relay header: type, hop count, link and peer address, then options.
        let inner = V6Options(p.get(34..).unwrap_or_default()).find(|(c, _)| *c == 9);
        if let Some((_, inner)) = inner
            && depth < MAX_RELAY_DEPTH
        {
            let (s, t, lease) = dhcpv6_text(inner, depth + 1);
            let _ = write!(text, " ({s})");
            return (text, t, lease);
        }
        return (text, Some(t), None);
    }
    let opts = p.get(4..).unwrap_or_default();
    let lease = dhcpv6_lease(opts);
    if let Some(l) = &lease {
        let _ = write!(text, " {l}");
    }
    // A top-level status code other than Success says why the server said no.
    if let Some((_, v)) = V6Options(opts).find(|(c, _)| *c == 13)
        && let Some(code) = be16(v, 0)
        && code != 0
    {
        let name: Cow<str> = match code {
            1 => "UnspecFail".into(),
            2 => "NoAddrsAvail".into(),
            3 => "NoBinding".into(),
            4 => "NotOnLink".into(),
            5 => "UseMulticast".into(),
            6 => "NoPrefixAvail".into(),
            n => format!("status {n}").into(),
        };
        let _ = write!(text, ": {name}");
    }
    (text, Some(t), lease)
}

fn describe_dhcpv6(p: &[u8]) -> Message {
    let (text, t, lease) = dhcpv6_text(p, 0);
    let exception = (t == Some(9)).then(|| Exception {
        severity: "warning",
        category: "dhcp-decline",
        text: match &lease {
            Some(l) => format!("DHCPv6 Decline of {l}: address already in use"),
            None => "DHCPv6 Decline: address already in use".into(),
        },
    });
    Message {
        app: "dhcpv6",
        text: format!("DHCPv6 {text}"),
        exception,
        quoted: None,
    }
}

// ---------------------------------------------------------------------------------------
// ICMP (RFC 792, 1191, 1812) and ICMPv6 (RFC 4443, 4861, 3810)

fn v4_unreachable(code: u8) -> Cow<'static, str> {
    Cow::Borrowed(match code {
        0 => "Net unreachable",
        1 => "Host unreachable",
        2 => "Protocol unreachable",
        3 => "Port unreachable",
        4 => "Fragmentation needed",
        5 => "Source route failed",
        6 => "Destination network unknown",
        7 => "Destination host unknown",
        8 => "Source host isolated",
        9 => "Network administratively prohibited",
        10 => "Host administratively prohibited",
        11 => "Network unreachable for TOS",
        12 => "Host unreachable for TOS",
        13 => "Communication administratively prohibited",
        14 => "Host precedence violation",
        15 => "Precedence cutoff in effect",
        n => return Cow::Owned(format!("code {n}")),
    })
}

/// ICMP type and code as text, with what the fixed part adds (MTU, gateway, pointer):
/// `Destination Unreachable: Port unreachable`,
/// `Destination Unreachable: Fragmentation needed (MTU 1400)`. Takes the whole ICMP
/// message (from its type byte); None when even type and code are missing.
pub fn icmp_type_text(msg: &[u8]) -> Option<String> {
    let (&t, &code) = (msg.first()?, msg.get(1)?);
    let name = match t {
        0 => "Echo Reply",
        3 => "Destination Unreachable",
        4 => "Source Quench",
        5 => "Redirect",
        8 => "Echo Request",
        9 => "Router Advertisement",
        10 => "Router Solicitation",
        11 => "Time Exceeded",
        12 => "Parameter Problem",
        13 => "Timestamp Request",
        14 => "Timestamp Reply",
        15 => "Information Request",
        16 => "Information Reply",
        17 => "Address Mask Request",
        18 => "Address Mask Reply",
        42 => "Extended Echo Request",
        43 => "Extended Echo Reply",
        _ => return Some(format!("type {t} code {code}")),
    };
    let detail: Option<Cow<str>> = match (t, code) {
        // RFC 1191: the next-hop MTU; 0 from routers that predate it.
        (3, 4) => Some(match be16(msg, 6) {
            Some(mtu) if mtu != 0 => format!("Fragmentation needed (MTU {mtu})").into(),
            _ => "Fragmentation needed".into(),
        }),
        (3, c) => Some(v4_unreachable(c)),
        (5, c) => {
            let what = match c {
                0 => "for network",
                1 => "for host",
                2 => "for TOS and network",
                3 => "for TOS and host",
                _ => "",
            };
            let mut s = if what.is_empty() {
                format!("Redirect code {c}")
            } else {
                format!("Redirect {what}")
            };
            if let Some(gw) = v4_at(msg, 4) {
                let _ = write!(s, " to {gw}");
            }
            return Some(s);
        }
        (11, 0) => Some("TTL exceeded in transit".into()),
        (11, 1) => Some("Fragment reassembly time exceeded".into()),
        (12, 0) => Some(match msg.get(4) {
            Some(p) => format!("Pointer indicates the error (pointer {p})").into(),
            None => "Pointer indicates the error".into(),
        }),
        (12, 1) => Some("Missing a required option".into()),
        (12, 2) => Some("Bad length".into()),
        (_, 0) => None,
        (_, c) => Some(format!("code {c}").into()),
    };
    Some(match detail {
        Some(d) => format!("{name}: {d}"),
        None => name.to_string(),
    })
}

/// ICMPv6 type and code as text, like [`icmp_type_text`]:
/// `Destination Unreachable: No route to destination`, `Packet Too Big (MTU 1280)`.
pub fn icmpv6_type_text(msg: &[u8]) -> Option<String> {
    let (&t, &code) = (msg.first()?, msg.get(1)?);
    let pointer = be32(msg, 4);
    let with_pointer = |s: &str| match pointer {
        Some(p) => format!("{s} (pointer {p})"),
        None => s.to_string(),
    };
    let name = match t {
        1 => "Destination Unreachable",
        2 => {
            return Some(match be32(msg, 4) {
                Some(mtu) => format!("Packet Too Big (MTU {mtu})"),
                None => "Packet Too Big".into(),
            });
        }
        3 => "Time Exceeded",
        4 => "Parameter Problem",
        128 => "Echo Request",
        129 => "Echo Reply",
        // MLDv2 queries (RFC 3810 5.1) are at least 28 bytes; MLDv1 ones are 24.
        130 if msg.len() >= 28 => "Multicast Listener Query v2",
        130 => "Multicast Listener Query",
        131 => "Multicast Listener Report",
        132 => "Multicast Listener Done",
        133 => "Router Solicitation",
        134 => "Router Advertisement",
        135 => "Neighbor Solicitation",
        136 => "Neighbor Advertisement",
        137 => "Redirect",
        138 => "Router Renumbering",
        139 => "Node Information Query",
        140 => "Node Information Reply",
        141 => "Inverse Neighbor Discovery Solicitation",
        142 => "Inverse Neighbor Discovery Advertisement",
        143 => "Multicast Listener Report v2",
        144 => "Home Agent Address Discovery Request",
        145 => "Home Agent Address Discovery Reply",
        146 => "Mobile Prefix Solicitation",
        147 => "Mobile Prefix Advertisement",
        148 => "Certification Path Solicitation",
        149 => "Certification Path Advertisement",
        151 => "Multicast Router Advertisement",
        152 => "Multicast Router Solicitation",
        153 => "Multicast Router Termination",
        155 => "RPL Control Message",
        160 => "Extended Echo Request",
        161 => "Extended Echo Reply",
        _ => return Some(format!("type {t} code {code}")),
    };
    let detail: Option<Cow<str>> = match (t, code) {
        (1, c) => Some(Cow::Borrowed(match c {
            0 => "No route to destination",
            1 => "Communication with destination administratively prohibited",
            2 => "Beyond scope of source address",
            3 => "Address unreachable",
            4 => "Port unreachable",
            5 => "Source address failed ingress/egress policy",
            6 => "Reject route to destination",
            7 => "Error in Source Routing Header",
            8 => "Headers too long",
            n => return Some(format!("{name}: code {n}")),
        })),
        (3, 0) => Some("Hop limit exceeded in transit".into()),
        (3, 1) => Some("Fragment reassembly time exceeded".into()),
        (4, 0) => Some(with_pointer("Erroneous header field").into()),
        (4, 1) => Some(with_pointer("Unrecognized Next Header type").into()),
        (4, 2) => Some(with_pointer("Unrecognized IPv6 option").into()),
        (4, 3) => Some("First fragment has incomplete header chain".into()),
        (_, 0) => None,
        (_, c) => Some(format!("code {c}").into()),
    };
    Some(match detail {
        Some(d) => format!("{name}: {d}"),
        None => name.to_string(),
    })
}

/// The endpoints of the packet an ICMP error quotes (its IP header and at least the
/// first 8 bytes of what followed).
fn quoted_packet(b: &[u8]) -> Option<Quoted> {
    let v = ip_view(b)?;
    let ports = match v.protocol {
        6 | 17 | 33 | 132 | 136 if !v.later_fragment => be16(v.payload, 0).zip(be16(v.payload, 2)),
        _ => None,
    };
    Some(Quoted {
        protocol: v.protocol,
        src: v.src,
        src_port: ports.map(|p| p.0),
        dst: v.dst,
        dst_port: ports.map(|p| p.1),
    })
}

/// Adds the quoted packet to the line and builds the exception for an ICMP error.
fn icmp_error(
    m: &mut Message,
    label: &str,
    kind: &str,
    reporter: IpAddr,
    quoted_bytes: &[u8],
    severity: &'static str,
    category: &'static str,
) {
    m.quoted = quoted_packet(quoted_bytes);
    let mut text = format!("{label} {kind} from {reporter}");
    if let Some(q) = &m.quoted {
        let _ = write!(m.text, " (quoted {q})");
        let _ = write!(text, " for {q}");
    }
    m.exception = Some(Exception {
        severity,
        category,
        text,
    });
}

fn describe_icmp(v: &IpView) -> Message {
    let msg = v.payload;
    let Some(kind) = icmp_type_text(msg) else {
        return Message::new("icmp", "ICMP (incomplete)".into());
    };
    let mut m = Message::new("icmp", format!("ICMP {kind}"));
    let t = msg.first().copied().unwrap_or(0);
    let code = msg.get(1).copied().unwrap_or(0);
    // The quoted packet starts after the 8-byte ICMP header (RFC 792).
    let quoted = msg.get(8..).unwrap_or_default();
    let error = match (t, code) {
        (3, 4) => Some(("warning", "fragmentation-needed")),
        (3, _) => Some(("error", "icmp-unreachable")),
        (4, _) => Some(("warning", "source-quench")),
        (5, _) => Some(("note", "icmp-redirect")),
        (11, _) => Some(("warning", "time-exceeded")),
        (12, _) => Some(("error", "parameter-problem")),
        _ => None,
    };
    if let Some((severity, category)) = error {
        icmp_error(&mut m, "ICMP", &kind, v.src, quoted, severity, category);
    } else if matches!(t, 0 | 8 | 13..=18)
        && let (Some(id), Some(seq)) = (be16(msg, 4), be16(msg, 6))
    {
        let _ = write!(m.text, " id {id} seq {seq}");
    }
    m
}

/// Neighbor discovery options (RFC 4861 4.6): type, length in 8-byte units, data. A zero
/// length is invalid and ends the walk (it would never advance).
fn nd_options(b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let t = *rest.first()?;
        let len = usize::from(*rest.get(1)?) * 8;
        let opt = rest.get(..len).filter(|_| len > 0)?;
        rest = rest.get(len..).unwrap_or_default();
        Some((t, opt))
    })
}

fn describe_icmpv6(v: &IpView) -> Message {
    let msg = v.payload;
    let Some(kind) = icmpv6_type_text(msg) else {
        return Message::new("icmpv6", "ICMPv6 (incomplete)".into());
    };
    let mut m = Message::new("icmpv6", format!("ICMPv6 {kind}"));
    let t = msg.first().copied().unwrap_or(0);
    let quoted = msg.get(8..).unwrap_or_default();
    let error = match t {
        1 => Some(("error", "icmp-unreachable")),
        2 => Some(("warning", "fragmentation-needed")),
        3 => Some(("warning", "time-exceeded")),
        4 => Some(("error", "parameter-problem")),
        _ => None,
    };
    if let Some((severity, category)) = error {
        icmp_error(&mut m, "ICMPv6", &kind, v.src, quoted, severity, category);
        return m;
    }
    let text = &mut m.text;
    match t {
        128 | 129 | 160 | 161 => {
            if let (Some(id), Some(seq)) = (be16(msg, 4), be16(msg, 6)) {
                let _ = write!(text, " id {id} seq {seq}");
            }
        }
        130..=132 => {
            if let Some(g) = v6_at(msg, 8).filter(|g| !g.is_unspecified()) {
                let _ = write!(text, " for {g}");
            }
        }
        143 => {
            if let Some(n) = be16(msg, 6) {
                let s = if n == 1 { "" } else { "s" };
                let _ = write!(text, ", {n} group record{s}");
            }
        }
        134 => {
            if let Some(life) = be16(msg, 6) {
                let _ = write!(text, " lifetime {life}s");
            }
            let mut prefixes = 0;
            for (ot, o) in nd_options(msg.get(16..).unwrap_or_default()) {
                match ot {
                    // Prefix information: length at 2, prefix at 16 (RFC 4861 4.6.2).
                    3 if prefixes < 3 => {
                        if let (Some(len), Some(p)) = (o.get(2), v6_at(o, 16)) {
                            let _ = write!(text, " prefix {p}/{len}");
                            prefixes += 1;
                        }
                    }
                    5 => {
                        if let Some(mtu) = be32(o, 4) {
                            let _ = write!(text, " mtu {mtu}");
                        }
                    }
                    _ => {}
                }
            }
        }
        135 => {
            if let Some(target) = v6_at(msg, 8) {
                let _ = write!(text, " for {target}");
            }
        }
        136 => {
            if let Some(target) = v6_at(msg, 8) {
                let _ = write!(text, " {target}");
            }
            let lla = nd_options(msg.get(24..).unwrap_or_default())
                .find(|(ot, _)| *ot == 2)
                .and_then(|(_, o)| o.get(2..8));
            if let Some(lla) = lla {
                let _ = write!(text, " is at {}", hex_colons(lla));
            }
            if let Some(&f) = msg.get(4) {
                let flags: Vec<&str> = [(0x80, "router"), (0x40, "solicited"), (0x20, "override")]
                    .into_iter()
                    .filter(|(bit, _)| f & bit != 0)
                    .map(|(_, name)| name)
                    .collect();
                if !flags.is_empty() {
                    let _ = write!(text, " ({})", flags.join(", "));
                }
            }
        }
        137 => {
            // Target is the better first hop, destination the address redirected.
            if let (Some(target), Some(dest)) = (v6_at(msg, 8), v6_at(msg, 24)) {
                let _ = write!(text, " for {dest} via {target}");
                m.exception = Some(Exception {
                    severity: "note",
                    category: "icmp-redirect",
                    text: format!("ICMPv6 Redirect from {} for {dest} via {target}", v.src),
                });
            }
        }
        _ => {}
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    // ---- hand-built packets ---------------------------------------------------------

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(data);
        u
    }

    fn tcp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend_from_slice(data);
        t
    }

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// Header with the given flags and counts.
    fn dns_header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            v.extend_from_slice(&c.to_be_bytes());
        }
        v
    }

    fn dns_query(qname: &str, qtype: u16) -> Vec<u8> {
        let mut v = dns_header(0x1234, 0x0100, [1, 0, 0, 0]);
        v.extend(name(qname));
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&[0, 1]);
        v
    }

    /// A response whose question name sits at offset 12 (pointer 0xC00C).
    fn dns_response(qname: &str, qtype: u16, rcode: u16, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut v = dns_header(0x1234, 0x8180 | rcode, [1, answers.len() as u16, 0, 0]);
        v.extend(name(qname));
        v.extend_from_slice(&qtype.to_be_bytes());
        v.extend_from_slice(&[0, 1]);
        for (t, rdata) in answers {
            v.extend_from_slice(&[0xc0, 0x0c]);
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
            v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            v.extend_from_slice(rdata);
        }
        v
    }

    const C: [u8; 4] = [10, 0, 0, 1];
    const S: [u8; 4] = [10, 0, 0, 2];

    fn dns_udp_packet(dns: &[u8]) -> Vec<u8> {
        ipv4(17, C, S, &udp(5353, 53, dns))
    }

    fn text(ip: &[u8]) -> String {
        describe(ip).map(|m| m.text).unwrap_or_default()
    }

    #[test]
    fn dns_query_and_answers() {
        let q = describe(&dns_udp_packet(&dns_query("www.netanalysis.org", 1))).unwrap();
        assert_eq!(q.app, "dns");
        assert_eq!(q.text, "dns query A www.netanalysis.org");
        assert!(q.exception.is_none());

        let r = dns_response(
            "www.example.com",
            1,
            0,
            &[
                (5, name("edge.example.net")),
                (1, vec![93, 184, 216, 34]),
                (28, Ipv6Addr::LOCALHOST.octets().to_vec()),
                (1, vec![1, 2, 3, 4]),
                (16, b"\x03abc".to_vec()),
            ],
        );
        assert_eq!(
            text(&dns_udp_packet(&r)),
            "dns response A www.example.com: CNAME edge.example.net, 93.184.216.34, ::1 (+2 more)"
        );
        let r = dns_response("example.com", 1, 0, &[(1, vec![93, 184, 216, 34])]);
        assert_eq!(
            text(&dns_udp_packet(&r)),
            "dns response A example.com: 93.184.216.34"
        );
        let r = dns_response("example.com", 28, 0, &[]);
        assert_eq!(
            text(&dns_udp_packet(&r)),
            "dns response AAAA example.com: no answer"
        );
        let r = dns_response("example.com", 16, 0, &[(16, b"\x02hi".to_vec())]);
        assert_eq!(
            text(&dns_udp_packet(&r)),
            "dns response TXT example.com: 1 answer (TXT)"
        );
    }

    #[test]
    fn dns_type_names() {
        for (t, s) in [
            (1, "A"),
            (28, "AAAA"),
            (5, "CNAME"),
            (15, "MX"),
            (2, "NS"),
            (12, "PTR"),
            (6, "SOA"),
            (16, "TXT"),
            (33, "SRV"),
            (255, "ANY"),
            (65, "HTTPS"),
            (64, "SVCB"),
            (41, "OPT"),
            (123, "TYPE123"),
        ] {
            assert_eq!(dns_type_name(t), s);
            let q = dns_udp_packet(&dns_query("x.test", t));
            assert_eq!(text(&q), format!("dns query {s} x.test"));
        }
    }

    #[test]
    fn dns_errors_give_exceptions() {
        let nx = describe(&dns_udp_packet(&dns_response(
            "nosuch.example.com",
            1,
            3,
            &[],
        )))
        .unwrap();
        assert_eq!(nx.text, "dns response Name Error A nosuch.example.com");
        let e = nx.exception.unwrap();
        assert_eq!((e.severity, e.category), ("warning", "dns-error"));
        assert_eq!(e.text, "DNS Name Error for A nosuch.example.com");

        let sf = describe(&dns_udp_packet(&dns_response("x.test", 1, 2, &[]))).unwrap();
        assert_eq!(sf.text, "dns response Server Failure A x.test");
        assert_eq!(sf.exception.unwrap().severity, "error");

        for (rc, s) in [
            (1, "Format Error"),
            (4, "Not Implemented"),
            (5, "Refused"),
            (9, "rcode 9"),
        ] {
            let m = describe(&dns_udp_packet(&dns_response("x.test", 1, rc, &[]))).unwrap();
            assert_eq!(m.text, format!("dns response {s} A x.test"));
        }
    }

    #[test]
    fn dns_extended_rcode_from_opt() {
        let mut r = dns_header(0x2a, 0x8500, [1, 0, 0, 1]);
        r.extend(name("test.example.com"));
        r.extend_from_slice(&[0, 1, 0, 1]);
        // OPT: root name, type 41, payload size, TTL with extended rcode 1, no data.
        r.extend_from_slice(&[0, 0, 41, 0x10, 0, 1, 0, 0, 0, 0, 0]);
        let m = describe(&dns_udp_packet(&r)).unwrap();
        assert_eq!(m.text, "dns response rcode 16 A test.example.com");
        assert!(m.exception.is_some());
    }

    #[test]
    fn dns_hostile_compression() {
        let mk = |qname_bytes: &[u8]| {
            let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
            v.extend_from_slice(qname_bytes);
            v.extend_from_slice(&[0, 1, 0, 1]);
            dns_udp_packet(&v)
        };
        // Pointer to itself, forward pointer, out of range pointer, two labels pointing at
        // each other, reserved label types.
        for q in [
            &[0xc0, 12][..],
            &[0xc0, 14, 0],
            &[0xff, 0xff],
            &[1, b'a', 0xc0, 12],
            &[0x40, 1, 0],
            &[0x80, 1, 0],
        ] {
            let m = describe(&mk(q)).unwrap();
            assert!(m.text.ends_with("(malformed)"), "{q:?}: {}", m.text);
        }
        // A loop through the answer section, pointing back into a name that points on.
        let mut v = dns_header(1, 0x8180, [1, 1, 0, 0]);
        v.extend(name("a.test"));
        v.extend_from_slice(&[0, 1, 0, 1]);
        let here = v.len() as u8;
        v.extend_from_slice(&[1, b'b', 0xc0, here]);
        v.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        let m = describe(&dns_udp_packet(&v)).unwrap();
        assert_eq!(m.text, "dns response A a.test: 1 answer (malformed)");
        // Chains of valid pointers (each name built on the previous one) are fine.
        let mut v = dns_header(1, 0x8180, [1, 2, 0, 0]);
        v.extend(name("a.test"));
        v.extend_from_slice(&[0, 5, 0, 1]);
        let first = v.len() as u8 + 12;
        for (label, target) in [(b'x', 12u8), (b'y', first)] {
            v.extend_from_slice(&[
                0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 0, 0, 4, 1, label, 0xc0, target,
            ]);
        }
        assert_eq!(
            text(&dns_udp_packet(&v)),
            "dns response CNAME a.test: CNAME x.a.test, CNAME y.x.a.test"
        );
        // Names over 255 bytes are refused even without pointers.
        let long = (0..60).map(|_| "abcd").collect::<Vec<_>>().join(".");
        let m = describe(&dns_udp_packet(&dns_query(&long, 1))).unwrap();
        assert!(m.text.ends_with("(malformed)"), "{}", m.text);
    }

    #[test]
    fn dns_escapes_odd_labels() {
        let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
        v.extend_from_slice(&[4, b'a', b'.', b' ', 0xff, 0, 0, 1, 0, 1]);
        assert_eq!(text(&dns_udp_packet(&v)), "dns query A a\\.\\032\\255");
        // The root.
        let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
        v.extend_from_slice(&[0, 0, 2, 0, 1]);
        assert_eq!(text(&dns_udp_packet(&v)), "dns query NS .");
    }

    #[test]
    fn dns_truncated_capture() {
        let r = dns_response("www.example.com", 1, 0, &[(1, vec![93, 184, 216, 34])]);
        let full = dns_udp_packet(&r);
        // The IP header still claims the whole datagram: cut means incomplete.
        for cut in 0..full.len() {
            let m = describe(&full[..cut]);
            // Up to the UDP header there is no DNS byte to describe.
            if cut <= 28 {
                assert!(m.is_none(), "{cut}");
                continue;
            }
            let m = m.unwrap_or_else(|| panic!("{cut}"));
            assert_eq!(m.app, "dns");
            assert!(m.text.ends_with("(incomplete)"), "{cut}: {}", m.text);
        }
        assert_eq!(text(&full[..28 + 12]), "dns response (incomplete)");
        assert_eq!(
            text(&full[..full.len() - 1]),
            "dns response A www.example.com: 1 answer (A) (incomplete)"
        );
        // A datagram that is whole but whose records run past its end is malformed.
        let mut short = r.clone();
        short.truncate(r.len() - 2);
        assert_eq!(
            text(&dns_udp_packet(&short)),
            "dns response A www.example.com: 1 answer (A) (malformed)"
        );
    }

    #[test]
    fn dns_over_tcp() {
        let q = dns_query("www.tcpdump.org", 1);
        let mut seg = (q.len() as u16).to_be_bytes().to_vec();
        seg.extend_from_slice(&q);
        let p = ipv4(6, C, S, &tcp(33779, 53, &seg));
        assert_eq!(text(&p), "dns query A www.tcpdump.org");
        // Only the first part of the message in this segment.
        let p = ipv4(6, C, S, &tcp(33779, 53, &seg[..20]));
        assert_eq!(text(&p), "dns query (incomplete)");
        // A continuation segment (no length prefix) is not read as a header.
        let p = ipv4(6, C, S, &tcp(33779, 53, &seg[6..]));
        assert!(describe(&p).is_none());
        let p = ipv4(
            6,
            C,
            S,
            &tcp(33779, 53, b"some random bytes of a zone transfer"),
        );
        assert!(describe(&p).is_none());
        // No payload: nothing to say.
        assert!(describe(&ipv4(6, C, S, &tcp(33779, 53, &[]))).is_none());
    }

    #[test]
    fn mdns_and_llmnr() {
        let mut v = dns_header(0, 0x8400, [0, 1, 0, 0]);
        v.extend(name("printer.local"));
        v.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 9]);
        let m = describe(&ipv4(17, C, [224, 0, 0, 251], &udp(5353, 5353, &v))).unwrap();
        assert_eq!(m.app, "mdns");
        assert_eq!(m.text, "mdns response A printer.local: 192.168.1.9");
        let m = describe(&ipv4(17, C, S, &udp(50000, 5355, &dns_query("host", 28)))).unwrap();
        assert_eq!((m.app, m.text.as_str()), ("llmnr", "llmnr query AAAA host"));
    }

    fn dhcp(op: u8, msg_type: u8, yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = op;
        p[1] = 1;
        p[2] = 6;
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&[0x90, 0xb1, 0x1c, 0x99, 0x49, 0x29]);
        p[236..240].copy_from_slice(&DHCP_COOKIE);
        p.extend_from_slice(&[53, 1, msg_type]);
        p.extend_from_slice(opts);
        p.push(255);
        ipv4(17, [0; 4], [255; 4], &udp(68, 67, &p))
    }

    #[test]
    fn dhcp_types_and_addresses() {
        assert_eq!(text(&dhcp(1, 1, [0; 4], &[])), "DHCP Discover");
        assert_eq!(
            text(&dhcp(2, 2, [192, 168, 0, 104], &[])),
            "DHCP Offer 192.168.0.104"
        );
        assert_eq!(
            text(&dhcp(1, 3, [0; 4], &[50, 4, 192, 168, 0, 104])),
            "DHCP Request 192.168.0.104"
        );
        assert_eq!(
            text(&dhcp(2, 5, [192, 168, 0, 104], &[])),
            "DHCP Ack 192.168.0.104"
        );
        for (t, s) in [
            (7, "Release"),
            (8, "Inform"),
            (9, "Force Renew"),
            (99, "type 99"),
        ] {
            assert_eq!(text(&dhcp(1, t, [0; 4], &[])), format!("DHCP {s}"));
        }

        let d = describe(&dhcp(1, 4, [0; 4], &[50, 4, 192, 168, 0, 104])).unwrap();
        assert_eq!(d.text, "DHCP Decline 192.168.0.104");
        let e = d.exception.unwrap();
        assert_eq!((e.severity, e.category), ("warning", "dhcp-decline"));
        assert_eq!(
            e.text,
            "DHCP Decline of 192.168.0.104 by client 90:b1:1c:99:49:29: address already in use"
        );

        let mut msg = vec![56, 9];
        msg.extend_from_slice(b"no lease\0");
        let n = describe(&dhcp(2, 6, [0; 4], &msg)).unwrap();
        assert_eq!(n.text, "DHCP Nak: no lease");
        assert_eq!(n.exception.unwrap().category, "dhcp-nak");

        // Option 53 in the overloaded file field.
        let mut p = dhcp(1, 1, [0; 4], &[52, 1, 1]);
        // IP and UDP headers take 28 bytes; pad out the main option 53.
        p[28 + 240..28 + 243].copy_from_slice(&[0, 0, 0]);
        p[28 + 108..28 + 112].copy_from_slice(&[53, 1, 3, 255]);
        assert_eq!(text(&p), "DHCP Request");

        // No cookie: plain BOOTP. Abbreviated: incomplete.
        let mut p = dhcp(1, 1, [0; 4], &[]);
        p[28 + 236] = 0;
        assert_eq!(text(&p), "BOOTP Request");
        let p = dhcp(1, 1, [0; 4], &[]);
        assert_eq!(text(&p[..100]), "DHCP (incomplete)");
    }

    #[test]
    fn dhcpv6_messages() {
        let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24];
        ia.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
        ia.extend_from_slice(&[0; 8]);
        let mut p = vec![9, 0, 0, 1, 0, 3];
        p.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        p.extend_from_slice(&ia);
        let ip = ipv6(
            17,
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            &udp(546, 547, &p),
        );
        let m = describe(&ip).unwrap();
        assert_eq!(
            (m.app, m.text.as_str()),
            ("dhcpv6", "DHCPv6 Decline 2001:db8::5")
        );
        assert_eq!(m.exception.unwrap().category, "dhcp-decline");

        // Relay-forw wrapping a Solicit.
        let mut relay = vec![12, 0];
        relay.extend_from_slice(&[0; 32]);
        relay.extend_from_slice(&[0, 9, 0, 4, 1, 0, 0, 7]);
        let ip = ipv6(
            17,
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            &udp(547, 547, &relay),
        );
        assert_eq!(text(&ip), "DHCPv6 Relay-forw (Solicit)");
    }

    fn icmp(t: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, code, 0, 0];
        v.extend_from_slice(&rest);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn icmp_echo_and_unreachable() {
        let p = ipv4(1, C, S, &icmp(8, 0, [0, 1, 0, 5], b"abcd"));
        let m = describe(&p).unwrap();
        assert_eq!(
            (m.app, m.text.as_str()),
            ("icmp", "ICMP Echo Request id 1 seq 5")
        );
        assert!(m.exception.is_none() && m.quoted.is_none());

        let offending = ipv4(17, C, S, &udp(5353, 53, b"0123456789"));
        let p = ipv4(1, S, C, &icmp(3, 3, [0; 4], &offending[..28]));
        let m = describe(&p).unwrap();
        assert_eq!(
            m.text,
            "ICMP Destination Unreachable: Port unreachable (quoted UDP 10.0.0.1:5353 -> 10.0.0.2:53)"
        );
        let q = m.quoted.unwrap();
        assert_eq!(
            (q.protocol, q.src_port, q.dst_port),
            (17, Some(5353), Some(53))
        );
        let e = m.exception.unwrap();
        assert_eq!((e.severity, e.category), ("error", "icmp-unreachable"));
        assert_eq!(
            e.text,
            "ICMP Destination Unreachable: Port unreachable from 10.0.0.2 for UDP 10.0.0.1:5353 -> 10.0.0.2:53"
        );

        let p = ipv4(1, S, C, &icmp(3, 4, [0, 0, 0x05, 0x78], &offending[..28]));
        let m = describe(&p).unwrap();
        assert!(m.text.starts_with(
            "ICMP Destination Unreachable: Fragmentation needed (MTU 1400) (quoted UDP"
        ));
        assert_eq!(m.exception.unwrap().category, "fragmentation-needed");

        let p = ipv4(1, S, C, &icmp(11, 0, [0; 4], &offending[..28]));
        let m = describe(&p).unwrap();
        assert!(
            m.text
                .starts_with("ICMP Time Exceeded: TTL exceeded in transit (quoted")
        );
        assert_eq!(m.exception.unwrap().category, "time-exceeded");

        // Quoted packet shorter than its header: no quoted endpoints, still the error.
        let p = ipv4(1, S, C, &icmp(3, 1, [0; 4], &offending[..12]));
        let m = describe(&p).unwrap();
        assert_eq!(m.text, "ICMP Destination Unreachable: Host unreachable");
        assert!(m.quoted.is_none() && m.exception.is_some());
        // Quoted IP header without the ports.
        let p = ipv4(1, S, C, &icmp(3, 1, [0; 4], &offending[..20]));
        let q = describe(&p).unwrap().quoted.unwrap();
        assert_eq!((q.protocol, q.src_port), (17, None));
    }

    #[test]
    fn icmp_code_names() {
        let cases: &[(&[u8], &str)] = &[
            (&[3, 0], "Destination Unreachable: Net unreachable"),
            (&[3, 3], "Destination Unreachable: Port unreachable"),
            (
                &[3, 4, 0, 0, 0, 0, 0x05, 0x78],
                "Destination Unreachable: Fragmentation needed (MTU 1400)",
            ),
            (
                &[3, 4, 0, 0, 0, 0, 0, 0],
                "Destination Unreachable: Fragmentation needed",
            ),
            (
                &[3, 13],
                "Destination Unreachable: Communication administratively prohibited",
            ),
            (
                &[3, 15],
                "Destination Unreachable: Precedence cutoff in effect",
            ),
            (&[3, 16], "Destination Unreachable: code 16"),
            (
                &[5, 1, 0, 0, 10, 0, 0, 254],
                "Redirect for host to 10.0.0.254",
            ),
            (&[11, 1], "Time Exceeded: Fragment reassembly time exceeded"),
            (
                &[12, 0, 0, 0, 12],
                "Parameter Problem: Pointer indicates the error (pointer 12)",
            ),
            (&[0, 0], "Echo Reply"),
            (&[99, 7], "type 99 code 7"),
        ];
        for (m, want) in cases {
            assert_eq!(icmp_type_text(m).as_deref(), Some(*want));
        }
        assert_eq!(icmp_type_text(&[3]), None);
        let v6: &[(&[u8], &str)] = &[
            (&[1, 0], "Destination Unreachable: No route to destination"),
            (&[1, 4], "Destination Unreachable: Port unreachable"),
            (&[2, 0, 0, 0, 0, 0, 5, 0], "Packet Too Big (MTU 1280)"),
            (&[3, 0], "Time Exceeded: Hop limit exceeded in transit"),
            (
                &[4, 1, 0, 0, 0, 0, 0, 40],
                "Parameter Problem: Unrecognized Next Header type (pointer 40)",
            ),
            (&[135, 0], "Neighbor Solicitation"),
            (&[200, 1], "type 200 code 1"),
        ];
        for (m, want) in v6 {
            assert_eq!(icmpv6_type_text(m).as_deref(), Some(*want));
        }
    }

    #[test]
    fn icmpv6_messages() {
        let a: Ipv6Addr = "fe80::dead".parse().unwrap();
        let b: Ipv6Addr = "fe80::beef".parse().unwrap();
        let t: Ipv6Addr = "fe80::1".parse().unwrap();
        let mut ns = icmp(135, 0, [0; 4], &t.octets());
        ns.extend_from_slice(&[1, 1, 0, 0x15, 0x17, 0xcc, 0xe5, 0x46]);
        let m = describe(&ipv6(58, a, b, &ns)).unwrap();
        assert_eq!(
            (m.app, m.text.as_str()),
            ("icmpv6", "ICMPv6 Neighbor Solicitation for fe80::1")
        );

        let mut na = icmp(136, 0, [0xa0, 0, 0, 0], &t.octets());
        na.extend_from_slice(&[2, 1, 0, 0x15, 0x17, 0xcc, 0xe5, 0x46]);
        assert_eq!(
            text(&ipv6(58, a, b, &na)),
            "ICMPv6 Neighbor Advertisement fe80::1 is at 00:15:17:cc:e5:46 (router, override)"
        );

        let mut redirect = icmp(
            137,
            0,
            [0; 4],
            &"fe80::cafe".parse::<Ipv6Addr>().unwrap().octets(),
        );
        redirect.extend_from_slice(&"fe80::babe".parse::<Ipv6Addr>().unwrap().octets());
        let m = describe(&ipv6(58, a, b, &redirect)).unwrap();
        assert_eq!(m.text, "ICMPv6 Redirect for fe80::babe via fe80::cafe");
        assert_eq!(m.exception.unwrap().category, "icmp-redirect");

        assert_eq!(
            text(&ipv6(58, a, b, &icmp(128, 0, [0, 1, 0, 3], b"x"))),
            "ICMPv6 Echo Request id 1 seq 3"
        );

        // Packet Too Big quoting a TCP segment behind a hop-by-hop header.
        let mut inner = vec![6, 0, 1, 4, 0, 0, 0, 0];
        inner.extend(tcp(443, 50000, &[]));
        let offending = ipv6(0, b, a, &inner);
        let p = ipv6(58, a, b, &icmp(2, 0, [0, 0, 5, 0], &offending));
        let m = describe(&p).unwrap();
        assert_eq!(
            m.text,
            "ICMPv6 Packet Too Big (MTU 1280) (quoted TCP [fe80::beef]:443 -> [fe80::dead]:50000)"
        );
        assert_eq!(m.exception.unwrap().category, "fragmentation-needed");
    }

    #[test]
    fn fragments() {
        // IPv4: later fragment gives nothing, the first fragment is read as incomplete.
        let mut p = dns_udp_packet(&dns_query("x.test", 1));
        p[6] = 0x00;
        p[7] = 0x10;
        assert!(describe(&p).is_none());
        p[6] = 0x20;
        p[7] = 0;
        assert_eq!(text(&p), "dns query A x.test");
        // IPv6 fragment header: offset 0 with M set, then offset 8.
        let a = Ipv6Addr::LOCALHOST;
        let mut frag = vec![17, 0, 0, 1, 0, 0, 0, 1];
        frag.extend(udp(1000, 53, &dns_query("y.test", 28)));
        assert_eq!(text(&ipv6(44, a, a, &frag)), "dns query AAAA y.test");
        frag[2..4].copy_from_slice(&[0, 8]);
        assert!(describe(&ipv6(44, a, a, &frag)).is_none());
    }

    #[test]
    fn no_panics_on_noise() {
        // Every prefix of every hand-built packet, and pseudo-random bytes behind valid
        // IP/UDP/ICMP headers.
        let mut samples = vec![
            dns_udp_packet(&dns_response("a.b", 1, 0, &[(1, vec![1, 2, 3, 4])])),
            dhcp(1, 3, [0; 4], &[50, 4, 1, 2, 3, 4]),
            ipv4(
                1,
                S,
                C,
                &icmp(3, 3, [0; 4], &dns_udp_packet(b"0123456789ab")),
            ),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000 {
            let mut junk = Vec::new();
            for _ in 0..(i % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                junk.push(x as u8);
            }
            samples.push(match i % 6 {
                0 => dns_udp_packet(&junk),
                1 => ipv4(6, C, S, &tcp(1, 53, &junk)),
                2 => ipv4(17, C, S, &udp(68, 67, &junk)),
                3 => ipv6(58, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, &junk),
                4 => ipv4(1, C, S, &junk),
                _ => junk,
            });
        }
        for s in &samples {
            for cut in 0..=s.len().min(400) {
                fuzz(&s[..cut]);
            }
        }
    }

    // ---- real captures -------------------------------------------------------------

    fn captures() -> Option<PathBuf> {
        let d = Path::new("/work/shared/captures");
        if d.is_dir() {
            Some(d.to_path_buf())
        } else {
            eprintln!("skipping: {} is absent", d.display());
            None
        }
    }

    /// The IP bytes of every packet of a pcap (None for frames that carry no IP).
    fn ip_packets(path: &Path) -> Vec<Option<Vec<u8>>> {
        let bytes = std::fs::read(path).unwrap();
        let cap = pcap_parser::PcapCapture::from_file(&bytes).unwrap();
        let link = cap.header.network.0;
        cap.blocks
            .iter()
            .map(|b| strip_link(link, b.data).map(<[u8]>::to_vec))
            .collect()
    }

    fn strip_link(link: i32, d: &[u8]) -> Option<&[u8]> {
        let (ethertype, rest) = match link {
            // Ethernet, with any number of 802.1Q / 802.1ad tags.
            1 => {
                let mut at = 12;
                let mut et = be16(d, at)?;
                while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                    at += 4;
                    et = be16(d, at)?;
                }
                (et, d.get(at + 2..)?)
            }
            101 | 228 | 229 => return Some(d),
            113 => (be16(d, 14)?, d.get(16..)?),
            276 => (be16(d, 0)?, d.get(20..)?),
            _ => return None,
        };
        matches!(ethertype, 0x0800 | 0x86dd).then_some(rest)
    }

    fn described(stem: &str) -> Option<Vec<Option<Message>>> {
        let dir = captures()?;
        let path = dir.join(format!("{stem}.pcap"));
        Some(
            ip_packets(&path)
                .iter()
                .map(|p| p.as_deref().and_then(describe))
                .collect(),
        )
    }

    fn baseline(stem: &str, suffix: &str) -> String {
        let dir = captures().unwrap().join("baselines").join(stem);
        let f = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()));
        std::fs::read_to_string(f).unwrap()
    }

    /// Rows of a Zeek log as maps from field name to value.
    fn zeek_rows(log: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut fields: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for line in log.lines() {
            if let Some(f) = line.strip_prefix("#fields\t") {
                fields = f.split('\t').map(str::to_string).collect();
            } else if !line.starts_with('#') && !line.is_empty() {
                rows.push(
                    fields
                        .iter()
                        .cloned()
                        .zip(line.split('\t').map(str::to_string))
                        .collect(),
                );
            }
        }
        rows
    }

    /// `key=value` out of a Zeek event dump line.
    fn zeek_field<'a>(line: &'a str, key: &str) -> &'a str {
        let at = line.find(&format!("{key}=")).unwrap() + key.len() + 1;
        let rest = &line[at..];
        let end = rest.find([',', ']']).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The first `icmp_context` of a Zeek icmp-events output, as a Quoted.
    fn zeek_quoted(out: &str) -> (u8, u8, Quoted) {
        let info = out.lines().find(|l| l.contains("icmp_info:")).unwrap();
        let ctx = out.lines().find(|l| l.contains("icmp_context:")).unwrap();
        let port = |s: &str| s.split('/').next().unwrap().parse::<u16>().ok();
        let proto = match zeek_field(ctx, "resp_p").split('/').nth(1).unwrap() {
            "udp" => 17,
            "tcp" => 6,
            _ => 1,
        };
        (
            zeek_field(info, "itype").parse().unwrap(),
            zeek_field(info, "icode").parse().unwrap(),
            Quoted {
                protocol: proto,
                src: zeek_field(ctx, "orig_h").parse().unwrap(),
                src_port: port(zeek_field(ctx, "orig_p")),
                dst: zeek_field(ctx, "resp_h").parse().unwrap(),
                dst_port: port(zeek_field(ctx, "resp_p")),
            },
        )
    }

    #[test]
    fn capture_dhcp_all_msg_types() {
        let stem = "dhcp_all_msg_types__zeek";
        let Some(msgs) = described(stem) else { return };
        let rows = zeek_rows(&baseline(stem, "dhcp.log"));
        // Zeek groups the messages per transaction; in this capture the groups are in
        // packet order, so flattening them gives one type per packet.
        let zeek_types: Vec<String> = rows
            .iter()
            .flat_map(|r| {
                r["msg_types"]
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let ours: Vec<String> = msgs
            .iter()
            .map(|m| {
                let m = m.as_ref().unwrap();
                assert_eq!(m.app, "dhcp");
                m.text
                    .trim_start_matches("DHCP ")
                    .split([' ', ':'])
                    .next()
                    .unwrap()
                    .to_uppercase()
            })
            .collect();
        assert_eq!(ours, zeek_types);

        let first = &rows[0];
        let texts: Vec<&str> = msgs
            .iter()
            .map(|m| m.as_ref().unwrap().text.as_str())
            .collect();
        assert_eq!(texts[5], format!("DHCP Ack {}", first["assigned_addr"]));
        assert_eq!(texts[3], format!("DHCP Nak: {}", first["server_message"]));
        assert_eq!(
            texts[4],
            format!("DHCP Request {}", first["requested_addr"])
        );
        assert_eq!(
            texts[8],
            format!("DHCP Inform {}", rows[2]["requested_addr"])
        );
        let decline = msgs[6].as_ref().unwrap().exception.as_ref().unwrap();
        assert_eq!(decline.category, "dhcp-decline");
        assert!(decline.text.contains(&first["mac"]), "{}", decline.text);
        let nak = msgs[3].as_ref().unwrap().exception.as_ref().unwrap();
        assert_eq!(nak.category, "dhcp-nak");
        for (i, m) in msgs.iter().enumerate() {
            if i != 3 && i != 6 {
                assert!(m.as_ref().unwrap().exception.is_none(), "{i}");
            }
        }
    }

    /// Query names and A answers out of tcpdump's one-line DNS summaries:
    /// `17177+ [1au] A? www.tcpdump.org. (56)`,
    /// `17177*- 2/2/5 www.tcpdump.org. A 192.139.46.66, www.tcpdump.org. A 198.199.88.104 (224)`.
    fn tcpdump_dns(line: &str) -> Option<(bool, String, Vec<String>)> {
        if let Some(at) = line.find(" A? ") {
            let name = line[at + 4..].split(' ').next()?.trim_end_matches('.');
            return Some((false, name.to_string(), vec![]));
        }
        let at = line.find(" A ")?;
        let before = &line[..at];
        let name = before.rsplit(' ').next()?.trim_end_matches('.').to_string();
        let answers = line
            .split(", ")
            .filter_map(|part| part.split(" A ").nth(1))
            .map(|a| a.split(' ').next().unwrap_or("").to_string())
            .collect();
        Some((true, name, answers))
    }

    #[test]
    fn capture_dns_over_tcp() {
        let stem = "dns_over_tcp__tcpdump";
        let Some(msgs) = described(stem) else { return };
        let base = baseline(stem, "dns_tcp-v.out");
        // tcpdump -v prints each packet on two lines; the second holds the DNS summary.
        let details: Vec<&str> = base
            .lines()
            .filter(|l| l.starts_with("    ") && !l.contains(" IP (tos"))
            .collect();
        assert_eq!(details.len(), msgs.len());
        let mut seen = 0;
        for (m, line) in msgs.iter().zip(&details) {
            match tcpdump_dns(line) {
                Some((false, name, _)) => {
                    assert_eq!(m.as_ref().unwrap().text, format!("dns query A {name}"));
                    seen += 1;
                }
                Some((true, name, answers)) => {
                    let m = m.as_ref().unwrap();
                    assert_eq!(
                        m.text,
                        format!("dns response A {name}: {}", answers.join(", "))
                    );
                    seen += 1;
                }
                None => assert!(m.is_none(), "{line}: {m:?}"),
            }
        }
        assert_eq!(seen, 2);
    }

    #[test]
    fn capture_icmp4_destunreach() {
        let stem = "icmp4_destunreach_udp__zeek";
        let Some(msgs) = described(stem) else { return };
        // The baseline holds the events of several traces; this capture is the first.
        let (t, c, q) = zeek_quoted(&baseline(stem, "output"));
        assert_eq!((t, c), (3, 3));
        let m = msgs[0].as_ref().unwrap();
        assert_eq!(m.quoted, Some(q));
        assert_eq!(
            m.text,
            format!("ICMP Destination Unreachable: Port unreachable (quoted {q})")
        );
        assert_eq!(m.exception.as_ref().unwrap().category, "icmp-unreachable");
    }

    #[test]
    fn capture_icmp6_destunreach_ext_hdr() {
        let stem = "icmp6_destunreach_ext_hdr_udp__zeek";
        let Some(msgs) = described(stem) else { return };
        let (t, c, q) = zeek_quoted(&baseline(stem, "output"));
        assert_eq!((t, c), (1, 0));
        let m = msgs[0].as_ref().unwrap();
        assert_eq!(m.app, "icmpv6");
        assert_eq!(m.quoted, Some(q));
        assert_eq!(
            m.text,
            format!("ICMPv6 Destination Unreachable: No route to destination (quoted {q})")
        );
    }

    #[test]
    fn capture_icmpv6_router_neighbor() {
        let stem = "icmpv6_router_neighbor__tcpdump";
        let Some(msgs) = described(stem) else { return };
        let base = baseline(stem, "icmpv6.out");
        let heads: Vec<&str> = base
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric) && l.contains("ICMP6"))
            .collect();
        assert_eq!(heads.len(), msgs.len());
        for (m, line) in msgs.iter().zip(&heads) {
            let m = m.as_ref().unwrap();
            let ours = m.text.to_lowercase();
            let theirs = line.split("ICMP6, ").nth(1).unwrap();
            let kind = theirs.split([',', '[']).next().unwrap().trim();
            assert!(
                ours.starts_with(&format!("icmpv6 {kind}")),
                "{ours} vs {theirs}"
            );
            if let Some(at) = theirs.find(" group record") {
                let n = theirs[..at].rsplit(' ').next().unwrap();
                assert!(
                    ours.contains(&format!(", {n} group record")),
                    "{ours} vs {theirs}"
                );
            }
        }
        // Facts of the router advertisement's detail lines.
        let ra = &msgs[0].as_ref().unwrap().text;
        assert!(
            base.contains("router lifetime 15s") && ra.contains("lifetime 15s"),
            "{ra}"
        );
        assert!(
            base.contains("2222:3333:4444:5555:6600::/72")
                && ra.contains("prefix 2222:3333:4444:5555:6600::/72"),
            "{ra}"
        );
        assert!(
            base.contains("mtu option (5), length 8 (1):  100") && ra.contains("mtu 100"),
            "{ra}"
        );
    }

    #[test]
    fn capture_ipv6_fragmented_dns() {
        let stem = "ipv6_fragmented_dns__zeek";
        let Some(msgs) = described(stem) else { return };
        let rows = zeek_rows(&baseline(stem, "dns.log"));
        let names: std::collections::HashSet<&str> =
            rows.iter().map(|r| r["query"].as_str()).collect();
        for r in &rows {
            assert_eq!(r["qtype_name"], "TXT");
        }
        // Packets 4, 7 and 8 are later fragments: nothing to describe.
        for (i, m) in msgs.iter().enumerate() {
            if [3, 6, 7].contains(&i) {
                assert!(m.is_none(), "{i}: {m:?}");
                continue;
            }
            let m = m.as_ref().unwrap();
            let name = m.text.split(' ').nth(3).unwrap().trim_end_matches(':');
            assert!(names.contains(name), "{}", m.text);
            assert!(m.text.contains(" TXT "), "{}", m.text);
        }
        // Zeek's NOERROR answers: TXT. Ours for the whole response and for the first
        // fragment of the big one (its answer runs into the next fragment).
        assert_eq!(rows[0]["rcode_name"], "NOERROR");
        assert!(rows[0]["answers"].starts_with("TXT"));
        assert_eq!(
            msgs[1].as_ref().unwrap().text,
            format!("dns response TXT {}: 1 answer (TXT)", rows[0]["query"])
        );
        assert_eq!(
            msgs[5].as_ref().unwrap().text,
            format!(
                "dns response TXT {}: 1 answer (TXT) (incomplete)",
                rows[1]["query"]
            )
        );
    }

    #[test]
    fn capture_rawip_dns() {
        for stem in [
            "rawip_dlt101_ipv4_dns__tcpdump",
            "rawip_dlt101_ipv6_dns__tcpdump",
        ] {
            let Some(msgs) = described(stem) else { return };
            let out = if stem.contains("ipv4") {
                "ipv4.out"
            } else {
                "ipv6.out"
            };
            let base = baseline(stem, out);
            let (_, name, _) = tcpdump_dns(base.lines().next().unwrap()).unwrap();
            assert_eq!(msgs.len(), 1);
            assert_eq!(
                msgs[0].as_ref().unwrap().text,
                format!("dns query A {name}")
            );
        }
    }

    #[test]
    fn capture_rawip_dlt228_edns_rcode() {
        let stem = "rawip_dlt228_ipv4_dns_edns__zeek";
        let Some(msgs) = described(stem) else { return };
        // Zeek's test prints the extended rcode of the response: 16 (header 0, OPT 1).
        let rcode: u16 = baseline(stem, "output")
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            msgs[0].as_ref().unwrap().text,
            "dns query A test.example.com"
        );
        let r = msgs[1].as_ref().unwrap();
        assert_eq!(
            r.text,
            format!("dns response {} A test.example.com", dns_rcode_name(rcode))
        );
        assert_eq!(r.exception.as_ref().unwrap().category, "dns-error");
    }

    /// Every capture against tshark's own reading, frame by frame, when tshark is there.
    /// Reassembly is off so that tshark, like us, looks at each packet alone.
    #[test]
    fn captures_against_tshark() {
        let Some(dir) = captures() else { return };
        let stems = [
            "dhcp_all_msg_types__zeek",
            "dns_over_tcp__tcpdump",
            "icmp4_destunreach_udp__zeek",
            "icmp6_destunreach_ext_hdr_udp__zeek",
            "icmpv6_router_neighbor__tcpdump",
            "ipv6_fragmented_dns__zeek",
            "rawip_dlt101_ipv4_dns__tcpdump",
            "rawip_dlt101_ipv6_dns__tcpdump",
            "rawip_dlt228_ipv4_dns_edns__zeek",
        ];
        let fields = [
            "dns.qry.name",
            "dns.qry.type",
            "dns.flags.response",
            "dns.flags.rcode",
            "icmp.type",
            "icmp.code",
            "icmpv6.type",
            "icmpv6.code",
            "dhcp.option.dhcp",
        ];
        let mut compared = 0;
        for stem in stems {
            let path = dir.join(format!("{stem}.pcap"));
            let mut cmd = std::process::Command::new("tshark");
            cmd.arg("-r").arg(&path);
            for o in [
                "ip.defragment:FALSE",
                "ipv6.defragment:FALSE",
                "tcp.desegment_tcp_streams:FALSE",
            ] {
                cmd.args(["-o", o]);
            }
            cmd.args(["-T", "fields"]);
            for f in fields {
                cmd.args(["-e", f]);
            }
            let Ok(out) = cmd.output() else {
                eprintln!("skipping: tshark not available");
                return;
            };
            assert!(out.status.success(), "tshark on {stem}");
            let ours: Vec<Option<Message>> = ip_packets(&path)
                .iter()
                .map(|p| p.as_deref().and_then(describe))
                .collect();
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), ours.len(), "{stem}");
            for (i, (line, m)) in lines.iter().zip(&ours).enumerate() {
                let f: Vec<&str> = line
                    .split('\t')
                    .map(|v| v.split(',').next().unwrap_or(""))
                    .collect();
                let (qname, qtype, resp, rcode) = (f[0], f[1], f[2], f[3]);
                let (it, ic, i6t, i6c, dhcp) = (f[4], f[5], f[6], f[7], f[8]);
                let at = format!("{stem} frame {}", i + 1);
                if !it.is_empty() || !i6t.is_empty() {
                    // ICMP first: tshark also decodes what an ICMP error quotes.
                    let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                    let (t, c, v6) = if it.is_empty() {
                        (i6t, i6c, true)
                    } else {
                        (it, ic, false)
                    };
                    let probe = [t.parse().unwrap(), c.parse().unwrap(), 0, 0, 0, 0, 0, 0];
                    let kind = if v6 {
                        icmpv6_type_text(&probe)
                    } else {
                        icmp_type_text(&probe)
                    };
                    let kind = kind.unwrap();
                    let head = kind.split(" (").next().unwrap();
                    assert!(
                        m.text.contains(head),
                        "{at}: {} vs type {t} code {c}",
                        m.text
                    );
                } else if !dhcp.is_empty() {
                    let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                    let want = format!("DHCP {}", dhcp_type_name(dhcp.parse().unwrap()));
                    assert!(m.text.starts_with(&want), "{at}: {} vs {want}", m.text);
                } else if !qname.is_empty() {
                    let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                    let verb = if resp == "1" { "response" } else { "query" };
                    assert!(
                        m.text.starts_with(&format!("dns {verb}")),
                        "{at}: {}",
                        m.text
                    );
                    let t = dns_type_name(qtype.parse().unwrap());
                    assert!(
                        m.text.contains(&format!(" {t} {qname}")),
                        "{at}: {} vs {t} {qname}",
                        m.text
                    );
                    if rcode != "0" && !rcode.is_empty() {
                        let r = dns_rcode_name(rcode.parse().unwrap());
                        assert!(m.text.contains(r.as_ref()), "{at}: {}", m.text);
                    }
                } else {
                    assert!(m.is_none(), "{at}: {m:?}");
                }
                compared += 1;
            }
        }
        assert_eq!(compared, 39);
    }
}
