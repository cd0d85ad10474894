//! Synthesizer, input side: the link layer of a captured frame and the IP/transport
//! headers behind it. Finds where the network packet starts, what it is, which
//! addresses and ports it carries and how many header bytes abbreviation must keep.
//!
//! Every function here works on untrusted capture bytes: all access is bounds-checked
//! and a frame that does not fit yields a skip reason, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) const ETHERTYPE_IPV4: u16 = 0x0800;
pub(super) const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad and the older pre-standard QinQ tag protocol id.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88A8, 0x9100];
/// Length of an Ethernet II header without tags.
pub(super) const ETH_HEADER: usize = 14;

/// Link types we take apart (numbers from tcpdump.org/linktypes.html).
const LT_NULL: u32 = 0;
const LT_ETHERNET: u32 = 1;
/// DLT_RAW as OpenBSD (14) and some other systems (12) number it.
const LT_RAW_12: u32 = 12;
const LT_RAW_14: u32 = 14;
const LT_RAW: u32 = 101;
/// OpenBSD loopback: like NULL but the family is always big-endian.
const LT_LOOP: u32 = 108;
const LT_LINUX_SLL: u32 = 113;
const LT_IPV4: u32 = 228;
const LT_IPV6: u32 = 229;
const LT_LINUX_SLL2: u32 = 276;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Where the parts of a captured frame are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Link {
    /// The frame is an Ethernet frame as captured (link type 1).
    pub ethernet: bool,
    /// Bytes of the link header proper: 12 for Ethernet (the two MAC addresses; the
    /// type field is counted in `outer_type`), 16 for SLL, 20 for SLL2, 4 for NULL, 0 for
    /// raw IP.
    pub l2_len: usize,
    /// The type that follows the link header: an EtherType, possibly a VLAN TPID.
    pub outer_type: u16,
    /// Where the network packet starts (after all VLAN tags).
    pub net_start: usize,
    /// The EtherType of the network packet (after all VLAN tags).
    pub ethertype: u16,
    /// Why an Ethernet frame holds no network packet we can find (an 802.3 length
    /// field instead of an EtherType, a frame cut inside a VLAN tag). Packet mode skips
    /// such frames for this reason; OSAENTA mode still writes them as they are.
    pub problem: Option<String>,
}

/// EtherType of a packet that starts with an IP version nibble.
fn ethertype_by_nibble(first: Option<&u8>) -> Result<u16, String> {
    match first.map(|b| b >> 4) {
        Some(4) => Ok(ETHERTYPE_IPV4),
        Some(6) => Ok(ETHERTYPE_IPV6),
        Some(n) => Err(format!("raw IP frame with IP version {n}")),
        None => Err("empty frame".into()),
    }
}

/// Follows VLAN tags from `at`, where a tag's TCI would start when `outer` is a TPID.
/// Returns (start of the network packet, inner EtherType).
fn skip_tags(frame: &[u8], mut at: usize, outer: u16) -> Result<(usize, u16), String> {
    let mut ty = outer;
    // Each tag is 4 bytes: TCI, then the next type. Bounded by the frame length.
    while VLAN_TPIDS.contains(&ty) {
        ty = be16(frame, at + 2).ok_or("frame ends inside a VLAN tag")?;
        at += 4;
    }
    Ok((at, ty))
}

/// Takes the link layer of `frame` (captured with `linktype`) apart. `Err` is the skip
/// reason for frames we cannot use in either mode.
pub(super) fn parse_link(linktype: u32, frame: &[u8]) -> Result<Link, String> {
    let (ethernet, l2_len, outer_type) = match linktype {
        LT_ETHERNET => {
            let t = be16(frame, 12).ok_or("frame shorter than an Ethernet header")?;
            (true, 12, t)
        }
        LT_LINUX_SLL => {
            if frame.len() < 16 {
                return Err("frame shorter than a Linux cooked (SLL) header".into());
            }
            (false, 16, be16(frame, 14).unwrap_or(0))
        }
        LT_LINUX_SLL2 => {
            if frame.len() < 20 {
                return Err("frame shorter than a Linux cooked v2 (SLL2) header".into());
            }
            (false, 20, be16(frame, 0).unwrap_or(0))
        }
        LT_RAW | LT_RAW_12 | LT_RAW_14 => (false, 0, ethertype_by_nibble(frame.first())?),
        LT_IPV4 | LT_IPV6 => {
            let t = ethertype_by_nibble(frame.first())?;
            let want = if linktype == LT_IPV4 {
                ETHERTYPE_IPV4
            } else {
                ETHERTYPE_IPV6
            };
            if t != want {
                return Err(format!(
                    "link type {linktype} frame with the other IP version"
                ));
            }
            (false, 0, t)
        }
        LT_NULL | LT_LOOP => {
            let b: [u8; 4] = frame
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or("frame shorter than a loopback header")?;
            // The family is in the capturing host's byte order (NULL) or big-endian
            // (LOOP); read it both ways, the wrong way gives a value far out of range.
            let fam = |v: u32| match v {
                2 => Some(ETHERTYPE_IPV4),
                24 | 28 | 30 => Some(ETHERTYPE_IPV6),
                _ => None,
            };
            let t = fam(u32::from_le_bytes(b))
                .or_else(|| fam(u32::from_be_bytes(b)))
                .ok_or_else(|| {
                    format!("loopback address family {} not IP", u32::from_le_bytes(b))
                })?;
            (false, 4, t)
        }
        other => return Err(format!("link type {other} not supported")),
    };
    let tags_at = if ethernet { ETH_HEADER } else { l2_len };
    let found = if outer_type < 0x0600 {
        Err(ethertype_reason(outer_type))
    } else {
        skip_tags(frame, tags_at, outer_type)
    };
    match found {
        Ok((net_start, ethertype)) => Ok(Link {
            ethernet,
            l2_len,
            outer_type,
            net_start,
            ethertype,
            problem: None,
        }),
        // An Ethernet frame is still a frame: keep it for OSAENTA, with no packet in it.
        Err(problem) if ethernet => Ok(Link {
            ethernet,
            l2_len,
            outer_type,
            net_start: frame.len(),
            ethertype: outer_type,
            problem: Some(problem),
        }),
        Err(_) if outer_type < 0x0600 => Err(format!(
            "link protocol 0x{outer_type:04X} is not an EtherType"
        )),
        Err(problem) => Err(problem),
    }
}

