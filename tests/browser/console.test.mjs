// e2e-console: reqsignd's web console in Debian's headless Chromium, driven by
// playwright-core through the data-testid hooks of docs/CONSOLE.md, against real
// reqsignd and api-backend processes on loopback ports picked here.
//
//   node console.test.mjs OUTDIR     (env: REQSIGND, API_BACKEND, REQSIGN_CLI;
//                                     CHROMIUM, default /usr/bin/chromium)
//
// Screenshots of every view at 1440 and 375 px go to OUTDIR. Every process
// started here is stopped on every exit path; the whole run is bounded.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const RUN_LIMIT_MS = 270_000; // under meson's 300 s: ~40 s idle, ~100 s on a loaded 2-core machine
const OUT = path.resolve(process.argv[2] || 'console-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const [REQSIGND, API_BACKEND, CLI] = ['REQSIGND', 'API_BACKEND', 'REQSIGN_CLI'].map((v) => {
  if (!process.env[v]) fail(`${v} is not set (run through meson test)`);
  return process.env[v];
});

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  fail('playwright-core is not installed: run `npm ci` in tests/browser (./dev.sh deps does)');
}
if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} not found: install Debian's chromium (./dev.sh deps)`);

const procs = [];
let browser = null;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reqsign-console-'));
const svcDir = path.join(dir, 'service'); // everything the service writes: db, WAL, logs
const dlDir = path.join(dir, 'downloads'); // what the browser saved
fs.mkdirSync(svcDir);
fs.mkdirSync(dlDir);
fs.mkdirSync(OUT, { recursive: true });

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exitCode = 1;
  cleanup().finally(() => process.exit(1));
  throw new Error(msg);
}

let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  try {
    await browser?.close();
  } catch { /* already gone */ }
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

const timer = setTimeout(() => {
  console.error(`FAIL: the run took more than ${RUN_LIMIT_MS / 1000} s`);
  cleanup().finally(() => process.exit(1));
}, RUN_LIMIT_MS);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => cleanup().finally(() => process.exit(1)));
// any failure outside the stories' try (start-up, headers): stop everything too
const killAll = () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
};
process.on('exit', killAll);
for (const ev of ['uncaughtException', 'unhandledRejection'])
  process.on(ev, (e) => {
    console.error(`FAIL: ${e && e.message ? e.message : e}`);
    killAll();
    cleanup().finally(() => process.exit(1));
  });

let step = '';
function check(cond, what) {
  if (!cond) throw new Error(`${step}: ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Start a server on a free port (@PORT@ in its arguments); wait for its
// "listening on" line. Another port is tried if this one was taken meanwhile.
async function startServer(prog, args, logName) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const log = fs.openSync(path.join(svcDir, logName), 'a');
    const p = spawn(prog, args.map((a) => a.replaceAll('@PORT@', String(port))),
      { stdio: ['ignore', 'pipe', log] });
    procs.push(p);
    const ok = await new Promise((resolve) => {
      let out = '';
      const t = setTimeout(() => resolve(false), 10_000);
      p.stdout.on('data', (d) => {
        out += d;
        if (out.includes('listening on')) { clearTimeout(t); resolve(true); }
      });
      p.once('exit', () => { clearTimeout(t); resolve(false); });
    });
    fs.closeSync(log);
    if (ok) return { proc: p, port };
    p.kill('SIGKILL');
  }
  throw new Error(`${prog} did not start`);
}

async function stopServer(s, name) {
  s.proc.kill('SIGTERM');
  const code = await new Promise((resolve) => {
    if (s.proc.exitCode !== null) return resolve(s.proc.exitCode);
    const t = setTimeout(() => { s.proc.kill('SIGKILL'); resolve('killed'); }, 15_000);
    s.proc.once('exit', (c, sig) => { clearTimeout(t); resolve(c ?? sig); });
  });
  check(code === 0, `${name} exited ${code} on SIGTERM, not 0 (see ${svcDir})`);
}

function cli(args) {
  const r = spawnSync(CLI, args, { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '' };
}

// ---------------------------------------------------------------- servers
step = 'start';
const db = path.join(svcDir, 'keys.db');
const adminFile = path.join(dir, 'admin.json');
const rport = await freePort();
{
  const r = spawnSync(REQSIGND, ['init', '--db', db, '--service', `http://127.0.0.1:${rport}`, '-o', adminFile],
    { encoding: 'utf8' });
  check(r.status === 0, `reqsignd init: ${r.stderr}`);
}
// the port init named, so that the credential's "service" is right; retried elsewhere if taken
const reqsignd = await (async () => {
  const log = fs.openSync(path.join(svcDir, 'reqsignd.log'), 'a');
  const p = spawn(REQSIGND, ['--db', db, '--listen', `127.0.0.1:${rport}`, '--authority', `127.0.0.1:${rport}`,
    '--cache-ttl', '1', '--last-used-interval', '1'], { stdio: ['ignore', 'pipe', log] });
  procs.push(p);
  const ok = await new Promise((resolve) => {
    let out = '';
    const t = setTimeout(() => resolve(false), 10_000);
    p.stdout.on('data', (d) => { out += d; if (out.includes('listening on')) { clearTimeout(t); resolve(true); } });
    p.once('exit', () => { clearTimeout(t); resolve(false); });
  });
  fs.closeSync(log);
  check(ok, 'reqsignd did not start');
  return { proc: p, port: rport };
})();
const backend = await startServer(API_BACKEND, ['--db', db, '--listen', '127.0.0.1:@PORT@',
  '--authority', '127.0.0.1:@PORT@', '--cache-ttl', '1'], 'api-backend.log');
