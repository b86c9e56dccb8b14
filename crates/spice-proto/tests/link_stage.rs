//! Link stage: golden bytes from the reference (Appendix A), validation as spice-server
//! does it, the RSA ticket, and the client/server state machines joined in memory.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rand_core::OsRng;
use spice_proto::caps::{self, Caps, CommonCaps};
use spice_proto::link::strategies::{link_header, link_mess, link_reply};
use spice_proto::link::*;
use spice_proto::ticket::{self, TicketError, TicketKey};
use spice_proto::{ChannelType, Encode};

fn key() -> TicketKey {
    static KEY: OnceLock<TicketKey> = OnceLock::new();
    KEY.get_or_init(|| TicketKey::generate(&mut OsRng).unwrap())
        .clone()
}

fn other_key() -> TicketKey {
    static KEY: OnceLock<TicketKey> = OnceLock::new();
    KEY.get_or_init(|| TicketKey::generate(&mut OsRng).unwrap())
        .clone()
}

/// Appendix A, client → server (42 bytes).
const APPENDIX_A_CLIENT: [u8; 42] = [
    0x52, 0x45, 0x44, 0x51, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00,
    0x00, //
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, //
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, //
    0x0d, 0x00, 0x00, 0x00, //
    0x0f, 0x00, 0x00, 0x00,
];

/// Appendix A's DER prefix of the 162-byte public key (everything before the modulus).
const DER_PREFIX: [u8; 29] = [
    0x30, 0x81, 0x9f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    0x05, 0x00, 0x03, 0x81, 0x8d, 0x00, 0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00,
];
const DER_SUFFIX: [u8; 5] = [0x02, 0x03, 0x01, 0x00, 0x01];

