//! Decode + encode of small, frequent messages: inputs mouse motion and key down, and a
//! main-channel agent data message carrying a clipboard agent message.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use spice_proto::agent::{
    AgentMessage, Clipboard, ClipboardOptions, ClipboardSelection, ClipboardType, decode_message,
};
use spice_proto::inputs::{ClientMessage as Inputs, MouseButtonMask};
use spice_proto::main::ClientMessage as Main;
use spice_proto::{ChannelMessage, ChannelType, WriteBuf};

fn encode<'a>(m: &impl ChannelMessage<'a>) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_body(&mut WriteBuf::new(&mut v)).expect("encode");
    v
}

fn round_trip<'a, M: ChannelMessage<'a>>(
    c: &mut Criterion,
    name: &str,
    channel: ChannelType,
    msg_type: u16,
    body: &'a [u8],
) {
    let mut g = c.benchmark_group("proto_small");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    g.bench_function(name, |b| {
        b.iter(|| {
            let m = M::decode_body(channel, msg_type, black_box(body)).expect("decode");
            out.clear();
            m.encode_body(&mut WriteBuf::new(&mut out)).expect("encode");
            black_box(out.len())
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let motion = encode(&Inputs::MouseMotion {
        dx: -3,
        dy: 7,
        buttons_state: MouseButtonMask::LEFT,
    });
    round_trip::<Inputs<'_>>(
        c,
        "inputs_mouse_motion",
        ChannelType::INPUTS,
        Inputs::MOUSE_MOTION,
        &motion,
    );

    let key = encode(&Inputs::KeyDown { code: 0x1e });
    round_trip::<Inputs<'_>>(
        c,
        "inputs_key_down",
        ChannelType::INPUTS,
        Inputs::KEY_DOWN,
        &key,
    );

    // A 512-byte clipboard text inside one AGENT_DATA.
    let text: Vec<u8> = (0..512u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut agent = Vec::new();
    AgentMessage::Clipboard(Clipboard {
        selection: Some(ClipboardSelection::CLIPBOARD),
        data_type: ClipboardType::UTF8_TEXT,
        data: &text,
    })
    .encode(0, &mut agent)
    .expect("agent encode");
    let agent_data = encode(&Main::AgentData(&agent));
    round_trip::<Main<'_>>(
        c,
        "main_agent_data",
        ChannelType::MAIN,
        Main::AGENT_DATA,
        &agent_data,
    );

    // The same, also decoding and re-encoding the agent message inside.
    let opts = ClipboardOptions {
        selection: true,
        grab_serial: false,
    };
    let mut g = c.benchmark_group("proto_small");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    g.bench_function("main_agent_data_with_agent_clipboard", |b| {
        b.iter(|| {
            let Main::AgentData(d) =
                Main::decode_body(ChannelType::MAIN, Main::AGENT_DATA, black_box(&agent_data))
                    .expect("decode")
            else {
                unreachable!()
            };
            let (h, m) = decode_message(d, opts).expect("agent decode");
            out.clear();
            m.encode(h.opaque, &mut out).expect("agent encode");
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
