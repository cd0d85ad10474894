//! Unit tests of `analyze::tls` (kept outside `src/` so the sources stay the
//! decoder; included from there as a child module, with access to private items).

use super::*;

// ----- builders for hand-made streams -----

fn record(typ: u8, minor: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![typ, 3, minor];
    v.extend((body.len() as u16).to_be_bytes());
    v.extend(body);
    v
}

fn message(t: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![t];
    v.extend(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend(body);
    v
}

fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend((data.len() as u16).to_be_bytes());
    v.extend(data);
    v
}

#[derive(Default)]
struct Ch<'a> {
    sni: Option<&'a str>,
    versions: &'a [u16],
    sid: &'a [u8],
    ciphers: &'a [u16],
    alpn: &'a [&'a str],
    ticket: &'a [u8],
}

fn client_hello(c: &Ch) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([7u8; 32]);
    b.push(c.sid.len() as u8);
    b.extend(c.sid);
    b.extend(((c.ciphers.len() * 2) as u16).to_be_bytes());
    for x in c.ciphers {
        b.extend(x.to_be_bytes());
    }
    b.extend([1, 0]);
    let mut e = Vec::new();
    if let Some(name) = c.sni {
        let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend((name.len() as u16).to_be_bytes());
        d.extend(name.as_bytes());
        e.extend(ext(0, &d));
    }
    if !c.alpn.is_empty() {
        let mut l = Vec::new();
        for p in c.alpn {
            l.push(p.len() as u8);
            l.extend(p.as_bytes());
        }
        let mut d = (l.len() as u16).to_be_bytes().to_vec();
        d.extend(l);
        e.extend(ext(16, &d));
    }
    if !c.versions.is_empty() {
        let mut d = vec![(c.versions.len() * 2) as u8];
        for v in c.versions {
            d.extend(v.to_be_bytes());
        }
        e.extend(ext(43, &d));
    }
    if !c.ticket.is_empty() {
        e.extend(ext(35, c.ticket));
    }
    b.extend((e.len() as u16).to_be_bytes());
    b.extend(e);
    message(1, &b)
}

fn server_hello(random: [u8; 32], sid: &[u8], cipher: u16, exts: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend(random);
    b.push(sid.len() as u8);
    b.extend(sid);
    b.extend(cipher.to_be_bytes());
    b.push(0);
    let e: Vec<u8> = exts.concat();
    b.extend((e.len() as u16).to_be_bytes());
    b.extend(e);
    message(2, &b)
}

const C: Dir = Dir::ToServer;
const S: Dir = Dir::ToClient;

/// Feeds (direction, bytes) steps as packets numbered from 1.
fn run(t: &mut Tls, steps: &[(Dir, Vec<u8>)]) {
    for (i, (d, b)) in steps.iter().enumerate() {
        let used = t.data(*d, b, i as u64 + 1, 1_000 * (i as i64 + 1));
        assert_eq!(used, b.len(), "step {i} consumed");
    }
}

fn tls12_full(sid_client: &[u8], sid_server: &[u8]) -> Vec<(Dir, Vec<u8>)> {
    let ch = client_hello(&Ch {
        sni: Some("www.example.com"),
        sid: sid_client,
        ciphers: &[0x0A0A, 0xC02F, 0x009C, 0x00FF],
        alpn: &["h2", "http/1.1"],
        ..Ch::default()
    });
    let alpn = ext(16, &[0, 3, 2, b'h', b'2']);
    let sh = server_hello([1; 32], sid_server, 0xC02F, &[alpn]);
    let mut flight = record(22, 3, &sh);
    flight.extend(record(
        22,
        3,
        &[message(11, &[0, 0, 0]), message(14, &[])].concat(),
    ));
    let mut client2 = record(22, 3, &message(16, &[1, 2, 3]));
    client2.extend(record(20, 3, &[1]));
    client2.extend(record(22, 3, &[0x55; 40]));
    let mut server2 = record(20, 3, &[1]);
    server2.extend(record(22, 3, &[0x66; 40]));
    vec![
        (C, record(22, 1, &ch)),
        (S, flight),
        (C, client2),
        (S, server2),
        (C, record(23, 3, &[9; 30])),
    ]
}

#[test]
fn tls12_full_handshake() {
    let mut t = Tls::new();
    run(&mut t, &tls12_full(&[], &[5; 32]));
    assert!(t.seen());
    let rows = t.take_rows();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.frame, 1);
    assert_eq!(r.time_ns, 1_000);
    assert_eq!(r.record_version, "TLSv1.0");
    assert_eq!(r.client_version, "TLSv1.2");
    assert_eq!(r.offered_versions, "");
    assert_eq!(r.sni, "www.example.com");
    assert_eq!(r.alpn, "h2", "the server's choice wins over the offer");
    assert_eq!(r.offered_ciphers, Some(3), "GREASE not counted");
    assert_eq!(r.server_version, "TLSv1.2");
    assert_eq!(r.cipher, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(r.established, "yes");
    assert!(!r.resumed && !r.truncated);
    assert_eq!(r.alert, "");
    assert_eq!(t.summary(), Some(r));
    let m = t.take_messages();
    assert_eq!(
        m,
        vec![
            (1, "TLS Client Hello, SNI www.example.com".to_owned()),
            (
                2,
                "TLS Server Hello TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; \
                 TLS Certificate (empty); TLS Server Hello Done"
                    .to_owned()
            ),
            (
                3,
                "TLS Client Key Exchange; TLS Change Cipher Spec; \
                 TLS Encrypted Handshake Message"
                    .to_owned()
            ),
            (
                4,
                "TLS Change Cipher Spec; TLS Encrypted Handshake Message".to_owned()
            ),
            (5, "TLS Application Data".to_owned()),
        ]
    );
    t.end(false);
    assert!(t.take_rows().is_empty(), "already taken");
}

#[test]
fn any_split_gives_the_same_result() {
    let steps = tls12_full(&[], &[5; 32]);
    let mut whole = Tls::new();
    run(&mut whole, &steps);
    let want = whole.take_rows();
    let want_msgs = whole.take_messages();
    for size in [1, 2, 3, 5, 7, 13] {
        let mut t = Tls::new();
        for (i, (d, b)) in steps.iter().enumerate() {
            for c in b.chunks(size) {
                assert_eq!(t.data(*d, c, i as u64 + 1, 1_000 * (i as i64 + 1)), c.len());
            }
        }
        assert_eq!(t.take_rows(), want, "chunks of {size}");
        assert_eq!(t.take_messages(), want_msgs, "chunks of {size}");
    }
}