fn appendix_a_server(pub_key: &[u8; 162]) -> Vec<u8> {
    let mut v = vec![
        0x52, 0x45, 0x44, 0x51, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0xba, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    v.extend_from_slice(pub_key);
    v.extend_from_slice(&[
        0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00,
        0x00, 0x09, 0x00, 0x00, 0x00,
    ]);
    v
}

fn gtk_like_mess() -> LinkMess {
    LinkMess::new(
        0,
        ChannelType::MAIN,
        0,
        Caps::from(
            CommonCaps::PROTOCOL_AUTH_SELECTION | CommonCaps::AUTH_SASL | CommonCaps::MINI_HEADER,
        ),
        Caps::from_caps(&[
            caps::main::SEMI_SEAMLESS_MIGRATE,
            caps::main::NAME_AND_UUID,
            caps::main::AGENT_CONNECTED_TOKENS,
            caps::main::SEAMLESS_MIGRATE,
        ]),
    )
}

#[test]
fn appendix_a_link_message() {
    let m = gtk_like_mess();
    assert_eq!(m.to_link_bytes().unwrap(), APPENDIX_A_CLIENT);
    let h = LinkHeader::parse(&APPENDIX_A_CLIENT).unwrap();
    assert_eq!(h, LinkHeader::new(26));
    assert_eq!(LinkMess::decode_body(&APPENDIX_A_CLIENT[16..]).unwrap(), m);
}

#[test]
fn appendix_a_link_reply_and_der_prefix() {
    let k = key();
    let der = k.public_key_der();
    assert_eq!(der.len(), 162);
    assert_eq!(&der[..29], &DER_PREFIX);
    assert_eq!(&der[157..], &DER_SUFFIX);
    let reply = LinkReply::new(
        *der,
        caps::default_server_common_caps(),
        Caps::from_caps(&[
            caps::main::SEMI_SEAMLESS_MIGRATE,
            caps::main::SEAMLESS_MIGRATE,
        ]),
    );
    let bytes = reply.to_link_bytes().unwrap();
    assert_eq!(bytes, appendix_a_server(der));
    assert_eq!(bytes.len(), 202);
    assert_eq!(LinkReply::decode_body(&bytes[16..]).unwrap(), reply);
}

#[test]
fn link_error_reply_layout() {
    let b = link_error_bytes(LinkErr::NEED_SECURED);
    assert_eq!(b.len(), 16 + 178);
    assert_eq!(&b[..16], b"REDQ\x02\0\0\0\x02\0\0\0\xb2\0\0\0");
    assert_eq!(&b[16..20], &[5, 0, 0, 0]);
    assert!(b[20..].iter().all(|&x| x == 0));
    let r = LinkReply::decode_body(&b[16..]).unwrap();
    assert_eq!(r, LinkReply::error_reply(LinkErr::NEED_SECURED));
    assert_eq!(r.to_vec().unwrap(), &b[16..]);
}

#[test]
fn link_mess_validation_like_spice_server() {
    let base = APPENDIX_A_CLIENT[16..].to_vec();
    // num_common_caps > 1024
    let mut b = base.clone();
    b[6..10].copy_from_slice(&1025u32.to_le_bytes());
    let e = LinkMess::decode_body(&b).unwrap_err();
    assert!(matches!(e, LinkError::TooManyCaps { common: 1025, .. }));
    assert_eq!(e.link_err(), LinkErr::INVALID_DATA);
    // caps beyond the message
    let mut b = base.clone();
    b[10..14].copy_from_slice(&2u32.to_le_bytes());
    let e = LinkMess::decode_body(&b).unwrap_err();
    assert!(matches!(e, LinkError::CapsOutOfRange { words: 3, .. }));
    assert_eq!(e.link_err(), LinkErr::INVALID_DATA);
    // caps_offset inside the fixed part
    let mut b = base.clone();
    b[14..18].copy_from_slice(&10u32.to_le_bytes());
    assert!(matches!(
        LinkMess::decode_body(&b),
        Err(LinkError::CapsOutOfRange {
            caps_offset: 10,
            ..
        })
    ));
    // huge caps_offset
    let mut b = base.clone();
    b[14..18].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(LinkMess::decode_body(&b).is_err());
    // no caps: caps_offset is not checked (spice-server does not either)
    let mut b = base[..18].to_vec();
    b[6..14].fill(0);
    b[14..18].copy_from_slice(&7u32.to_le_bytes());
    let m = LinkMess::decode_body(&b).unwrap();
    assert_eq!(m.caps_offset, 7);
    assert_eq!(m.to_vec().unwrap(), b);
    // a gap between the fixed part and the caps is allowed
    let mut b = base[..18].to_vec();
    b[14..18].copy_from_slice(&22u32.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0x0d, 0, 0, 0, 0x0f, 0, 0, 0]);
    let m = LinkMess::decode_body(&b).unwrap();
    assert_eq!(m.common_caps.words(), &[0x0d]);
    assert_eq!(m.to_vec().unwrap(), b);
    // short
    assert!(matches!(
        LinkMess::decode_body(&base[..17]),
        Err(LinkError::Malformed(_))
    ));
}

