//! Adapter and stack side by side (`convert --merge`, path.csv): each packet of an
//! OSAENTA trace (the adapter's view) matched with the same packet in a packet trace of
//! the same traffic (the stack's view), and where it was last seen. Downstream of
//! `net`; `output::csv` writes its rows.
//!
//! Two sightings are the same packet when their IP headers agree on addresses,
//! protocol, ports, IP id, IP length, TCP sequence and acknowledgement numbers, and the
//! IP bytes both traces hold (up to [`COMPARED`]) are equal: that tells retransmissions
//! (new IP id) and repeated datagrams (other bytes) apart. Sightings are kept for
//! `window` ns of trace time and then reported unmatched, so memory is bounded by the
//! traffic of one window, not by the trace.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use crate::net::{self, View};
use crate::trace::tod::iso8601_at;
use crate::trace::{DiscardCode, DiscardTable};

/// IP bytes kept per sighting to compare candidates.
pub const COMPARED: usize = 96;
/// Sightings waiting for their pair at most (beyond this the oldest is reported
/// unmatched early, and counted).
pub const MAX_PENDING: usize = 1 << 20;
/// Waiting sightings of one key compared with a new one at most.
const MAX_CANDIDATES: usize = 16;
/// Default match window: 1 s.
pub const DEFAULT_WINDOW_NS: i64 = 1_000_000_000;

/// Which trace a packet comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// OSAENTA (format id 7): the frame as the adapter saw it.
    Osa,
    /// Packet trace (format ids 4 and 6): the packet as the stack saw it.
    Stack,
}

/// One packet handed to the correlator.
#[derive(Clone, Copy, Debug)]
pub struct Sighting<'a> {
    pub side: Side,
    /// Frame number in the merged pcapng; 0 when the packet is not in it (filtered
    /// out): it still counts for the path, and its row's number stays empty.
    pub frame: u64,
    pub time_ns: i64,
    pub outbound: bool,
    /// Its headers (`net::view` of the packet).
    pub view: &'a net::View<'a>,
    pub discard: DiscardCode,
    /// The system whose traces these are (a merge of several systems pairs each
    /// system's adapter and stack sightings only with each other).
    pub system: u8,
}

/// A path.csv row (outputs.md section 10). Field names are the column names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathRow {
    pub no_osa: Option<u64>,
    pub no_stack: Option<u64>,
    pub time_osa: String,
    pub time_stack: String,
    pub latency_ns: Option<i64>,
    pub local_ip: String,
    pub local_port: Option<u16>,
    pub remote_ip: String,
    pub remote_port: Option<u16>,
    pub protocol: String,
    pub direction: &'static str,
    #[serde(rename = "where")]
    pub where_: &'static str,
    pub code: Option<u16>,
    pub discard: String,
}

/// Where a packet was last seen (path.csv `where`).
pub mod place {
    /// Seen by the stack (inbound, not discarded) or by the adapter (outbound, not
    /// discarded there).
    pub const DELIVERED: &str = "delivered";
    /// The adapter discarded it.
    pub const OSA_DROPPED: &str = "osa-dropped";
    /// The stack discarded it.
    pub const STACK_DROPPED: &str = "stack-dropped";
    /// Inbound, seen only by the adapter: never reached the stack (or belongs to
    /// another host sharing the adapter), and the adapter did not discard it.
    pub const WIRE_ONLY: &str = "wire-only";
    /// Outbound, seen only by the stack and not discarded: the adapter trace never
    /// saw it leave. Not in outputs.md's list; added because such a packet is neither
    /// delivered nor dropped as far as the traces tell.
    pub const STACK_ONLY: &str = "stack-only";
}

/// What the correlation found, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub osa: u64,
    pub stack: u64,
    /// Rows by `where`.
    pub places: std::collections::BTreeMap<&'static str, u64>,
    /// Packets seen on both sides.
    pub matched: u64,
    /// Latency of matched packets, inbound and outbound: (count, min, max, sum).
    pub latency_in: Latency,
    pub latency_out: Latency,
    /// Sightings reported unmatched early because too many were waiting.
    pub evicted: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub min: i64,
    pub max: i64,
    pub sum: i128,
}

