//! Third stage: IP/TCP/UDP views of a packet (etherparse, lax so that abbreviated and
//! truncated packets still give their headers) and the packet filters built on them.

use std::net::IpAddr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::packet::{Link, Packet};
use crate::trace::FormatId;

/// Addresses, protocol and ports of a packet, as far as its bytes tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: Option<u8>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// An ARP frame (OSAENTA).
    pub arp: bool,
}

pub fn endpoints(link: Link, data: &[u8]) -> Endpoints {
    let sliced = match link {
        Link::Raw => LaxSlicedPacket::from_ip(data).ok(),
        Link::Ethernet => LaxSlicedPacket::from_ethernet(data).ok(),
        Link::Smc | Link::DataTrace => None,
    };
    let Some(s) = sliced else {
        return Endpoints::default();
    };
    let mut e = Endpoints::default();
    match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            e.src = Some(IpAddr::V4(h.source_addr()));
            e.dst = Some(IpAddr::V4(h.destination_addr()));
            e.protocol = Some(v4.payload().ip_number.0);
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            e.src = Some(IpAddr::V6(h.source_addr()));
            e.dst = Some(IpAddr::V6(h.destination_addr()));
            e.protocol = Some(v6.payload().ip_number.0);
        }
        Some(LaxNetSlice::Arp(_)) => e.arp = true,
        None => {}
    }
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            e.src_port = Some(t.source_port());
            e.dst_port = Some(t.destination_port());
        }
        Some(TransportSlice::Udp(u)) => {
            e.src_port = Some(u.source_port());
            e.dst_port = Some(u.destination_port());
        }
        _ => {}
    }
    e
}

/// TCP header fields the analysis needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tcp {
    pub seq: u32,
    pub ack: u32,
    /// Flags byte: CWR ECE URG ACK PSH RST SYN FIN from the high bit down.
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
}

impl Tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// The names of the TCP flag bits set in `flags`, high bit first, separated by one
/// space (`ACK PSH FIN`), appended to `out`.
pub fn push_flag_names(out: &mut String, flags: u8) {
    const NAMES: [&str; 8] = ["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"];
    let start = out.len();
    for (i, n) in NAMES.iter().enumerate() {
        if flags & (0x80 >> i) != 0 {
            if out.len() > start {
                out.push(' ');
            }
            out.push_str(n);
        }
    }
}

/// What the analysis reads from one packet: addresses, IP and transport header fields,
/// the true lengths (from the headers and the packet's original length, not from the
/// bytes traced) and the transport payload that is present.
#[derive(Clone, Debug, Default)]
pub struct View<'a> {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub protocol: Option<u8>,
    pub arp: bool,
    /// The IP packet as present (link header stripped).
    pub ip: &'a [u8],
    /// True IP datagram length.
    pub ip_len: u32,
    pub ip_id: Option<u16>,
    pub ttl: Option<u8>,
    /// A fragment: (offset in bytes, more fragments follow).
    pub fragment: Option<(u32, bool)>,
    /// Identification shared by a datagram's fragments (IPv4 id, IPv6 fragment id).
    pub frag_id: u32,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub tcp: Option<Tcp>,
    /// True transport payload length (TCP/UDP), from the IP length.
    pub payload_len: Option<u32>,
    /// Transport payload bytes present in the trace (may be fewer than `payload_len`).
    pub payload: &'a [u8],
}

/// A `View` apart from its packet: the slices as ranges of the packet's data. Made
/// where the packet is decoded and turned back into a `View` where it is analysed,
/// so that the header parsing runs on the decoding thread.
#[derive(Clone, Debug, Default)]
pub struct Detached {
    fields: View<'static>,
    ip: std::ops::Range<usize>,
    payload: std::ops::Range<usize>,
}

/// Where `part` lies within `data` (empty when it is not a part of it, as the empty
/// slices a missing header leaves are not).
fn range_in(data: &[u8], part: &[u8]) -> std::ops::Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if !part.is_empty() && end <= data.len() => start..end,
        _ => 0..0,
    }
}