#[test]
fn resumed_by_session_id() {
    let sid = [9u8; 32];
    let ch = client_hello(&Ch {
        sid: &sid,
        ciphers: &[0x002F],
        ..Ch::default()
    });
    let sh = server_hello([1; 32], &sid, 0x002F, &[]);
    let mut s = record(22, 3, &sh);
    s.extend(record(20, 3, &[1]));
    s.extend(record(22, 3, &[0x44; 40]));
    let mut c = record(20, 3, &[1]);
    c.extend(record(22, 3, &[0x45; 40]));
    let mut t = Tls::new();
    run(&mut t, &[(C, record(22, 1, &ch)), (S, s), (C, c)]);
    let rows = t.take_rows();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].resumed);
    assert_eq!(rows[0].established, "yes");
}

#[test]
fn resumed_by_ticket_and_not_resumed_with_certificate() {
    // A ticket resumption: new session id from the server, but no certificate and
    // no ServerHelloDone before its ChangeCipherSpec.
    let ch = client_hello(&Ch {
        ciphers: &[0x002F],
        ticket: &[1, 2, 3, 4],
        ..Ch::default()
    });
    let mut s = record(22, 3, &server_hello([1; 32], &[3; 32], 0x002F, &[]));
    s.extend(record(22, 3, &message(4, &[0, 0, 0, 1, 0, 0])));
    s.extend(record(20, 3, &[1]));
    let mut t = Tls::new();
    run(&mut t, &[(C, record(22, 1, &ch)), (S, s)]);
    assert!(t.summary().is_some_and(|r| r.resumed));

    // The same session id echoed but then a certificate: a full handshake.
    let mut t = Tls::new();
    let sid = [9u8; 32];
    let ch = client_hello(&Ch {
        sid: &sid,
        ciphers: &[0x002F],
        ..Ch::default()
    });
    let mut s = record(22, 3, &server_hello([1; 32], &sid, 0x002F, &[]));
    s.extend(record(22, 3, &message(11, &[0, 0, 0])));
    run(&mut t, &[(C, record(22, 1, &ch)), (S, s)]);
    assert!(t.summary().is_some_and(|r| !r.resumed));
}

#[test]
fn tls13_with_hello_retry_request_is_one_handshake() {
    let ch = client_hello(&Ch {
        sni: Some("a.example"),
        versions: &[0x3A3A, 0x0303, 0x0304, 0x7F17],
        ciphers: &[0x1301, 0x1302],
        alpn: &["h2"],
        ..Ch::default()
    });
    let tls13 = ext(43, &[3, 4]);
    let hrr = server_hello(HRR_RANDOM, &[], 0x1302, std::slice::from_ref(&tls13));
    let mut s1 = record(22, 3, &hrr);
    s1.extend(record(20, 3, &[1]));
    let mut c2 = record(20, 3, &[1]);
    c2.extend(record(22, 3, &ch));
    let sh = server_hello([2; 32], &[], 0x1302, &[tls13, ext(41, &[0, 0])]);
    let mut s2 = record(22, 3, &sh);
    s2.extend(record(23, 3, &[0x77; 100]));
    let mut t = Tls::new();
    run(
        &mut t,
        &[(C, record(22, 1, &ch)), (S, s1), (C, c2), (S, s2.clone())],
    );
    assert!(
        t.take_rows().is_empty(),
        "not decided before the client's data"
    );
    let r = t.summary().cloned();
    run(&mut t, &[(C, record(23, 3, &[0x78; 50]))]);
    let rows = t.take_rows();
    assert_eq!(rows.len(), 1);
    let r2 = &rows[0];
    assert_eq!(r2.server_version, "TLSv1.3");
    assert_eq!(r2.cipher, "TLS_AES_256_GCM_SHA384");
    assert_eq!(r2.offered_versions, "TLSv1.3 TLSv1.3-draft23 TLSv1.2");
    assert_eq!(r2.alpn, "h2");
    assert_eq!(r2.sni, "a.example");
    assert!(r2.resumed, "pre_shared_key in the ServerHello");
    assert_eq!(r2.established, "yes");
    assert_eq!(r.map(|r| r.established), Some("unknown"));
    let m = t.take_messages();
    assert_eq!(m[1].1, "TLS Hello Retry Request; TLS Change Cipher Spec");
    assert_eq!(
        m[3].1,
        "TLS Server Hello TLSv1.3 TLS_AES_256_GCM_SHA384; TLS Application Data"
    );
}

#[test]
fn tls13_compat_change_cipher_spec_is_not_establishment() {
    let ch = client_hello(&Ch {
        versions: &[0x0304],
        ciphers: &[0x1301],
        ..Ch::default()
    });
    let sh = server_hello([2; 32], &[], 0x1301, &[ext(43, &[3, 4])]);
    let mut s = record(22, 3, &sh);
    s.extend(record(20, 3, &[1]));
    let mut t = Tls::new();
    run(
        &mut t,
        &[(C, record(22, 1, &ch)), (S, s), (C, record(20, 3, &[1]))],
    );
    assert!(t.take_rows().is_empty());
    t.end(false);
    let rows = t.take_rows();
    assert_eq!(rows[0].established, "unknown");
    assert!(!rows[0].resumed);
}

#[test]
fn fatal_alert_fails_the_handshake() {
    let ch = client_hello(&Ch {
        ciphers: &[0x002F],
        ..Ch::default()
    });
    let mut t = Tls::new();
    run(
        &mut t,
        &[(C, record(22, 1, &ch)), (S, record(21, 3, &[2, 40]))],
    );
    let rows = t.take_rows();
    assert_eq!(rows.len(), 1, "decided at once");
    assert_eq!(rows[0].alert, "fatal handshake_failure (server)");
    assert_eq!(rows[0].established, "no");
    assert_eq!(
        t.take_messages()[1],
        (2, "TLS Alert fatal handshake_failure".to_owned())
    );
}

#[test]
fn warning_then_reset_and_plain_end() {
    let ch = record(22, 1, &client_hello(&Ch::default()));
    let mut t = Tls::new();
    run(&mut t, &[(C, ch.clone()), (S, record(21, 3, &[1, 112]))]);
    assert!(t.take_rows().is_empty(), "a warning does not end it");
    t.end(false);
    let rows = t.take_rows();
    assert_eq!(rows[0].alert, "warning unrecognized_name (server)");
    assert_eq!(rows[0].established, "no");

    let mut t = Tls::new();
    run(&mut t, &[(C, ch.clone())]);
    t.end(true);
    assert_eq!(t.take_rows()[0].established, "no");

    let mut t = Tls::new();
    run(&mut t, &[(C, ch)]);
    t.end(false);
    assert_eq!(t.take_rows()[0].established, "unknown");
}