impl Latency {
    fn add(&mut self, ns: i64) {
        if self.count == 0 {
            self.min = ns;
            self.max = ns;
        }
        self.count += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += i128::from(ns);
    }

    pub fn mean(&self) -> Option<i64> {
        (self.count > 0).then(|| (self.sum / i128::from(self.count)) as i64)
    }
}

impl Stats {
    /// Lines for the per-file summary.
    pub fn render(&self) -> String {
        let mut s = format!(
            "  path: {} adapter (OSAENTA) and {} stack packets decoded; in the output {} seen on both",
            self.osa, self.stack, self.matched
        );
        for (k, n) in &self.places {
            s.push_str(&format!(", {n} {k}"));
        }
        s.push('\n');
        for (dir, l) in [
            ("inbound", &self.latency_in),
            ("outbound", &self.latency_out),
        ] {
            if let Some(mean) = l.mean() {
                s.push_str(&format!(
                    "  path latency {dir} (adapter {} stack): min {} ns, mean {mean} ns, max {} ns over {} packets\n",
                    if dir == "inbound" { "to" } else { "from" },
                    l.min,
                    l.max,
                    l.count
                ));
            }
        }
        if self.evicted > 0 {
            s.push_str(&format!(
                "  path: {} packets reported unmatched early ({} waiting at most)\n",
                self.evicted, MAX_PENDING
            ));
        }
        s
    }
}

/// What identifies a packet in both traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ports: (u16, u16),
    ip_id: Option<u16>,
    ip_len: u32,
    seq_ack: Option<(u32, u32)>,
}

#[derive(Clone, Copy, Debug)]
struct Seen {
    frame: u64,
    time_ns: i64,
    outbound: bool,
    discard: DiscardCode,
}

struct Entry {
    key: Option<Key>,
    system: u8,
    /// The first IP bytes of the packet (to compare candidates).
    head: Vec<u8>,
    first_ns: i64,
    osa: Option<Seen>,
    stack: Option<Seen>,
    /// Nothing more can come: the adapter discarded an inbound packet (the stack never
    /// gets it) or the stack an outbound one (the adapter never gets it).
    done: bool,
    /// The row's endpoint columns, filled when the entry is made, seen as
    /// `first_outbound` says.
    row: PathRow,
    first_outbound: bool,
}

impl Entry {
    fn complete(&self) -> bool {
        self.done || (self.osa.is_some() && self.stack.is_some())
    }
}

/// Matches sightings and hands out rows in the order of first sighting.
pub struct Correlator {
    window_ns: i64,
    /// Offset from UTC for the time columns (`--localtime`).
    utc_offset: Option<i32>,
    /// Entries in order of first sighting; `base` is the id of the front one.
    queue: VecDeque<Entry>,
    base: u64,
    /// Ids of entries waiting for a sighting of one side, by key and that side,
    /// oldest first. Every id listed is still in `queue`: a match removes it, and the
    /// entry leaving `queue` (always the oldest) is at the front of its list.
    waiting: HashMap<(Key, u8, Side), VecDeque<u64>>,
    stats: Stats,
}