#[test]
fn header_validation() {
    let h = LinkHeader::parse(&APPENDIX_A_CLIENT).unwrap();
    assert!(h.validate(18, 4096).is_ok());
    let e = LinkHeader {
        major_version: 1,
        ..h
    }
    .validate(18, 4096)
    .unwrap_err();
    assert_eq!(e.link_err(), LinkErr::VERSION_MISMATCH);
    for size in [0, 17, 4097, u32::MAX] {
        let e = LinkHeader { size, ..h }.validate(18, 4096).unwrap_err();
        assert_eq!(e.link_err(), LinkErr::INVALID_DATA);
    }
    let e = LinkHeader::parse(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert_eq!(e, LinkError::InvalidMagic { magic: *b"GET " });
    assert_eq!(e.link_err(), LinkErr::INVALID_MAGIC);
    assert!(LinkHeader::parse(&APPENDIX_A_CLIENT[..15]).is_err());
}

#[test]
fn link_err_names_and_unknown_values() {
    assert_eq!(LinkErr::PERMISSION_DENIED.name(), "PERMISSION_DENIED");
    assert_eq!(LinkErr(9), LinkErr::CHANNEL_NOT_AVAILABLE);
    assert_eq!(LinkErr(1234).name(), "unknown");
    assert_eq!(format!("{}", LinkErr(7)), "PERMISSION_DENIED (7)");
}

// ------------------------------------------------------------------ ticket

#[test]
fn ticket_round_trip_and_failures() {
    let k = key();
    for pw in [&b""[..], b"secret", &[b'x'; 60]] {
        let ct = ticket::encrypt_ticket(&mut OsRng, k.public_key_der(), pw).unwrap();
        assert_eq!(ct.len(), 128);
        let plain = k.decrypt(&mut OsRng, &ct).unwrap();
        assert_eq!(&plain[..pw.len()], pw);
        assert_eq!(plain.len(), pw.len() + 1, "password + NUL");
        assert_eq!(k.decrypt_password(&mut OsRng, &ct).unwrap(), pw);
        // Another key cannot decrypt it.
        assert_eq!(
            other_key().decrypt(&mut OsRng, &ct),
            Err(TicketError::Decryption)
        );
    }
    assert_eq!(
        ticket::encrypt_ticket(&mut OsRng, k.public_key_der(), &[b'x'; 61]),
        Err(TicketError::PasswordTooLong { len: 61 })
    );
    assert_eq!(
        ticket::encrypt_ticket(&mut OsRng, k.public_key_der(), b"a\0b"),
        Err(TicketError::PasswordContainsNul)
    );
    assert_eq!(
        ticket::encrypt_ticket(&mut OsRng, &[0u8; 162], b"pw"),
        Err(TicketError::InvalidPublicKey)
    );
    assert_eq!(
        k.decrypt(&mut OsRng, &[0u8; 127]),
        Err(TicketError::WrongCiphertextSize { len: 127 })
    );
    assert_eq!(
        k.decrypt(&mut OsRng, &[0x55u8; 128]),
        Err(TicketError::Decryption)
    );
}

// ------------------------------------------------------------------ state machines

fn client_config(password: &[u8]) -> ClientLinkConfig {
    ClientLinkConfig {
        connection_id: 0,
        channel_type: ChannelType::MAIN,
        channel_id: 0,
        common_caps: caps::default_client_common_caps(),
        channel_caps: Caps::from_caps(&[caps::main::AGENT_CONNECTED_TOKENS]),
        password: password.to_vec(),
    }
}

fn server_config(ticket: TicketPolicy) -> ServerLinkConfig {
    ServerLinkConfig {
        common_caps: caps::default_server_common_caps(),
        ticket,
    }
}

fn password(pw: &[u8]) -> TicketPolicy {
    TicketPolicy::Password {
        password: pw.to_vec(),
        expires_at: None,
    }
}

#[derive(Debug)]
struct Run {
    client: Result<LinkOutcome, LinkError>,
    server: Result<LinkOutcome, LinkError>,
}

/// Joins a client and a server in memory, moving at most `chunk` bytes at a time.
fn run(mut client: ClientLink, mut server: ServerLink, chunk: usize, now: SystemTime) -> Run {
    let mut to_server = client.take_output();
    let mut to_client: Vec<u8> = Vec::new();
    let mut server_res: Option<Result<LinkOutcome, LinkError>> = None;
    let mut client_res: Option<Result<LinkOutcome, LinkError>> = None;
    for _ in 0..10_000 {
        if server_res.is_none() && !to_server.is_empty() {
            let n = chunk.min(to_server.len());
            match server.handle_input(&to_server[..n], now) {
                Ok((used, status)) => {
                    to_server.drain(..used);
                    match status {
                        ServerLinkStatus::NeedMore(k) => assert!(k > 0),
                        ServerLinkStatus::LinkMess => {
                            let m = server.link_mess().unwrap();
                            assert_eq!(m.channel_type, ChannelType::MAIN);
                            server
                                .reply(Caps::from_caps(&[caps::main::SEAMLESS_MIGRATE]))
                                .unwrap();
                        }
                        ServerLinkStatus::Authenticated => server_res = Some(server.accept()),
                    }
                }
                Err(e) => server_res = Some(Err(e)),
            }
            to_client.extend(server.take_output());
        } else if client_res.is_none() && !to_client.is_empty() {
            let n = chunk.min(to_client.len());
            match client.handle_input(&to_client[..n]) {
                Ok((used, ClientLinkStatus::NeedMore(k))) => {
                    assert!(k > 0 && k == client.bytes_needed());
                    to_client.drain(..used);
                }
                Ok((used, ClientLinkStatus::Linked(o))) => {
                    to_client.drain(..used);
                    client_res = Some(Ok(o));
                }
                Err(e) => client_res = Some(Err(e)),
            }
            to_server.extend(client.take_output());
        } else {
            break;
        }
    }
    Run {
        client: client_res.expect("client finished"),
        server: server_res.expect("server finished"),
    }
}

#[test]
fn link_succeeds_in_any_chunking() {
    for chunk in [1, 3, 7, 64, 4096] {
        let client = ClientLink::new(client_config(b"s3cret")).unwrap();
        let server = ServerLink::new(server_config(password(b"s3cret")), key());
        let r = run(client, server, chunk, SystemTime::now());
        let c = r.client.unwrap();
        let s = r.server.unwrap();
        assert!(c.mini_header && s.mini_header);
        assert_eq!(
            c.peer_channel_caps,
            Caps::from_caps(&[caps::main::SEAMLESS_MIGRATE])
        );
        assert_eq!(
            s.peer_channel_caps,
            Caps::from_caps(&[caps::main::AGENT_CONNECTED_TOKENS])
        );
        assert_eq!(c.peer_common_caps.words(), &[0x0b]);
    }
}

#[test]
fn wrong_password_is_permission_denied_on_both_sides() {
    let client = ClientLink::new(client_config(b"guess")).unwrap();
    let server = ServerLink::new(server_config(password(b"s3cret")), key());
    let r = run(client, server, 4096, SystemTime::now());
    assert_eq!(
        r.server.unwrap_err(),
        LinkError::TicketRejected {
            reason: TicketRejection::WrongPassword
        }
    );
    let e = r.client.unwrap_err();
    assert_eq!(
        e,
        LinkError::Server {
            code: LinkErr::PERMISSION_DENIED
        }
    );
    assert_eq!(e.link_err(), LinkErr::PERMISSION_DENIED);
}

#[test]
fn expiry_uses_the_given_time() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let policy = TicketPolicy::Password {
        password: b"pw".to_vec(),
        expires_at: Some(t0),
    };
    let before = run(
        ClientLink::new(client_config(b"pw")).unwrap(),
        ServerLink::new(server_config(policy.clone()), key()),
        4096,
        t0 - Duration::from_secs(1),
    );
    assert!(before.server.is_ok() && before.client.is_ok());
    let after = run(
        ClientLink::new(client_config(b"pw")).unwrap(),
        ServerLink::new(server_config(policy), key()),
        4096,
        t0,
    );
    assert_eq!(
        after.server.unwrap_err(),
        LinkError::TicketRejected {
            reason: TicketRejection::Expired
        }
    );
    assert_eq!(
        after.client.unwrap_err(),
        LinkError::Server {
            code: LinkErr::PERMISSION_DENIED
        }
    );
}