#[test]
fn clear_text_is_not_tls() {
    let mut t = Tls::new();
    assert_eq!(t.data(C, b"220 FTP server ready\r\n", 1, 0), 0);
    assert!(!t.seen());
    assert_eq!(
        t.data(C, &record(23, 3, &[1; 10]), 2, 0),
        0,
        "stays stopped"
    );
    t.end(false);
    assert!(t.take_rows().is_empty());
    assert!(t.summary().is_none());

    // TLS, then back to clear text (CCC) inside the same packet.
    let mut t = Tls::new();
    let mut b = record(21, 3, &[0x11; 26]);
    let n = b.len();
    b.extend(b"200 CCC ok\r\n");
    assert_eq!(t.data(S, &b, 1, 0), n);
    assert!(t.seen());
    // A header cut by the packet boundary and then proven wrong: what came
    // before this packet cannot be returned, the rest can.
    let mut t = Tls::new();
    assert_eq!(t.data(S, &[23, 3, 3], 1, 0), 3);
    assert_eq!(t.data(S, b"\xFF\xFFabc", 2, 0), 0);
}

#[test]
fn header_limits() {
    let mut t = Tls::new();
    // Length 2^14 + 2049 is over the limit.
    assert_eq!(t.data(S, &[23, 3, 3, 0x48, 0x01], 1, 0), 0);
    let mut t = Tls::new();
    assert_eq!(t.data(S, &[23, 3, 3, 0x48, 0x00], 1, 0), 5);
    let mut t = Tls::new();
    assert_eq!(
        t.data(S, &[22, 3, 3, 0, 0], 1, 0),
        0,
        "empty handshake record"
    );
    let mut t = Tls::new();
    assert_eq!(t.data(S, &[22, 2, 0], 1, 0), 0);
    let mut t = Tls::new();
    assert_eq!(
        t.data(S, &[0x80, 0x2E, 0x01, 0x03, 0x01], 1, 0),
        0,
        "SSLv2 only from the client"
    );
}

#[test]
fn sslv2_compatible_client_hello() {
    // msg type 1, version 3.1, 6 bytes of cipher specs, no session id, 16 bytes of
    // challenge.
    let mut body = vec![1, 3, 1, 0, 6, 0, 0, 0, 16];
    body.extend([0, 0, 0x2F, 0, 0, 0x35]);
    body.extend([0xAB; 16]);
    let mut b = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
    b.extend(body);
    let mut t = Tls::new();
    assert_eq!(t.data(C, &b, 1, 0), b.len());
    let sh = server_hello([1; 32], &[], 0x002F, &[]);
    assert!(t.data(S, &record(22, 1, &sh), 2, 0) > 0);
    let r = t.summary().cloned().unwrap_or_default();
    assert_eq!(r.record_version, "SSLv2");
    assert_eq!(r.client_version, "TLSv1.0");
    assert_eq!(r.offered_ciphers, Some(2));
    assert_eq!(r.cipher, "TLS_RSA_WITH_AES_128_CBC_SHA");
    assert!(!r.truncated);
    assert_eq!(t.take_messages()[0].1, "SSLv2 Client Hello");
}

#[test]
fn gap_inside_a_record_keeps_step() {
    let ch = record(22, 1, &client_hello(&Ch::default()));
    let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
    let app = record(23, 3, &[5; 100]);
    let mut t = Tls::new();
    run(&mut t, &[(C, ch), (S, sh)]);
    // 30 bytes of a 105-byte record traced, 70 missing, the rest follows.
    assert_eq!(t.data(S, &app[..30], 3, 0), 30);
    t.gap(S, 70);
    let mut rest = app[100..].to_vec();
    rest.extend(record(20, 3, &[1]));
    assert_eq!(t.data(S, &rest, 4, 0), rest.len());
    assert_eq!(
        t.take_messages().last().map(|m| m.1.as_str()),
        Some("TLS Change Cipher Spec")
    );
    assert!(t.summary().is_some_and(|r| r.truncated));
}

#[test]
fn gap_across_records_resynchronises() {
    let ch = record(22, 1, &client_hello(&Ch::default()));
    let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
    let mut t = Tls::new();
    run(&mut t, &[(C, ch)]);
    t.gap(S, 300);
    // The packet after the gap starts inside some record; the scan finds the
    // ServerHello record after 17 bytes of noise.
    let mut b = vec![0x33; 17];
    b.extend(&sh);
    b.extend(record(20, 3, &[1]));
    assert_eq!(t.data(S, &b, 2, 0), b.len());
    let r = t.summary().cloned().unwrap_or_default();
    assert!(r.truncated);
    assert_eq!(r.server_version, "TLSv1.2");
    // Clear text while still hunting is not taken.
    let mut t = Tls::new();
    run(&mut t, &[(C, record(23, 3, &[1; 8]))]);
    t.gap(C, 10);
    assert_eq!(t.data(C, b"CCC\r\n", 2, 0), 0);
}

#[test]
fn client_hello_cut_and_reported_late() {
    // The ClientHello's packet was abbreviated but the loss is only learnt when the
    // next client bytes come, after the ServerHello: still one handshake.
    let ch = record(
        22,
        1,
        &client_hello(&Ch {
            sni: Some("late.example"),
            ciphers: &[0x002F, 0x0035],
            // The last extension, and the one cut.
            ticket: &[7; 20],
            ..Ch::default()
        }),
    );
    let sh = record(22, 3, &server_hello([1; 32], &[], 0x002F, &[]));
    let mut t = Tls::new();
    let cut = ch.len() - 10;
    assert_eq!(t.data(C, &ch[..cut], 1, 0), cut);
    assert_eq!(t.data(S, &sh, 2, 0), sh.len());
    t.gap(C, 10);
    t.end(false);
    let rows = t.take_rows();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        r.sni, "late.example",
        "the traced part of the hello is read"
    );
    assert_eq!(r.offered_ciphers, Some(2));
    assert_eq!(r.server_version, "TLSv1.2");
    assert!(r.truncated);
    assert_eq!(r.frame, 2, "first message seen: the ServerHello");
}

