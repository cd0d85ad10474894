//! Unit tests of `analyze::msg` (kept outside `src/` so the sources stay the
//! decoder; included from there as a child module, with access to private items).

use super::*;
use std::path::{Path, PathBuf};

// ---- hand-built packets ---------------------------------------------------------

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn tcp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    t
}

fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// Header with the given flags and counts.
fn dns_header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

fn dns_query(qname: &str, qtype: u16) -> Vec<u8> {
    let mut v = dns_header(0x1234, 0x0100, [1, 0, 0, 0]);
    v.extend(name(qname));
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    v
}

/// A response whose question name sits at offset 12 (pointer 0xC00C).
fn dns_response(qname: &str, qtype: u16, rcode: u16, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut v = dns_header(0x1234, 0x8180 | rcode, [1, answers.len() as u16, 0, 0]);
    v.extend(name(qname));
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&[0, 1]);
    for (t, rdata) in answers {
        v.extend_from_slice(&[0xc0, 0x0c]);
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
        v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        v.extend_from_slice(rdata);
    }
    v
}

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [10, 0, 0, 2];

fn dns_udp_packet(dns: &[u8]) -> Vec<u8> {
    ipv4(17, C, S, &udp(5353, 53, dns))
}

fn text(ip: &[u8]) -> String {
    describe(ip).map(|m| m.text).unwrap_or_default()
}

#[test]
fn dns_query_and_answers() {
    let q = describe(&dns_udp_packet(&dns_query("www.netanalysis.org", 1))).unwrap();
    assert_eq!(q.app, "dns");
    assert_eq!(q.text, "dns query A www.netanalysis.org");
    assert!(q.exception.is_none());

    let r = dns_response(
        "www.example.com",
        1,
        0,
        &[
            (5, name("edge.example.net")),
            (1, vec![93, 184, 216, 34]),
            (28, Ipv6Addr::LOCALHOST.octets().to_vec()),
            (1, vec![1, 2, 3, 4]),
            (16, b"\x03abc".to_vec()),
        ],
    );
    assert_eq!(
        text(&dns_udp_packet(&r)),
        "dns response A www.example.com: CNAME edge.example.net, 93.184.216.34, ::1 (+2 more)"
    );
    let r = dns_response("example.com", 1, 0, &[(1, vec![93, 184, 216, 34])]);
    assert_eq!(
        text(&dns_udp_packet(&r)),
        "dns response A example.com: 93.184.216.34"
    );
    let r = dns_response("example.com", 28, 0, &[]);
    assert_eq!(
        text(&dns_udp_packet(&r)),
        "dns response AAAA example.com: no answer"
    );
    let r = dns_response("example.com", 16, 0, &[(16, b"\x02hi".to_vec())]);
    assert_eq!(
        text(&dns_udp_packet(&r)),
        "dns response TXT example.com: 1 answer (TXT)"
    );
}

#[test]
fn dns_type_names() {
    for (t, s) in [
        (1, "A"),
        (28, "AAAA"),
        (5, "CNAME"),
        (15, "MX"),
        (2, "NS"),
        (12, "PTR"),
        (6, "SOA"),
        (16, "TXT"),
        (33, "SRV"),
        (255, "ANY"),
        (65, "HTTPS"),
        (64, "SVCB"),
        (41, "OPT"),
        (123, "TYPE123"),
    ] {
        assert_eq!(dns_type_name(t), s);
        let q = dns_udp_packet(&dns_query("x.test", t));
        assert_eq!(text(&q), format!("dns query {s} x.test"));
    }
}

#[test]
fn dns_errors_give_exceptions() {
    let nx = describe(&dns_udp_packet(&dns_response(
        "nosuch.example.com",
        1,
        3,
        &[],
    )))
    .unwrap();
    assert_eq!(nx.text, "dns response Name Error A nosuch.example.com");
    let e = nx.exception.unwrap();
    assert_eq!((e.severity, e.category), ("warning", "dns-error"));
    assert_eq!(e.text, "DNS Name Error for A nosuch.example.com");

    let sf = describe(&dns_udp_packet(&dns_response("x.test", 1, 2, &[]))).unwrap();
    assert_eq!(sf.text, "dns response Server Failure A x.test");
    assert_eq!(sf.exception.unwrap().severity, "error");

    for (rc, s) in [
        (1, "Format Error"),
        (4, "Not Implemented"),
        (5, "Refused"),
        (9, "rcode 9"),
    ] {
        let m = describe(&dns_udp_packet(&dns_response("x.test", 1, rc, &[]))).unwrap();
        assert_eq!(m.text, format!("dns response {s} A x.test"));
    }
}

#[test]
fn dns_extended_rcode_from_opt() {
    let mut r = dns_header(0x2a, 0x8500, [1, 0, 0, 1]);
    r.extend(name("test.example.com"));
    r.extend_from_slice(&[0, 1, 0, 1]);
    // OPT: root name, type 41, payload size, TTL with extended rcode 1, no data.
    r.extend_from_slice(&[0, 0, 41, 0x10, 0, 1, 0, 0, 0, 0, 0]);
    let m = describe(&dns_udp_packet(&r)).unwrap();
    assert_eq!(m.text, "dns response rcode 16 A test.example.com");
    assert!(m.exception.is_some());
}