#[test]
fn disabled_ticketing_accepts_any_password_and_empty_password_refuses() {
    let r = run(
        ClientLink::new(client_config(b"whatever")).unwrap(),
        ServerLink::new(server_config(TicketPolicy::Disabled), key()),
        5,
        SystemTime::now(),
    );
    assert!(r.client.is_ok() && r.server.is_ok());
    let r = run(
        ClientLink::new(client_config(b"")).unwrap(),
        ServerLink::new(server_config(password(b"")), key()),
        4096,
        SystemTime::now(),
    );
    assert_eq!(
        r.server.unwrap_err(),
        LinkError::TicketRejected {
            reason: TicketRejection::NoPasswordSet
        }
    );
}

#[test]
fn no_mini_header_and_no_auth_selection() {
    // A client without AUTH_SELECTION sends the ticket directly; a server without the
    // mini header makes both use the full header.
    let mut cfg = client_config(b"pw");
    cfg.common_caps = Caps::from_caps(&[caps::common::AUTH_SPICE, caps::common::MINI_HEADER]);
    let mut scfg = server_config(password(b"pw"));
    scfg.common_caps = Caps::from_caps(&[
        caps::common::PROTOCOL_AUTH_SELECTION,
        caps::common::AUTH_SPICE,
    ]);
    let r = run(
        ClientLink::new(cfg).unwrap(),
        ServerLink::new(scfg, key()),
        4096,
        SystemTime::now(),
    );
    assert!(!r.client.unwrap().mini_header);
    assert!(!r.server.unwrap().mini_header);

    // The other way round: a server without AUTH_SELECTION gets the ticket directly.
    let mut scfg = server_config(password(b"pw"));
    scfg.common_caps = Caps::from_caps(&[caps::common::AUTH_SPICE, caps::common::MINI_HEADER]);
    let server = ServerLink::with_fresh_key(scfg).unwrap();
    let r = run(
        ClientLink::new(client_config(b"pw")).unwrap(),
        server,
        9,
        SystemTime::now(),
    );
    assert!(r.client.unwrap().mini_header);
    assert!(r.server.unwrap().mini_header);
}

