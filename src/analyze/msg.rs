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
#[path = "../../tests/unit/analyze_msg.rs"]
mod tests;