#[test]
fn dns_hostile_compression() {
    let mk = |qname_bytes: &[u8]| {
        let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
        v.extend_from_slice(qname_bytes);
        v.extend_from_slice(&[0, 1, 0, 1]);
        dns_udp_packet(&v)
    };
    // Pointer to itself, forward pointer, out of range pointer, two labels pointing at
    // each other, reserved label types.
    for q in [
        &[0xc0, 12][..],
        &[0xc0, 14, 0],
        &[0xff, 0xff],
        &[1, b'a', 0xc0, 12],
        &[0x40, 1, 0],
        &[0x80, 1, 0],
    ] {
        let m = describe(&mk(q)).unwrap();
        assert!(m.text.ends_with("(malformed)"), "{q:?}: {}", m.text);
    }
    // A loop through the answer section, pointing back into a name that points on.
    let mut v = dns_header(1, 0x8180, [1, 1, 0, 0]);
    v.extend(name("a.test"));
    v.extend_from_slice(&[0, 1, 0, 1]);
    let here = v.len() as u8;
    v.extend_from_slice(&[1, b'b', 0xc0, here]);
    v.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
    let m = describe(&dns_udp_packet(&v)).unwrap();
    assert_eq!(m.text, "dns response A a.test: 1 answer (malformed)");
    // Chains of valid pointers (each name built on the previous one) are fine.
    let mut v = dns_header(1, 0x8180, [1, 2, 0, 0]);
    v.extend(name("a.test"));
    v.extend_from_slice(&[0, 5, 0, 1]);
    let first = v.len() as u8 + 12;
    for (label, target) in [(b'x', 12u8), (b'y', first)] {
        v.extend_from_slice(&[
            0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 0, 0, 4, 1, label, 0xc0, target,
        ]);
    }
    assert_eq!(
        text(&dns_udp_packet(&v)),
        "dns response CNAME a.test: CNAME x.a.test, CNAME y.x.a.test"
    );
    // Names over 255 bytes are refused even without pointers.
    let long = (0..60).map(|_| "abcd").collect::<Vec<_>>().join(".");
    let m = describe(&dns_udp_packet(&dns_query(&long, 1))).unwrap();
    assert!(m.text.ends_with("(malformed)"), "{}", m.text);
}

#[test]
fn dns_escapes_odd_labels() {
    let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
    v.extend_from_slice(&[4, b'a', b'.', b' ', 0xff, 0, 0, 1, 0, 1]);
    assert_eq!(text(&dns_udp_packet(&v)), "dns query A a\\.\\032\\255");
    // The root.
    let mut v = dns_header(1, 0x0100, [1, 0, 0, 0]);
    v.extend_from_slice(&[0, 0, 2, 0, 1]);
    assert_eq!(text(&dns_udp_packet(&v)), "dns query NS .");
}

#[test]
fn dns_truncated_capture() {
    let r = dns_response("www.example.com", 1, 0, &[(1, vec![93, 184, 216, 34])]);
    let full = dns_udp_packet(&r);
    // The IP header still claims the whole datagram: cut means incomplete.
    for cut in 0..full.len() {
        let m = describe(&full[..cut]);
        // Up to the UDP header there is no DNS byte to describe.
        if cut <= 28 {
            assert!(m.is_none(), "{cut}");
            continue;
        }
        let m = m.unwrap_or_else(|| panic!("{cut}"));
        assert_eq!(m.app, "dns");
        assert!(m.text.ends_with("(incomplete)"), "{cut}: {}", m.text);
    }
    assert_eq!(text(&full[..28 + 12]), "dns response (incomplete)");
    assert_eq!(
        text(&full[..full.len() - 1]),
        "dns response A www.example.com: 1 answer (A) (incomplete)"
    );
    // A datagram that is whole but whose records run past its end is malformed.
    let mut short = r.clone();
    short.truncate(r.len() - 2);
    assert_eq!(
        text(&dns_udp_packet(&short)),
        "dns response A www.example.com: 1 answer (A) (malformed)"
    );
}

#[test]
fn dns_over_tcp() {
    let q = dns_query("www.tcpdump.org", 1);
    let mut seg = (q.len() as u16).to_be_bytes().to_vec();
    seg.extend_from_slice(&q);
    let p = ipv4(6, C, S, &tcp(33779, 53, &seg));
    assert_eq!(text(&p), "dns query A www.tcpdump.org");
    // Only the first part of the message in this segment.
    let p = ipv4(6, C, S, &tcp(33779, 53, &seg[..20]));
    assert_eq!(text(&p), "dns query (incomplete)");
    // A continuation segment (no length prefix) is not read as a header.
    let p = ipv4(6, C, S, &tcp(33779, 53, &seg[6..]));
    assert!(describe(&p).is_none());
    let p = ipv4(
        6,
        C,
        S,
        &tcp(33779, 53, b"some random bytes of a zone transfer"),
    );
    assert!(describe(&p).is_none());
    // No payload: nothing to say.
    assert!(describe(&ipv4(6, C, S, &tcp(33779, 53, &[]))).is_none());
}

