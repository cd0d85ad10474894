//! Packet trace header (PTHDR_T, IBM macro EZBYPTHA): the record header inside every
//! SYSTCPDA/SYSTCPOT CTE. Layout and sources: formats/pthdr.md.
//!
//! PTH_len is authoritative: a field is present only when it lies wholly inside PTH_len,
//! so every field after the first four is an `Option`. Bytes past the last known field
//! (a longer future header, or a field cut in half) are kept in `rest`.

use binrw::{BinRead, BinWrite, binrw};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::tod::Tod;

/// Device type code (PTH_DevTy). Open newtype: unknown codes print as numbers.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceType(pub u8);

impl DeviceType {
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            34 => Some("loopback"),
            39 => Some("QDIO Ethernet IPv4"),
            53 => Some("QDIO Ethernet IPv6"),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeviceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{} ({n})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// PTH_Flag bits.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Both addresses are local to this stack.
    pub const BOTH_LOCAL: u8 = 0x80;
    /// AT-TLS: confidential data withheld.
    pub const ATTLS_WITHHELD: u8 = 0x40;
    /// AT-TLS: clear text included.
    pub const ATTLS_CLEAR: u8 = 0x20;
    /// Bits whose meaning is not published.
    pub const UNKNOWN_BITS: u8 = 0x1E;
    /// "To interface": the packet was sent. Clear = received.
    pub const OUTBOUND: u8 = 0x01;

    pub fn outbound(self) -> bool {
        self.0 & Self::OUTBOUND != 0
    }
}

/// The 16 bytes at PTHDR+0x08: an interface name for packet records, a job name plus
/// socket description for data-trace records. Which one is decided by the format id.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameField(pub [u8; 16]);

/// 24-bit unsigned, big-endian (PTH_Tlen).
fn u24_from(b: [u8; 3]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}
fn u24_to(v: &u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// PTHDR_T. Offsets are from the PTHDR start (formats/pthdr.md).
#[binrw]
#[brw(big)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtHdr {
    /// 0x00 PTH_len: offset from the PTHDR to the traced data.
    pub len: u16,
    /// 0x02 PTH_SeqNum: 0 for whole records and first segments; then 1..=255, 1, ...
    pub seq: u8,
    /// 0x03 PTH_Flag.
    pub flags: Flags,
    /// 0x04 PTH_DevTy.
    pub dev_type: DeviceType,
    /// 0x05 PTH_Tlen: traced length; the total over all segments of a segmented record.
    #[br(map = u24_from)]
    #[bw(map = u24_to)]
    pub tlen: u32,
    /// 0x08 interface name (EBCDIC) or, for data trace, job name + socket fields.
    #[br(if(len >= 0x18))]
    pub name: Option<NameField>,
    /// 0x18 PTH_Time: capture time (TOD).
    #[br(if(len >= 0x20))]
    pub time: Option<Tod>,
    /// 0x20 source address, IPv4 as ::ffff:a.b.c.d.
    #[br(if(len >= 0x30))]
    pub src: Option<[u8; 16]>,
    /// 0x30 destination address.
    #[br(if(len >= 0x40))]
    pub dst: Option<[u8; 16]>,
    /// 0x40 source and destination port.
    #[br(if(len >= 0x44))]
    pub ports: Option<[u16; 2]>,
    /// 0x44 14 bytes of unpublished meaning; shown raw by `dump` only.
    #[br(if(len >= 0x52))]
    pub unknown: Option<[u8; 14]>,
    /// 0x52 PTH_Plen: original length before abbreviation.
    #[br(if(len >= 0x54))]
    pub plen: Option<u16>,
    /// 0x54 PTH_InfIx: interface index.
    #[br(if(len >= 0x58))]
    pub if_index: Option<u32>,
    /// 0x58 PTH_DropRsn: discard reason code, 0 = not discarded.
    #[br(if(len >= 0x5A))]
    pub drop_reason: Option<u16>,
    /// 0x5A PTH_OffSegLen (semantics unverified).
    #[br(if(len >= 0x5C))]
    pub off_seg_len: Option<u16>,
    /// Bytes from the end of the last whole known field up to PTH_len.
    #[br(count = (len as usize).saturating_sub(PtHdr::known_len(len)))]
    pub rest: Vec<u8>,
}

impl PtHdr {
    /// Length of a current-release header (0x5C).
    pub const CURRENT_LEN: u16 = 92;

