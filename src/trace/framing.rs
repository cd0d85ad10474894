//! Framing added by the download: raw bytes, RDW per record, or BDW per block plus RDW
//! per record (formats/framing.md). First stage of the flow: file bytes -> logical
//! records. Spanned (VBS) segments are joined here.

use std::io::{self, Read};

use super::report::{IssueKind, Report};

/// How the downloaded file frames the z/OS records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Record bodies back to back, no lengths (FTP binary).
    Raw,
    /// A 4-byte RDW before each record (FTP binary with `quote site rdw`).
    Rdw,
    /// A 4-byte BDW before each block, an RDW before each record in it.
    Bdw,
}

impl Framing {
    pub fn name(self) -> &'static str {
        match self {
            Framing::Raw => "raw",
            Framing::Rdw => "RDW",
            Framing::Bdw => "BDW+RDW",
        }
    }
}

impl std::str::FromStr for Framing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "raw" | "none" => Ok(Framing::Raw),
            "rdw" => Ok(Framing::Rdw),
            "bdw" | "bdw+rdw" => Ok(Framing::Bdw),
            _ => Err(format!("unknown framing {s:?}: use raw, rdw or bdw")),
        }
    }
}

/// A descriptor word: length and the segment code. Accepts the IBM form (segment code
/// in byte 2, byte 3 zero) and, leniently, the code in byte 3.
fn rdw(b: &[u8]) -> Option<(usize, u8)> {
    let len = u16::from_be_bytes([b[0], b[1]]) as usize;
    let code = match (b[2], b[3]) {
        (c, 0) if c <= 3 => c,
        (0, c) if c <= 3 => c,
        _ => return None,
    };
    (len >= 5).then_some((len, code))
}

/// A block descriptor: 2-byte length + 2 zero bytes, or the large-block form with the
/// high bit set and a 31-bit length.
fn bdw(b: &[u8]) -> Option<usize> {
    if b[0] & 0x80 != 0 {
        let len = (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7FFF_FFFF) as usize;
        return (len >= 9).then_some(len);
    }
    let len = u16::from_be_bytes([b[0], b[1]]) as usize;
    (b[2] == 0 && b[3] == 0 && len >= 9).then_some(len)
}

/// Result of following a descriptor chain over a prefix.
#[derive(Debug, Default)]
struct Chain {
    records: usize,
    /// Whole blocks followed (BDW chains only).
    blocks: usize,
    /// The chain covers the prefix exactly, or runs past its end only with its last
    /// record (a longer file, or a truncated one).
    tiles: bool,
    truncated_last: bool,
}

/// Follows RDWs from `at` to `end`. `in_span` carries the spanned-record state in and
/// out, because a VBS record may continue in the next block.
fn rdw_chain(p: &[u8], mut at: usize, end: usize, spanned_ok: bool, in_span: &mut bool) -> Chain {
    let mut c = Chain::default();
    while at < end {
        if at + 4 > end {
            return Chain { tiles: false, ..c };
        }
        let Some((len, code)) = rdw(&p[at..at + 4]) else {
            return Chain { tiles: false, ..c };
        };
        // segment codes must form first, middle*, last sequences.
        let ok = match code {
            0 | 1 => !*in_span,
            _ => *in_span,
        };
        if !ok || (code != 0 && !spanned_ok) {
            return Chain { tiles: false, ..c };
        }
        *in_span = code == 1 || code == 3;
        if at + len > end {
            c.records += 1;
            c.tiles = true;
            c.truncated_last = true;
            return c;
        }
        at += len;
        c.records += 1;
    }
    c.tiles = true;
    c
}

fn bdw_chain(p: &[u8]) -> Chain {
    let mut c = Chain::default();
    let mut at = 0;
    let mut in_span = false;
    while at < p.len() {
        if at + 4 > p.len() {
            return Chain { tiles: false, ..c };
        }
        let Some(len) = bdw(&p[at..at + 4]) else {
            return Chain { tiles: false, ..c };
        };
        let end = (at + len).min(p.len());
        let inner = rdw_chain(p, at + 4, end, true, &mut in_span);
        // Records followed before a break still count as evidence for the framing.
        c.records += inner.records;
        if !inner.tiles || inner.records == 0 || (inner.truncated_last && at + len <= p.len()) {
            return Chain { tiles: false, ..c };
        }
        c.blocks += 1;
        if at + len > p.len() {
            c.truncated_last = true;
            break;
        }
        at += len;
    }
    c.tiles = true;
    c
}