#[test]
fn mdns_and_llmnr() {
    let mut v = dns_header(0, 0x8400, [0, 1, 0, 0]);
    v.extend(name("printer.local"));
    v.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 9]);
    let m = describe(&ipv4(17, C, [224, 0, 0, 251], &udp(5353, 5353, &v))).unwrap();
    assert_eq!(m.app, "mdns");
    assert_eq!(m.text, "mdns response A printer.local: 192.168.1.9");
    let m = describe(&ipv4(17, C, S, &udp(50000, 5355, &dns_query("host", 28)))).unwrap();
    assert_eq!((m.app, m.text.as_str()), ("llmnr", "llmnr query AAAA host"));
}

fn dhcp(op: u8, msg_type: u8, yiaddr: [u8; 4], opts: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = op;
    p[1] = 1;
    p[2] = 6;
    p[16..20].copy_from_slice(&yiaddr);
    p[28..34].copy_from_slice(&[0x90, 0xb1, 0x1c, 0x99, 0x49, 0x29]);
    p[236..240].copy_from_slice(&DHCP_COOKIE);
    p.extend_from_slice(&[53, 1, msg_type]);
    p.extend_from_slice(opts);
    p.push(255);
    ipv4(17, [0; 4], [255; 4], &udp(68, 67, &p))
}

#[test]
fn dhcp_types_and_addresses() {
    assert_eq!(text(&dhcp(1, 1, [0; 4], &[])), "DHCP Discover");
    assert_eq!(
        text(&dhcp(2, 2, [192, 168, 0, 104], &[])),
        "DHCP Offer 192.168.0.104"
    );
    assert_eq!(
        text(&dhcp(1, 3, [0; 4], &[50, 4, 192, 168, 0, 104])),
        "DHCP Request 192.168.0.104"
    );
    assert_eq!(
        text(&dhcp(2, 5, [192, 168, 0, 104], &[])),
        "DHCP Ack 192.168.0.104"
    );
    for (t, s) in [
        (7, "Release"),
        (8, "Inform"),
        (9, "Force Renew"),
        (99, "type 99"),
    ] {
        assert_eq!(text(&dhcp(1, t, [0; 4], &[])), format!("DHCP {s}"));
    }

    let d = describe(&dhcp(1, 4, [0; 4], &[50, 4, 192, 168, 0, 104])).unwrap();
    assert_eq!(d.text, "DHCP Decline 192.168.0.104");
    let e = d.exception.unwrap();
    assert_eq!((e.severity, e.category), ("warning", "dhcp-decline"));
    assert_eq!(
        e.text,
        "DHCP Decline of 192.168.0.104 by client 90:b1:1c:99:49:29: address already in use"
    );

    let mut msg = vec![56, 9];
    msg.extend_from_slice(b"no lease\0");
    let n = describe(&dhcp(2, 6, [0; 4], &msg)).unwrap();
    assert_eq!(n.text, "DHCP Nak: no lease");
    assert_eq!(n.exception.unwrap().category, "dhcp-nak");

    // Option 53 in the overloaded file field.
    let mut p = dhcp(1, 1, [0; 4], &[52, 1, 1]);
    // IP and UDP headers take 28 bytes; pad out the main option 53.
    p[28 + 240..28 + 243].copy_from_slice(&[0, 0, 0]);
    p[28 + 108..28 + 112].copy_from_slice(&[53, 1, 3, 255]);
    assert_eq!(text(&p), "DHCP Request");

    // No cookie: plain BOOTP. Abbreviated: incomplete.
    let mut p = dhcp(1, 1, [0; 4], &[]);
    p[28 + 236] = 0;
    assert_eq!(text(&p), "BOOTP Request");
    let p = dhcp(1, 1, [0; 4], &[]);
    assert_eq!(text(&p[..100]), "DHCP (incomplete)");
}

#[test]
fn dhcpv6_messages() {
    let mut ia = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24];
    ia.extend_from_slice(&"2001:db8::5".parse::<Ipv6Addr>().unwrap().octets());
    ia.extend_from_slice(&[0; 8]);
    let mut p = vec![9, 0, 0, 1, 0, 3];
    p.extend_from_slice(&(ia.len() as u16).to_be_bytes());
    p.extend_from_slice(&ia);
    let ip = ipv6(
        17,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::LOCALHOST,
        &udp(546, 547, &p),
    );
    let m = describe(&ip).unwrap();
    assert_eq!(
        (m.app, m.text.as_str()),
        ("dhcpv6", "DHCPv6 Decline 2001:db8::5")
    );
    assert_eq!(m.exception.unwrap().category, "dhcp-decline");

    // Relay-forw wrapping a Solicit.
    let mut relay = vec![12, 0];
    relay.extend_from_slice(&[0; 32]);
    relay.extend_from_slice(&[0, 9, 0, 4, 1, 0, 0, 7]);
    let ip = ipv6(
        17,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::LOCALHOST,
        &udp(547, 547, &relay),
    );
    assert_eq!(text(&ip), "DHCPv6 Relay-forw (Solicit)");
}

fn icmp(t: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = vec![t, code, 0, 0];
    v.extend_from_slice(&rest);
    v.extend_from_slice(body);
    v
}

