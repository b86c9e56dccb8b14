//! Holds the code to `spec/messages.csv`: every row (channel, direction, number, name) must
//! have an encoder and a decoder that round-trip non-trivial values of that message kind, and
//! the message names the code reports must be the ones spice.proto uses.

use std::collections::BTreeMap;

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use spice_proto::messages::{ClientMessage, ServerMessage};
use spice_proto::{
    ChannelType, Direction, base, cursor, display, inputs, main, playback, record, smartcard,
    spicevmc,
};

#[derive(Debug)]
struct Row {
    channel: Option<ChannelType>, // None = base ("*")
    channel_name: String,
    dir: Direction,
    msg_type: u16,
    name: String,
}

fn rows() -> Vec<Row> {
    let text = include_str!("../messages.csv");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            f.len(),
            5,
            "messages.csv line {} has {} fields",
            i + 1,
            f.len()
        );
        out.push(Row {
            channel: if f[0] == "*" {
                None
            } else {
                Some(ChannelType(f[0].parse().unwrap()))
            },
            channel_name: f[1].to_string(),
            dir: match f[2] {
                "S2C" => Direction::ServerToClient,
                "C2S" => Direction::ClientToServer,
                d => panic!("bad direction {d} on line {}", i + 1),
            },
            msg_type: f[3].parse().unwrap(),
            name: f[4].to_string(),
        });
    }
    out
}

/// Draws `n` values from a strategy with a fixed seed.
fn sample<T: std::fmt::Debug>(s: &BoxedStrategy<T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn server_values(channel: Option<ChannelType>, n: usize) -> Vec<ServerMessage<'static>> {
    match channel.map(|c| c.0) {
        None => sample(&base::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Base)
            .collect(),
        Some(1) => sample(&main::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Main)
            .collect(),
        Some(2) => sample(&display::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Display)
            .collect(),
        Some(3) => sample(&inputs::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Inputs)
            .collect(),
        Some(4) => sample(&cursor::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Cursor)
            .collect(),
        Some(5) => sample(&playback::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Playback)
            .collect(),
        Some(6) => sample(&record::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Record)
            .collect(),
        Some(8) => sample(&smartcard::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Smartcard)
            .collect(),
        Some(9..=11) => sample(&spicevmc::strategies::server_message(), n)
            .into_iter()
            .map(ServerMessage::Spicevmc)
            .collect(),
        Some(c) => panic!("no server messages for channel {c}"),
    }
}

fn client_values(channel: Option<ChannelType>, n: usize) -> Vec<ClientMessage<'static>> {
    match channel.map(|c| c.0) {
        None => sample(&base::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Base)
            .collect(),
        Some(1) => sample(&main::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Main)
            .collect(),
        Some(2) => sample(&display::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Display)
            .collect(),
        Some(3) => sample(&inputs::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Inputs)
            .collect(),
        Some(6) => sample(&record::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Record)
            .collect(),
        Some(8) => sample(&smartcard::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Smartcard)
            .collect(),
        Some(9..=11) => sample(&spicevmc::strategies::client_message(), n)
            .into_iter()
            .map(ClientMessage::Spicevmc)
            .collect(),
        Some(c) => panic!("no client messages for channel {c}"),
    }
}

const SAMPLES: usize = 3000;

#[test]
fn every_row_round_trips() {
    let rows = rows();
    assert_eq!(
        rows.len(),
        137,
        "136 rows of protocol.md Appendix B plus GL_SCANOUT2_UNIX"
    );
    // Cache samples per (channel, direction).
    let mut server_cache: BTreeMap<Option<u8>, Vec<ServerMessage<'static>>> = BTreeMap::new();
    let mut client_cache: BTreeMap<Option<u8>, Vec<ClientMessage<'static>>> = BTreeMap::new();
    let mut covered = 0;
    let mut missing = Vec::new();
    for row in &rows {
        // Base rows are checked on the main channel (any non-tunnel channel would do).
        let wire_channel = row.channel.unwrap_or(ChannelType::MAIN);
        let key = row.channel.map(|c| c.0);
        let mut round_trips = 0;
        match row.dir {
            Direction::ServerToClient => {
                assert_eq!(
                    ServerMessage::name_of(wire_channel, row.msg_type),
                    Some(row.name.as_str()),
                    "name of {row:?}"
                );
                let vals = server_cache
                    .entry(key)
                    .or_insert_with(|| server_values(row.channel, SAMPLES));
                for v in vals
                    .iter()
                    .filter(|v| v.msg_type() == row.msg_type && v.fits_channel(wire_channel))
                {
                    let body = v
                        .body_to_vec()
                        .unwrap_or_else(|e| panic!("encode {row:?}: {e}"));
                    let back = ServerMessage::decode(wire_channel, row.msg_type, &body)
                        .unwrap_or_else(|e| panic!("decode {row:?}: {e}"));
                    assert_eq!(&back, v, "{row:?}");
                    assert_eq!(back.body_to_vec().unwrap(), body, "re-encode {row:?}");
                    round_trips += 1;
                }
            }
            Direction::ClientToServer => {
                assert_eq!(
                    ClientMessage::name_of(wire_channel, row.msg_type),
                    Some(row.name.as_str()),
                    "name of {row:?}"
                );
                let vals = client_cache
                    .entry(key)
                    .or_insert_with(|| client_values(row.channel, SAMPLES));
                for v in vals
                    .iter()
                    .filter(|v| v.msg_type() == row.msg_type && v.fits_channel(wire_channel))
                {
                    let body = v
                        .body_to_vec()
                        .unwrap_or_else(|e| panic!("encode {row:?}: {e}"));
                    let back = ClientMessage::decode(wire_channel, row.msg_type, &body)
                        .unwrap_or_else(|e| panic!("decode {row:?}: {e}"));
                    assert_eq!(&back, v, "{row:?}");
                    assert_eq!(back.body_to_vec().unwrap(), body, "re-encode {row:?}");
                    round_trips += 1;
                }
            }
        }
        if round_trips > 0 {
            covered += 1;
        } else {
            missing.push(format!(
                "{} {} {} {}",
                row.channel_name, row.dir, row.msg_type, row.name
            ));
        }
    }
    println!(
        "coverage: {covered}/{} message kinds round-trip",
        rows.len()
    );
    assert!(
        missing.is_empty(),
        "message kinds without a round-tripping value: {missing:#?}"
    );
}

#[test]
fn unknown_numbers_are_refused_with_channel_and_message() {
    for ch in 1..=11u8 {
        let ch = ChannelType(ch);
        let e = ServerMessage::decode(ch, 999, &[]).unwrap_err();
        assert_eq!(
            (e.channel, e.direction, e.msg_type),
            (ch, Direction::ServerToClient, 999)
        );
        let e = ClientMessage::decode(ch, 999, &[]).unwrap_err();
        assert_eq!(
            (e.channel, e.direction, e.msg_type),
            (ch, Direction::ClientToServer, 999)
        );
    }
}
