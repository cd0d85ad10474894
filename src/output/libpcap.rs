//! Classic pcap for libpcap-based tools (tcpdump, tcptrace, Zeek, Suricata). They reject
//! pcapng files whose interfaces differ in link type, so everything is written as
//! Ethernet: raw IP packets get a synthetic Ethernet II header (formats/pcapng.md).

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::Error;
use crate::packet::{Link, Packet};

/// MAC addresses of the synthetic header: the z/OS side is ...:01.
const ZOS_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const SYNTH_ETH_LEN: usize = 14;

pub struct Writer<W: Write> {
    w: PcapWriter<W>,
    frame: Vec<u8>,
}

fn err(e: pcap_file::PcapError) -> Error {
    match e {
        pcap_file::PcapError::IoError(io) => Error::Unlocated(io),
        other => Error::Pcap(other.to_string()),
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Result<Writer<W>, Error> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
        };
        Ok(Writer {
            w: PcapWriter::with_header(out, header).map_err(err)?,
            frame: Vec::with_capacity(65_600),
        })
    }

    /// Writes an IP packet or Ethernet frame; SMC records have no place in an Ethernet
    /// capture and are left out (false), for the caller to count.
    pub fn write(&mut self, p: &Packet) -> Result<bool, Error> {
        if matches!(p.link, Link::Smc | Link::DataTrace) {
            return Ok(false);
        }
        let ts = Duration::from_nanos(p.time_ns.max(0) as u64);
        let orig = p.orig_len.max(p.data.len() as u32);
        let pkt = match p.link {
            Link::Ethernet => PcapPacket {
                timestamp: ts,
                orig_len: orig,
                data: Cow::Borrowed(&p.data),
            },
            Link::Raw | Link::Smc | Link::DataTrace => {
                self.frame.clear();
                let (dst, src) = if p.outbound() {
                    (PEER_MAC, ZOS_MAC)
                } else {
                    (ZOS_MAC, PEER_MAC)
                };
                self.frame.extend_from_slice(&dst);
                self.frame.extend_from_slice(&src);
                let ethertype: u16 = match p.data.first().map(|b| b >> 4) {
                    Some(6) => 0x86DD,
                    _ => 0x0800,
                };
                self.frame.extend_from_slice(&ethertype.to_be_bytes());
                self.frame.extend_from_slice(&p.data);
                PcapPacket {
                    timestamp: ts,
                    orig_len: orig + SYNTH_ETH_LEN as u32,
                    data: Cow::Borrowed(&self.frame),
                }
            }
        };
        self.w.write_packet(&pkt).map_err(err)?;
        Ok(true)
    }

    pub fn finish(self) -> W {
        self.w.into_writer()
    }
}