const ORIGIN = `http://127.0.0.1:${reqsignd.port}`;
const API = `http://127.0.0.1:${backend.port}/v1/orders`;
const admin = JSON.parse(fs.readFileSync(adminFile, 'utf8'));

// ---------------------------------------------------------------- headers
const CSP_PARTS = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
  "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"];
function checkHeaders(url, h) {
  const csp = h['content-security-policy'] || '';
  for (const part of CSP_PARTS) check(csp.includes(part), `${url}: CSP lacks ${part}: ${csp}`);
  check(!/unsafe-inline|unsafe-eval|\*/.test(csp), `${url}: CSP allows too much: ${csp}`);
  check(h['x-content-type-options'] === 'nosniff', `${url}: no X-Content-Type-Options: nosniff`);
  check(h['referrer-policy'] === 'no-referrer', `${url}: no Referrer-Policy: no-referrer`);
  check(!('set-cookie' in h), `${url}: sets a cookie`);
}

step = 'headers';
{
  const get = async (p, init) => {
    const r = await fetch(ORIGIN + p, { redirect: 'manual', ...init });
    return { status: r.status, h: Object.fromEntries(r.headers), text: await r.text() };
  };
  const index = await get('/console/');
  check(index.status === 200 && index.h['content-type'].startsWith('text/html'), 'GET /console/');
  check(index.h['cache-control'] === 'no-store', `the page is cached: ${index.h['cache-control']}`);
  checkHeaders('/console/', index.h);
  check(!/<script(?![^>]*\bsrc=)/i.test(index.text) && !/\son[a-z]+=/i.test(index.text) && !/style=/i.test(index.text),
    'the page has inline script, handlers or styles');
  const assets = [...index.text.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]);
  check(assets.length >= 2, 'the page names no assets');
  for (const a of assets) {
    check(/\.[0-9a-f]{12}\.(js|css)$/.test(a), `${a}: no content hash in the name`);
    const r = await get('/console/' + a);
    check(r.status === 200, `${a}: ${r.status}`);
    check(/immutable/.test(r.h['cache-control']), `${a}: not cacheable: ${r.h['cache-control']}`);
    check(r.h['content-type'].startsWith(a.endsWith('.js') ? 'text/javascript' : 'text/css'), `${a}: type`);
    checkHeaders(a, r.h);
    const hash = crypto.createHash('sha256').update(r.text).digest('hex').slice(0, 12);
    check(a.includes(`.${hash}.`), `${a}: the name is not the content's hash (${hash})`);
    check(!/https?:\/\/[a-z0-9[]/i.test(r.text), `${a}: names another origin`);
  }
  for (const [p, want] of [['/console/nope', 404], ['/console/assets/app.js', 404],
    ['/console', 308]]) {
    const r = await get(p);
    check(r.status === want, `${p}: ${r.status}, want ${want}`);
    checkHeaders(p, r.h);
  }
  const post = await get('/console/', { method: 'POST' });
  check(post.status === 405, `POST /console/: ${post.status}`);
  checkHeaders('POST /console/', post.h);
}
console.log('ok   security headers on every console answer');