#[test]
fn client_reads_link_error_in_place_of_result() {
    // The server answers a SASL mechanism word with a full link error (INVALID_DATA).
    let mut server = ServerLink::new(server_config(password(b"pw")), key());
    let mess = gtk_like_mess().to_link_bytes().unwrap();
    let (used, st) = server.handle_input(&mess, SystemTime::now()).unwrap();
    assert_eq!((used, st), (mess.len(), ServerLinkStatus::LinkMess));
    server.reply(Caps::new()).unwrap();
    let reply = server.take_output();
    assert_eq!(reply.len(), 16 + 178 + 4);
    assert_eq!(server.bytes_needed(), 4);
    let e = server
        .handle_input(&2u32.to_le_bytes(), SystemTime::now())
        .unwrap_err();
    assert_eq!(e, LinkError::UnknownAuthMechanism { mechanism: 2 });
    let err_bytes = server.take_output();
    assert_eq!(err_bytes, link_error_bytes(LinkErr::INVALID_DATA));

    let mut client = ClientLink::new(client_config(b"pw")).unwrap();
    let _ = client.take_output();
    let (used, st) = client.handle_input(&reply).unwrap();
    assert_eq!((used, st), (reply.len(), ClientLinkStatus::NeedMore(4)));
    assert_eq!(client.take_output().len(), 4 + 128);
    assert_eq!(
        client.handle_input(&err_bytes).unwrap_err(),
        LinkError::Server {
            code: LinkErr::INVALID_DATA
        }
    );
}

#[test]
fn server_reports_not_spice_without_replying() {
    let mut server = ServerLink::new(server_config(TicketPolicy::Disabled), key());
    assert_eq!(
        server.handle_input(b"GE", SystemTime::now()).unwrap(),
        (2, ServerLinkStatus::NeedMore(14))
    );
    let e = server
        .handle_input(b"T / HTTP/1.1", SystemTime::now())
        .unwrap_err();
    assert_eq!(e, LinkError::NotSpice { magic: *b"GET " });
    assert!(server.take_output().is_empty());
    assert!(matches!(
        server.handle_input(b"x", SystemTime::now()),
        Err(LinkError::InvalidState(_))
    ));
}

