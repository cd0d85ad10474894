//! pcapng for Wireshark (formats/pcapng.md): one interface per (name, link type), ns
//! timestamps with if_tsresol = 9, direction flags, true original lengths, comments for
//! discarded / abbreviated / reassembled / incomplete packets, statistics at the end.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::{DataLink, Endianness};

use crate::Error;
use crate::packet::{LastInterface, Link, Packet};
use crate::trace::{DiscardTable, FormatId};

/// What the section header says about the source.
#[derive(Clone, Debug, Default)]
pub struct Section {
    pub source: String,
    pub framing: String,
    pub header_len: Option<usize>,
    pub component: Option<String>,
    pub system: Option<String>,
    /// A merge (`convert --merge`): the sections of the inputs, in their order.
    pub parts: Vec<Section>,
}

impl Section {
    pub fn comment(&self) -> String {
        if !self.parts.is_empty() {
            let v: Vec<String> = self.parts.iter().map(Section::comment).collect();
            return format!("merged in time order: {}", v.join(" | "));
        }
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
        Link::Smc => DataLink::USER0,
        Link::DataTrace => DataLink::WIRESHARK_UPPER_PDU,
    }
}

fn component(fmt: FormatId) -> &'static str {
    match fmt {
        FormatId::OSAENTA => "SYSTCPOT OSAENTA",
        FormatId::EE => "SYSTCPDA Enterprise Extender packet trace",
        FormatId::SMC => "SYSTCPDA SMC trace (records kept whole, layout unpublished)",
        FormatId::DATA => "SYSTCPDA data trace (socket data as exported PDUs)",
        _ => "SYSTCPDA packet trace",
    }
}

/// pcap-file 2.0.0 writes 64-bit timestamps as one u64, which in a little-endian
/// section puts the low word first; pcapng wants the high word first. Swapping the
/// words before handing the value over gives the right bytes.
fn ts_words(ns: u64) -> u64 {
    ns.rotate_left(32)
}

pub struct Writer<W: Write> {
    w: PcapNgWriter<W>,
    ifaces: HashMap<(String, Link), u32>,
    stats: Vec<IfStats>,
    /// The last packet's interface, link type and pcapng interface id.
    last: Option<(LastInterface, Link, u32)>,
    /// Scratch space for exported PDUs (data trace).
    pdu: Vec<u8>,
}

/// The LINKTYPE_WIRESHARK_UPPER_PDU header of a data-trace record (formats/pcapng.md):
/// type-length-value tags, big-endian, values padded to 4 bytes. The dissector is
/// chosen by port table (`tcp.port`/`udp.port` and the lower, well-known port) so that
/// Wireshark can tell requests from replies by the ports; addresses and ports come from
/// the PTHDR, which gives them as the record travelled (source = sender).
fn exported_pdu_tags(out: &mut Vec<u8>, p: &Packet) {
    fn tag(out: &mut Vec<u8>, t: u16, v: &[u8]) {
        let padded = v.len().div_ceil(4) * 4;
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&(padded as u16).to_be_bytes());
        out.extend_from_slice(v);
        out.resize(out.len() + padded - v.len(), 0);
    }
    let h = &p.header;
    let proto = p.data_trace.as_ref().map_or(0, |d| d.protocol);
    let ports = h.ports.unwrap_or([0, 0]);
    let table = match proto {
        6 => Some(("tcp.port", 2u32)),
        17 => Some(("udp.port", 3u32)),
        _ => None,
    };
    match table {
        Some((name, _)) => {
            tag(out, 14, name.as_bytes());
            let well_known = match (ports[0], ports[1]) {
                (0, b) => b,
                (a, 0) => a,
                (a, b) => a.min(b),
            };
            tag(out, 32, &u32::from(well_known).to_be_bytes());
        }
        // Not TCP or UDP: shown as data.
        None => tag(out, 12, b"data"),
    }
    for (t4, t6, a) in [(20u16, 22u16, h.src_ip()), (21, 23, h.dst_ip())] {
        match a {
            Some(std::net::IpAddr::V4(v4)) => tag(out, t4, &v4.octets()),
            Some(std::net::IpAddr::V6(v6)) => tag(out, t6, &v6.octets()),
            None => {}
        }
    }
    if let Some((_, port_type)) = table {
        tag(out, 24, &port_type.to_be_bytes());
        tag(out, 25, &u32::from(ports[0]).to_be_bytes());
        tag(out, 26, &u32::from(ports[1]).to_be_bytes());
    }
    tag(out, 0, &[]);
}

