//! The exception scenarios of issue 3, each built from real or hand-made packets, put
//! through the synthesizer and zctrace: a PORT whose data connection never comes (lost
//! SYN), a PASV data SYN never answered, a DNS query answered by ICMP port unreachable,
//! fragmentation needed, an FTP brute force, discards by code.

mod common;

use std::net::Ipv4Addr;

use zctrace::analyze::rows::Collect;
use zctrace::synth;

/// A classic pcap (raw IPv4, link type 101) of `packets` (time in µs, bytes).
fn pcap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xA1B2_C3D4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(101u32.to_le_bytes());
    for (t, p) in packets {
        out.extend(((t / 1_000_000) as u32).to_le_bytes());
        out.extend(((t % 1_000_000) as u32).to_le_bytes());
        out.extend((p.len() as u32).to_le_bytes());
        out.extend((p.len() as u32).to_le_bytes());
        out.extend(p);
    }
    out
}

fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, id: u16, l4: &[u8]) -> Vec<u8> {
    let mut v = vec![0x45, 0];
    v.extend(((20 + l4.len()) as u16).to_be_bytes());
    v.extend(id.to_be_bytes());
    v.extend([0x40, 0, 64, proto, 0, 0]);
    v.extend(src.octets());
    v.extend(dst.octets());
    v.extend(l4);
    v
}

fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(sport.to_be_bytes());
    v.extend(dport.to_be_bytes());
    v.extend(seq.to_be_bytes());
    v.extend(ack.to_be_bytes());
    v.extend([0x50, flags]);
    v.extend(8192u16.to_be_bytes());
    v.extend([0, 0, 0, 0]);
    v.extend(payload);
    v
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// A TCP conversation from `c` (client) to `s`: handshake, then each (from_client, text)
/// as one segment acknowledged at once, then FINs. z/OS is the client.
struct Conv {
    c: (Ipv4Addr, u16),
    s: (Ipv4Addr, u16),
    cseq: u32,
    sseq: u32,
    t: u64,
    id: u16,
    out: Vec<(u64, Vec<u8>)>,
}

impl Conv {
    fn new(c: (Ipv4Addr, u16), s: (Ipv4Addr, u16), t: u64) -> Conv {
        Conv {
            c,
            s,
            cseq: 1000,
            sseq: 5000,
            t,
            id: 1,
            out: Vec::new(),
        }
    }
    fn send(&mut self, from_client: bool, flags: u8, payload: &[u8]) {
        let (a, b, seq, ack) = if from_client {
            (self.c, self.s, self.cseq, self.sseq)
        } else {
            (self.s, self.c, self.sseq, self.cseq)
        };
        self.t += 1000;
        self.id += 1;
        self.out.push((
            self.t,
            ipv4(
                6,
                a.0,
                b.0,
                self.id,
                &tcp(a.1, b.1, seq, ack, flags, payload),
            ),
        ));
        let adv = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            self.cseq += adv;
        } else {
            self.sseq += adv;
        }
    }
    fn handshake(&mut self) {
        self.send(true, SYN, b"");
        self.send(false, SYN | ACK, b"");
        self.send(true, ACK, b"");
    }
    fn say(&mut self, from_client: bool, text: &str) {
        self.send(from_client, ACK | PSH, text.as_bytes());
        self.send(!from_client, ACK, b"");
    }
    fn close(&mut self) {
        self.send(true, FIN | ACK, b"");
        self.send(false, FIN | ACK, b"");
        self.send(true, ACK, b"");
    }
}

fn analyze(cap: &[u8], o: &synth::Options) -> Collect {
    let mut trace = Vec::new();
    synth::synthesize(cap, &mut trace, o, None).unwrap();
    common::analyse(&trace).0
}

fn categories(rows: &Collect) -> Vec<&str> {
    rows.exceptions.iter().map(|e| e.category).collect()
}