#[test]
fn icmp_echo_and_unreachable() {
    let p = ipv4(1, C, S, &icmp(8, 0, [0, 1, 0, 5], b"abcd"));
    let m = describe(&p).unwrap();
    assert_eq!(
        (m.app, m.text.as_str()),
        ("icmp", "ICMP Echo Request id 1 seq 5")
    );
    assert!(m.exception.is_none() && m.quoted.is_none());

    let offending = ipv4(17, C, S, &udp(5353, 53, b"0123456789"));
    let p = ipv4(1, S, C, &icmp(3, 3, [0; 4], &offending[..28]));
    let m = describe(&p).unwrap();
    assert_eq!(
        m.text,
        "ICMP Destination Unreachable: Port unreachable (quoted UDP 10.0.0.1:5353 -> 10.0.0.2:53)"
    );
    let q = m.quoted.unwrap();
    assert_eq!(
        (q.protocol, q.src_port, q.dst_port),
        (17, Some(5353), Some(53))
    );
    let e = m.exception.unwrap();
    assert_eq!((e.severity, e.category), ("error", "icmp-unreachable"));
    assert_eq!(
        e.text,
        "ICMP Destination Unreachable: Port unreachable from 10.0.0.2 for UDP 10.0.0.1:5353 -> 10.0.0.2:53"
    );

    let p = ipv4(1, S, C, &icmp(3, 4, [0, 0, 0x05, 0x78], &offending[..28]));
    let m = describe(&p).unwrap();
    assert!(
        m.text.starts_with(
            "ICMP Destination Unreachable: Fragmentation needed (MTU 1400) (quoted UDP"
        )
    );
    assert_eq!(m.exception.unwrap().category, "fragmentation-needed");

    let p = ipv4(1, S, C, &icmp(11, 0, [0; 4], &offending[..28]));
    let m = describe(&p).unwrap();
    assert!(
        m.text
            .starts_with("ICMP Time Exceeded: TTL exceeded in transit (quoted")
    );
    assert_eq!(m.exception.unwrap().category, "time-exceeded");

    // Quoted packet shorter than its header: no quoted endpoints, still the error.
    let p = ipv4(1, S, C, &icmp(3, 1, [0; 4], &offending[..12]));
    let m = describe(&p).unwrap();
    assert_eq!(m.text, "ICMP Destination Unreachable: Host unreachable");
    assert!(m.quoted.is_none() && m.exception.is_some());
    // Quoted IP header without the ports.
    let p = ipv4(1, S, C, &icmp(3, 1, [0; 4], &offending[..20]));
    let q = describe(&p).unwrap().quoted.unwrap();
    assert_eq!((q.protocol, q.src_port), (17, None));
}

#[test]
fn icmp_code_names() {
    let cases: &[(&[u8], &str)] = &[
        (&[3, 0], "Destination Unreachable: Net unreachable"),
        (&[3, 3], "Destination Unreachable: Port unreachable"),
        (
            &[3, 4, 0, 0, 0, 0, 0x05, 0x78],
            "Destination Unreachable: Fragmentation needed (MTU 1400)",
        ),
        (
            &[3, 4, 0, 0, 0, 0, 0, 0],
            "Destination Unreachable: Fragmentation needed",
        ),
        (
            &[3, 13],
            "Destination Unreachable: Communication administratively prohibited",
        ),
        (
            &[3, 15],
            "Destination Unreachable: Precedence cutoff in effect",
        ),
        (&[3, 16], "Destination Unreachable: code 16"),
        (
            &[5, 1, 0, 0, 10, 0, 0, 254],
            "Redirect for host to 10.0.0.254",
        ),
        (&[11, 1], "Time Exceeded: Fragment reassembly time exceeded"),
        (
            &[12, 0, 0, 0, 12],
            "Parameter Problem: Pointer indicates the error (pointer 12)",
        ),
        (&[0, 0], "Echo Reply"),
        (&[99, 7], "type 99 code 7"),
    ];
    for (m, want) in cases {
        assert_eq!(icmp_type_text(m).as_deref(), Some(*want));
    }
    assert_eq!(icmp_type_text(&[3]), None);
    let v6: &[(&[u8], &str)] = &[
        (&[1, 0], "Destination Unreachable: No route to destination"),
        (&[1, 4], "Destination Unreachable: Port unreachable"),
        (&[2, 0, 0, 0, 0, 0, 5, 0], "Packet Too Big (MTU 1280)"),
        (&[3, 0], "Time Exceeded: Hop limit exceeded in transit"),
        (
            &[4, 1, 0, 0, 0, 0, 0, 40],
            "Parameter Problem: Unrecognized Next Header type (pointer 40)",
        ),
        (&[135, 0], "Neighbor Solicitation"),
        (&[200, 1], "type 200 code 1"),
    ];
    for (m, want) in v6 {
        assert_eq!(icmpv6_type_text(m).as_deref(), Some(*want));
    }
}