/// The file starts with a block descriptor whose block is in the prefix, and from some
/// offset inside it record descriptors tile the rest of the block: a block whose first
/// record descriptor is damaged.
fn first_block_tiles_late(p: &[u8]) -> bool {
    let Some(len) = p.get(..4).and_then(bdw) else {
        return false;
    };
    if len > p.len() {
        return false;
    }
    (5..len.saturating_sub(4).min(MAX_RECORD)).any(|k| tiles_from(&p[..len], k, true, 2))
}

/// Longest record a descriptor can frame: the next good descriptor after a broken one
/// is at most this far away, which bounds the searches.
const MAX_RECORD: usize = 65_536;

/// Whether RDWs from `k` tile `b` to its end (or, when `b` is not the whole block, run
/// past it) with at least `min` records, segment codes in order. Walks at most 64
/// descriptors: that many in a row is proof enough, and it keeps a search over every
/// `k` linear on hostile input.
fn tiles_from(b: &[u8], k: usize, whole: bool, min: usize) -> bool {
    let Some((_, first)) = b.get(k..k + 4).and_then(rdw) else {
        return false;
    };
    let mut span = first >= 2;
    let mut at = k;
    for n in 0..64 {
        if at == b.len() {
            return n >= min;
        }
        let Some((len, code)) = b.get(at..at + 4).and_then(rdw) else {
            return false;
        };
        if (code >= 2) != span {
            return false;
        }
        span = code == 1 || code == 3;
        at += len;
        if at > b.len() {
            return !whole && n + 1 >= min;
        }
    }
    true
}

/// Decides the framing from a prefix of the file. `whole` says the prefix is the whole
/// file. A chain that tiles the prefix and holds at least two records (or is the whole
/// file) wins. So does a chain that runs from the start for several descriptors and then
/// breaks: raw data does not look like a run of descriptors by chance (a raw file starts
/// with a writer header or a CTE, whose bytes 2-3 are never a segment code), so a break
/// later on is damage for the deframer to report and resynchronise, not a sign of raw
/// data. Otherwise the file is raw.
pub fn detect(prefix: &[u8], whole: bool) -> Framing {
    let enough = |c: &Chain| c.tiles && (c.records >= 2 || (whole && c.records == 1));
    let b = bdw_chain(prefix);
    if enough(&b) || b.blocks >= 2 || b.records >= 2 {
        return Framing::Bdw;
    }
    let r = rdw_chain(prefix, 0, prefix.len(), true, &mut false);
    if r.tiles && r.records >= 2 {
        return Framing::Rdw;
    }
    // A BDW file with one block reads as one RDW record too; a chain inside tells.
    if first_block_tiles_late(prefix) {
        return Framing::Bdw;
    }
    if enough(&r) || r.records >= 2 {
        return Framing::Rdw;
    }
    Framing::Raw
}

/// What `Deframer::next_into` appended.
#[derive(Clone, Copy, Debug)]
pub struct Piece {
    /// File offset of the first appended byte.
    pub offset: u64,
    /// Bytes appended.
    pub len: usize,
    /// Logical record number (from 1). Raw chunks without known boundaries count too.
    pub record: u64,
    /// The piece starts a new logical record (a writer header follows). False for raw
    /// chunks and for the continuation segments of a spanned record.
    pub starts_record: bool,
    /// Bytes after a broken descriptor, handed on unframed (see `Deframer::salvage`):
    /// whether they really start with a writer header is for the scanner to check.
    pub salvaged: bool,
}

const CHUNK: usize = 1 << 20;
/// Longest chain of plausible RDWs we need to see to trust a resynchronisation.
const RESYNC_CHAIN: usize = 3;

