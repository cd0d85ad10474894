//! Synthesizer, input side: reads a legacy pcap or pcapng capture one packet at a time
//! (streaming, bounded memory) and gives each packet's link type, exact capture time in
//! nanoseconds, original length and captured bytes.
//!
//! Parsing is pcap-parser's; this module adds what it leaves to the caller: choosing the
//! reader without requiring `Send`, refilling and growing its buffer, pcapng interfaces
//! per section with their timestamp resolution and offset (read here in the section's
//! byte order, since the library reads `if_tsoffset` as little-endian always), and
//! turning every failure into an `Error` instead of a panic.

use std::io::{Chain, Cursor, Read};
use std::path::PathBuf;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};

use crate::Error;

/// Initial size of the reader's buffer; it grows for larger blocks.
const INITIAL_BUFFER: usize = 256 << 10;
/// Largest block we are willing to buffer. Real packets are at most a few hundred KiB;
/// a larger length is a corrupt header, not a packet.
const MAX_BUFFER: usize = 64 << 20;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const LEGACY_MAGICS: [u32; 6] = [
    0xA1B2_C3D4, // microseconds
    0xA1B2_3C4D, // nanoseconds
    0xA1B2_CD34, // Kuznetzov's modified format, microseconds
    0xD4C3_B2A1,
    0x4D3C_B2A1,
    0x34CD_B2A1,
];

const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

pub(super) fn capture_error(reason: impl Into<String>) -> Error {
    Error::Capture {
        path: PathBuf::new(),
        reason: reason.into(),
    }
}

/// One captured packet. `data` is reused from packet to packet.
#[derive(Debug, Default)]
pub(super) struct Frame {
    pub linktype: u32,
    /// Capture time, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    /// Length on the wire as the capture states it (never below the captured length).
    pub orig_len: u64,
    pub data: Vec<u8>,
    /// 1-based number of this frame in the capture (kept by the caller).
    pub number: u64,
}

/// Units per second and offset of one pcapng interface.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second (10^n or 2^n).
    per_second: u128,
    /// if_tsoffset: seconds added to every timestamp.
    offset_s: i64,
}

type Src<R> = Chain<Cursor<Vec<u8>>, R>;

enum Reader<R: Read> {
    Legacy(LegacyPcapReader<Src<R>>),
    Ng(PcapNGReader<Src<R>>),
}

/// What one parsed block came to, owned so the reader can move on.
enum Step {
    Packet(usize),
    Other(usize),
    Eof,
    Refill,
    Grow,
    Truncated,
    Fail(String),
}

#[derive(Default)]
struct State {
    legacy_linktype: u32,
    legacy_nanos: bool,
    big_endian: bool,
    interfaces: Vec<Interface>,
}

pub(super) struct CaptureReader<R: Read> {
    reader: Reader<R>,
    state: State,
    capacity: usize,
    /// pcapng simple packet blocks skipped (they carry no timestamp).
    pub simple_blocks: u64,
    /// The capture ended inside a packet record; the packets before it were read.
    pub truncated: bool,
}

impl<R: Read> CaptureReader<R> {
    /// Recognises the format from the first bytes and prepares the matching reader.
    pub fn new(mut src: R) -> Result<CaptureReader<R>, Error> {
        // pcap-parser parses the file header from its first `read` only, so hand it a
        // prefix that is already complete (a short read from a pipe would break it).
        let mut prefix = Vec::with_capacity(INITIAL_BUFFER);
        (&mut src)
            .take(INITIAL_BUFFER as u64)
            .read_to_end(&mut prefix)
            .map_err(Error::Unlocated)?;
        if prefix.is_empty() {
            return Err(capture_error("the capture file is empty"));
        }
        let magic = prefix
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| capture_error("file shorter than a capture header"))?;
        let src = Cursor::new(prefix).chain(src);
        let fail = |e: PcapError<&[u8]>| capture_error(describe(&e, 0));
        let reader = if magic == PCAPNG_SHB {
            Reader::Ng(PcapNGReader::new(INITIAL_BUFFER, src).map_err(fail)?)
        } else if LEGACY_MAGICS.contains(&magic) {
            Reader::Legacy(LegacyPcapReader::new(INITIAL_BUFFER, src).map_err(fail)?)
        } else {
            return Err(capture_error(format!(
                "unknown file magic {magic:08X} (expected pcap or pcapng)"
            )));
        };
        Ok(CaptureReader {
            reader,
            state: State::default(),
            capacity: INITIAL_BUFFER,
            simple_blocks: 0,
            truncated: false,
        })
    }

    fn it(&mut self) -> &mut dyn PcapReaderIterator {
        match &mut self.reader {
            Reader::Legacy(r) => r,
            Reader::Ng(r) => r,
        }
    }

    /// Reads the next packet into `frame`. `Ok(false)` at the end of the capture.
    pub fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, Error> {
        loop {
            let consumed = self.it().consumed();
            let step = {
                let (reader, state) = match &mut self.reader {
                    Reader::Legacy(r) => (r as &mut dyn PcapReaderIterator, &mut self.state),
                    Reader::Ng(r) => (r as &mut dyn PcapReaderIterator, &mut self.state),
                };
                match reader.next() {
                    Ok((len, block)) => match state.take(block, frame) {
                        Ok(Some(true)) => Step::Packet(len),
                        Ok(Some(false)) => {
                            self.simple_blocks += 1;
                            Step::Other(len)
                        }
                        Ok(None) => Step::Other(len),
                        Err(e) => return Err(e),
                    },
                    Err(PcapError::Eof) => Step::Eof,
                    Err(PcapError::Incomplete(_)) => Step::Refill,
                    Err(PcapError::BufferTooSmall) => Step::Grow,
                    Err(PcapError::UnexpectedEof) => Step::Truncated,
                    Err(e) => Step::Fail(describe(&e, consumed)),
                }
            };
            match step {
                Step::Packet(len) => {
                    self.it().consume(len);
                    return Ok(true);
                }
                Step::Other(len) => self.it().consume(len),
                Step::Eof => return Ok(false),
                Step::Truncated => {
                    self.truncated = true;
                    return Ok(false);
                }
                Step::Fail(reason) => return Err(capture_error(reason)),
                Step::Refill => {
                    let before = self.it().data().len();
                    self.refill()?;
                    // No new bytes and the source is not at its end: the buffer is full
                    // of one incomplete block; make room.
                    if self.it().data().len() == before && !self.it().reader_exhausted() {
                        self.grow(consumed)?;
                    }
                }
                Step::Grow => {
                    self.grow(consumed)?;
                    self.refill()?;
                }
            }
        }
    }

    fn refill(&mut self) -> Result<(), Error> {
        self.it()
            .refill()
            .map_err(|e| capture_error(describe(&e, 0)))
    }

    fn grow(&mut self, at: usize) -> Result<(), Error> {
        let want = self.capacity * 2;
        if want > MAX_BUFFER || !self.it().grow(want) {
            return Err(capture_error(format!(
                "capture block at byte {at} is larger than {} MiB: corrupt length?",
                MAX_BUFFER >> 20
            )));
        }
        self.capacity = want;
        Ok(())
    }
}