/// A readable skip reason for a non-IP EtherType.
pub(super) fn ethertype_reason(t: u16) -> String {
    match t {
        0x0806 => "ARP".into(),
        0x8035 => "RARP".into(),
        0x88CC => "LLDP".into(),
        _ if t < 0x0600 => "IEEE 802.3 frame with a length field (LLC), not an EtherType".into(),
        _ => format!("non-IP EtherType 0x{t:04X}"),
    }
}

/// What the trace header needs from an IP packet, and how much abbreviation must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IpInfo {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP header length including IPv4 options / IPv6 extension headers, as declared
    /// (may exceed the captured bytes when the capture was cut short).
    pub hdr_len: usize,
    /// Transport header length: TCP data offset, 8 for UDP and ICMP, 0 otherwise and
    /// for non-first fragments.
    pub l4_len: usize,
    /// TCP/UDP source and destination port; 0 for anything else.
    pub ports: [u16; 2],
}

impl IpInfo {
    /// Both addresses are loopback addresses.
    pub fn loopback(&self) -> bool {
        self.src.is_loopback() && self.dst.is_loopback()
    }

    /// Header bytes abbreviation never cuts.
    pub fn keep(&self) -> usize {
        self.hdr_len + self.l4_len
    }
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Transport header length and ports of a transport header starting at `t`.
fn transport(proto: u8, t: &[u8]) -> (usize, [u16; 2]) {
    let ports = || match (be16(t, 0), be16(t, 2)) {
        (Some(s), Some(d)) => [s, d],
        _ => [0, 0],
    };
    match proto {
        PROTO_TCP => {
            // Data offset in 32-bit words; below 5 is malformed, keep the fixed header.
            let doff = t.get(12).map_or(20, |b| usize::from(b >> 4) * 4).max(20);
            (doff, ports())
        }
        PROTO_UDP => (8, ports()),
        PROTO_ICMP | PROTO_ICMPV6 => (8, [0, 0]),
        _ => (0, [0, 0]),
    }
}

/// Parses the IP packet at the start of `b` (captured bytes, possibly cut short).
/// `None` when it is not IPv4/IPv6 or too short for the fixed IP header.
pub(super) fn parse_ip(b: &[u8]) -> Option<IpInfo> {
    match b.first()? >> 4 {
        4 => parse_v4(b),
        6 => parse_v6(b),
        _ => None,
    }
}

fn parse_v4(b: &[u8]) -> Option<IpInfo> {
    let h: &[u8; 20] = b.get(..20)?.try_into().ok()?;
    let ihl = (usize::from(h[0] & 0x0F) * 4).max(20);
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1FFF;
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    // Only the first fragment carries the transport header.
    let (l4_len, ports) = if frag_offset == 0 {
        transport(h[9], b.get(ihl..).unwrap_or(&[]))
    } else {
        (0, [0, 0])
    };
    Some(IpInfo {
        v6: false,
        src,
        dst,
        hdr_len: ihl,
        l4_len,
        ports,
    })
}

fn parse_v6(b: &[u8]) -> Option<IpInfo> {
    let h: &[u8; 40] = b.get(..40)?.try_into().ok()?;
    let mut s = [0u8; 16];
    s.copy_from_slice(&h[8..24]);
    let mut d = [0u8; 16];
    d.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut at = 40;
    let mut first_fragment = true;
    // Walk the extension header chain; a bound on the count guards against loops of
    // zero-length headers in hostile input (each header is at least 8 bytes anyway).
    for _ in 0..16 {
        let len = match next {
            // Hop-by-hop, routing, destination options: (len + 1) * 8.
            0 | 43 | 60 => b.get(at + 1).map(|l| (usize::from(*l) + 1) * 8),
            // Fragment header: 8 bytes; offset in the upper 13 bits of bytes 2-3.
            44 => {
                if let Some(v) = be16(b, at + 2) {
                    first_fragment = v >> 3 == 0;
                }
                Some(8)
            }
            // Authentication header: (len + 2) * 4.
            51 => b.get(at + 1).map(|l| (usize::from(*l) + 2) * 4),
            _ => break,
        };
        match (len, b.get(at)) {
            (Some(len), Some(&n)) => {
                next = n;
                at += len;
            }
            // The capture ends inside the chain: no transport header to find.
            _ => {
                return Some(IpInfo {
                    v6: true,
                    src: IpAddr::V6(Ipv6Addr::from(s)),
                    dst: IpAddr::V6(Ipv6Addr::from(d)),
                    hdr_len: at.max(b.len()),
                    l4_len: 0,
                    ports: [0, 0],
                });
            }
        }
        if !first_fragment {
            break;
        }
    }
    let (l4_len, ports) = if first_fragment {
        transport(next, b.get(at..).unwrap_or(&[]))
    } else {
        (0, [0, 0])
    };
    Some(IpInfo {
        v6: true,
        src: IpAddr::V6(Ipv6Addr::from(s)),
        dst: IpAddr::V6(Ipv6Addr::from(d)),
        hdr_len: at,
        l4_len,
        ports,
    })
}