// ---------------------------------------------------------------- browser
browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], timeout: 30_000 });

const shots = [];
// A user: a fresh context (own storage) whose page is watched for console
// errors, page errors, requests to another origin and console answers
// without the headers.
async function user(name, { expect4xx = false, init } = {}) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(15_000);
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Chromium logs every 4xx fetch; the error stories expect some
    if (expect4xx && /status of 4\d\d/.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(ORIGIN + '/') && !u.startsWith(`blob:${ORIGIN}/`) && !u.startsWith('data:'))
      problems.push(`request to another origin: ${u}`);
  });
  page.on('response', (r) => {
    if (!r.url().startsWith(ORIGIN + '/console')) return;
    try {
      checkHeaders(r.url(), r.headers());
    } catch (e) {
      problems.push(e.message);
    }
  });
  return {
    name, context, page, problems,
    async done() {
      check(problems.length === 0, `${name}: ${problems.join('; ')}`);
      await context.close();
    },
  };
}

async function shot(page, view) {
  for (const width of [1440, 375]) {
    await page.setViewportSize({ width, height: width === 375 ? 812 : 900 });
    await sleep(100);
    const file = path.join(OUT, `console-${view}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }
  await page.setViewportSize({ width: 1440, height: 900 });
}

const tid = (page, id) => page.locator(`[data-testid="${id}"]`);
const row = (page, keyid) => page.locator(`[data-testid="key-row"][data-keyid="${keyid}"]`);

async function signIn(page, file, remember = false) {
  await page.goto(ORIGIN + '/console/');
  if (remember) await tid(page, 'signin-remember').check();
  await tid(page, 'signin-file').setInputFiles(file);
}

async function saveDownload(page, click) {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()]);
  const name = dl.suggestedFilename();
  const file = path.join(dlDir, name);
  await dl.saveAs(file);
  fs.chmodSync(file, 0o600);
  return { name, file, cred: JSON.parse(fs.readFileSync(file, 'utf8')) };
}

// Poll the CLI against api-backend until @want (the bound is the cache TTL).
async function sendUntil(file, want, what) {
  let last;
  for (let i = 0; i < 40; i++) {
    last = cli(['send', '--key', file, '-sS', '-w', '\n%{http_code}', API]);
    if (want({ ...last, out: last.out + last.err })) return last;
    await sleep(250);
  }
  throw new Error(`${step}: ${what}: last answer ${last.out} ${last.err}`);
}

function keyIdOf(pem) {
  const pub = crypto.createPublicKey(pem).export({ format: 'jwk' });
  const jwk = `{"crv":"Ed25519","kty":"OKP","x":"${pub.x}"}`;
  return crypto.createHash('sha256').update(jwk).digest('base64url');
}

try {
  // ---- the admin: sign in, create an account, copy the enrollment link
  step = 'admin';
  const adm = await user('admin');
  await signIn(adm.page, adminFile);
  await row(adm.page, admin.keyid).waitFor();
  // keyboard: Tab reaches the controls, each with a visible focus ring
  for (let i = 0; i < 4; i++) {
    await adm.page.keyboard.press('Tab');
    const f = await adm.page.evaluate(() => {
      const e = document.activeElement;
      const cs = getComputedStyle(e);
      return { tag: e.tagName, outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
    });
    check(f.tag !== 'BODY' && f.outline !== 'none' && f.width >= 2, `focus not visible: ${JSON.stringify(f)}`);
  }
  await adm.page.locator('.tabs button[data-view="accounts"]').click();
  await tid(adm.page, 'accounts-table').waitFor();
  await tid(adm.page, 'account-name').fill('ACME Corp');
  await tid(adm.page, 'account-scopes').fill('orders:write');
  await tid(adm.page, 'create-account').click();
  await tid(adm.page, 'enrollment-link').waitFor();
  const link = await tid(adm.page, 'enrollment-link').inputValue();
  check(link.startsWith(`${ORIGIN}/console/#enroll=`), `enrollment link ${link}`);
  await adm.page.locator('[data-testid="account-row"]', { hasText: 'ACME Corp' }).waitFor();
  await shot(adm.page, 'accounts');
  console.log('ok   admin signs in, creates an account, gets the enrollment link');

  // ---- the customer: enrollment in a second browser context
  step = 'enroll';
  const cus = await user('customer');
  await cus.page.goto(link);
  await tid(cus.page, 'enroll-generate').waitFor();
  check(await tid(cus.page, 'signout').isHidden(), 'sign out is shown before signing in');
  check(await cus.page.getByText('only copy').first().isVisible(), 'the page does not say the file is the only copy');
  check(!cus.page.url().includes('enroll='), 'the token stays in the address bar');
  await shot(cus.page, 'enroll');
  const enrolled = await saveDownload(cus.page, () => tid(cus.page, 'enroll-generate').click());
  const c1 = enrolled.cred;
  check(enrolled.name === `reqsign-${c1.keyid}.json`, `file name ${enrolled.name}`);
  check(typeof c1.private_key === 'string' && c1.alg === 'ed25519' && c1.service === ORIGIN, 'not a credential');
  check(keyIdOf(c1.private_key) === c1.keyid, 'the private key is not the keyid\'s');
  const rec = JSON.parse(cli(['keys', 'get', '--key', adminFile, c1.keyid]).out);
  check(rec.public_key === c1.public_key && keyIdOf(rec.public_key) === c1.keyid,
    'the server\'s public key is not the file\'s');
  check(rec.scopes.includes('keys:self') && rec.account.startsWith('acct_'), 'enrolled key scopes/account');
  await row(cus.page, c1.keyid).waitFor();
  const sent = cli(['send', '--key', enrolled.file, '-sS', '-w', '\n%{http_code}', API]);
  check(sent.code === 0 && sent.out.endsWith('\n200'), `CLI send with the enrolled key: ${sent.out} ${sent.err}`);
  console.log('ok   enrollment in the browser: credential saved, public key registered, CLI send 200');

  // ---- create a second key (generated in the browser), rotate it
  step = 'create';
  await tid(cus.page, 'create-key').waitFor();
  await cus.page.locator('#create-label').fill('second key');
  await cus.page.locator('#create-scopes').fill('orders:write');
  const second = await saveDownload(cus.page, () => tid(cus.page, 'create-key').click());
  await row(cus.page, second.cred.keyid).waitFor();
  check(second.cred.private_key && keyIdOf(second.cred.private_key) === second.cred.keyid, 'second credential');
  check((await cus.page.locator('[data-testid="key-row"]').count()) === 2, 'two keys listed');
  step = 'rotate';
  const succ = await saveDownload(cus.page, () => row(cus.page, second.cred.keyid).locator('[data-testid="rotate"]').click());
  await row(cus.page, succ.cred.keyid).waitFor();
  check(succ.cred.replaces === second.cred.keyid, 'the successor does not name what it replaces');
  await row(cus.page, second.cred.keyid).locator('text=(grace)').waitFor();
  check((await row(cus.page, second.cred.keyid).innerText()).includes(succ.cred.keyid.slice(0, 10)), 'replaced by not shown');
  {
    // newest first: the successor right above the key it replaces; dates on one line at 1440 px
    // (created_at is to the second: keys made in one second may come in any order, a successor not)
    const order = await cus.page.locator('[data-testid="key-row"]').evaluateAll((rs) => rs.map((r) => r.dataset.keyid));
    check(order.length === 3 && order.indexOf(succ.cred.keyid) + 1 === order.indexOf(second.cred.keyid),
      `the successor is not right above the key it replaces: ${order.join(' ')}`);
    const created = Object.fromEntries(order.map((id) =>
      [id, JSON.parse(cli(['keys', 'get', '--key', adminFile, id]).out).created_at]));
    check(Object.values(created).every((t) => /^\d{4}-.*Z$/.test(t)), `created_at: ${Object.values(created).join(' ')}`);
    const c1At = order.indexOf(c1.keyid);
    const chainAt = order.indexOf(succ.cred.keyid);
    check(created[c1.keyid] === created[succ.cred.keyid] || (c1At < chainAt) === (created[c1.keyid] > created[succ.cred.keyid]),
      `keys not newest first: ${order.map((id) => `${id.slice(0, 6)} ${created[id]}`).join(', ')}`);
    const lines = await row(cus.page, second.cred.keyid).locator('td[data-label="Created"], td[data-label="Expires"]')
      .evaluateAll((tds) => tds.map((td) => {
        const r = document.createRange();
        r.selectNodeContents(td);
        return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size;
      }));
    check(lines.length === 2 && lines.every((n) => n === 1), `a date wraps at 1440 px: ${lines.join(' ')} lines`);
  }
  await shot(cus.page, 'keys');
  console.log('ok   create a key in the browser, rotate it (successor saved, grace shown)');

  // ---- disable (api-backend refuses within the bound), enable, revoke
  step = 'disable';
  // by keyboard: after the table is redrawn the focus stays in that key's row
  await row(cus.page, succ.cred.keyid).locator('[data-testid="disable"]').focus();
  await cus.page.keyboard.press('Enter');
  await cus.page.locator(`[data-testid="key-row"][data-keyid="${succ.cred.keyid}"][data-status="disabled"]`).waitFor();
  {
    const f = await cus.page.evaluate(() => {
      const a = document.activeElement;
      const tr = a && a.closest('[data-testid="key-row"]');
      return { tag: a ? a.tagName : null, keyid: tr ? tr.dataset.keyid : null, testid: a ? a.dataset.testid : null };
    });
    check(f.tag === 'BUTTON' && f.keyid === succ.cred.keyid,
      `after Disable by keyboard the focus is not on a button of that key's row: ${JSON.stringify(f)}`);
  }
  await sendUntil(succ.file, (r) => r.out.includes('key_disabled'), 'api-backend still accepts the disabled key');
  step = 'enable';
  await row(cus.page, succ.cred.keyid).locator('[data-testid="enable"]').click();
  await cus.page.locator(`[data-testid="key-row"][data-keyid="${succ.cred.keyid}"][data-status="active"]`).waitFor();
  await sendUntil(succ.file, (r) => r.out.endsWith('\n200'), 'api-backend refuses the enabled key');
  step = 'revoke';
  await row(cus.page, succ.cred.keyid).locator('[data-testid="revoke"]').click();
  await tid(cus.page, 'confirm').waitFor();
  await shot(cus.page, 'confirm');
  await tid(cus.page, 'confirm').click();
  await cus.page.locator(`[data-testid="key-row"][data-keyid="${succ.cred.keyid}"][data-status="revoked"]`).waitFor();
  await sendUntil(succ.file, (r) => r.out.includes('key_revoked'), 'api-backend still accepts the revoked key');
  console.log('ok   disable (key_disabled at api-backend), enable (200), revoke with confirmation');

  // ---- a key the service generates (the user asks for it): downloaded once
  step = 'server-generated';
  await cus.page.locator('#create-label').fill('service made');
  await cus.page.locator('#create-server').check();
  const made = await saveDownload(cus.page, () => tid(cus.page, 'create-key').click());
  await row(cus.page, made.cred.keyid).waitFor();
  check(keyIdOf(made.cred.private_key) === made.cred.keyid, 'service-generated credential');
  await sendUntil(made.file, (r) => r.out.endsWith('\n200'), 'the service-generated key fails');
  console.log('ok   a service-generated key, saved once, signs (200)');

  // ---- the audit view shows each action
  step = 'audit';
  await cus.page.locator('.tabs button[data-view="audit"]').click();
  await tid(cus.page, 'audit-row').first().waitFor();
  const actions = await cus.page.locator('[data-testid="audit-row"][data-outcome="ok"]')
    .evaluateAll((rows) => rows.map((r) => r.dataset.action));
  for (const a of ['key.enroll', 'key.create', 'key.rotate', 'key.disable', 'key.enable', 'key.revoke'])
    check(actions.includes(a), `no ${a} in the audit view (${actions.join(' ')})`);
  {
    const t = await tid(cus.page, 'audit-row').first().locator('td').first().innerText();
    check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(t.trim()), `audit time without seconds: "${t}"`);
    // a shortened keyid shows the whole value by keyboard, not only in a hover title
    const id = cus.page.locator(`[data-testid="audit-row"][data-target="${succ.cred.keyid}"] button.id`).first();
    await id.focus();
    await cus.page.keyboard.press('Enter');
    check((await id.innerText()).trim() === succ.cred.keyid, `the full target is not shown: ${await id.innerText()}`);
  }
  await shot(cus.page, 'audit');
  check(await cus.page.locator('#nav-accounts').isHidden(), 'a keys:self key sees the accounts view');
  await cus.done();
  console.log('ok   the audit view shows enroll, create, rotate, disable, enable, revoke');

  // ---- the admin's views after it all; disable / enable the account
  step = 'admin views';
  await adm.page.locator('.tabs button[data-view="keys"]').click();
  await row(adm.page, succ.cred.keyid).waitFor();
  await shot(adm.page, 'keys-admin');
  await adm.page.locator('.tabs button[data-view="accounts"]').click();
  const acme = adm.page.locator('[data-testid="account-row"]', { hasText: 'ACME Corp' });
  await acme.locator('[data-testid="disable"]').click();
  await adm.page.locator('[data-testid="account-row"][data-status="disabled"]', { hasText: 'ACME Corp' }).waitFor();
  await sendUntil(enrolled.file, (r) => r.out.includes('account_disabled'), 'a disabled account\'s key works');
  await adm.page.locator('[data-testid="account-row"]', { hasText: 'ACME Corp' }).locator('[data-testid="enable"]').click();
  await adm.page.locator('[data-testid="account-row"][data-status="active"]', { hasText: 'ACME Corp' }).waitFor();
  await sendUntil(enrolled.file, (r) => r.out.endsWith('\n200'), 'the enabled account\'s key fails');
  await adm.page.locator('.tabs button[data-view="audit"]').click();
  await tid(adm.page, 'audit-row').first().waitFor();
  await shot(adm.page, 'audit-admin');
  await adm.done();
  console.log('ok   admin: account disable (account_disabled) / enable');

  // ---- errors: a clear message, nothing else changes
  step = 'errors';
  const bad = await user('errors', { expect4xx: true });
  const signinShows = async (re, what) => {
    await tid(bad.page, 'error').filter({ hasText: re }).waitFor();
    check(await bad.page.locator('#signin').isVisible(), `${what}: left the sign-in screen`);
    check(await tid(bad.page, 'keys-table').isHidden(), `${what}: keys shown`);
    check((await bad.page.evaluate(() => new Promise((res) => {
      const rq = indexedDB.open('reqsign-console', 1);
      rq.onupgradeneeded = () => rq.result.createObjectStore('keys');
      rq.onsuccess = () => {
        const g = rq.result.transaction('keys').objectStore('keys').count();
        g.onsuccess = () => { rq.result.close(); res(g.result); };
      };
    }))) === 0, `${what}: something was remembered`);
  };
  await bad.page.goto(ORIGIN + '/console/');
  await tid(bad.page, 'signin-remember').check();
  await tid(bad.page, 'signin-file').setInputFiles({ name: 'x.json', mimeType: 'application/json', buffer: Buffer.from('{"keyid": nope') });
  await signinShows(/not JSON/, 'not JSON');
  await shot(bad.page, 'error');
  const corrupt = JSON.parse(JSON.stringify(c1));
  const lines = corrupt.private_key.split('\n');
  lines[1] = lines[1].slice(0, 20) + (lines[1][20] === 'A' ? 'B' : 'A') + lines[1].slice(21);
  corrupt.private_key = lines.join('\n');
  await tid(bad.page, 'signin-file').setInputFiles({ name: 'c.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(corrupt)) });
  await signinShows(/damaged|does not match|altered/, 'corrupted private key');
  const other = { ...JSON.parse(JSON.stringify(c1)), public_key: second.cred.public_key };
  await tid(bad.page, 'signin-file').setInputFiles({ name: 'o.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(other)) });
  await signinShows(/does not match|altered/, 'another key\'s public key');
  await tid(bad.page, 'signin-file').setInputFiles(succ.file);
  await signinShows(/revoked/i, 'a revoked key');
  console.log(`     revoked key: "${await tid(bad.page, 'error').innerText()}"`);
  await bad.page.goto(link);
  await tid(bad.page, 'enroll-generate').click();
  await tid(bad.page, 'error').filter({ hasText: /already used.*new link/ }).waitFor();
  check(await tid(bad.page, 'enroll-generate').isHidden(), 'used link: "Generate my key" is still offered');
  check(await bad.page.locator('#enroll').isVisible() && await bad.page.locator('#app').isHidden(), 'used link: screen changed');
  await bad.done();
  const list = JSON.parse(cli(['keys', 'list', '--key', adminFile, '--all', '--json']).out);
  const acmeKeys = (list.keys || list).filter((k) => k.account === rec.account);
  check(acmeKeys.length === 4, `the used link registered a key (${acmeKeys.length} keys in the account)`);
  console.log('ok   wrong, corrupted, mismatched, revoked credential and a used link: a message, no change');

  // ---- clock: the page's clock 10 minutes ahead
  step = 'clock';
  const skew = await user('clock', {
    expect4xx: true,
    init: 'const __now = Date.now.bind(Date); Date.now = () => __now() + 600000;',
  });
  await signIn(skew.page, enrolled.file, true);
  await row(skew.page, c1.keyid).waitFor();
  await tid(skew.page, 'notice').filter({ hasText: /clock/ }).waitFor();
  await shot(skew.page, 'clock');
  // remembered: a reload signs in again without the file; sign out forgets
  step = 'remember';
  await skew.page.reload();
  await row(skew.page, c1.keyid).waitFor();
  const extractable = await skew.page.evaluate(() => new Promise((res) => {
    const rq = indexedDB.open('reqsign-console', 1);
    rq.onsuccess = () => {
      const g = rq.result.transaction('keys').objectStore('keys').get('current');
      g.onsuccess = () => { rq.result.close(); res(g.result.key.extractable); };
    };
  }));
  check(extractable === false, 'the remembered key is extractable');
  await tid(skew.page, 'signout').click();
  await tid(skew.page, 'signin-file').waitFor();
  await skew.page.reload();
  await tid(skew.page, 'signin-file').waitFor();
  check(await tid(skew.page, 'keys-table').isHidden(), 'signed in after sign out');
  await skew.done();
  console.log('ok   clock 10 min ahead: one retry, a notice; remember / sign out');

  // ---- no private key bytes anywhere the service writes
  step = 'scan';
  const needles = [];
  for (const f of [enrolled, second, succ, made]) {
    const der = crypto.createPrivateKey(f.cred.private_key).export({ format: 'der', type: 'pkcs8' });
    const seed = der.subarray(der.length - 32);
    const pemBody = f.cred.private_key.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    for (const n of [seed, Buffer.from(seed.toString('base64')), Buffer.from(seed.toString('base64url')),
      Buffer.from(seed.toString('hex')), Buffer.from(pemBody.slice(0, 40)), Buffer.from(pemBody.slice(24, 64))])
      needles.push({ what: `${f.name}`, n });
  }
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  const scan = () => {
    files.length = 0;
    walk(svcDir);
    check(files.some((f) => f.endsWith('keys.db')), 'no database found');
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const { what, n } of needles) check(!bytes.includes(n), `private key bytes of ${what} in ${f}`);
    }
    return files.map((f) => path.basename(f)).join(', ');
  };
  // while the servers run (the WAL is there), then after they stopped
  const running = scan();
  await stopServer(backend, 'api-backend');
  await stopServer(reqsignd, 'reqsignd');
  console.log(`ok   no private key bytes in ${running}; after the stop in ${scan()}`);
  console.log(`screenshots: ${shots.length} in ${OUT}`);
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  for (const f of ['reqsignd.log', 'api-backend.log']) {
    try {
      console.error(`--- ${f} (last lines)\n` + fs.readFileSync(path.join(svcDir, f), 'utf8').split('\n').slice(-15).join('\n'));
    } catch { /* none */ }
  }
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await cleanup();
  if (process.exitCode !== 1) fs.rmSync(dir, { recursive: true, force: true });
  else console.error(`kept ${dir}`);
}