impl<'a> View<'a> {
    /// This view apart from `data`, the bytes it was read from.
    pub fn detach(&self, data: &[u8]) -> Detached {
        Detached {
            fields: View {
                ip: &[],
                payload: &[],
                ..self.clone()
            },
            ip: range_in(data, self.ip),
            payload: range_in(data, self.payload),
        }
    }
}

impl Detached {
    /// The view again, over the same bytes it was made from.
    pub fn attach<'a>(&self, data: &'a [u8]) -> View<'a> {
        View {
            ip: data.get(self.ip.clone()).unwrap_or(&[]),
            payload: data.get(self.payload.clone()).unwrap_or(&[]),
            ..self.fields.clone()
        }
    }
}

/// Reads the headers of a packet. Missing pieces (abbreviated packets, unknown
/// protocols) leave fields empty; nothing here fails.
pub fn view(link: Link, data: &[u8], orig_len: u32) -> View<'_> {
    let mut v = View::default();
    let sliced = match link {
        Link::Raw => LaxSlicedPacket::from_ip(data).ok(),
        Link::Ethernet => LaxSlicedPacket::from_ethernet(data).ok(),
        Link::Smc | Link::DataTrace => None,
    };
    let Some(s) = sliced else {
        return v;
    };
    // Length of everything in front of the IP header in `data`.
    let ip_start;
    let ip_hdr_len;
    match &s.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            ip_start = h.slice().as_ptr() as usize - data.as_ptr() as usize;
            v.src = Some(IpAddr::V4(h.source_addr()));
            v.dst = Some(IpAddr::V4(h.destination_addr()));
            v.protocol = Some(v4.payload().ip_number.0);
            v.ip_id = Some(h.identification());
            v.ttl = Some(h.ttl());
            ip_hdr_len = h.slice().len() as u32;
            let total = h.total_len() as u32;
            v.ip_len = match link {
                // The original length is the datagram's (TSO packets may claim 0 in
                // the header); Ethernet frames may carry padding, so trust the header.
                Link::Raw | Link::Smc | Link::DataTrace => orig_len.max(total),
                Link::Ethernet if total >= ip_hdr_len => total,
                Link::Ethernet => orig_len.saturating_sub(ip_start as u32),
            };
            let off = h.fragments_offset().value() as u32 * 8;
            if off > 0 || h.more_fragments() {
                v.fragment = Some((off, h.more_fragments()));
                v.frag_id = u32::from(h.identification());
            }
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            ip_start = h.slice().as_ptr() as usize - data.as_ptr() as usize;
            v.src = Some(IpAddr::V6(h.source_addr()));
            v.dst = Some(IpAddr::V6(h.destination_addr()));
            v.protocol = Some(v6.payload().ip_number.0);
            v.ttl = Some(h.hop_limit());
            let pl = v6.payload();
            // Header plus extension headers: where the transport starts.
            ip_hdr_len = (pl.payload.as_ptr() as usize - h.slice().as_ptr() as usize) as u32;
            let declared = 40 + h.payload_length() as u32;
            v.ip_len = match link {
                Link::Raw | Link::Smc | Link::DataTrace => orig_len.max(declared),
                Link::Ethernet if h.payload_length() > 0 => declared,
                Link::Ethernet => orig_len.saturating_sub(ip_start as u32),
            };
            // The fragment header, found by walking the extension headers ourselves:
            // etherparse 0.21's extension iterator reads past the end of a slice cut
            // inside a header (found by fuzzing), so only its bounds-checked slice is used.
            if let Some((off, more, id)) = ipv6_fragment(h.next_header().0, v6.extensions().slice())
                && (off > 0 || more)
            {
                v.fragment = Some((off, more));
                v.frag_id = id;
            }
        }
        Some(LaxNetSlice::Arp(_)) => {
            v.arp = true;
            return v;
        }
        None => return v,
    }
    v.ip = data.get(ip_start..).unwrap_or(&[]);
    let l4_avail = v.ip.get(ip_hdr_len as usize..).unwrap_or(&[]);
    let l4_true = v.ip_len.saturating_sub(ip_hdr_len);
    match &s.transport {
        Some(TransportSlice::Tcp(t)) => {
            v.src_port = Some(t.source_port());
            v.dst_port = Some(t.destination_port());
            let mut tcp = Tcp {
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: t.slice().get(13).copied().unwrap_or(0),
                window: t.window_size(),
                ..Tcp::default()
            };
            for o in t.options_iterator().flatten() {
                match o {
                    etherparse::TcpOptionElement::MaximumSegmentSize(m) => tcp.mss = Some(m),
                    etherparse::TcpOptionElement::WindowScale(w) => tcp.wscale = Some(w),
                    _ => {}
                }
            }
            let hl = t.header_len() as u32;
            v.payload_len = Some(l4_true.saturating_sub(hl));
            v.payload = l4_avail.get(hl as usize..).unwrap_or(&[]);
            v.tcp = Some(tcp);
        }
        Some(TransportSlice::Udp(u)) => {
            v.src_port = Some(u.source_port());
            v.dst_port = Some(u.destination_port());
            v.payload_len = Some(l4_true.saturating_sub(8));
            v.payload = l4_avail.get(8..).unwrap_or(&[]);
        }
        _ => {
            // etherparse leaves the transport of every fragment alone; the first one
            // holds the TCP or UDP header all the same.
            if matches!(v.fragment, Some((0, _))) && l4_avail.len() >= 4 {
                let port = |i: usize| u16::from_be_bytes([l4_avail[i], l4_avail[i + 1]]);
                match v.protocol {
                    Some(17) => {
                        v.src_port = Some(port(0));
                        v.dst_port = Some(port(2));
                        if l4_avail.len() >= 8 {
                            // The UDP length covers the whole datagram, all fragments.
                            v.payload_len = Some(u32::from(port(4)).saturating_sub(8));
                            v.payload = &l4_avail[8..];
                        }
                    }
                    Some(6) => {
                        v.src_port = Some(port(0));
                        v.dst_port = Some(port(2));
                        if let Ok(t) = etherparse::TcpHeaderSlice::from_slice(l4_avail) {
                            let mut tcp = Tcp {
                                seq: t.sequence_number(),
                                ack: t.acknowledgment_number(),
                                flags: l4_avail[13],
                                window: t.window_size(),
                                ..Tcp::default()
                            };
                            for o in t.options_iterator().flatten() {
                                match o {
                                    etherparse::TcpOptionElement::MaximumSegmentSize(m) => {
                                        tcp.mss = Some(m)
                                    }
                                    etherparse::TcpOptionElement::WindowScale(w) => {
                                        tcp.wscale = Some(w)
                                    }
                                    _ => {}
                                }
                            }
                            let hl = t.slice().len();
                            // This fragment's share; later fragments carry the rest.
                            v.payload_len = Some(l4_true.saturating_sub(hl as u32));
                            v.payload = l4_avail.get(hl..).unwrap_or(&[]);
                            v.tcp = Some(tcp);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    v
}

/// (offset in bytes, more fragments, identification) of an IPv6 fragment header among
/// the extension headers `ext` whose first type is `next`.
fn ipv6_fragment(mut next: u8, mut ext: &[u8]) -> Option<(u32, bool, u32)> {
    loop {
        let len = match next {
            44 => {
                let b = ext.get(..8)?;
                let off = u32::from(u16::from_be_bytes([b[2], b[3]]) >> 3) * 8;
                let id = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                return Some((off, b[3] & 1 != 0, id));
            }
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(*ext.get(1)?) + 1) * 8,
            51 => (usize::from(*ext.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *ext.first()?;
        ext = ext.get(len..)?;
    }
}

/// An address with a prefix length: `10.1.0.0/16`, `2001:db8::/32`, or a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() {
            max
        } else {
            l.parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?
        };
        Ok(Prefix { addr, len })
    }
}

impl Prefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(b: &[u8], len: u8) -> Vec<u8> {
            b.iter()
                .enumerate()
                .map(|(i, &x)| {
                    let bits = (len as usize).saturating_sub(i * 8).min(8);
                    if bits == 0 {
                        0
                    } else {
                        x & (0xFFu8 << (8 - bits))
                    }
                })
                .collect()
        }
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                masked(&a.octets(), self.len) == masked(&b.octets(), self.len)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                masked(&a.octets(), self.len) == masked(&b.octets(), self.len)
            }
            _ => false,
        }
    }
}