/// A message for a pcap-parser error, without the (possibly huge) input it carries.
fn describe(e: &PcapError<&[u8]>, at: usize) -> String {
    match e {
        PcapError::Eof | PcapError::UnexpectedEof => "unexpected end of file".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::HeaderNotRecognized => "file header not recognised".into(),
        PcapError::BufferTooSmall => "capture block too large".into(),
        PcapError::Incomplete(_) => "file ends inside its header".into(),
        PcapError::NomError(_, k) | PcapError::OwnedNomError(_, k) => {
            format!("malformed capture block at byte {at} ({k:?})")
        }
    }
}

impl State {
    /// Handles one block: `Some(true)` = a packet is in `frame`, `Some(false)` = a
    /// packet we cannot use (simple packet block), `None` = not a packet.
    fn take(
        &mut self,
        block: PcapBlockOwned<'_>,
        frame: &mut Frame,
    ) -> Result<Option<bool>, Error> {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy_linktype = link_type(h.network.0);
                self.legacy_nanos = h.is_nanosecond_precision();
                Ok(None)
            }
            PcapBlockOwned::Legacy(b) => {
                let unit: i64 = if self.legacy_nanos { 1 } else { 1000 };
                // u32 seconds (good to 2106) and a fraction below 2^32: fits i64.
                frame.time_ns = i64::from(b.ts_sec) * 1_000_000_000 + i64::from(b.ts_usec) * unit;
                frame.linktype = self.legacy_linktype;
                frame.orig_len = u64::from(b.origlen).max(b.data.len() as u64);
                frame.data.clear();
                frame.data.extend_from_slice(b.data);
                Ok(Some(true))
            }
            PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                // Interface numbers are per section.
                self.big_endian = shb.big_endian();
                self.interfaces.clear();
                Ok(None)
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let mut resol = 6u8;
                let mut offset_s = 0i64;
                for opt in &idb.options {
                    let Ok(v) = opt.as_bytes() else { continue };
                    match opt.code.0 {
                        OPT_IF_TSRESOL if !v.is_empty() => resol = v[0],
                        OPT_IF_TSOFFSET if v.len() >= 8 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&v[..8]);
                            offset_s = if self.big_endian {
                                i64::from_be_bytes(b)
                            } else {
                                i64::from_le_bytes(b)
                            };
                        }
                        _ => {}
                    }
                }
                let per_second = if resol & 0x80 != 0 {
                    let e = u32::from(resol & 0x7F);
                    (e <= 64).then(|| 1u128 << e)
                } else {
                    (resol <= 30).then(|| 10u128.pow(u32::from(resol)))
                }
                .ok_or_else(|| capture_error(format!("if_tsresol {resol:#04X} out of range")))?;
                self.interfaces.push(Interface {
                    linktype: link_type(idb.linktype.0),
                    per_second,
                    offset_s,
                });
                Ok(None)
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let iface = *self.interfaces.get(epb.if_id as usize).ok_or_else(|| {
                    capture_error(format!(
                        "packet for interface {} which the section does not describe",
                        epb.if_id
                    ))
                })?;
                let ts = (u128::from(epb.ts_high) << 32) | u128::from(epb.ts_low);
                // Exact for every resolution down to nanoseconds; finer ones truncate.
                let ns = (ts * 1_000_000_000 / iface.per_second) as i128
                    + i128::from(iface.offset_s) * 1_000_000_000;
                frame.time_ns = i64::try_from(ns)
                    .map_err(|_| capture_error("packet timestamp out of range"))?;
                frame.linktype = iface.linktype;
                let data = epb.packet_data();
                frame.orig_len = u64::from(epb.origlen).max(data.len() as u64);
                frame.data.clear();
                frame.data.extend_from_slice(data);
                Ok(Some(true))
            }
            PcapBlockOwned::NG(Block::SimplePacket(_)) => Ok(Some(false)),
            PcapBlockOwned::NG(_) => Ok(None),
        }
    }
}

/// The link type proper: the low 16 bits. In legacy pcap the upper bits may carry the
/// FCS length flags, and the library hands the field over as `i32`.
fn link_type(v: i32) -> u32 {
    (v as u32) & 0xFFFF
}