#[test]
fn cut_server_hello_version_from_what_follows() {
    // TLS 1.3: the ServerHello is cut before supported_versions, and the session
    // id echo (middlebox compatibility) must not read as a resumption.
    let sid = [4u8; 32];
    let ch = record(
        22,
        1,
        &client_hello(&Ch {
            sid: &sid,
            versions: &[0x0304, 0x0303],
            ciphers: &[0x1301],
            ..Ch::default()
        }),
    );
    let key_share = ext(51, &[0; 36]);
    let sh = record(
        22,
        3,
        &server_hello([2; 32], &sid, 0x1301, &[key_share, ext(43, &[3, 4])]),
    );
    let cut = sh.len() - 8;
    let mut t = Tls::new();
    run(&mut t, &[(C, ch.clone())]);
    assert_eq!(t.data(S, &sh[..cut], 2, 0), cut);
    t.gap(S, 8);
    let mut s = record(20, 3, &[1]);
    s.extend(record(23, 3, &[0; 60]));
    run(&mut t, &[(C, vec![]), (S, s), (C, record(23, 3, &[0; 40]))]);
    let rows = t.take_rows();
    assert_eq!(rows[0].server_version, "TLSv1.3");
    assert_eq!(rows[0].cipher, "TLS_AES_128_GCM_SHA256");
    assert!(!rows[0].resumed);
    assert_eq!(rows[0].established, "yes");

    // TLS 1.2: the same cut, then a certificate in clear.
    let sh = record(22, 3, &server_hello([2; 32], &[], 0x002F, &[ext(23, &[])]));
    let mut t = Tls::new();
    run(&mut t, &[(C, ch)]);
    assert_eq!(t.data(S, &sh[..sh.len() - 2], 2, 0), sh.len() - 2);
    t.gap(S, 2);
    assert!(t.summary().is_some_and(|r| r.server_version.is_empty()));
    run(
        &mut t,
        &[(C, vec![]), (S, record(22, 3, &message(11, &[0, 0, 0])))],
    );
    assert!(t.summary().is_some_and(|r| r.server_version == "TLSv1.2"));
}

#[test]
fn handshake_message_gap_and_oversize() {
    // A certificate message of 70000 bytes (over the 64 KiB cap) in 5 records.
    let mut cert = message(11, &vec![0; 70_000]);
    cert.extend(message(14, &[]));
    let ch = record(22, 1, &client_hello(&Ch::default()));
    let mut t = Tls::new();
    run(&mut t, &[(C, ch)]);
    for (frame, piece) in (2..).zip(cert.chunks(16_000)) {
        let r = record(22, 3, piece);
        assert_eq!(t.data(S, &r, frame, 0), r.len());
        assert!(t.sides[1].hs.buf.capacity() <= 4 + MAX_MESSAGE);
    }
    let r = t.summary().cloned().unwrap_or_default();
    assert!(r.truncated);
    let m = t.take_messages();
    // Announced once its first 64 KiB are in (frame 6), with the next message.
    assert_eq!(
        m.last(),
        Some(&(6, "TLS Certificate; TLS Server Hello Done".to_owned()))
    );

    // A gap inside a handshake message: the message is lost, the next one read.
    let sh = server_hello([1; 32], &[], 0x002F, &[]);
    let mut body = message(11, &[0; 50]);
    body.extend(message(14, &[]));
    let r1 = record(22, 3, &[sh, body].concat());
    let mut t = Tls::new();
    run(&mut t, &[(C, record(22, 1, &client_hello(&Ch::default())))]);
    let cut = r1.len() - 30;
    assert_eq!(t.data(S, &r1[..cut], 2, 0), cut);
    t.gap(S, 20);
    assert_eq!(t.data(S, &r1[cut + 20..], 3, 0), 10);
    // The cut certificate is named in the packet that carried its start.
    let m = t.take_messages();
    assert_eq!(
        m[1..],
        [
            (
                2,
                "TLS Server Hello TLSv1.2 TLS_RSA_WITH_AES_128_CBC_SHA; TLS Certificate".to_owned()
            ),
            (3, "TLS Server Hello Done".to_owned())
        ]
    );
    assert!(
        t.hs.as_ref()
            .is_some_and(|h| h.server_cert && h.server_done)
    );
}

#[test]
fn text_helpers() {
    assert_eq!(iso_seconds(0), "1970-01-01T00:00:00Z");
    assert_eq!(iso_seconds(1_365_639_277), "2013-04-11T00:14:37Z");
    assert_eq!(iso_seconds(253_402_300_799), "9999-12-31T23:59:59Z");
    assert_eq!(iso_seconds(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(iso_seconds(-1), "1969-12-31T23:59:59Z");
    assert_eq!(escape_dn("a,b+c"), "a\\,b\\+c");
    assert_eq!(escape_dn(" #x "), "\\ #x\\ ");
    assert_eq!(escape_dn("#x"), "\\#x");
    assert_eq!(escape_dn("#0A1B"), "#0A1B");
    assert_eq!(escape_dn("a\nb"), "a\\0Ab");
    assert_eq!(printable(b"h2\x00\\"), "h2\\x00\\x5C");
    assert!(is_grease(0x0A0A) && is_grease(0xFAFA) && !is_grease(0x0A1A));
    assert_eq!(version_name(0x7F0E), "TLSv1.3-draft14");
    assert_eq!(version_name(0x0300), "SSLv3");
    assert_eq!(version_name(0x1234), "0x1234");
    assert_eq!(cipher_name(0x1301), "TLS_AES_128_GCM_SHA256");
    assert_eq!(cipher_name(0xEEEE), "0xEEEE");
    assert_eq!(alert_name(250), "alert250");
}

/// A tiny deterministic generator, so the random tests repeat.
fn lcg(state: &mut u64) -> u8 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 33) as u8
}

#[test]
fn fuzz_entry_survives_noise_and_mutations() {
    let mut st = 1u64;
    for len in [0, 1, 3, 10, 100, 1000, 5000] {
        let noise: Vec<u8> = (0..len).map(|_| lcg(&mut st)).collect();
        fuzz(&noise);
    }
    // Real-looking streams with bytes flipped: framed as fuzz operations.
    let steps = tls12_full(&[1; 32], &[1; 32]);
    for round in 0..400 {
        let mut input = Vec::new();
        for (d, b) in &steps {
            let mut b = b.clone();
            for _ in 0..(round % 5) {
                if !b.is_empty() {
                    let i = usize::from(lcg(&mut st)) * 31 % b.len();
                    b[i] = lcg(&mut st);
                }
            }
            let op = if *d == C { 2 } else { 3 };
            input.push(op | (lcg(&mut st) & 0x30));
            input.extend((b.len() as u16).to_be_bytes());
            input.extend(b);
            if round % 3 == 0 {
                input.extend([u8::from(*d == S), 0, lcg(&mut st)]);
            }
        }
        fuzz(&input);
    }
}