#[test]
fn server_replies_with_link_errors() {
    let cases: [(&[u8], Option<LinkErr>); 4] = [
        (
            b"REDQ\x01\0\0\0\x02\0\0\0\x12\0\0\0",
            Some(LinkErr::VERSION_MISMATCH),
        ),
        (b"REDQ\0\0\0\0\x02\0\0\0\x12\0\0\0", None), // major 0: silence
        (
            b"REDQ\x02\0\0\0\x02\0\0\0\x11\0\0\0",
            Some(LinkErr::INVALID_DATA),
        ),
        (
            b"REDQ\x02\0\0\0\x02\0\0\0\x01\x10\0\0",
            Some(LinkErr::INVALID_DATA),
        ),
    ];
    for (input, code) in cases {
        let mut server = ServerLink::new(server_config(TicketPolicy::Disabled), key());
        let e = server.handle_input(input, SystemTime::now()).unwrap_err();
        let out = server.take_output();
        match code {
            Some(c) => {
                assert_eq!(e.link_err(), c);
                assert_eq!(out, link_error_bytes(c));
            }
            None => assert!(out.is_empty()),
        }
    }
    // Caps outside the message.
    let mut bad = APPENDIX_A_CLIENT.to_vec();
    bad[16 + 6] = 9;
    let mut server = ServerLink::new(server_config(TicketPolicy::Disabled), key());
    let e = server.handle_input(&bad, SystemTime::now()).unwrap_err();
    assert_eq!(e.link_err(), LinkErr::INVALID_DATA);
    assert_eq!(
        server.take_output(),
        link_error_bytes(LinkErr::INVALID_DATA)
    );
}

#[test]
fn server_refusals() {
    // Before the reply: full link error. After authentication: the result word.
    let mut server = ServerLink::new(server_config(TicketPolicy::Disabled), key());
    server
        .handle_input(&APPENDIX_A_CLIENT, SystemTime::now())
        .unwrap();
    assert_eq!(
        server.refuse(LinkErr::NEED_SECURED),
        LinkError::Refused {
            code: LinkErr::NEED_SECURED
        }
    );
    assert_eq!(
        server.take_output(),
        link_error_bytes(LinkErr::NEED_SECURED)
    );

    let mut client = ClientLink::new(client_config(b"x")).unwrap();
    let mut server = ServerLink::new(server_config(TicketPolicy::Disabled), key());
    let (_, st) = server
        .handle_input(&client.take_output(), SystemTime::now())
        .unwrap();
    assert_eq!(st, ServerLinkStatus::LinkMess);
    assert!(server.accept().is_err(), "accept before auth is misuse");
    server.reply(Caps::new()).unwrap();
    client.handle_input(&server.take_output()).unwrap();
    let auth = client.take_output();
    assert_eq!(&auth[..4], &[1, 0, 0, 0], "mechanism SPICE");
    let (used, st) = server.handle_input(&auth, SystemTime::now()).unwrap();
    assert_eq!((used, st), (132, ServerLinkStatus::Authenticated));
    let _ = server.refuse(LinkErr::BAD_CONNECTION_ID);
    let out = server.take_output();
    assert_eq!(out, 8u32.to_le_bytes());
    assert_eq!(
        client.handle_input(&out).unwrap_err(),
        LinkError::Server {
            code: LinkErr::BAD_CONNECTION_ID
        }
    );
}

#[test]
fn client_stops_at_the_link_result() {
    let mut client = ClientLink::new(client_config(b"pw")).unwrap();
    let mut server = ServerLink::new(server_config(password(b"pw")), key());
    server
        .handle_input(&client.take_output(), SystemTime::now())
        .unwrap();
    server.reply(Caps::new()).unwrap();
    client.handle_input(&server.take_output()).unwrap();
    server
        .handle_input(&client.take_output(), SystemTime::now())
        .unwrap();
    server.accept().unwrap();
    let mut stream = server.take_output();
    assert_eq!(stream, [0, 0, 0, 0]);
    // The first data message (Appendix A's MAIN_INIT mini header) arrives with the result.
    stream.extend_from_slice(&[0x67, 0, 0x20, 0, 0, 0]);
    let (used, st) = client.handle_input(&stream).unwrap();
    assert_eq!(used, 4);
    assert!(matches!(
        st,
        ClientLinkStatus::Linked(LinkOutcome {
            mini_header: true,
            ..
        })
    ));
    assert_eq!(client.bytes_needed(), 0);
}