/// Writes an enhanced packet block (formats/pcapng.md) straight to the output. The
/// section, interface and statistics blocks go through pcap-file; packets, by far the
/// most blocks, are laid out here because building each through pcap-file's block
/// model cost more than all of the decoding.
fn write_epb(
    w: &mut impl Write,
    iface: u32,
    ts_ns: u64,
    data: &[u8],
    orig_len: u32,
    flags: u32,
    comments: &[String],
) -> std::io::Result<()> {
    let pad = |n: usize| (4 - n % 4) % 4;
    // An option holds at most 65535 bytes: longer comments (a very long discard
    // meaning from --discard-codes) are cut at a character boundary.
    let fit = |c: &str| {
        let mut end = c.len().min(0xFFFF);
        while !c.is_char_boundary(end) {
            end -= 1;
        }
        end
    };
    // The common case (no comments) skips the collecting altogether: it showed in
    // profiles as a call per packet.
    let comments: Vec<&str> = if comments.is_empty() {
        Vec::new()
    } else {
        comments.iter().map(|c| &c[..fit(c)]).collect()
    };
    let data_len = data.len() + pad(data.len());
    let mut opts_len = 8; // epb_flags
    for c in &comments {
        opts_len += 4 + c.len() + pad(c.len());
    }
    opts_len += 4; // opt_endofopt
    let total = (28 + data_len + opts_len + 4) as u32;
    let mut head = [0u8; 28];
    head[0..4].copy_from_slice(&6u32.to_le_bytes());
    head[4..8].copy_from_slice(&total.to_le_bytes());
    head[8..12].copy_from_slice(&iface.to_le_bytes());
    head[12..16].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
    head[16..20].copy_from_slice(&(ts_ns as u32).to_le_bytes());
    head[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
    head[24..28].copy_from_slice(&orig_len.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(data)?;
    // The data's padding, then (comments aside) the flags, the end of options and the
    // trailing length: one write for the common case.
    let mut tail = [0u8; 19];
    let mut at = pad(data.len());
    if !comments.is_empty() {
        w.write_all(&tail[..at])?;
        at = 0;
        for c in &comments {
            w.write_all(&1u16.to_le_bytes())?;
            w.write_all(&(c.len() as u16).to_le_bytes())?;
            w.write_all(c.as_bytes())?;
            w.write_all(&[0u8; 3][..pad(c.len())])?;
        }
    }
    tail[at..at + 2].copy_from_slice(&2u16.to_le_bytes());
    tail[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes());
    tail[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
    // tail[at + 8..at + 12]: opt_endofopt (zero)
    tail[at + 12..at + 16].copy_from_slice(&total.to_le_bytes());
    w.write_all(&tail[..at + 16])
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
            last: None,
            pdu: Vec::new(),
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
        // Consecutive packets nearly always share their interface: no lookup then.
        let id = if let Some((last, link, id)) = &mut self.last
            && *link == p.link
            && last.matches(p)
        {
            *id
        } else {
            let id = self.interface(p)?;
            self.last = Some((LastInterface::of(p), p.link, id));
            id
        };
        let s = &mut self.stats[id as usize];
        s.first = s.first.min(p.time_ns);
        s.last = s.last.max(p.time_ns);
        s.packets += 1;
        let mut comments = if p.discard.is_discard()
            || p.abbreviated()
            || p.incomplete
            || p.segments > 1
            || p.not_ethernet.is_some()
        {
            super::packet_comments(p, discards)
        } else {
            Vec::new()
        };
        // epb_flags bits 0-1: 01 inbound, 10 outbound.
        let flags = if p.outbound() { 2 } else { 1 };
        let orig = p.orig_len.max(p.data.len() as u32);
        if p.link == Link::DataTrace {
            // An exported PDU: the socket's addresses and ports, the port table entry
            // that picks the dissector, then the application bytes.
            self.pdu.clear();
            exported_pdu_tags(&mut self.pdu, p);
            let tags = self.pdu.len() as u32;
            self.pdu.extend_from_slice(&p.data);
            if let Some(d) = &p.data_trace {
                comments.push(format!(
                    "data trace: job {}, {} record{}",
                    d.job,
                    d.state_name(),
                    if p.data.is_empty() { " (no data)" } else { "" }
                ));
            }
            return write_epb(
                self.w.get_mut(),
                id,
                p.time_ns.max(0) as u64,
                &self.pdu,
                tags + orig,
                flags,
                &comments,
            )
            .map_err(Error::Unlocated);
        }
        write_epb(
            self.w.get_mut(),
            id,
            p.time_ns.max(0) as u64,
            &p.data,
            orig,
            flags,
            &comments,
        )
        .map_err(Error::Unlocated)
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