impl Correlator {
    pub fn new(window_ns: i64, utc_offset: Option<i32>) -> Correlator {
        Correlator {
            window_ns: window_ns.max(0),
            utc_offset,
            queue: VecDeque::new(),
            base: 0,
            waiting: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Adds a sighting; rows that are settled (matched, or out of the window) go to
    /// `out`.
    pub fn push(
        &mut self,
        s: &Sighting<'_>,
        discards: &DiscardTable,
        out: &mut impl FnMut(&PathRow) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match s.side {
            Side::Osa => self.stats.osa += 1,
            Side::Stack => self.stats.stack += 1,
        }
        let v = s.view;
        let seen = Seen {
            frame: s.frame,
            time_ns: s.time_ns,
            outbound: s.outbound,
            discard: s.discard,
        };
        let key = key_of(v);
        // A packet dropped before the other trace point is final: it must not pair
        // with a later, identical packet (a repeated datagram) seen there.
        let done = s.discard.is_discard()
            && match s.side {
                Side::Osa => !s.outbound,
                Side::Stack => s.outbound,
            };
        let head = comparable_head(v);
        let mut matched = false;
        if let Some(k) = key
            && !done
            && let Some(ids) = self.waiting.get_mut(&(k, s.system, s.side))
        {
            // The oldest candidate is almost always the one; a few more are looked at
            // for packets whose headers agree but whose bytes differ.
            let found = ids.iter().take(MAX_CANDIDATES).position(|&id| {
                let e = &self.queue[(id - self.base) as usize];
                let n = e.head.len().min(head.len());
                e.head[..n] == head[..n]
                    && s.time_ns.abs_diff(e.first_ns) <= self.window_ns.unsigned_abs()
            });
            if let Some(i) = found {
                let id = ids.remove(i).unwrap_or_default();
                if ids.is_empty() {
                    self.waiting.remove(&(k, s.system, s.side));
                }
                let e = &mut self.queue[(id - self.base) as usize];
                match s.side {
                    Side::Osa => e.osa = Some(seen),
                    Side::Stack => e.stack = Some(seen),
                }
                matched = true;
            }
        }
        if !matched {
            let id = self.base + self.queue.len() as u64;
            let mut e = Entry {
                key,
                system: s.system,
                head,
                first_ns: s.time_ns,
                osa: None,
                stack: None,
                done,
                row: endpoints_row(v, s.outbound),
                first_outbound: s.outbound,
            };
            let wants = match s.side {
                Side::Osa => {
                    e.osa = Some(seen);
                    Side::Stack
                }
                Side::Stack => {
                    e.stack = Some(seen);
                    Side::Osa
                }
            };
            if let Some(k) = key
                && !done
            {
                self.waiting
                    .entry((k, s.system, wants))
                    .or_default()
                    .push_back(id);
            }
            self.queue.push_back(e);
        }
        self.settle(s.time_ns, false, discards, out)
    }

    /// Reports every entry still waiting; returns the statistics.
    pub fn finish(
        mut self,
        discards: &DiscardTable,
        out: &mut impl FnMut(&PathRow) -> std::io::Result<()>,
    ) -> std::io::Result<Stats> {
        self.settle(i64::MAX, true, discards, out)?;
        Ok(self.stats)
    }

    /// Hands out the front entries that are complete, past the window, or (when too
    /// many wait) the oldest.
    fn settle(
        &mut self,
        now: i64,
        all: bool,
        discards: &DiscardTable,
        out: &mut impl FnMut(&PathRow) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        while let Some(front) = self.queue.front() {
            let over = self.queue.len() > MAX_PENDING;
            let keyless = front.key.is_none();
            let expired = now.saturating_sub(front.first_ns) > self.window_ns;
            if !(all || over || keyless || expired || front.complete()) {
                break;
            }
            if over && !(all || keyless || expired || front.complete()) {
                self.stats.evicted += 1;
            }
            let Some(e) = self.queue.pop_front() else {
                break;
            };
            let id = self.base;
            self.base += 1;
            let wants = match (e.osa, e.stack) {
                (None, Some(_)) => Some(Side::Osa),
                (Some(_), None) => Some(Side::Stack),
                _ => None,
            };
            if let (Some(k), Some(side)) = (e.key, wants)
                && let Some(ids) = self.waiting.get_mut(&(k, e.system, side))
                && ids.front() == Some(&id)
            {
                ids.pop_front();
                if ids.is_empty() {
                    self.waiting.remove(&(k, e.system, side));
                }
            }
            if let Some(row) = self.row(e, discards) {
                out(&row)?;
            }
        }
        Ok(())
    }

    /// The row of a settled entry; `None` when neither sighting is in the output
    /// (filtered out).
    fn row(&mut self, e: Entry, discards: &DiscardTable) -> Option<PathRow> {
        let written = |s: Option<Seen>| s.map(|s| s.frame).filter(|&f| f > 0);
        if written(e.osa).is_none() && written(e.stack).is_none() {
            return None;
        }
        let mut r = e.row;
        // The stack knows best which way a packet went (the adapter's flags are its own).
        let outbound = e.stack.or(e.osa).is_some_and(|s| s.outbound);
        let osa_code = e.osa.map(|s| s.discard).filter(|d| d.is_discard());
        let stack_code = e.stack.map(|s| s.discard).filter(|d| d.is_discard());
        let (place, code) = if !outbound {
            match (e.osa, e.stack) {
                (_, Some(_)) if stack_code.is_some() => (place::STACK_DROPPED, stack_code),
                (_, Some(_)) => (place::DELIVERED, None),
                (Some(_), None) if osa_code.is_some() => (place::OSA_DROPPED, osa_code),
                _ => (place::WIRE_ONLY, None),
            }
        } else {
            match (e.osa, e.stack) {
                (Some(_), _) if osa_code.is_some() => (place::OSA_DROPPED, osa_code),
                (Some(_), _) => (place::DELIVERED, None),
                (None, Some(_)) if stack_code.is_some() => (place::STACK_DROPPED, stack_code),
                _ => (place::STACK_ONLY, None),
            }
        };
        if let (Some(o), Some(s)) = (e.osa, e.stack) {
            self.stats.matched += 1;
            let ns = if outbound {
                o.time_ns.saturating_sub(s.time_ns)
            } else {
                s.time_ns.saturating_sub(o.time_ns)
            };
            r.latency_ns = Some(ns);
            if outbound {
                self.stats.latency_out.add(ns);
            } else {
                self.stats.latency_in.add(ns);
            }
        }
        *self.stats.places.entry(place).or_default() += 1;
        r.no_osa = written(e.osa);
        r.no_stack = written(e.stack);
        let time = |s: Option<Seen>| {
            s.map_or_else(String::new, |s| iso8601_at(s.time_ns, self.utc_offset))
        };
        r.time_osa = time(e.osa);
        r.time_stack = time(e.stack);
        if outbound != e.first_outbound {
            std::mem::swap(&mut r.local_ip, &mut r.remote_ip);
            std::mem::swap(&mut r.local_port, &mut r.remote_port);
        }
        r.direction = if outbound { "out" } else { "in" };
        r.where_ = place;
        r.code = code.map(|c| c.0);
        r.discard = code.map_or_else(String::new, |c| discards.describe(c));
        Some(r)
    }
}

/// The endpoint columns as the first sighting tells them (swapped in `Correlator::row`
/// when the stack says the packet went the other way).
fn endpoints_row(v: &View<'_>, outbound: bool) -> PathRow {
    let s = |a: Option<IpAddr>| a.map_or_else(String::new, |a| a.to_string());
    let (local, remote, lp, rp) = if outbound {
        (v.src, v.dst, v.src_port, v.dst_port)
    } else {
        (v.dst, v.src, v.dst_port, v.src_port)
    };
    PathRow {
        local_ip: s(local),
        local_port: lp,
        remote_ip: s(remote),
        remote_port: rp,
        protocol: if v.arp {
            "ARP".into()
        } else {
            v.protocol
                .map_or_else(String::new, |p| super::msg::proto_name(p).into_owned())
        },
        ..PathRow::default()
    }
}

/// The first IP bytes of a packet with its checksums zeroed: with checksum offload
/// (the default on OSA-Express) the stack traces an outbound packet before the
/// adapter fills in the IPv4 header and TCP/UDP checksums.
fn comparable_head(v: &View<'_>) -> Vec<u8> {
    let mut h = v.ip[..v.ip.len().min(COMPARED)].to_vec();
    let transport = match h.first().map(|b| b >> 4) {
        Some(4) => {
            if let Some(c) = h.get_mut(10..12) {
                c.fill(0);
            }
            usize::from(h[0] & 0x0F) * 4
        }
        // Extension headers: the transport checksum is left in (rare, and offload
        // does not apply to most of them).
        Some(6) if matches!(h.get(6), Some(6 | 17)) => 40,
        _ => return h,
    };
    let at = match v.protocol {
        Some(6) => transport + 16,
        Some(17) => transport + 6,
        _ => return h,
    };
    if let Some(c) = h.get_mut(at..at + 2) {
        c.fill(0);
    }
    h
}

fn key_of(v: &View<'_>) -> Option<Key> {
    Some(Key {
        src: v.src?,
        dst: v.dst?,
        protocol: v.protocol?,
        ports: (v.src_port.unwrap_or(0), v.dst_port.unwrap_or(0)),
        ip_id: v.ip_id,
        ip_len: v.ip_len,
        seq_ack: v.tcp.as_ref().map(|t| (t.seq, t.ack)),
    })
}