/// Capture times in µs: November 2023 (a trace holds TOD values from 1990 to 2042).
const T0: u64 = 1_700_000_000_000_000;
const ZOS: Ipv4Addr = Ipv4Addr::new(10, 1, 1, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

#[test]
fn port_without_a_data_connection_is_a_lost_syn() {
    let mut c = Conv::new((ZOS, 1030), (PEER, 21), T0);
    c.handshake();
    c.say(false, "220 ready\r\n");
    c.say(true, "PORT 10,1,1,1,4,10\r\n");
    c.say(false, "200 PORT command successful.\r\n");
    c.say(true, "RETR x\r\n");
    c.say(false, "425 Can't open data connection.\r\n");
    c.close();
    let rows = analyze(&pcap(&c.out), &Default::default());
    let port = rows.ftp.iter().find(|r| r.command.0 == "PORT").unwrap();
    assert_eq!(
        (port.data_mode, port.data_ip.as_str(), port.data_port),
        ("active", "10.1.1.1", Some(1034))
    );
    assert_eq!(port.data_status, "no SYN seen");
    assert!(port.data_session.is_none());
    let e = rows
        .exceptions
        .iter()
        .find(|e| e.category == "ftp-data-not-seen")
        .unwrap();
    assert!(e.message.0.contains("10.1.1.1:1034"), "{}", e.message.0);
    assert_eq!(e.session, Some(1));
}

#[test]
fn pasv_data_syn_never_answered() {
    let mut c = Conv::new((ZOS, 1030), (PEER, 21), T0);
    c.handshake();
    c.say(true, "PASV\r\n");
    c.say(false, "227 Entering Passive Mode (192,0,2,7,39,16)\r\n");
    c.say(true, "LIST\r\n");
    // The data SYN (twice: a retransmission) gets no answer.
    let mut d = Conv::new((ZOS, 1031), (PEER, 10000), c.t + 500);
    d.send(true, SYN, b"");
    d.cseq -= 1;
    d.t += 3_000_000;
    d.send(true, SYN, b"");
    let mut pkts = c.out.clone();
    pkts.extend(d.out.clone());
    c.t = d.t;
    c.say(false, "425 Can't open data connection.\r\n");
    c.close();
    pkts.extend(c.out.into_iter().filter(|p| p.0 > d.t));
    pkts.sort_by_key(|p| p.0);
    let rows = analyze(&pcap(&pkts), &Default::default());
    let pasv = rows.ftp.iter().find(|r| r.command.0 == "PASV").unwrap();
    assert_eq!((pasv.data_mode, pasv.data_port), ("passive", Some(10000)));
    assert_eq!(pasv.data_status, "SYN not answered");
    let data = rows
        .sessions
        .iter()
        .find(|s| s.remote_port == Some(10000))
        .unwrap();
    assert_eq!(
        (data.state, data.ftp_role, data.ftp_control),
        ("S0", "data", Some(1))
    );
    assert_eq!(data.retransmissions, 1);
    let cats = categories(&rows);
    // One event, one row: the FTP-specific exception, not also the generic one.
    assert!(cats.contains(&"ftp-data-syn-unanswered"), "{cats:?}");
    assert!(!cats.contains(&"syn-unanswered"), "{cats:?}");
}

#[test]
fn ftp_brute_force_from_one_address() {
    let mut c = Conv::new((ZOS, 21), (PEER, 40000), T0);
    // Here the remote end logs in to z/OS: it is the client.
    std::mem::swap(&mut c.c, &mut c.s);
    std::mem::swap(&mut c.cseq, &mut c.sseq);
    c.handshake();
    c.say(false, "220 z/OS FTP\r\n");
    for i in 0..6 {
        c.say(true, &format!("USER admin{i}\r\n"));
        c.say(false, "331 Send password please.\r\n");
        c.say(true, "PASS secret\r\n");
        c.say(false, "530 PASS command failed\r\n");
    }
    c.close();
    let rows = analyze(
        &pcap(&c.out),
        &synth::Options {
            hosts: vec![ZOS.into()],
            ..Default::default()
        },
    );
    let s = &rows.sessions[0];
    assert_eq!(
        (s.initiator, s.ftp_login, s.ftp_commands),
        ("remote", "failed", Some(12))
    );
    assert!(
        rows.ftp
            .iter()
            .filter(|r| r.command.0 == "PASS")
            .all(|r| r.argument.0 == "****")
    );
    let failed = rows
        .exceptions
        .iter()
        .find(|e| e.category == "ftp-login-failed")
        .unwrap();
    assert!(
        failed.message.0.starts_with("6 failed"),
        "{}",
        failed.message.0
    );
    let brute = rows
        .exceptions
        .iter()
        .find(|e| e.category == "ftp-brute-force")
        .unwrap();
    assert!(brute.message.0.contains("192.0.2.7"), "{}", brute.message.0);
}

#[test]
fn dns_query_answered_by_port_unreachable_and_fragmentation_needed() {
    // A DNS query from z/OS, answered by ICMP port unreachable quoting it.
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["www", "example", "com"] {
        q.push(l.len() as u8);
        q.extend(l.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    let mut udp = Vec::new();
    udp.extend(5353u16.to_be_bytes());
    udp.extend(53u16.to_be_bytes());
    udp.extend(((8 + q.len()) as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(&q);
    let query = ipv4(17, ZOS, PEER, 7, &udp);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend(&query[..28]);
    let unreach = ipv4(1, PEER, ZOS, 8, &icmp);
    // A TCP segment too big for a link on the way: fragmentation needed, MTU 1400.
    let seg = ipv4(6, ZOS, PEER, 9, &tcp(1030, 80, 1, 1, ACK, &[0x41; 1460]));
    let mut frag = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    frag.extend(&seg[..28]);
    let needed = ipv4(1, PEER, ZOS, 10, &frag);
    let rows = analyze(
        &pcap(&[
            (T0, query),
            (T0 + 1000, unreach),
            (T0 + 2000, seg),
            (T0 + 3000, needed),
        ]),
        &Default::default(),
    );
    assert_eq!(rows.packets[0].message.0, "dns query A www.example.com");
    let e = rows
        .exceptions
        .iter()
        .find(|e| e.category == "icmp-unreachable")
        .unwrap();
    assert!(e.message.0.contains("10.1.1.1:5353"), "{}", e.message.0);
    // Tied to the DNS flow it concerns, not to the ICMP flow.
    assert_eq!(e.session, rows.packets[0].session);
    assert_eq!(e.packet, Some(2));
    let f = rows
        .exceptions
        .iter()
        .find(|e| e.category == "fragmentation-needed")
        .unwrap();
    assert!(f.message.0.contains("1400"), "{}", f.message.0);
    assert_eq!(f.session, rows.packets[2].session);
}

#[test]
fn discards_are_grouped_per_code_and_session() {
    let cap = std::fs::read(common::captures_dir().join("tcp_fast_retransmit__zeek.pcap")).unwrap();
    let rows = analyze(
        &cap,
        &synth::Options {
            discard: vec![(2, 4114), (5, 4114), (7, 8200)],
            ..Default::default()
        },
    );
    let d: Vec<_> = rows
        .exceptions
        .iter()
        .filter(|e| e.category == "discard")
        .collect();
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(d.iter().any(|e| {
        e.message
            .0
            .starts_with("2 packet(s) discarded: 4114 IP_MAC_BRDCST")
    }));
    assert!(d.iter().any(|e| {
        e.message
            .0
            .starts_with("1 packet(s) discarded: 8200 TCP discard 8200")
    }));
    assert_eq!(rows.packets[1].discard_code, Some(4114));
    assert_eq!(rows.sessions[0].discards, 3);
}