    /// Bytes of `len` covered by whole known fields.
    fn known_len(len: u16) -> usize {
        const ENDS: [usize; 11] = [
            0x08, 0x18, 0x20, 0x30, 0x40, 0x44, 0x52, 0x54, 0x58, 0x5A, 0x5C,
        ];
        let len = len as usize;
        ENDS.iter()
            .copied()
            .filter(|&e| e <= len)
            .max()
            .unwrap_or(0)
    }

    /// Decodes a PTHDR from exactly its PTH_len bytes (the caller has checked that
    /// `bytes.len() >= 8` and equals PTH_len, so this cannot run past the header).
    ///
    /// The binrw definition above is the layout; this reads the same fields by offset,
    /// once per packet, because going through binrw's reader cost a third of the whole
    /// decoding. `read_binrw` is the definition's own reader; the tests (and the fuzz
    /// corpus) hold the two to the same result.
    pub fn parse(bytes: &[u8]) -> binrw::BinResult<PtHdr> {
        let mut h = PtHdr::default();
        if h.read_into(bytes) {
            Ok(h)
        } else {
            Self::read_binrw(bytes)
        }
    }

    /// `parse` into an existing header (reusing its `rest`), for the decoding loop:
    /// false, with `self` in no particular state, when the bytes are too short for
    /// PTH_len (or PTH_len for the fixed part), which `parse` leaves to the definition.
    pub fn read_into(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() < 8 {
            return false;
        }
        let len = u16::from_be_bytes([bytes[0], bytes[1]]);
        let l = usize::from(len);
        // A length below the fixed part is invalid anyway (callers reject it first).
        if bytes.len() < l || l < 8 {
            return false;
        }
        let at = |o: usize, n: usize| (o + n <= l).then(|| &bytes[o..o + n]);
        let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
        let arr16 = |b: &[u8]| {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            a
        };
        self.len = len;
        self.seq = bytes[2];
        self.flags = Flags(bytes[3]);
        self.dev_type = DeviceType(bytes[4]);
        self.tlen = u24_from([bytes[5], bytes[6], bytes[7]]);
        self.name = at(0x08, 16).map(|b| NameField(arr16(b)));
        self.time = at(0x18, 8).map(|b| {
            let mut t = [0u8; 8];
            t.copy_from_slice(b);
            Tod(u64::from_be_bytes(t))
        });
        self.src = at(0x20, 16).map(arr16);
        self.dst = at(0x30, 16).map(arr16);
        self.ports = at(0x40, 4).map(|b| [be16(b), be16(&b[2..])]);
        self.unknown = at(0x44, 14).map(|b| {
            let mut u = [0u8; 14];
            u.copy_from_slice(b);
            u
        });
        self.plen = at(0x52, 2).map(be16);
        self.if_index = at(0x54, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        self.drop_reason = at(0x58, 2).map(be16);
        self.off_seg_len = at(0x5A, 2).map(be16);
        self.rest.clear();
        self.rest
            .extend_from_slice(&bytes[Self::known_len(len).min(l)..l]);
        true
    }

    /// The binrw definition's own reader (the reference `parse` is held to).
    pub fn read_binrw(bytes: &[u8]) -> binrw::BinResult<PtHdr> {
        PtHdr::read(&mut binrw::io::Cursor::new(bytes))
    }

    /// Encodes the header; `len` decides which fields are written, so the `Option`s must
    /// agree with it (the synthesizer builds them with `PtHdr::with_len`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut c = binrw::io::Cursor::new(Vec::with_capacity(self.len as usize));
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut c);
        c.into_inner()
    }

    /// A header of length `len` with every field that fits present and zero.
    pub fn with_len(len: u16) -> PtHdr {
        let l = len;
        PtHdr {
            len,
            name: (l >= 0x18).then_some(NameField::default()),
            time: (l >= 0x20).then_some(Tod(0)),
            src: (l >= 0x30).then_some([0; 16]),
            dst: (l >= 0x40).then_some([0; 16]),
            ports: (l >= 0x44).then_some([0; 2]),
            unknown: (l >= 0x52).then_some([0; 14]),
            plen: (l >= 0x54).then_some(0),
            if_index: (l >= 0x58).then_some(0),
            drop_reason: (l >= 0x5A).then_some(0),
            off_seg_len: (l >= 0x5C).then_some(0),
            rest: vec![0; (l as usize).saturating_sub(Self::known_len(l))],
            ..PtHdr::default()
        }
    }

    pub fn src_ip(&self) -> Option<IpAddr> {
        self.src.map(addr)
    }

    pub fn dst_ip(&self) -> Option<IpAddr> {
        self.dst.map(addr)
    }

    pub fn discard(&self) -> u16 {
        self.drop_reason.unwrap_or(0)
    }
}

