//! Component trace entry (CTE) header: the 16 bytes in front of every trace record.
//! Layout, validation predicate and sources: formats/cte.md.

use binrw::binrw;

use super::tod::Tod;

/// Size of the fixed CTE header.
pub const HEADER_LEN: usize = 16;
/// Size of the length that repeats at the end of every CTE.
pub const TRAILER_LEN: usize = 2;
/// The smallest PTHDR we accept (PTH_len, SeqNum, Flag, DevTy, Tlen).
pub const MIN_PTH_LEN: usize = 8;
/// The smallest CTE that can pass validation.
pub const MIN_LEN: usize = HEADER_LEN + MIN_PTH_LEN + TRAILER_LEN;

/// CTE format id. Open newtype: unknown values pass through and are counted.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FormatId(pub u32);

impl FormatId {
    pub const PACKET: FormatId = FormatId(4);
    pub const DATA: FormatId = FormatId(5);
    pub const EE: FormatId = FormatId(6);
    pub const OSAENTA: FormatId = FormatId(7);
    pub const SMC: FormatId = FormatId(8);

    /// High byte X'FF': the trace's own "records were lost here" notice.
    pub fn is_lost_notice(self) -> bool {
        self.0 >> 24 == 0xFF
    }

    /// The low 24 bits, the record type proper.
    pub fn kind(self) -> u32 {
        self.0 & 0x00FF_FFFF
    }

    pub fn name(self) -> &'static str {
        if self.is_lost_notice() {
            return "lost-record notice";
        }
        match self.0 {
            1..=3 => "legacy",
            4 => "packet trace",
            5 => "data trace",
            6 => "Enterprise Extender",
            7 => "OSAENTA",
            8 => "SMC",
            _ => "unknown",
        }
    }
}

impl std::fmt::Display for FormatId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 > 0xFF {
            write!(f, "X'{:08X}'", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The 16-byte CTE header (formats/cte.md). Followed by the record at `data_offset`
/// and, at `length - 2`, the length once more.
#[binrw]
#[brw(big)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CteHeader {
    /// Whole CTE length: header, record and the trailing length.
    pub length: u16,
    /// Offset of the record (the PTHDR) from the CTE start; 16 for TCP/IP.
    pub data_offset: u16,
    pub format_id: FormatId,
    /// When the record was moved into the trace buffer (not the capture time).
    pub buffer_time: Tod,
}

/// Why bytes at an offset are not a CTE. Used in messages and counted per reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invalid {
    TooShort,
    DataOffset,
    FormatId,
    BufferTime,
    PthLen,
    Trailer,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::TooShort => "length too small for a CTE",
            Invalid::DataOffset => "data offset out of range",
            Invalid::FormatId => "format id not a trace record type",
            Invalid::BufferTime => "buffer time not between 1990 and 2100",
            Invalid::PthLen => "PTH_len does not fit the CTE",
            Invalid::Trailer => "trailing length differs from the length",
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Checks the part of the validation predicate that the first `HEADER_LEN + 2` bytes
/// can decide (everything but the trailing length). `b` must hold at least
/// `HEADER_LEN + 2` bytes. Accepts format ids 1..=8 and lost-record notices.
pub fn check_head(b: &[u8]) -> Result<CteHeader, Invalid> {
    let length = be16(b, 0);
    let data_offset = be16(b, 2);
    let format_id = FormatId(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[8..16]);
    let buffer_time = Tod(u64::from_be_bytes(t));
    let len = length as usize;
    if len < MIN_LEN {
        return Err(Invalid::TooShort);
    }
    let off = data_offset as usize;
    if off < HEADER_LEN || off + MIN_PTH_LEN + TRAILER_LEN > len {
        return Err(Invalid::DataOffset);
    }
    let top = format_id.0 >> 24;
    if !((top == 0 && (1..=8).contains(&format_id.0)) || top == 0xFF) {
        return Err(Invalid::FormatId);
    }
    if !buffer_time.is_plausible() {
        return Err(Invalid::BufferTime);
    }
    if off + 2 <= b.len() && !format_id.is_lost_notice() {
        let pth_len = be16(b, off) as usize;
        if pth_len < MIN_PTH_LEN || off + pth_len + TRAILER_LEN > len {
            return Err(Invalid::PthLen);
        }
    }
    Ok(CteHeader {
        length,
        data_offset,
        format_id,
        buffer_time,
    })
}

/// The whole validation predicate on a complete CTE (`b.len() == length`).
pub fn check(b: &[u8]) -> Result<CteHeader, Invalid> {
    if b.len() < MIN_LEN {
        return Err(Invalid::TooShort);
    }
    let h = check_head(b)?;
    if h.length as usize != b.len() {
        return Err(Invalid::TooShort);
    }
    if be16(b, b.len() - TRAILER_LEN) != h.length {
        return Err(Invalid::Trailer);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use binrw::BinRead;

    fn cte(fmt: u32, pth_len: u16, data: usize) -> Vec<u8> {
        let len = (16 + pth_len as usize + data + 2) as u16;
        let mut v = Vec::new();
        v.extend(len.to_be_bytes());
        v.extend(16u16.to_be_bytes());
        v.extend(fmt.to_be_bytes());
        v.extend(0xDE6E_758D_DC00_0000u64.to_be_bytes());
        v.extend(pth_len.to_be_bytes());
        v.resize(len as usize - 2, 0);
        v.extend(len.to_be_bytes());
        v
    }

    #[test]
    fn accepts_a_packet_record_and_binrw_agrees() {
        let b = cte(4, 92, 40);
        let h = check(&b).unwrap();
        assert_eq!(h.length as usize, b.len());
        let parsed = CteHeader::read(&mut binrw::io::Cursor::new(&b)).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(parsed.format_id, FormatId::PACKET);
    }

    #[test]
    fn rejects_each_broken_field() {
        let good = cte(4, 92, 40);
        let mut b = good.clone();
        b[3] = 8;
        assert_eq!(check(&b), Err(Invalid::DataOffset));
        let mut b = good.clone();
        b[7] = 9;
        assert_eq!(check(&b), Err(Invalid::FormatId));
        let mut b = good.clone();
        b[8] = 0;
        assert_eq!(check(&b), Err(Invalid::BufferTime));
        let mut b = good.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        assert_eq!(check(&b), Err(Invalid::Trailer));
        let mut b = good.clone();
        b[16] = 0x7F;
        assert_eq!(check(&b), Err(Invalid::PthLen));
        assert_eq!(check(&good[..10]), Err(Invalid::TooShort));
    }

    #[test]
    fn lost_record_notice_is_a_valid_cte() {
        let b = cte(0xFF00_0004, 92, 0);
        assert!(check(&b).unwrap().format_id.is_lost_notice());
    }
}
