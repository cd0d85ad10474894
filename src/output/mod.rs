//! Last stage: writers for what the user opens. pcapng (Wireshark), classic pcap for
//! libpcap-based tools, and the per-record dump.

pub mod background;
pub mod csv;
pub mod dump;
pub mod file;
pub mod libpcap;
pub mod pcapng;
pub mod record;

use crate::packet::Packet;
use crate::trace::DiscardTable;

/// The notes a packet carries into pcapng comments (formats/pcapng.md).
pub fn packet_comments(p: &Packet, discards: &DiscardTable) -> Vec<String> {
    let mut v = Vec::new();
    if p.discard.is_discard() {
        v.push(discards.comment(p.discard));
    }
    v.extend(packet_notes(p));
    if let Some(why) = &p.not_ethernet {
        v.push(format!("not an Ethernet frame: {why}"));
    }
    v
}

/// The comments other than the discard (which packets.csv has columns for):
/// abbreviated, incomplete, reassembled.
pub fn packet_notes(p: &Packet) -> Vec<String> {
    let mut v = Vec::new();
    if p.abbreviated() {
        v.push(format!(
            "abbreviated: {} of {} bytes traced",
            p.data.len(),
            p.orig_len
        ));
    }
    if p.incomplete {
        v.push(format!(
            "incomplete: segments missing ({} of {} bytes traced in {} trace record{})",
            p.data.len(),
            p.orig_len,
            p.segments,
            if p.segments == 1 { "" } else { "s" }
        ));
    } else if p.segments > 1 {
        v.push(format!("reassembled from {} trace records", p.segments));
    }
    v
}