/// Turns the file into logical records. Broken descriptor chains are reported and
/// resynchronised on the next plausible chain.
pub struct Deframer<R> {
    src: R,
    framing: Framing,
    /// Raw files with a learned fixed record length.
    fixed: Option<usize>,
    /// Storage; `buf[start..end]` is read and not consumed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of buf[start].
    offset: u64,
    eof: bool,
    block_left: usize,
    record: u64,
    in_span: bool,
    /// Bytes of the current raw fixed-length record still to deliver.
    fixed_left: usize,
    /// After a broken descriptor: bytes up to the next plausible descriptor, delivered
    /// as unframed record data so the CTE scanner can still find the CTEs inside.
    salvage: usize,
    salvage_starts: bool,
    /// The search for the next descriptor stopped at a chunk limit and goes on.
    searching: bool,
    /// Where in `buf` the piece last delivered is (valid until `want` moves the bytes).
    last: std::ops::Range<usize>,
}

impl<R: Read> Deframer<R> {
    pub fn new(src: R, framing: Framing, fixed: Option<usize>) -> Self {
        Deframer {
            src,
            framing,
            fixed: fixed.filter(|&n| n > 0),
            buf: Vec::with_capacity(2 * CHUNK),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            block_left: 0,
            record: 0,
            in_span: false,
            fixed_left: 0,
            salvage: 0,
            salvage_starts: false,
            searching: false,
            last: 0..0,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes of the file consumed so far.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Makes at least `n` bytes available after `start` unless the file ends first.
    fn want(&mut self, n: usize) -> io::Result<bool> {
        while self.end - self.start < n && !self.eof {
            if self.start > 0 && self.start >= self.end / 2 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Grow by at most a chunk per read: `n` may come from a damaged length field,
            // and the file may be far shorter than it claims. The storage is zeroed only
            // when it grows, not for every read.
            if self.buf.len() < self.end + CHUNK {
                self.buf.resize(self.end + CHUNK, 0);
            }
            let got = loop {
                match self.src.read(&mut self.buf[self.end..self.end + CHUNK]) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.end += got;
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(self.end - self.start >= n)
    }

    fn avail(&self) -> usize {
        self.end - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Appends the next piece of record data to `out`. `None` at end of file.
    pub fn next_into(
        &mut self,
        out: &mut Vec<u8>,
        report: &mut Report,
    ) -> io::Result<Option<Piece>> {
        let found = self.next_piece(report)?;
        Ok(found.map(|(piece, bytes)| {
            out.extend_from_slice(bytes);
            piece
        }))
    }

    /// The next piece of record data, lent until the next call. `None` at end of file.
    pub fn next_piece(&mut self, report: &mut Report) -> io::Result<Option<(Piece, &[u8])>> {
        let piece = match self.framing {
            Framing::Raw => self.next_raw()?,
            Framing::Rdw | Framing::Bdw => self.next_framed(report)?,
        };
        Ok(piece.map(|p| (p, &self.buf[self.last.clone()])))
    }

    fn next_raw(&mut self) -> io::Result<Option<Piece>> {
        let (limit, starts) = match self.fixed {
            Some(r) => {
                let starts = self.fixed_left == 0;
                if starts {
                    self.fixed_left = r;
                }
                (self.fixed_left, starts)
            }
            None => (CHUNK, self.record == 0),
        };
        self.want(1)?;
        let n = self.avail().min(limit);
        if n == 0 {
            return Ok(None);
        }
        if starts {
            self.record += 1;
        }
        let piece = Piece {
            offset: self.offset,
            len: n,
            record: self.record.max(1),
            starts_record: starts && self.fixed.is_some(),
            salvaged: false,
        };
        self.last = self.start..self.start + n;
        self.consume(n);
        if self.fixed.is_some() {
            self.fixed_left -= n;
        }
        Ok(Some(piece))
    }

    fn next_framed(&mut self, report: &mut Report) -> io::Result<Option<Piece>> {
        loop {
            if self.salvage > 0 {
                return Ok(Some(self.deliver_salvage()));
            }
            if self.searching {
                self.search()?;
                continue;
            }
            if self.block_left == 0
                && self.want(4)?
                && self.buf[self.start..self.start + 4] == [0; 4]
            {
                // Zero fill between or after records (a padded copy): not a descriptor,
                // not damage either.
                self.skip_zeros(report)?;
                continue;
            }
            if self.framing == Framing::Bdw && self.block_left == 0 {
                if !self.want(4)? {
                    return self.tail(report);
                }
                match bdw(&self.buf[self.start..self.start + 4]) {
                    Some(len) => {
                        self.block_left = len - 4;
                        self.consume(4);
                        report.framing_bytes += 4;
                    }
                    None => {
                        self.resync(report, "block descriptor (BDW) not valid")?;
                        continue;
                    }
                }
            }
            if !self.want(4)? {
                return self.tail(report);
            }
            let Some((len, code)) = rdw(&self.buf[self.start..self.start + 4]) else {
                if self.framing == Framing::Bdw {
                    self.resync_in_block(report, "record descriptor (RDW) not valid")?;
                } else {
                    self.resync(report, "record descriptor (RDW) not valid")?;
                }
                continue;
            };
            if self.framing == Framing::Bdw && len > self.block_left {
                self.resync_in_block(report, "record runs past the end of its block")?;
                continue;
            }
            // One step ahead: where this descriptor says its record ends, the next
            // descriptor (or the block's end) must be. A length damaged within a block
            // would otherwise swallow the descriptors after it.
            // Inside a block only (there the block's own length backs the check):
            if self.framing == Framing::Bdw && len < self.block_left && self.want(len + 4)? {
                let next = &self.buf[self.start + len..self.start + len + 4];
                if rdw(next).is_none() {
                    self.resync_in_block(
                        report,
                        "record length does not lead to the next descriptor in its block",
                    )?;
                    continue;
                }
            }
            let continues = code == 2 || code == 3;
            if continues != self.in_span {
                report.issue(
                    self.offset,
                    Some(self.record + 1),
                    IssueKind::Framing,
                    0,
                    if continues {
                        "spanned segment without a first segment".into()
                    } else {
                        "spanned record ends without its last segment".into()
                    },
                );
            }
            self.in_span = code == 1 || code == 3;
            let rec_off = self.offset;
            self.consume(4);
            report.framing_bytes += 4;
            if self.framing == Framing::Bdw {
                self.block_left -= 4;
            }
            let body = len - 4;
            let have = if self.want(body)? { body } else { self.avail() };
            if !continues {
                self.record += 1;
            }
            let piece = Piece {
                offset: self.offset,
                len: have,
                record: self.record.max(1),
                starts_record: !continues,
                salvaged: false,
            };
            self.last = self.start..self.start + have;
            self.consume(have);
            if self.framing == Framing::Bdw {
                self.block_left -= have;
            }
            if have < body {
                report.issue(
                    rec_off,
                    Some(self.record),
                    IssueKind::Truncated,
                    0,
                    format!("file ends inside this record: {have} of {body} bytes present"),
                );
            }
            return Ok(Some(piece));
        }
    }

    /// End of file: anything left that is not a whole descriptor is reported.
    fn tail(&mut self, report: &mut Report) -> io::Result<Option<Piece>> {
        let n = self.avail();
        if n > 0 {
            let zeros = self.buf[self.start..self.end].iter().all(|&b| b == 0);
            if zeros {
                report.padding_bytes += n as u64;
            } else {
                report.skip(
                    self.offset,
                    Some(self.record),
                    n as u64,
                    "file ends inside a descriptor word",
                );
            }
            self.consume(n);
        }
        if self.framing == Framing::Bdw && self.block_left > 0 {
            report.issue(
                self.offset,
                Some(self.record),
                IssueKind::Truncated,
                0,
                format!(
                    "file ends {} bytes before the end of its block",
                    self.block_left
                ),
            );
            self.block_left = 0;
        }
        Ok(None)
    }

    /// Consumes a run of zero bytes as padding, a chunk at a time.
    fn skip_zeros(&mut self, report: &mut Report) -> io::Result<()> {
        while self.want(1)? {
            let avail = &self.buf[self.start..self.end];
            let (n, all) = match avail.iter().position(|&b| b != 0) {
                Some(n) => (n, false),
                None => (avail.len(), true),
            };
            report.padding_bytes += n as u64;
            self.consume(n);
            if !all {
                break;
            }
        }
        Ok(())
    }

    /// A descriptor is broken: counts it as skipped and finds the next plausible chain.
    /// The bytes in between are handed on as unframed data (see `salvage`), because
    /// usually only the descriptor is damaged and the record body is still good.
    fn resync(&mut self, report: &mut Report, why: &str) -> io::Result<()> {
        let n = self.avail().min(4);
        report.skip(self.offset, Some(self.record + 1), n as u64, why);
        report.resyncs += 1;
        self.consume(n);
        self.block_left = 0;
        // A broken descriptor inside a spanned record most likely framed a continuation
        // segment, which has no writer header.
        self.salvage_starts = !self.in_span;
        self.in_span = false;
        self.search()
    }

    /// A record descriptor inside a block is broken. The block's own length still holds,
    /// so the search is for the first offset from which RDWs tile the rest of the block
    /// exactly; the bytes before it are salvage. A broken descriptor inside a spanned
    /// record most likely framed a continuation segment, which has no writer header.
    fn resync_in_block(&mut self, report: &mut Report, why: &str) -> io::Result<()> {
        let n = self.avail().min(4).min(self.block_left);
        report.skip(self.offset, Some(self.record + 1), n as u64, why);
        report.resyncs += 1;
        self.consume(n);
        self.block_left -= n;
        self.salvage_starts = !self.in_span;
        // Large-block BDWs claim up to 2 GiB: look at most a few chunks ahead.
        self.want(self.block_left.min(4 * CHUNK))?;
        let end = self.avail().min(self.block_left);
        let whole = end == self.block_left;
        let b = &self.buf[self.start..self.start + end];
        let found = (0..end.saturating_sub(4).min(MAX_RECORD))
            .find(|&k| tiles_from(b, k, whole, 1))
            .and_then(|k| Some((k, rdw(&b[k..k + 4])?.1)));
        match found {
            Some((k, code)) => {
                self.salvage = k;
                self.in_span = code >= 2;
            }
            None => {
                self.salvage = end;
                self.in_span = false;
            }
        }
        Ok(())
    }

    /// Sets `salvage` to the distance to the next plausible descriptor chain, looking at
    /// most one chunk ahead at a time so that memory stays bounded on long garbage.
    fn search(&mut self) -> io::Result<()> {
        // Enough look-ahead for a few descriptors and the records they frame.
        let look = 4 * (RESYNC_CHAIN + 1) * 65_536;
        let mut k = 0;
        self.searching = false;
        loop {
            self.want(k + look)?;
            if self.avail() < k + 4 {
                k = self.avail();
                break;
            }
            if self.plausible_chain(k) {
                // The chain may start inside a spanned record: take its state.
                let at = self.start + k + if self.framing == Framing::Bdw { 4 } else { 0 };
                self.in_span = matches!(
                    self.buf[..self.end].get(at..at + 4).and_then(rdw),
                    Some((_, 2 | 3))
                );
                break;
            }
            k += 1;
            if k >= CHUNK {
                self.searching = true;
                break;
            }
        }
        self.salvage = k;
        Ok(())
    }

    fn deliver_salvage(&mut self) -> Piece {
        let n = self.salvage.min(self.avail());
        if self.salvage_starts {
            self.record += 1;
        }
        let piece = Piece {
            offset: self.offset,
            len: n,
            record: self.record.max(1),
            starts_record: self.salvage_starts,
            salvaged: true,
        };
        self.salvage_starts = false;
        self.last = self.start..self.start + n;
        self.consume(n);
        if self.framing == Framing::Bdw {
            self.block_left = self.block_left.saturating_sub(n);
        }
        self.salvage = if n == 0 { 0 } else { self.salvage - n };
        piece
    }

    /// Whether a resynchronisation point at `at` is convincing: a whole block whose
    /// records tile it (BDW), or RESYNC_CHAIN descriptors (RDW), the last of which may
    /// frame a record cut by the end of the file. Fewer is never enough: every PTHDR
    /// (X'005C' then a small number) and many packet bytes look like a descriptor. Bytes with no convincing chain go to the CTE scanner as
    /// salvage, so nothing is lost by being strict.
    fn plausible_chain(&self, at: usize) -> bool {
        let p = &self.buf[self.start + at..self.end];
        match self.framing {
            Framing::Bdw => {
                let Some(len) = bdw(&p[..4]) else {
                    return false;
                };
                if len > p.len() {
                    return false;
                }
                let c = rdw_chain(
                    p,
                    4,
                    len,
                    true,
                    &mut matches!(rdw(&p[4..8]), Some((_, 2 | 3))),
                );
                c.tiles && !c.truncated_last && c.records > 0
            }
            _ => {
                let mut at = 0;
                let mut longest = 0;
                let mut in_span = None;
                for n in 0..RESYNC_CHAIN {
                    if at + 4 > p.len() {
                        return false;
                    }
                    let Some((len, code)) = rdw(&p[at..at + 4]) else {
                        return false;
                    };
                    // Segment codes must follow first, middle*, last.
                    if let Some(span) = in_span
                        && span != (code >= 2)
                    {
                        return false;
                    }
                    in_span = Some(code == 1 || code == 3);
                    // At the end of the file the third may frame a cut record, no longer
                    // than the two whole ones before it.
                    if n == 2 && self.eof && at + len > p.len() {
                        return len <= longest;
                    }
                    longest = longest.max(len);
                    at += len;
                }
                at <= p.len()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdw_rec(body: &[u8], code: u8) -> Vec<u8> {
        let mut v = ((body.len() + 4) as u16).to_be_bytes().to_vec();
        v.extend([code, 0]);
        v.extend(body);
        v
    }

    #[test]
    fn detects_each_framing() {
        let mut rdws = rdw_rec(&[1; 100], 0);
        rdws.extend(rdw_rec(&[2; 50], 0));
        assert_eq!(detect(&rdws, true), Framing::Rdw);
        let mut blk = ((rdws.len() + 4) as u16).to_be_bytes().to_vec();
        blk.extend([0, 0]);
        blk.extend(&rdws);
        let mut two = blk.clone();
        two.extend(&blk);
        assert_eq!(detect(&two, true), Framing::Bdw);
        // A CTE at offset 0 has 0x0010 in bytes 2-3: not a descriptor.
        let mut cte = vec![0x00, 0x80, 0x00, 0x10];
        cte.resize(128, 0);
        assert_eq!(detect(&cte, true), Framing::Raw);
        // Truncated inside the last record still counts as RDW.
        assert_eq!(detect(&rdws[..120], true), Framing::Rdw);
    }

    #[test]
    fn joins_spanned_segments_and_reports_a_broken_chain() {
        let mut f = rdw_rec(b"abc", 1);
        f.extend(rdw_rec(b"def", 3));
        f.extend(rdw_rec(b"gh", 2));
        f.extend([0xFF, 0xFF, 0xFF, 0xFF, 0xEE]); // garbage
        f.extend(rdw_rec(b"next", 0));
        f.extend(rdw_rec(b"more", 0));
        f.extend(rdw_rec(b"last", 0));
        let mut d = Deframer::new(&f[..], Framing::Rdw, None);
        let mut r = Report::default();
        let mut out = Vec::new();
        let mut pieces = Vec::new();
        while let Some(p) = d.next_into(&mut out, &mut r).unwrap() {
            pieces.push(p);
        }
        // The broken descriptor is skipped; the byte after it, up to the next plausible
        // chain, is handed on as an unframed record for the CTE scanner to judge.
        assert_eq!(out, b"abcdefgh\xEEnextmorelast");
        assert_eq!(
            pieces.iter().map(|p| p.starts_record).collect::<Vec<_>>(),
            [true, false, false, true, true, true, true]
        );
        assert_eq!(pieces[3].len, 1);
        assert_eq!(pieces[4].record, 3);
        assert_eq!(r.bytes_skipped, 4);
        assert_eq!(r.resyncs, 1);
        assert_eq!(r.issues[0].offset, 20);
    }

    #[test]
    fn raw_fixed_length_records() {
        let f: Vec<u8> = (0..25u8).collect();
        let mut d = Deframer::new(&f[..], Framing::Raw, Some(10));
        let mut r = Report::default();
        let mut out = Vec::new();
        let mut lens = Vec::new();
        while let Some(p) = d.next_into(&mut out, &mut r).unwrap() {
            assert!(p.starts_record);
            lens.push((p.offset, p.len));
        }
        assert_eq!(lens, [(0, 10), (10, 10), (20, 5)]);
    }
}