#[test]
fn icmpv6_messages() {
    let a: Ipv6Addr = "fe80::dead".parse().unwrap();
    let b: Ipv6Addr = "fe80::beef".parse().unwrap();
    let t: Ipv6Addr = "fe80::1".parse().unwrap();
    let mut ns = icmp(135, 0, [0; 4], &t.octets());
    ns.extend_from_slice(&[1, 1, 0, 0x15, 0x17, 0xcc, 0xe5, 0x46]);
    let m = describe(&ipv6(58, a, b, &ns)).unwrap();
    assert_eq!(
        (m.app, m.text.as_str()),
        ("icmpv6", "ICMPv6 Neighbor Solicitation for fe80::1")
    );

    let mut na = icmp(136, 0, [0xa0, 0, 0, 0], &t.octets());
    na.extend_from_slice(&[2, 1, 0, 0x15, 0x17, 0xcc, 0xe5, 0x46]);
    assert_eq!(
        text(&ipv6(58, a, b, &na)),
        "ICMPv6 Neighbor Advertisement fe80::1 is at 00:15:17:cc:e5:46 (router, override)"
    );

    let mut redirect = icmp(
        137,
        0,
        [0; 4],
        &"fe80::cafe".parse::<Ipv6Addr>().unwrap().octets(),
    );
    redirect.extend_from_slice(&"fe80::babe".parse::<Ipv6Addr>().unwrap().octets());
    let m = describe(&ipv6(58, a, b, &redirect)).unwrap();
    assert_eq!(m.text, "ICMPv6 Redirect for fe80::babe via fe80::cafe");
    assert_eq!(m.exception.unwrap().category, "icmp-redirect");

    assert_eq!(
        text(&ipv6(58, a, b, &icmp(128, 0, [0, 1, 0, 3], b"x"))),
        "ICMPv6 Echo Request id 1 seq 3"
    );

    // Packet Too Big quoting a TCP segment behind a hop-by-hop header.
    let mut inner = vec![6, 0, 1, 4, 0, 0, 0, 0];
    inner.extend(tcp(443, 50000, &[]));
    let offending = ipv6(0, b, a, &inner);
    let p = ipv6(58, a, b, &icmp(2, 0, [0, 0, 5, 0], &offending));
    let m = describe(&p).unwrap();
    assert_eq!(
        m.text,
        "ICMPv6 Packet Too Big (MTU 1280) (quoted TCP [fe80::beef]:443 -> [fe80::dead]:50000)"
    );
    assert_eq!(m.exception.unwrap().category, "fragmentation-needed");
}

#[test]
fn fragments() {
    // IPv4: later fragment gives nothing, the first fragment is read as incomplete.
    let mut p = dns_udp_packet(&dns_query("x.test", 1));
    p[6] = 0x00;
    p[7] = 0x10;
    assert!(describe(&p).is_none());
    p[6] = 0x20;
    p[7] = 0;
    assert_eq!(text(&p), "dns query A x.test");
    // IPv6 fragment header: offset 0 with M set, then offset 8.
    let a = Ipv6Addr::LOCALHOST;
    let mut frag = vec![17, 0, 0, 1, 0, 0, 0, 1];
    frag.extend(udp(1000, 53, &dns_query("y.test", 28)));
    assert_eq!(text(&ipv6(44, a, a, &frag)), "dns query AAAA y.test");
    frag[2..4].copy_from_slice(&[0, 8]);
    assert!(describe(&ipv6(44, a, a, &frag)).is_none());
}

#[test]
fn no_panics_on_noise() {
    // Every prefix of every hand-built packet, and pseudo-random bytes behind valid
    // IP/UDP/ICMP headers.
    let mut samples = vec![
        dns_udp_packet(&dns_response("a.b", 1, 0, &[(1, vec![1, 2, 3, 4])])),
        dhcp(1, 3, [0; 4], &[50, 4, 1, 2, 3, 4]),
        ipv4(
            1,
            S,
            C,
            &icmp(3, 3, [0; 4], &dns_udp_packet(b"0123456789ab")),
        ),
    ];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..3000 {
        let mut junk = Vec::new();
        for _ in 0..(i % 300) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        samples.push(match i % 6 {
            0 => dns_udp_packet(&junk),
            1 => ipv4(6, C, S, &tcp(1, 53, &junk)),
            2 => ipv4(17, C, S, &udp(68, 67, &junk)),
            3 => ipv6(58, Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, &junk),
            4 => ipv4(1, C, S, &junk),
            _ => junk,
        });
    }
    for s in &samples {
        for cut in 0..=s.len().min(400) {
            fuzz(&s[..cut]);
        }
    }
}

// ---- real captures -------------------------------------------------------------

fn captures() -> Option<PathBuf> {
    let d = Path::new("/work/shared/captures");
    if d.is_dir() {
        Some(d.to_path_buf())
    } else {
        eprintln!("skipping: {} is absent", d.display());
        None
    }
}

/// The IP bytes of every packet of a pcap (None for frames that carry no IP).
fn ip_packets(path: &Path) -> Vec<Option<Vec<u8>>> {
    let bytes = std::fs::read(path).unwrap();
    let cap = pcap_parser::PcapCapture::from_file(&bytes).unwrap();
    let link = cap.header.network.0;
    cap.blocks
        .iter()
        .map(|b| strip_link(link, b.data).map(<[u8]>::to_vec))
        .collect()
}

fn strip_link(link: i32, d: &[u8]) -> Option<&[u8]> {
    let (ethertype, rest) = match link {
        // Ethernet, with any number of 802.1Q / 802.1ad tags.
        1 => {
            let mut at = 12;
            let mut et = be16(d, at)?;
            while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
                at += 4;
                et = be16(d, at)?;
            }
            (et, d.get(at + 2..)?)
        }
        101 | 228 | 229 => return Some(d),
        113 => (be16(d, 14)?, d.get(16..)?),
        276 => (be16(d, 0)?, d.get(20..)?),
        _ => return None,
    };
    matches!(ethertype, 0x0800 | 0x86dd).then_some(rest)
}