/// The trace's 16-byte address form: IPv4 is mapped (`::ffff:a.b.c.d`; `::fffe:` is seen
/// too and accepted), anything else is IPv6.
pub fn addr(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    if b[..10].iter().all(|&x| x == 0) && (b[10..12] == [0xFF, 0xFF] || b[10..12] == [0xFF, 0xFE]) {
        IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
    } else {
        IpAddr::V6(v6)
    }
}

/// The inverse of `addr` (IPv4 as `::ffff:a.b.c.d`).
pub fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_parse_equals_the_binrw_definition() {
        // Every length from 0 to past the current header, with varied bytes.
        for len in 0u16..=110 {
            for fill in [0u8, 0x5A, 0xFF] {
                let mut b: Vec<u8> = (0..120u8).map(|i| i.wrapping_mul(37) ^ fill).collect();
                b[0..2].copy_from_slice(&len.to_be_bytes());
                for cut in [len as usize, 120, 7, 3] {
                    let slice = &b[..cut.min(b.len())];
                    let fast = super::PtHdr::parse(slice).map_err(|e| e.to_string());
                    let slow = super::PtHdr::read_binrw(slice).map_err(|e| e.to_string());
                    assert_eq!(fast.is_ok(), slow.is_ok(), "len {len} cut {cut}");
                    if let (Ok(f), Ok(s)) = (fast, slow) {
                        assert_eq!(f, s, "len {len} cut {cut}");
                    }
                }
            }
        }
    }

    use super::*;

    #[test]
    fn full_header_round_trips_and_fields_sit_at_their_offsets() {
        let mut h = PtHdr::with_len(92);
        h.seq = 3;
        h.flags = Flags(0x21);
        h.dev_type = DeviceType(39);
        h.tlen = 0x012345;
        h.time = Some(Tod(0xDE6E_758D_DC00_0000));
        h.src = Some(addr_bytes("10.1.2.3".parse().unwrap()));
        h.ports = Some([21, 1025]);
        h.plen = Some(1500);
        h.if_index = Some(7);
        h.drop_reason = Some(4114);
        let b = h.to_bytes();
        assert_eq!(b.len(), 92);
        assert_eq!(&b[5..8], &[0x01, 0x23, 0x45]);
        assert_eq!(&b[0x18..0x20], &0xDE6E_758D_DC00_0000u64.to_be_bytes());
        assert_eq!(&b[0x2C..0x30], &[10, 1, 2, 3]);
        assert_eq!(&b[0x40..0x44], &[0, 21, 4, 1]);
        assert_eq!(&b[0x52..0x54], &1500u16.to_be_bytes());
        assert_eq!(&b[0x58..0x5A], &4114u16.to_be_bytes());
        let back = PtHdr::parse(&b).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.src_ip(), Some("10.1.2.3".parse().unwrap()));
        assert!(back.flags.outbound());
    }

    #[test]
    fn short_header_has_no_fields_past_its_length() {
        // 0x58 long: everything up to PTH_InfIx, no discard code.
        let h = PtHdr::with_len(0x58);
        let b = h.to_bytes();
        assert_eq!(b.len(), 0x58);
        let back = PtHdr::parse(&b).unwrap();
        assert_eq!(back.drop_reason, None);
        assert_eq!(back.if_index, Some(0));
        // A length that cuts a field in half keeps the half in `rest`.
        let mut b = PtHdr::with_len(0x1C).to_bytes();
        b[0x18] = 0xAB;
        let back = PtHdr::parse(&b).unwrap();
        assert_eq!(back.time, None);
        assert_eq!(back.rest, vec![0xAB, 0, 0, 0]);
        // A longer future header keeps its extra bytes.
        let back = PtHdr::parse(&PtHdr::with_len(100).to_bytes()).unwrap();
        assert_eq!(back.rest.len(), 8);
        assert_eq!(back.off_seg_len, Some(0));
    }

    #[test]
    fn addresses_in_both_mapped_forms() {
        let mut b = [0u8; 16];
        b[10] = 0xFF;
        b[11] = 0xFE;
        b[12..].copy_from_slice(&[192, 168, 0, 1]);
        assert_eq!(addr(b), "192.168.0.1".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr(addr_bytes(v6)), v6);
    }
}