/// IP protocol by name or number.
pub fn parse_protocol(s: &str) -> Result<u8, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" | "icmp6" => 58,
        "esp" => 50,
        "gre" => 47,
        other => other.parse().map_err(|_| {
            format!("unknown protocol {s:?}: use tcp, udp, icmp, icmpv6 or a number")
        })?,
    })
}

/// Packet filters shared by all subcommands. Empty lists match everything; a packet
/// must match every criterion that is set.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub hosts: Vec<Prefix>,
    pub ports: Vec<u16>,
    pub interfaces: Vec<String>,
    pub protocols: Vec<u8>,
    pub formats: Vec<FormatId>,
    pub discarded_only: bool,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.from_ns.is_none()
            && self.to_ns.is_none()
            && self.hosts.is_empty()
            && self.ports.is_empty()
            && self.interfaces.is_empty()
            && self.protocols.is_empty()
            && self.formats.is_empty()
            && !self.discarded_only
    }

    pub fn matches(&self, p: &Packet) -> bool {
        if self.from_ns.is_some_and(|t| p.time_ns < t) || self.to_ns.is_some_and(|t| p.time_ns > t)
        {
            return false;
        }
        if self.discarded_only && !p.discard.is_discard() {
            return false;
        }
        if !self.interfaces.is_empty()
            && !self
                .interfaces
                .iter()
                .any(|i| i.eq_ignore_ascii_case(&p.interface))
        {
            return false;
        }
        if !self.formats.is_empty() && !self.formats.contains(&p.format) {
            return false;
        }
        if self.hosts.is_empty() && self.ports.is_empty() && self.protocols.is_empty() {
            return true;
        }
        let e = match &p.data_trace {
            // A data-trace record holds no IP header: its PTHDR names the socket.
            Some(d) => Endpoints {
                src: p.header.src_ip(),
                dst: p.header.dst_ip(),
                protocol: Some(d.protocol),
                src_port: p.header.ports.map(|x| x[0]),
                dst_port: p.header.ports.map(|x| x[1]),
                arp: false,
            },
            None => endpoints(p.link, &p.data),
        };
        if !self.hosts.is_empty()
            && !self.hosts.iter().any(|h| {
                e.src.is_some_and(|a| h.contains(a)) || e.dst.is_some_and(|a| h.contains(a))
            })
        {
            return false;
        }
        if !self.ports.is_empty()
            && !self
                .ports
                .iter()
                .any(|&port| e.src_port == Some(port) || e.dst_port == Some(port))
        {
            return false;
        }
        if !self.protocols.is_empty() && !e.protocol.is_some_and(|p| self.protocols.contains(&p)) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv4 TCP 10.0.0.1:21 -> 10.0.0.2:1025, header only.
    const TCP4: [u8; 40] = [
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 21, 4, 1, 0, 0, 0, 1,
        0, 0, 0, 0, 0x50, 0x10, 0x10, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn endpoints_of_a_tcp_packet_even_when_abbreviated() {
        let e = endpoints(Link::Raw, &TCP4);
        assert_eq!(e.src, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(e.protocol, Some(6));
        assert_eq!((e.src_port, e.dst_port), (Some(21), Some(1025)));
        // The IP header claims 40 bytes but only 34 are present: ports still readable.
        let e = endpoints(Link::Raw, &TCP4[..24]);
        assert_eq!(e.dst, Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.200.1.1".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        let p: Prefix = "2001:db8::/33".parse().unwrap();
        assert!(p.contains("2001:db8:7fff::1".parse().unwrap()));
        assert!(!p.contains("2001:db8:8000::1".parse().unwrap()));
        assert!("10.0.0.1/33".parse::<Prefix>().is_err());
        assert_eq!(parse_protocol("TCP"), Ok(6));
        assert!(parse_protocol("xyz").is_err());
    }
}