fn described(stem: &str) -> Option<Vec<Option<Message>>> {
    let dir = captures()?;
    let path = dir.join(format!("{stem}.pcap"));
    Some(
        ip_packets(&path)
            .iter()
            .map(|p| p.as_deref().and_then(describe))
            .collect(),
    )
}

fn baseline(stem: &str, suffix: &str) -> String {
    let dir = captures().unwrap().join("baselines").join(stem);
    let f = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()));
    std::fs::read_to_string(f).unwrap()
}

/// Rows of a Zeek log as maps from field name to value.
fn zeek_rows(log: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut fields: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in log.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').map(str::to_string).collect();
        } else if !line.starts_with('#') && !line.is_empty() {
            rows.push(
                fields
                    .iter()
                    .cloned()
                    .zip(line.split('\t').map(str::to_string))
                    .collect(),
            );
        }
    }
    rows
}

/// `key=value` out of a Zeek event dump line.
fn zeek_field<'a>(line: &'a str, key: &str) -> &'a str {
    let at = line.find(&format!("{key}=")).unwrap() + key.len() + 1;
    let rest = &line[at..];
    let end = rest.find([',', ']']).unwrap_or(rest.len());
    &rest[..end]
}

/// The first `icmp_context` of a Zeek icmp-events output, as a Quoted.
fn zeek_quoted(out: &str) -> (u8, u8, Quoted) {
    let info = out.lines().find(|l| l.contains("icmp_info:")).unwrap();
    let ctx = out.lines().find(|l| l.contains("icmp_context:")).unwrap();
    let port = |s: &str| s.split('/').next().unwrap().parse::<u16>().ok();
    let proto = match zeek_field(ctx, "resp_p").split('/').nth(1).unwrap() {
        "udp" => 17,
        "tcp" => 6,
        _ => 1,
    };
    (
        zeek_field(info, "itype").parse().unwrap(),
        zeek_field(info, "icode").parse().unwrap(),
        Quoted {
            protocol: proto,
            src: zeek_field(ctx, "orig_h").parse().unwrap(),
            src_port: port(zeek_field(ctx, "orig_p")),
            dst: zeek_field(ctx, "resp_h").parse().unwrap(),
            dst_port: port(zeek_field(ctx, "resp_p")),
        },
    )
}

#[test]
fn capture_dhcp_all_msg_types() {
    let stem = "dhcp_all_msg_types__zeek";
    let Some(msgs) = described(stem) else { return };
    let rows = zeek_rows(&baseline(stem, "dhcp.log"));
    // Zeek groups the messages per transaction; in this capture the groups are in
    // packet order, so flattening them gives one type per packet.
    let zeek_types: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r["msg_types"]
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let ours: Vec<String> = msgs
        .iter()
        .map(|m| {
            let m = m.as_ref().unwrap();
            assert_eq!(m.app, "dhcp");
            m.text
                .trim_start_matches("DHCP ")
                .split([' ', ':'])
                .next()
                .unwrap()
                .to_uppercase()
        })
        .collect();
    assert_eq!(ours, zeek_types);

    let first = &rows[0];
    let texts: Vec<&str> = msgs
        .iter()
        .map(|m| m.as_ref().unwrap().text.as_str())
        .collect();
    assert_eq!(texts[5], format!("DHCP Ack {}", first["assigned_addr"]));
    assert_eq!(texts[3], format!("DHCP Nak: {}", first["server_message"]));
    assert_eq!(
        texts[4],
        format!("DHCP Request {}", first["requested_addr"])
    );
    assert_eq!(
        texts[8],
        format!("DHCP Inform {}", rows[2]["requested_addr"])
    );
    let decline = msgs[6].as_ref().unwrap().exception.as_ref().unwrap();
    assert_eq!(decline.category, "dhcp-decline");
    assert!(decline.text.contains(&first["mac"]), "{}", decline.text);
    let nak = msgs[3].as_ref().unwrap().exception.as_ref().unwrap();
    assert_eq!(nak.category, "dhcp-nak");
    for (i, m) in msgs.iter().enumerate() {
        if i != 3 && i != 6 {
            assert!(m.as_ref().unwrap().exception.is_none(), "{i}");
        }
    }
}

/// Query names and A answers out of tcpdump's one-line DNS summaries:
/// `17177+ [1au] A? www.tcpdump.org. (56)`,
/// `17177*- 2/2/5 www.tcpdump.org. A 192.139.46.66, www.tcpdump.org. A 198.199.88.104 (224)`.
fn tcpdump_dns(line: &str) -> Option<(bool, String, Vec<String>)> {
    if let Some(at) = line.find(" A? ") {
        let name = line[at + 4..].split(' ').next()?.trim_end_matches('.');
        return Some((false, name.to_string(), vec![]));
    }
    let at = line.find(" A ")?;
    let before = &line[..at];
    let name = before.rsplit(' ').next()?.trim_end_matches('.').to_string();
    let answers = line
        .split(", ")
        .filter_map(|part| part.split(" A ").nth(1))
        .map(|a| a.split(' ').next().unwrap_or("").to_string())
        .collect();
    Some((true, name, answers))
}

