//! The data-message framer over a byte stream cut at arbitrary points.

use proptest::prelude::*;
use spice_proto::framer::{Frame, FrameError, Framer};
use spice_proto::header::{HeaderKind, write_message};

fn stream(kind: HeaderKind, msgs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (ty, body)) in msgs.iter().enumerate() {
        write_message(&mut out, kind, 100 + i as u64, *ty, |w| {
            w.write_slice(body);
            Ok(())
        })
        .unwrap();
    }
    out
}

/// Feeds the stream through a receive buffer in chunks; collects (type, serial, body).
fn reframe(kind: HeaderKind, bytes: &[u8], chunks: &[usize]) -> Vec<(u16, u64, Vec<u8>)> {
    let mut framer = Framer::new(kind, 1024);
    let mut rx: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    let mut pos = 0;
    let mut ci = 0;
    while pos < bytes.len() || !rx.is_empty() {
        match framer.next_frame(&rx).unwrap() {
            Frame::Complete(info) => {
                got.push((info.msg_type, info.serial, rx[info.body.clone()].to_vec()));
                rx.drain(..info.total_len);
            }
            Frame::Need(n) => {
                assert!(n > 0);
                assert!(pos < bytes.len(), "framer wants bytes past the end");
                let c = chunks.get(ci).copied().unwrap_or(7).max(1);
                ci += 1;
                let end = (pos + c).min(bytes.len());
                rx.extend_from_slice(&bytes[pos..end]);
                pos = end;
            }
        }
    }
    got
}

#[test]
fn oversized_message_is_refused_from_the_header_alone() {
    let f = Framer::new(HeaderKind::Full, 1000);
    // Only the 18-byte header is present, announcing 4 GiB.
    let h = [
        1, 0, 0, 0, 0, 0, 0, 0, 0x65, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ];
    assert_eq!(
        f.peek(&h),
        Err(FrameError::TooLarge {
            msg_type: 0x65,
            size: u32::MAX,
            max: 1000
        })
    );
    assert_eq!(f.peek(&h[..5]), Ok(Frame::Need(13)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_chunking_gives_the_same_messages(
        msgs in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)), 1..6),
        chunks in proptest::collection::vec(1usize..30, 0..40),
        mini in any::<bool>(),
    ) {
        let kind = HeaderKind::from_mini(mini);
        let bytes = stream(kind, &msgs);
        let got = reframe(kind, &bytes, &chunks);
        prop_assert_eq!(got.len(), msgs.len());
        for (i, ((ty, serial, body), (ety, ebody))) in got.iter().zip(&msgs).enumerate() {
            prop_assert_eq!(ty, ety);
            prop_assert_eq!(body, ebody);
            // Mini: counted from 1; full: the serial written (100 + i).
            let expected = if mini { i as u64 + 1 } else { 100 + i as u64 };
            prop_assert_eq!(*serial, expected);
        }
    }

    #[test]
    fn framer_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64), max in 0u32..64, mini in any::<bool>()) {
        let mut f = Framer::new(HeaderKind::from_mini(mini), max);
        let mut buf = &data[..];
        while let Ok(Frame::Complete(info)) = f.next_frame(buf) {
            prop_assert!(info.total_len <= buf.len() && info.body.end == info.total_len);
            prop_assert!(info.body.len() as u32 <= max);
            buf = &buf[info.total_len..];
        }
    }
}
