// spice-html5 in headless Chromium, driven by playwright-core.
//
//   node html5_client.mjs '{"url": "http://127.0.0.1:8000/spice_auto.html?host=127.0.0.1&port=5900",
//                           "chromium": "/usr/bin/chromium", "profile": "/tmp/profile",
//                           "out_ppm": "/tmp/shot.ppm", "surface": 0,
//                           "settle_ms": 1500, "timeout_ms": 30000}'
//
// Loads the page, waits for the canvas `spice_surface_<surface>` to exist and to stop changing
// for settle_ms, then writes its pixels as a binary PPM. Prints JSON lines (console messages of
// the page, then {"event":"done",...}); exit 0 on success, 2 on failure, 3 on timeout.
// playwright-core is resolved through NODE_PATH.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const sc = JSON.parse(process.argv[2]);
const emit = (o) => console.log(JSON.stringify(o));
const deadline = Date.now() + (sc.timeout_ms ?? 30000);
const settle = sc.settle_ms ?? 1500;
const surface = `spice_surface_${sc.surface ?? 0}`;

const browser = await chromium.launchPersistentContext(sc.profile, {
  executablePath: sc.chromium ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let code = 2;
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.on('console', (m) => emit({ event: 'console', type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => emit({ event: 'pageerror', text: String(e) }));
  await page.goto(sc.url);
  // A cheap fingerprint of the canvas, to see when it stops changing.
  const probe = () => page.evaluate((id) => {
    const c = document.getElementById(id);
    if (!c) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let h = 2166136261 >>> 0;
    for (let i = 0; i < d.length; i += 7) h = Math.imul(h ^ d[i], 16777619) >>> 0;
    return `${c.width}x${c.height}:${h}`;
  }, surface);
  let last = null;
  let since = Date.now();
  let ok = false;
  while (Date.now() < deadline) {
    const fp = await probe();
    if (fp !== last) { last = fp; since = Date.now(); }
    else if (fp !== null && Date.now() - since >= settle) { ok = true; break; }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!ok) {
    emit({ event: 'done', ok: false, why: last === null ? `no canvas ${surface}` : 'canvas never settled' });
    code = 3;
  } else {
    const px = await page.evaluate((id) => {
      const c = document.getElementById(id);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let s = '';
      for (let i = 0; i < d.length; i += 4) s += String.fromCharCode(d[i], d[i + 1], d[i + 2]);
      return { w: c.width, h: c.height, rgb: btoa(s) };
    }, surface);
    const body = Buffer.from(px.rgb, 'base64');
    writeFileSync(sc.out_ppm, Buffer.concat([Buffer.from(`P6\n${px.w} ${px.h}\n255\n`), body]));
    emit({ event: 'done', ok: true, width: px.w, height: px.h });
    code = 0;
  }
} catch (e) {
  emit({ event: 'done', ok: false, why: String(e) });
  code = 2;
} finally {
  await browser.close();
}
process.exit(code);