#[test]
fn client_rejects_bad_replies() {
    let mut c = ClientLink::new(client_config(b"")).unwrap();
    assert_eq!(
        c.handle_input(b"RFB 003.008\n\0\0\0\0").unwrap_err(),
        LinkError::InvalidMagic { magic: *b"RFB " }
    );
    let mut c = ClientLink::new(client_config(b"")).unwrap();
    let e = c
        .handle_input(&link_error_bytes(LinkErr::NEED_SECURED))
        .unwrap_err();
    assert_eq!(
        e,
        LinkError::Server {
            code: LinkErr::NEED_SECURED
        }
    );
    // Reply size below 178.
    let mut c = ClientLink::new(client_config(b"")).unwrap();
    let e = c
        .handle_input(b"REDQ\x02\0\0\0\x02\0\0\0\x10\0\0\0")
        .unwrap_err();
    assert!(matches!(e, LinkError::InvalidSize { size: 16, .. }));
    // SASL-only server.
    let mut reply = LinkReply::new(
        *key().public_key_der(),
        Caps::from_caps(&[0, 2, 3]),
        Caps::new(),
    );
    let mut c = ClientLink::new(client_config(b"")).unwrap();
    assert_eq!(
        c.handle_input(&reply.to_link_bytes().unwrap()).unwrap_err(),
        LinkError::AuthUnsupported
    );
    // Garbage public key.
    reply.common_caps = caps::default_server_common_caps();
    reply.pub_key = [7; 162];
    let mut c = ClientLink::new(client_config(b"")).unwrap();
    assert_eq!(
        c.handle_input(&reply.to_link_bytes().unwrap()).unwrap_err(),
        LinkError::Ticket(TicketError::InvalidPublicKey)
    );
    // Password too long.
    assert_eq!(
        ClientLink::new(client_config(&[b'a'; 61])).unwrap_err(),
        LinkError::Ticket(TicketError::PasswordTooLong { len: 61 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn link_header_round_trip(h in link_header()) {
        let b = h.to_vec().unwrap();
        prop_assert_eq!(b.len(), 16);
        prop_assert_eq!(LinkHeader::parse(&b).unwrap(), h);
        prop_assert_eq!(spice_proto::wire::decode_exact::<LinkHeader>(&b, "h").unwrap(), h);
    }

    #[test]
    fn link_mess_round_trip(m in link_mess()) {
        let b = m.to_vec().unwrap();
        let d = LinkMess::decode_body(&b).unwrap();
        prop_assert_eq!(&d, &m);
        prop_assert_eq!(d.to_vec().unwrap(), b);
        let full = m.to_link_bytes().unwrap();
        prop_assert_eq!(LinkHeader::parse(&full).unwrap().size as usize, full.len() - 16);
    }

    #[test]
    fn link_reply_round_trip(r in link_reply()) {
        let b = r.to_vec().unwrap();
        let d = LinkReply::decode_body(&b).unwrap();
        prop_assert_eq!(&d, &r);
        prop_assert_eq!(d.to_vec().unwrap(), b);
    }

    #[test]
    fn link_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = LinkHeader::parse(&data);
        let _ = LinkMess::decode_body(&data);
        let _ = LinkReply::decode_body(&data);
        let _ = spice_proto::framer::link_frame(&data, 18, 4096);
    }

    #[test]
    fn server_never_panics_on_garbage_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..200), chunk in 1usize..40) {
        let mut input = APPENDIX_A_CLIENT.to_vec();
        input.extend_from_slice(&tail);
        let mut data = vec![chunk as u8];
        data.extend_from_slice(&input);
        spice_proto::link::fuzz_link_stage(&data);
    }
}