#[test]
fn capture_dns_over_tcp() {
    let stem = "dns_over_tcp__tcpdump";
    let Some(msgs) = described(stem) else { return };
    let base = baseline(stem, "dns_tcp-v.out");
    // tcpdump -v prints each packet on two lines; the second holds the DNS summary.
    let details: Vec<&str> = base
        .lines()
        .filter(|l| l.starts_with("    ") && !l.contains(" IP (tos"))
        .collect();
    assert_eq!(details.len(), msgs.len());
    let mut seen = 0;
    for (m, line) in msgs.iter().zip(&details) {
        match tcpdump_dns(line) {
            Some((false, name, _)) => {
                assert_eq!(m.as_ref().unwrap().text, format!("dns query A {name}"));
                seen += 1;
            }
            Some((true, name, answers)) => {
                let m = m.as_ref().unwrap();
                assert_eq!(
                    m.text,
                    format!("dns response A {name}: {}", answers.join(", "))
                );
                seen += 1;
            }
            None => assert!(m.is_none(), "{line}: {m:?}"),
        }
    }
    assert_eq!(seen, 2);
}

#[test]
fn capture_icmp4_destunreach() {
    let stem = "icmp4_destunreach_udp__zeek";
    let Some(msgs) = described(stem) else { return };
    // The baseline holds the events of several traces; this capture is the first.
    let (t, c, q) = zeek_quoted(&baseline(stem, "output"));
    assert_eq!((t, c), (3, 3));
    let m = msgs[0].as_ref().unwrap();
    assert_eq!(m.quoted, Some(q));
    assert_eq!(
        m.text,
        format!("ICMP Destination Unreachable: Port unreachable (quoted {q})")
    );
    assert_eq!(m.exception.as_ref().unwrap().category, "icmp-unreachable");
}

#[test]
fn capture_icmp6_destunreach_ext_hdr() {
    let stem = "icmp6_destunreach_ext_hdr_udp__zeek";
    let Some(msgs) = described(stem) else { return };
    let (t, c, q) = zeek_quoted(&baseline(stem, "output"));
    assert_eq!((t, c), (1, 0));
    let m = msgs[0].as_ref().unwrap();
    assert_eq!(m.app, "icmpv6");
    assert_eq!(m.quoted, Some(q));
    assert_eq!(
        m.text,
        format!("ICMPv6 Destination Unreachable: No route to destination (quoted {q})")
    );
}

#[test]
fn capture_icmpv6_router_neighbor() {
    let stem = "icmpv6_router_neighbor__tcpdump";
    let Some(msgs) = described(stem) else { return };
    let base = baseline(stem, "icmpv6.out");
    let heads: Vec<&str> = base
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric) && l.contains("ICMP6"))
        .collect();
    assert_eq!(heads.len(), msgs.len());
    for (m, line) in msgs.iter().zip(&heads) {
        let m = m.as_ref().unwrap();
        let ours = m.text.to_lowercase();
        let theirs = line.split("ICMP6, ").nth(1).unwrap();
        let kind = theirs.split([',', '[']).next().unwrap().trim();
        assert!(
            ours.starts_with(&format!("icmpv6 {kind}")),
            "{ours} vs {theirs}"
        );
        if let Some(at) = theirs.find(" group record") {
            let n = theirs[..at].rsplit(' ').next().unwrap();
            assert!(
                ours.contains(&format!(", {n} group record")),
                "{ours} vs {theirs}"
            );
        }
    }
    // Facts of the router advertisement's detail lines.
    let ra = &msgs[0].as_ref().unwrap().text;
    assert!(
        base.contains("router lifetime 15s") && ra.contains("lifetime 15s"),
        "{ra}"
    );
    assert!(
        base.contains("2222:3333:4444:5555:6600::/72")
            && ra.contains("prefix 2222:3333:4444:5555:6600::/72"),
        "{ra}"
    );
    assert!(
        base.contains("mtu option (5), length 8 (1):  100") && ra.contains("mtu 100"),
        "{ra}"
    );
}

#[test]
fn capture_ipv6_fragmented_dns() {
    let stem = "ipv6_fragmented_dns__zeek";
    let Some(msgs) = described(stem) else { return };
    let rows = zeek_rows(&baseline(stem, "dns.log"));
    let names: std::collections::HashSet<&str> = rows.iter().map(|r| r["query"].as_str()).collect();
    for r in &rows {
        assert_eq!(r["qtype_name"], "TXT");
    }
    // Packets 4, 7 and 8 are later fragments: nothing to describe.
    for (i, m) in msgs.iter().enumerate() {
        if [3, 6, 7].contains(&i) {
            assert!(m.is_none(), "{i}: {m:?}");
            continue;
        }
        let m = m.as_ref().unwrap();
        let name = m.text.split(' ').nth(3).unwrap().trim_end_matches(':');
        assert!(names.contains(name), "{}", m.text);
        assert!(m.text.contains(" TXT "), "{}", m.text);
    }
    // Zeek's NOERROR answers: TXT. Ours for the whole response and for the first
    // fragment of the big one (its answer runs into the next fragment).
    assert_eq!(rows[0]["rcode_name"], "NOERROR");
    assert!(rows[0]["answers"].starts_with("TXT"));
    assert_eq!(
        msgs[1].as_ref().unwrap().text,
        format!("dns response TXT {}: 1 answer (TXT)", rows[0]["query"])
    );
    assert_eq!(
        msgs[5].as_ref().unwrap().text,
        format!(
            "dns response TXT {}: 1 answer (TXT) (incomplete)",
            rows[1]["query"]
        )
    );
}

