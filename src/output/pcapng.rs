//! pcapng for Wireshark (formats/pcapng.md): one interface per (name, link type), ns
//! timestamps with if_tsresol = 9, direction flags, true original lengths, comments for
//! discarded / abbreviated / reassembled / incomplete packets, statistics at the end.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness};

use crate::Error;
use crate::packet::{Link, Packet};
use crate::trace::{DiscardTable, FormatId};

/// What the section header says about the source.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub source: String,
    pub framing: String,
    pub header_len: Option<usize>,
    pub component: Option<String>,
    pub system: Option<String>,
}

impl Section {
    pub fn comment(&self) -> String {
        let mut s = format!(
            "z/OS component trace {}; framing {}",
            self.source, self.framing
        );
        if let Some(h) = self.header_len {
            s += &format!("; writer header {h} bytes");
        }
        if let Some(c) = &self.component {
            s += &format!("; component {c}");
        }
        if let Some(y) = &self.system {
            s += &format!("; system {y}");
        }
        s
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct IfStats {
    first: i64,
    last: i64,
    packets: u64,
}

pub fn linktype(link: Link) -> DataLink {
    match link {
        Link::Raw => DataLink::RAW,
        Link::Ethernet => DataLink::ETHERNET,
    }
}

fn component(fmt: FormatId) -> &'static str {
    match fmt {
        FormatId::OSAENTA => "SYSTCPOT OSAENTA",
        FormatId::EE => "SYSTCPDA Enterprise Extender packet trace",
        _ => "SYSTCPDA packet trace",
    }
}

/// pcap-file 2.0.0 writes 64-bit timestamps as one u64, which in a little-endian
/// section puts the low word first; pcapng wants the high word first. Swapping the
/// words before handing the value over gives the right bytes.
fn ts_words(ns: u64) -> u64 {
    ns.rotate_left(32)
}

fn duration(ns: i64) -> Duration {
    Duration::from_nanos(ns.max(0) as u64)
}

pub struct Writer<W: Write> {
    w: PcapNgWriter<W>,
    ifaces: HashMap<(String, Link), u32>,
    stats: Vec<IfStats>,
}

fn pcap_err(e: pcap_file::PcapError) -> Error {
    match e {
        pcap_file::PcapError::IoError(io) => Error::Unlocated(io),
        other => Error::Pcap(other.to_string()),
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, section: &Section) -> Result<Writer<W>, Error> {
        let shb = SectionHeaderBlock {
            endianness: Endianness::Little,
            major_version: 1,
            minor_version: 0,
            section_length: -1,
            options: vec![
                SectionHeaderOption::UserApplication(Cow::Owned(format!(
                    "zctrace {}",
                    env!("CARGO_PKG_VERSION")
                ))),
                SectionHeaderOption::Comment(Cow::Owned(section.comment())),
            ],
        };
        let w = PcapNgWriter::with_section_header(out, shb).map_err(pcap_err)?;
        Ok(Writer {
            w,
            ifaces: HashMap::new(),
            stats: Vec::new(),
        })
    }

    fn interface(&mut self, p: &Packet) -> Result<u32, Error> {
        if let Some(&id) = self.ifaces.get(&(p.interface.clone(), p.link)) {
            return Ok(id);
        }
        let id = self.stats.len() as u32;
        let idb = InterfaceDescriptionBlock {
            linktype: linktype(p.link),
            snaplen: 262_144,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(p.interface.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "device type {}; {}",
                    p.dev_type,
                    component(p.format)
                ))),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.w.write_pcapng_block(idb).map_err(pcap_err)?;
        self.ifaces.insert((p.interface.clone(), p.link), id);
        self.stats.push(IfStats {
            first: p.time_ns,
            last: p.time_ns,
            packets: 0,
        });
        Ok(id)
    }

    pub fn write(&mut self, p: &Packet, discards: &DiscardTable) -> Result<(), Error> {
        let id = self.interface(p)?;
        let s = &mut self.stats[id as usize];
        s.first = s.first.min(p.time_ns);
        s.last = s.last.max(p.time_ns);
        s.packets += 1;
        let mut opts = Vec::with_capacity(2);
        for c in super::packet_comments(p, discards) {
            opts.push(EnhancedPacketOption::Comment(Cow::Owned(c)));
        }
        // epb_flags bits 0-1: 01 inbound, 10 outbound.
        opts.push(EnhancedPacketOption::Flags(if p.outbound() {
            2
        } else {
            1
        }));
        let epb = EnhancedPacketBlock {
            interface_id: id,
            timestamp: duration(p.time_ns),
            original_len: p.orig_len.max(p.data.len() as u32),
            data: Cow::Borrowed(&p.data),
            options: opts,
        };
        self.w.write_pcapng_block(epb).map_err(pcap_err)?;
        Ok(())
    }

    /// Writes the interface statistics and returns the output.
    pub fn finish(mut self) -> Result<W, Error> {
        for (id, s) in self.stats.iter().enumerate() {
            let isb = InterfaceStatisticsBlock {
                interface_id: id as u32,
                timestamp: ts_words(s.last.max(0) as u64),
                options: vec![
                    InterfaceStatisticsOption::IsbStartTime(ts_words(s.first.max(0) as u64)),
                    InterfaceStatisticsOption::IsbEndTime(ts_words(s.last.max(0) as u64)),
                    InterfaceStatisticsOption::IsbIfRecv(s.packets),
                ],
            };
            self.w.write_pcapng_block(isb).map_err(pcap_err)?;
        }
        Ok(self.w.into_inner())
    }
}
