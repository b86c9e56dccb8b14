//! Real peer: spice-gtk (SpiceClientGLib from Python) resizes the demo desktop through the
//! demo agent (`update_display` + `send_monitor_config`) and its display channel gets a
//! primary surface of each size asked for. Back and forth twice; the guest resources the
//! server holds return to where they were. Fails loudly (never skips) when spice-gtk's
//! Python bindings are missing.

use std::time::{Duration, Instant};

use spice_server::config::ServerConfig;
use spice_server::demo::DemoConfig;
use spice_server::display::demo::DemoRunner;
use spice_server::server::ServerBuilder;
use spice_testpeers::gtk_client::GtkScenario;

#[test]
fn spice_gtk_resizes_the_demo_desktop_through_the_agent() {
    let cfg = ServerConfig::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .disable_ticketing()
        .build()
        .unwrap();
    let (builder, demo) =
        DemoRunner::attach(ServerBuilder::new(cfg), DemoConfig::default()).unwrap();
    let server = builder.start().unwrap();
    let port = server.local_addrs()[0].port();
    let baseline = demo.worker().lock().unwrap().outstanding_resources();

    let sizes = [(800, 600), (1024, 768), (1280, 720), (1024, 768)];
    let run = GtkScenario::new(port)
        .resize(&sizes)
        .timeout(Duration::from_secs(60))
        .run()
        .unwrap();
    run.assert_ok();
    let sent: Vec<(u64, u64)> = run
        .events_named("resize_sent")
        .map(|e| {
            assert_eq!(e["ok"], true, "send_monitor_config refused: {e}");
            (e["width"].as_u64().unwrap(), e["height"].as_u64().unwrap())
        })
        .collect();
    let want: Vec<(u64, u64)> = sizes
        .iter()
        .map(|&(w, h)| (u64::from(w), u64::from(h)))
        .collect();
    assert_eq!(sent, want);
    // Each size reached: a primary of that size, marked, and the display channel says so.
    let done: Vec<(u64, u64)> = run
        .events_named("resize_done")
        .map(|e| {
            let w = e["width"].as_u64().unwrap();
            let h = e["height"].as_u64().unwrap();
            assert_eq!(
                (e["get_primary"][0].as_u64(), e["get_primary"][1].as_u64()),
                (Some(w), Some(h)),
                "spice_display_channel_get_primary: {e}"
            );
            (w, h)
        })
        .collect();
    assert_eq!(done, want);
    let created: Vec<(u64, u64)> = run
        .events_named("primary_create")
        .map(|e| (e["width"].as_u64().unwrap(), e["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(created[0], (1024, 768), "the demo's first size");
    assert_eq!(&created[1..], &want[..], "{created:?}");
    assert_eq!(run.events_named("primary_destroy").count(), sizes.len());
    assert!(
        run.channel_errors().is_empty(),
        "{:?}",
        run.channel_errors()
    );

    // The client is gone: what the server held for it went back to the guest.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = demo.worker().lock().unwrap().outstanding_resources();
        if now <= baseline {
            break;
        }
        assert!(
            Instant::now() < end,
            "resources {now} vs baseline {baseline}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And the desktop is still animating at the last size.
    let w = demo.worker().lock().unwrap();
    let size = {
        let s = w.surface(0).unwrap();
        (s.width(), s.height())
    };
    assert_eq!(size, (1024, 768));
    let frame = w.device().last_frame().unwrap();
    drop(w);
    std::thread::sleep(Duration::from_millis(300));
    assert!(demo.worker().lock().unwrap().device().last_frame().unwrap() > frame);
    server.shutdown();
}