#[test]
fn capture_rawip_dns() {
    for stem in [
        "rawip_dlt101_ipv4_dns__tcpdump",
        "rawip_dlt101_ipv6_dns__tcpdump",
    ] {
        let Some(msgs) = described(stem) else { return };
        let out = if stem.contains("ipv4") {
            "ipv4.out"
        } else {
            "ipv6.out"
        };
        let base = baseline(stem, out);
        let (_, name, _) = tcpdump_dns(base.lines().next().unwrap()).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0].as_ref().unwrap().text,
            format!("dns query A {name}")
        );
    }
}

#[test]
fn capture_rawip_dlt228_edns_rcode() {
    let stem = "rawip_dlt228_ipv4_dns_edns__zeek";
    let Some(msgs) = described(stem) else { return };
    // Zeek's test prints the extended rcode of the response: 16 (header 0, OPT 1).
    let rcode: u16 = baseline(stem, "output")
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        msgs[0].as_ref().unwrap().text,
        "dns query A test.example.com"
    );
    let r = msgs[1].as_ref().unwrap();
    assert_eq!(
        r.text,
        format!("dns response {} A test.example.com", dns_rcode_name(rcode))
    );
    assert_eq!(r.exception.as_ref().unwrap().category, "dns-error");
}

/// Every capture against tshark's own reading, frame by frame, when tshark is there.
/// Reassembly is off so that tshark, like us, looks at each packet alone.
#[test]
fn captures_against_tshark() {
    let Some(dir) = captures() else { return };
    let stems = [
        "dhcp_all_msg_types__zeek",
        "dns_over_tcp__tcpdump",
        "icmp4_destunreach_udp__zeek",
        "icmp6_destunreach_ext_hdr_udp__zeek",
        "icmpv6_router_neighbor__tcpdump",
        "ipv6_fragmented_dns__zeek",
        "rawip_dlt101_ipv4_dns__tcpdump",
        "rawip_dlt101_ipv6_dns__tcpdump",
        "rawip_dlt228_ipv4_dns_edns__zeek",
    ];
    let fields = [
        "dns.qry.name",
        "dns.qry.type",
        "dns.flags.response",
        "dns.flags.rcode",
        "icmp.type",
        "icmp.code",
        "icmpv6.type",
        "icmpv6.code",
        "dhcp.option.dhcp",
    ];
    let mut compared = 0;
    for stem in stems {
        let path = dir.join(format!("{stem}.pcap"));
        let mut cmd = std::process::Command::new("tshark");
        cmd.arg("-r").arg(&path);
        for o in [
            "ip.defragment:FALSE",
            "ipv6.defragment:FALSE",
            "tcp.desegment_tcp_streams:FALSE",
        ] {
            cmd.args(["-o", o]);
        }
        cmd.args(["-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let Ok(out) = cmd.output() else {
            eprintln!("skipping: tshark not available");
            return;
        };
        assert!(out.status.success(), "tshark on {stem}");
        let ours: Vec<Option<Message>> = ip_packets(&path)
            .iter()
            .map(|p| p.as_deref().and_then(describe))
            .collect();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), ours.len(), "{stem}");
        for (i, (line, m)) in lines.iter().zip(&ours).enumerate() {
            let f: Vec<&str> = line
                .split('\t')
                .map(|v| v.split(',').next().unwrap_or(""))
                .collect();
            let (qname, qtype, resp, rcode) = (f[0], f[1], f[2], f[3]);
            let (it, ic, i6t, i6c, dhcp) = (f[4], f[5], f[6], f[7], f[8]);
            let at = format!("{stem} frame {}", i + 1);
            if !it.is_empty() || !i6t.is_empty() {
                // ICMP first: tshark also decodes what an ICMP error quotes.
                let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                let (t, c, v6) = if it.is_empty() {
                    (i6t, i6c, true)
                } else {
                    (it, ic, false)
                };
                let probe = [t.parse().unwrap(), c.parse().unwrap(), 0, 0, 0, 0, 0, 0];
                let kind = if v6 {
                    icmpv6_type_text(&probe)
                } else {
                    icmp_type_text(&probe)
                };
                let kind = kind.unwrap();
                let head = kind.split(" (").next().unwrap();
                assert!(
                    m.text.contains(head),
                    "{at}: {} vs type {t} code {c}",
                    m.text
                );
            } else if !dhcp.is_empty() {
                let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                let want = format!("DHCP {}", dhcp_type_name(dhcp.parse().unwrap()));
                assert!(m.text.starts_with(&want), "{at}: {} vs {want}", m.text);
            } else if !qname.is_empty() {
                let m = m.as_ref().unwrap_or_else(|| panic!("{at}"));
                let verb = if resp == "1" { "response" } else { "query" };
                assert!(
                    m.text.starts_with(&format!("dns {verb}")),
                    "{at}: {}",
                    m.text
                );
                let t = dns_type_name(qtype.parse().unwrap());
                assert!(
                    m.text.contains(&format!(" {t} {qname}")),
                    "{at}: {} vs {t} {qname}",
                    m.text
                );
                if rcode != "0" && !rcode.is_empty() {
                    let r = dns_rcode_name(rcode.parse().unwrap());
                    assert!(m.text.contains(r.as_ref()), "{at}: {}", m.text);
                }
            } else {
                assert!(m.is_none(), "{at}: {m:?}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 39);
}