// ----- real captures -----

mod captures {
    use super::super::*;
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::path::{Path, PathBuf};

    use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

    fn dir() -> Option<PathBuf> {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures");
        if d.is_dir() {
            Some(d)
        } else {
            eprintln!("skipped: {} is absent", d.display());
            None
        }
    }

    struct Seg {
        frame: u64,
        time: i64,
        seq: u32,
        data: Vec<u8>,
        /// Payload length on the wire (more than `data` when abbreviated).
        orig: usize,
    }

    #[derive(Default)]
    struct Conn {
        client: Option<(IpAddr, u16)>,
        server: Option<(IpAddr, u16)>,
        segs: [Vec<Seg>; 2],
        isn: [Option<u32>; 2],
        rst: bool,
    }

    /// TCP connections of a pcap (Ethernet or raw IP), payloads per direction.
    fn load(path: &Path) -> Vec<Conn> {
        let bytes = std::fs::read(path).expect("capture readable");
        let (_, cap) = pcap_parser::parse_pcap(&bytes).expect("a legacy pcap");
        let linktype = cap.header.network.0;
        let ns = cap.header.is_nanosecond_precision();
        let mut conns: Vec<Conn> = Vec::new();
        let mut index: HashMap<[(IpAddr, u16); 2], usize> = HashMap::new();
        for (i, b) in cap.blocks.iter().enumerate() {
            let frame = i as u64 + 1;
            let time = i64::from(b.ts_sec) * 1_000_000_000
                + i64::from(b.ts_usec) * if ns { 1 } else { 1000 };
            let sliced = match linktype {
                1 => LaxSlicedPacket::from_ethernet(b.data).ok(),
                101 => LaxSlicedPacket::from_ip(b.data).ok(),
                other => panic!("linktype {other} not handled by this helper"),
            };
            let Some(p) = sliced else { continue };
            let (src, dst) = match &p.net {
                Some(LaxNetSlice::Ipv4(v4)) => (
                    IpAddr::V4(v4.header().source_addr()),
                    IpAddr::V4(v4.header().destination_addr()),
                ),
                Some(LaxNetSlice::Ipv6(v6)) => (
                    IpAddr::V6(v6.header().source_addr()),
                    IpAddr::V6(v6.header().destination_addr()),
                ),
                _ => continue,
            };
            let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
                continue;
            };
            let a = (src, tcp.source_port());
            let z = (dst, tcp.destination_port());
            let mut key = [a, z];
            key.sort();
            let n = *index.entry(key).or_insert_with(|| {
                conns.push(Conn::default());
                conns.len() - 1
            });
            let c = &mut conns[n];
            if c.client.is_none() {
                // The SYN's sender, else the first packet's.
                let client_is_src = !(tcp.syn() && tcp.ack());
                c.client = Some(if client_is_src { a } else { z });
                c.server = Some(if client_is_src { z } else { a });
            }
            let d = if Some(a) == c.client { 0 } else { 1 };
            if tcp.syn() {
                c.isn[d] = Some(tcp.sequence_number().wrapping_add(1));
            }
            c.rst |= tcp.rst();
            if !tcp.payload().is_empty() {
                c.segs[d].push(Seg {
                    frame,
                    time,
                    seq: tcp.sequence_number(),
                    data: tcp.payload().to_vec(),
                    orig: tcp.payload().len(),
                });
            }
        }
        conns
    }

    enum Piece {
        Data(Vec<u8>),
        Gap(u64),
    }

    /// One direction in sequence order without retransmitted bytes; each piece is
    /// delivered with the latest frame needed to have everything before it.
    fn in_order(segs: &[Seg], isn: Option<u32>) -> Vec<(u64, i64, Piece)> {
        let Some(base) = isn.or(segs.first().map(|s| s.seq)) else {
            return Vec::new();
        };
        let mut v: Vec<(u64, &Seg)> = segs
            .iter()
            .map(|s| (u64::from(s.seq.wrapping_sub(base)), s))
            .collect();
        v.sort_by_key(|(rel, s)| (*rel, s.frame));
        let (mut expected, mut deliver) = (0u64, 0u64);
        let mut out = Vec::new();
        for (rel, s) in v {
            let end = rel + s.orig as u64;
            if end <= expected {
                continue;
            }
            deliver = deliver.max(s.frame);
            if rel > expected {
                out.push((deliver, s.time, Piece::Gap(rel - expected)));
            }
            let skip = expected.saturating_sub(rel) as usize;
            if let Some(d) = s.data.get(skip..).filter(|d| !d.is_empty()) {
                out.push((deliver, s.time, Piece::Data(d.to_vec())));
            }
            // An abbreviated packet: the untraced rest is reported with it, as the
            // session layer does.
            let traced_end = (rel + s.data.len() as u64).max(expected);
            if end > traced_end {
                out.push((deliver, s.time, Piece::Gap(end - traced_end)));
            }
            expected = end;
        }
        out
    }

    /// Drops the bytes before the first `16 03` (FTPS: the clear-text FTP before
    /// AUTH TLS / 234).
    fn skip_clear_prefix(pieces: &mut Vec<(u64, i64, Piece)>) {
        while let Some((_, _, Piece::Data(b))) = pieces.first_mut() {
            if let Some(i) = b.windows(2).position(|w| w == [0x16, 0x03]) {
                b.drain(..i);
                return;
            }
            pieces.remove(0);
        }
    }

    struct Fed {
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        rows: Vec<Row>,
        messages: Vec<(u64, String)>,
        stopped: [bool; 2],
    }

    fn feed(c: &Conn, skip_prefix: bool, chunk: usize) -> Fed {
        let mut all = Vec::new();
        for (d, dir) in [(0, Dir::ToServer), (1, Dir::ToClient)] {
            let mut p = in_order(&c.segs[d], c.isn[d]);
            if skip_prefix {
                skip_clear_prefix(&mut p);
            }
            all.extend(p.into_iter().map(|(f, t, piece)| (f, t, dir, piece)));
        }
        // Stable: each direction's pieces keep their sequence order.
        all.sort_by_key(|(f, ..)| *f);
        let mut t = Tls::new();
        let mut stopped = [false; 2];
        for (frame, time, dir, piece) in &all {
            match piece {
                Piece::Gap(n) => t.gap(*dir, *n),
                Piece::Data(b) => {
                    for part in b.chunks(chunk) {
                        if stopped[dir.index()] {
                            break;
                        }
                        let used = t.data(*dir, part, *frame, *time);
                        stopped[dir.index()] = used < part.len();
                    }
                }
            }
        }
        t.end(c.rst);
        Fed {
            client: c.client.expect("conn has a client"),
            server: c.server.expect("conn has a server"),
            rows: t.take_rows(),
            messages: t.take_messages(),
            stopped,
        }
    }

    fn run(name: &str, skip_prefix: bool) -> Option<Vec<Fed>> {
        let d = dir()?;
        let conns = load(&d.join(name));
        let fed: Vec<Fed> = conns
            .iter()
            .map(|c| feed(c, skip_prefix, usize::MAX))
            .collect();
        // Byte by byte the same rows come out (messages too).
        for (c, f) in conns.iter().zip(&fed) {
            let small = feed(c, skip_prefix, 1);
            assert_eq!(small.rows, f.rows, "{name}: fed byte by byte");
            assert_eq!(small.messages, f.messages, "{name}: fed byte by byte");
        }
        for f in &fed {
            assert!(!f.stopped[0] && !f.stopped[1], "{name}: all of it is TLS");
            for r in &f.rows {
                assert!(!r.truncated, "{name}: nothing missing in these captures");
            }
        }
        Some(fed)
    }

    /// Rows of the Zeek ssl.log baseline(s) of a capture, as field maps.
    fn zeek_log(stem: &str, suffix: &str) -> Vec<HashMap<String, String>> {
        let Some(base) = dir().map(|d| d.join("baselines").join(stem)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&base)
            .expect("baseline dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("baseline text");
            let mut fields: Vec<String> = Vec::new();
            for line in text.lines() {
                if let Some(h) = line.strip_prefix("#fields\t") {
                    fields = h.split('\t').map(str::to_owned).collect();
                } else if !line.starts_with('#') && !fields.is_empty() {
                    out.push(
                        fields
                            .iter()
                            .cloned()
                            .zip(line.split('\t').map(str::to_owned))
                            .collect(),
                    );
                }
            }
        }
        out
    }

    /// Zeek's `TLSv12` is Wireshark's `TLSv1.2`; `-` is unset.
    fn zeek_version(v: &str) -> String {
        match v.strip_prefix("TLSv1") {
            _ if v == "-" => String::new(),
            Some(rest) => format!("TLSv1.{rest}"),
            None => v.to_owned(),
        }
    }

    fn unset(v: &str) -> &str {
        if v == "-" { "" } else { v }
    }

    /// Compares every handshake with its ssl.log line (matched by the 4-tuple).
    /// `unknown_is_f`: our `unknown` stands for Zeek's F (the trace ends before the
    /// handshake does; Zeek's boolean cannot say "not seen").
    fn compare_zeek(stem: &str, fed: &[Fed], unknown_is_f: bool) -> usize {
        let log = zeek_log(stem, "ssl.log");
        let log = if log.is_empty() {
            zeek_log(stem, "ssl-out.log")
        } else {
            log
        };
        let mut compared = 0;
        for f in fed {
            let z = log.iter().find(|z| {
                z["id.orig_h"] == f.client.0.to_string()
                    && z["id.orig_p"] == f.client.1.to_string()
                    && z["id.resp_h"] == f.server.0.to_string()
                    && z["id.resp_p"] == f.server.1.to_string()
            });
            let Some(z) = z else {
                assert!(f.rows.is_empty(), "{stem}: a handshake Zeek did not log");
                continue;
            };
            assert_eq!(f.rows.len(), 1, "{stem}: one handshake per connection");
            let r = &f.rows[0];
            assert_eq!(
                r.server_version,
                zeek_version(&z["version"]),
                "{stem} version"
            );
            assert_eq!(r.cipher, unset(&z["cipher"]), "{stem} cipher");
            assert_eq!(r.sni, unset(&z["server_name"]), "{stem} server_name");
            assert_eq!(r.resumed, z["resumed"] == "T", "{stem} resumed");
            let want: &[&str] = match (z["established"].as_str(), unknown_is_f) {
                ("T", _) => &["yes"],
                ("F", false) => &["no"],
                ("F", true) => &["unknown"],
                (other, _) => panic!("{stem}: established {other}"),
            };
            assert!(
                want.contains(&r.established),
                "{stem} established {}",
                r.established
            );
            match unset(&z["last_alert"]) {
                "" => assert_eq!(r.alert, "", "{stem} alert"),
                a => assert!(r.alert.contains(a), "{stem}: alert {} vs {a}", r.alert),
            }
            compared += 1;
        }
        // Every line of the baseline that belongs to this capture was matched.
        assert!(compared > 0, "{stem}: nothing compared");
        compared
    }

    /// The server certificate against the first line of Zeek's x509.log.
    fn compare_x509(stem: &str, r: &Row) {
        let log = zeek_log(stem, "x509.log");
        let Some(z) = log.first() else {
            panic!("{stem}: no x509.log");
        };
        assert_eq!(r.cert_subject, z["certificate.subject"], "{stem} subject");
        assert_eq!(r.cert_issuer, z["certificate.issuer"], "{stem} issuer");
        let secs: f64 = z["certificate.not_valid_after"].parse().expect("epoch");
        assert_eq!(
            r.cert_not_after,
            iso_seconds(secs as i64),
            "{stem} not_after"
        );
    }

    fn only_row(fed: &[Fed]) -> &Row {
        let rows: Vec<&Row> = fed.iter().flat_map(|f| &f.rows).collect();
        assert_eq!(rows.len(), 1);
        rows[0]
    }

    fn messages_of(fed: &[Fed], frame: u64) -> String {
        fed.iter()
            .flat_map(|f| &f.messages)
            .filter(|(n, _)| *n == frame)
            .map(|(_, m)| m.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// tshark (when installed): the SNIs of its ClientHellos and the suites of its
    /// ServerHellos must be ours.
    fn compare_tshark(name: &str, fed: &[Fed]) {
        let Some(d) = dir() else { return };
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(d.join(name))
            .args(["-Y", "tls.handshake", "-T", "fields"])
            .args(["-e", "tcp.srcport", "-e", "tcp.dstport"])
            .args(["-e", "tls.handshake.type"])
            .args(["-e", "tls.handshake.extensions_server_name"])
            .args(["-e", "tls.handshake.ciphersuite"])
            .output();
        let Some(out) = out.ok().filter(|o| o.status.success()) else {
            eprintln!("tshark not available: {name} not compared with it");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut checked = 0;
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [sport, dport, types, sni, suites, ..] = f[..] else {
                continue;
            };
            let types: Vec<&str> = types.split(',').collect();
            let row_for = |client_port: &str| {
                fed.iter()
                    .find(|c| c.client.1.to_string() == client_port)
                    .and_then(|c| c.rows.first())
            };
            if types.contains(&"1") && !sni.is_empty() {
                let r = row_for(sport).expect("row for the ClientHello");
                assert_eq!(r.sni, sni, "{name}: tshark SNI");
                checked += 1;
            }
            if types.contains(&"2") {
                let r = row_for(dport).expect("row for the ServerHello");
                let id =
                    u16::from_str_radix(suites.trim_start_matches("0x"), 16).expect("hex suite");
                assert_eq!(r.cipher, cipher_name(id), "{name}: tshark suite");
                checked += 1;
            }
        }
        assert!(checked > 0, "{name}: tshark showed no hello");
    }

    #[test]
    fn tls10_sni_extensions() {
        let name = "tls10_sni_extensions__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        compare_zeek("tls10_sni_extensions__zeek", &fed, false);
        let r = only_row(&fed);
        compare_x509("tls10_sni_extensions__zeek", r);
        assert_eq!(r.record_version, "TLSv1.0");
        assert_eq!(r.client_version, "TLSv1.0");
        assert_eq!(r.offered_ciphers, Some(36), "tshark lists 36 suites");
        assert_eq!(
            messages_of(&fed, 4),
            "TLS Client Hello, SNI ssl.gstatic.com"
        );
        assert_eq!(
            messages_of(&fed, 6),
            "TLS Server Hello TLSv1.0 TLS_ECDHE_RSA_WITH_RC4_128_SHA"
        );
        assert_eq!(
            messages_of(&fed, 7),
            "TLS Certificate CN=*.gstatic.com; TLS Server Key Exchange; \
             TLS Server Hello Done"
        );
        assert_eq!(
            messages_of(&fed, 12),
            "TLS New Session Ticket; TLS Change Cipher Spec; \
             TLS Encrypted Handshake Message"
        );
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls11() {
        let name = "tls11__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        compare_zeek("tls11__zeek", &fed, false);
        let r = only_row(&fed);
        compare_x509("tls11__zeek", r);
        assert_eq!(r.client_version, "TLSv1.1");
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls12() {
        let name = "tls12__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        compare_zeek("tls12__zeek", &fed, false);
        let r = only_row(&fed);
        // The subject has street= and postalCode= attributes, spelled as Zeek does.
        compare_x509("tls12__zeek", r);
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls12_handshake_failure_alert() {
        let name = "tls12_handshake_failure_alert__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        compare_zeek("tls12_handshake_failure_alert__zeek", &fed, false);
        let r = only_row(&fed);
        assert_eq!(r.alert, "fatal handshake_failure (server)");
        assert_eq!(r.established, "no");
        assert_eq!(r.client_version, "TLSv1.2");
        let alert: Vec<&String> = fed[0]
            .messages
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.contains("Alert"))
            .collect();
        assert_eq!(alert, ["TLS Alert fatal handshake_failure"]);
    }

    #[test]
    fn tls12_rawip_dlt101() {
        let name = "tls12_rawip_dlt101__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        // The trace ends after the server's Certificate: Zeek writes F (its field
        // is a boolean), the spec asks for `unknown`.
        compare_zeek("tls12_rawip_dlt101__zeek", &fed, true);
        let r = only_row(&fed);
        // An ML-DSA-44 certificate: x509-parser reads names and validity of
        // certificates whose key algorithm it does not know.
        compare_x509("tls12_rawip_dlt101__zeek", r);
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls13_ech_sni() {
        let name = "tls13_ech_sni__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        // Three connections: the first is traced from its middle (application
        // data only), so it has no handshake row, as in Zeek's log.
        assert_eq!(fed.len(), 3);
        assert!(fed[0].rows.is_empty());
        assert_eq!(compare_zeek("tls13_ech_sni__zeek", &fed, false), 2);
        for f in &fed[1..] {
            let r = &f.rows[0];
            // The outer (public) SNI of Encrypted Client Hello.
            assert_eq!(r.sni, "cloudflare-ech.com");
            assert_eq!(r.offered_ciphers, Some(15), "16 in tshark, one is GREASE");
            assert!(r.offered_versions.starts_with("TLSv1.3 TLSv1.2"));
        }
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls13_hello_retry_request() {
        let name = "tls13_hello_retry_request__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        // Zeek's tls13 ssl-out.log concatenates several traces; the 4-tuple picks
        // this one's line (ssl_history CjiICs).
        compare_zeek("tls13_hello_retry_request__zeek", &fed, false);
        let r = only_row(&fed);
        assert_eq!(r.offered_ciphers, Some(4));
        assert_eq!(r.server_version, "TLSv1.3");
        let m: Vec<&str> = fed[0].messages.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            m.contains(&"TLS Hello Retry Request; TLS Change Cipher Spec"),
            "{m:?}"
        );
        // The server's second flight arrives out of order (frame 9 before frame
        // 11); the helper delivers it in sequence with frame 11.
        assert!(messages_of(&fed, 11).starts_with("TLS Server Hello TLSv1.3"));
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls13_sni_chrome_x25519kyber() {
        let name = "tls13_sni_chrome_x25519kyber__zeek.pcap";
        let Some(fed) = run(name, false) else { return };
        compare_zeek("tls13_sni_chrome_x25519kyber__zeek", &fed, false);
        let r = only_row(&fed);
        // The ClientHello spans two TCP segments.
        assert_eq!(r.sni, "lh3.google.com");
        assert_eq!(r.alpn, "h2 http/1.1");
        compare_tshark(name, &fed);
    }

    #[test]
    fn tls13_split_client_hello_sni() {
        let name = "tls13_split_client_hello_sni__arkime.pcap";
        let Some(fed) = run(name, false) else { return };
        let r = only_row(&fed);
        // Arkime's baseline: TLSv1.3, TLS_AES_128_GCM_SHA256, host
        // clients2.google.com, JA4 t13d1516h2 (15 suites, ALPN h2 first).
        let base = dir()
            .map(|d| d.join("baselines/tls13_split_client_hello_sni__arkime"))
            .and_then(|d| {
                std::fs::read_to_string(d.join("arkime__tls-split-client-hello.test")).ok()
            })
            .unwrap_or_default();
        for want in [
            "\"TLSv1.3\"",
            "\"TLS_AES_128_GCM_SHA256\"",
            "\"clients2.google.com\"",
            "t13d1516h2_",
        ] {
            assert!(base.contains(want), "baseline has {want}");
        }
        assert_eq!(r.server_version, "TLSv1.3");
        assert_eq!(r.cipher, "TLS_AES_128_GCM_SHA256");
        assert_eq!(r.sni, "clients2.google.com");
        assert_eq!(r.offered_ciphers, Some(15));
        assert!(r.alpn.starts_with("h2"));
        assert_eq!(r.established, "yes");
        compare_tshark(name, &fed);
    }

    #[test]
    fn sslv3_openssl() {
        let name = "sslv3_openssl__arkime.pcap";
        let Some(fed) = run(name, false) else { return };
        let r = only_row(&fed);
        let base = dir()
            .map(|d| d.join("baselines/sslv3_openssl__arkime/arkime__openssl-ssl3.test"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        // Arkime: version SSLv3, TLS_ECDHE_RSA_WITH_RC4_128_SHA, JA4 ts3i46 (46
        // suites), certificate *.google.com issued by Google Internet Authority G2.
        for want in ["\"SSLv3\"", "\"TLS_ECDHE_RSA_WITH_RC4_128_SHA\"", "ts3i46"] {
            assert!(base.contains(want), "baseline has {want}");
        }
        assert_eq!(r.record_version, "SSLv3");
        assert_eq!(r.client_version, "SSLv3");
        assert_eq!(r.server_version, "SSLv3");
        assert_eq!(r.cipher, "TLS_ECDHE_RSA_WITH_RC4_128_SHA");
        assert_eq!(r.offered_ciphers, Some(46));
        assert!(
            r.cert_subject.starts_with("CN=*.google.com,"),
            "{}",
            r.cert_subject
        );
        assert!(
            r.cert_issuer
                .starts_with("CN=Google Internet Authority G2,")
        );
        // Arkime's notAfter 1419292800000 ms.
        assert_eq!(r.cert_not_after, iso_seconds(1_419_292_800));
        assert_eq!(r.established, "yes");
        compare_tshark(name, &fed);
    }

    #[test]
    fn ftps_explicit_auth_tls() {
        let name = "ftps_explicit_auth_tls__zeek.pcap";
        let Some(fed) = run(name, true) else { return };
        compare_zeek("ftps_explicit_auth_tls__zeek", &fed, false);
        let r = only_row(&fed);
        // An IP literal as SNI (RFC 6066 forbids it; the client sent it anyway).
        assert_eq!(r.sni, "127.0.0.1");
        assert_eq!(r.offered_ciphers, Some(29));
        compare_tshark(name, &fed);
        // Without skipping the FTP prefix the decoder refuses the stream at once.
        let conns = load(&dir().expect("dir").join(name));
        let plain = feed(&conns[0], false, usize::MAX);
        assert!(plain.stopped[0] && plain.stopped[1] && plain.rows.is_empty());
    }
    /// Every capture again with each packet abbreviated to its first `keep` bytes
    /// (the gap reported with the packet, as z/OS traces with a snap length do):
    /// the same handshakes come out, each field either right or empty, never
    /// wrong; `resumed` may only fall to false, `established` only to unknown.
    #[test]
    fn abbreviated_packets_give_partial_but_right_rows() {
        let Some(d) = dir() else { return };
        let all = [
            ("tls10_sni_extensions__zeek.pcap", false),
            ("tls11__zeek.pcap", false),
            ("tls12__zeek.pcap", false),
            ("tls12_handshake_failure_alert__zeek.pcap", false),
            ("tls12_rawip_dlt101__zeek.pcap", false),
            ("tls13_ech_sni__zeek.pcap", false),
            ("tls13_hello_retry_request__zeek.pcap", false),
            ("tls13_sni_chrome_x25519kyber__zeek.pcap", false),
            ("tls13_split_client_hello_sni__arkime.pcap", false),
            ("sslv3_openssl__arkime.pcap", false),
            ("ftps_explicit_auth_tls__zeek.pcap", true),
        ];
        let mut sni_found = 0;
        for (name, skip) in all {
            let conns = load(&d.join(name));
            let full: Vec<Fed> = conns.iter().map(|c| feed(c, skip, usize::MAX)).collect();
            for keep in [40, 120, 300, 1000] {
                let mut cut = load(&d.join(name));
                for s in cut.iter_mut().flat_map(|c| c.segs.iter_mut().flatten()) {
                    s.data.truncate(keep);
                }
                for (c, f) in cut.iter().zip(&full) {
                    let a = feed(c, skip, usize::MAX);
                    let at = format!("{name} cut to {keep}");
                    assert_eq!(a.stopped, [false, false], "{at}");
                    assert_eq!(a.rows.len(), f.rows.len(), "{at}: handshakes");
                    for (r, w) in a.rows.iter().zip(&f.rows) {
                        for (got, want, what) in [
                            (&r.record_version, &w.record_version, "record_version"),
                            (&r.client_version, &w.client_version, "client_version"),
                            (&r.offered_versions, &w.offered_versions, "offered"),
                            (&r.sni, &w.sni, "sni"),
                            (&r.server_version, &w.server_version, "server_version"),
                            (&r.cipher, &w.cipher, "cipher"),
                            (&r.cert_subject, &w.cert_subject, "cert_subject"),
                            (&r.cert_not_after, &w.cert_not_after, "not_after"),
                        ] {
                            assert!(got.is_empty() || got == want, "{at}: {what} {got}");
                        }
                        // ALPN: the client's list may be cut to its first names.
                        assert!(w.alpn.starts_with(r.alpn.as_str()), "{at}: alpn");
                        assert!(
                            r.offered_ciphers.is_none() || r.offered_ciphers == w.offered_ciphers
                        );
                        assert!(!r.resumed || w.resumed, "{at}: resumed");
                        assert!(
                            r.established == w.established || r.established == "unknown",
                            "{at}: established {}",
                            r.established
                        );
                        assert!(w.alert.is_empty() || r.alert == w.alert, "{at}: alert");
                        sni_found += usize::from(!r.sni.is_empty());
                    }
                }
            }
        }
        assert!(sni_found > 5, "SNI survives in many abbreviated hellos");
    }
}
