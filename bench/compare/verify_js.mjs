// Time JavaScript RFC 9421 verifiers on the requests reqsign's bench pre-signs,
// against node's raw Ed25519 verify over the same signature bases.
//
//   node verify_js.mjs REQUESTS.jsonl [--rounds 5] [--json OUT.json]
//
// REQUESTS.jsonl: `bench-crypto --requests N --dump FILE` (one request a line:
// method, scheme, authority, target, headers, body_b64, base, sig_b64, pk_b64,
// keyid, created). Prints one JSON document (stdout, or OUT.json) and progress
// on stderr. Method as in bench/bench_crypto.c: per round, the library and the
// raw verify alternate in chunks of 250 requests, and which one goes first
// alternates too; one untimed warm-up pass each; figures are medians of the
// rounds, the ratio the median of the per-round ratios.
//
// What each library path does is in LIBS[*].path below (and RESULTS.md).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dhensby = require('http-message-signatures');
const cf = await import('http-message-sig');
const misskey = await import('@misskey-dev/node-http-message-signatures');
const sh = require('structured-headers');
const versionOf = (pkg) => JSON.parse(fs.readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url), 'utf8')).version;
// the structured-headers a library resolves: its nested copy, else the top-level one
const shOf = (lib) => {
  const nested = new URL(`./node_modules/${lib}/node_modules/structured-headers/package.json`, import.meta.url);
  return fs.existsSync(nested) ? JSON.parse(fs.readFileSync(nested, 'utf8')).version : versionOf('structured-headers');
};

const CHUNK = 250;
const MAX_AGE = 300; // reqsign's defaults (spec/PROTOCOL.md section 6)
const SKEW = 30;
const REQUIRED_COMPONENTS = ['@method', '@authority', '@path', '@query', 'content-digest'];
const REQUIRED_PARAMS = ['created', 'nonce', 'keyid'];

function usage(msg) {
  if (msg) process.stderr.write(`verify_js: ${msg}\n`);
  process.stderr.write('usage: node verify_js.mjs REQUESTS.jsonl [--rounds R] [--json OUT.json]\n');
  process.exit(2);
}
const argv = process.argv.slice(2);
let file = null, rounds = 5, jsonOut = null;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--rounds') rounds = Number(argv[++i]);
  else if (argv[i] === '--json') jsonOut = argv[++i];
  else if (file === null) file = argv[i];
  else usage(`unexpected argument ${argv[i]}`);
}
if (!file) usage();
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 60) usage('bad --rounds');

// ---- the requests, as a server would hold them before verifying ----
const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
const reqs = lines.map((l) => JSON.parse(l));
const N = reqs.length;
if (N === 0) usage(`${file}: no requests`);
const created = reqs[0].created;
const NOW = created + 1; // the clock reqsign's bench gives its verifier
// http-message-signatures reads the clock itself (Date.now()); pin it to NOW,
// as reqsign's bench pins its verifier's clock. (Timing uses hrtime.)
Date.now = () => NOW * 1000;

// One KeyObject per key, made once; looked up by keyid (as a key cache would).
const keyById = new Map();
for (const r of reqs) {
  if (keyById.has(r.keyid)) continue;
  const x = Buffer.from(r.pk_b64, 'base64');
  if (x.length !== 32) throw new Error(`keyid ${r.keyid}: public key is ${x.length} bytes`);
  keyById.set(r.keyid, crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, format: 'jwk' }));
}

// Per request: inputs for the raw verify, and the message in each library's
// input shape (built here, outside the timing: a server framework hands these
// over already parsed). Every library sees the same header lines plus Host.
const raw = reqs.map((r) => ({ base: Buffer.from(r.base, 'utf8'), sig: Buffer.from(r.sig_b64, 'base64'), key: keyById.get(r.keyid) }));
const lines_ = reqs.map((r) => [['Host', r.authority], ...r.headers]);
const msgs = reqs.map((r, i) => {
  const url = `${r.scheme}://${r.authority}${r.target}`;
  const obj = {}; // node's IncomingMessage.headers shape: lower-case names
  for (const [n, v] of lines_[i]) {
    const k = n.toLowerCase();
    obj[k] = k in obj ? [].concat(obj[k], v) : v;
  }
  return {
    dhensby: { method: r.method, url, headers: obj },
    cf: { kind: 'request', method: r.method, targetUri: url, fields: lines_[i].map(([name, value]) => ({ name, value })) },
    // node IncomingMessage shape: origin-form url, rawHeaders as received
    misskey: { method: r.method, url: r.target, rawHeaders: lines_[i].flat(), httpVersionMajor: 1, httpVersion: '1.1' },
  };
});

// ---- the libraries ----
// make(onBase) returns verify(i) -> Promise<boolean> (throws on a rejected request).
// onBase (check pass only) receives the signature base the library built.
const LIBS = [
  {
    name: 'http-message-signatures',
    path: `httpbis.verifyMessage(): parses Signature-Input and Signature (structured-headers ${shOf('http-message-signatures')}), ` +
      'checks alg against the key\'s algs, required parameters (created, nonce, keyid) and covered components ' +
      '(@method @authority @path @query content-digest), created/expires against the clock (maxAge 300 s, tolerance 30 s; ' +
      'the library reads Date.now(), which this harness pins to created+1), rebuilds the base, then calls the key\'s verify: ' +
      'crypto.verify(null, base, KeyObject, sig). Key lookup: a Map from keyid, through the library\'s async keyLookup callback. ' +
      'No nonce/replay check, no Content-Digest check against the body (the library does neither).',
    make(onBase) {
      const keys = new Map();
      for (const [id, key] of keyById) {
        keys.set(id, {
          id, algs: ['ed25519'],
          verify: onBase ? async (data, sig) => { onBase(data); return crypto.verify(null, data, key, sig); }
            : async (data, sig) => crypto.verify(null, data, key, sig),
        });
      }
      const config = {
        keyLookup: async (params) => keys.get(params.keyid) ?? null,
        maxAge: MAX_AGE, tolerance: SKEW,
        requiredParams: REQUIRED_PARAMS, requiredFields: REQUIRED_COMPONENTS,
      };
      return async (i) => (await dhensby.httpbis.verifyMessage(config, msgs[i].dhensby)) === true;
    },
  },
  {
    name: 'http-message-sig',
    path: 'verifySignature(): snapshots the message (validates method and target URI), parses Signature-Input and ' +
      `Signature strictly (structured-headers ${shOf('http-message-sig')}, RFC 8941), rebuilds the base, applies the policy (algorithms [ed25519], ` +
      'required components @method @authority @path @query content-digest, required parameters created, nonce, keyid, ' +
      'now = created+1, maxAge 300 s, clockSkew 30 s), resolves the verifier by keyid from a Map (async resolveVerifier), ' +
      'then crypto.verify(null, base, KeyObject, sig). No nonce/replay check, no Content-Digest check against the body ' +
      '(the library does neither).',
    make(onBase) {
      const verifiers = new Map();
      for (const [id, key] of keyById) {
        verifiers.set(id, Object.freeze({
          algorithm: 'ed25519',
          verify: onBase ? async (data, sig) => { onBase(data); return crypto.verify(null, data, key, sig); }
            : async (data, sig) => crypto.verify(null, data, key, sig),
        }));
      }
      const options = {
        policy: { algorithms: ['ed25519'], requiredComponents: REQUIRED_COMPONENTS, requiredParameters: REQUIRED_PARAMS, now: NOW, maxAge: MAX_AGE, clockSkew: SKEW },
        resolveVerifier: async (cand) => {
          const v = verifiers.get(cand.parameters.keyid);
          if (v === undefined) throw new Error(`unknown keyid ${cand.parameters.keyid}`);
          return v;
        },
      };
      return async (i) => !!(await cf.verifySignature(msgs[i].cf, options));
    },
  },
  {
    name: '@misskey-dev/node-http-message-signatures',
    path: 'This version has no RFC 9421 verify function (parseRequestSignature() throws "Not implemented" for ' +
      'Signature-Input), only RFC9421SignatureBaseFactory. Path timed: new RFC9421SignatureBaseFactory(request) (collects ' +
      `rawHeaders, parses Signature-Input with structured-headers ${shOf('@misskey-dev/node-http-message-signatures')}, parses the URL), generate(label) for the first label; ` +
      'then, done by this harness, not the library: the Signature field joined by the library\'s canonicalizeHeaderValue() and ' +
      `parsed with structured-headers ${versionOf('structured-headers')} (top-level copy; the library's own dependency range is ^1.0.1), keyid taken ` +
      'from the parsed Signature-Input, KeyObject from a Map, crypto.verify(null, base, KeyObject, sig). No time window, ' +
      'no required-component/parameter policy, no alg check, no nonce/replay check, no Content-Digest check.',
    make(onBase) {
      return async (i) => {
        const f = new misskey.RFC9421SignatureBaseFactory(msgs[i].misskey, 'http');
        const label = f.requestSignatureInput.keys().next().value;
        const keyid = f.requestSignatureInput.get(label)[1].get('keyid');
        const key = keyById.get(keyid);
        if (key === undefined) throw new Error(`unknown keyid ${keyid}`);
        const base = Buffer.from(f.generate(label));
        const sv = sh.parseDictionary(misskey.canonicalizeHeaderValue(f.requestHeaders.signature)).get(label);
        if (sv === undefined) throw new Error(`no Signature for ${label}`);
        const sig = Buffer.from(sv[0].toBase64(), 'base64');
        if (onBase) onBase(base);
        return crypto.verify(null, base, key, sig);
      };
    },
  },
];

// ---- timing ----
const ns = () => process.hrtime.bigint();
function errText(e) {
  if (!(e instanceof Error)) return String(e);
  return `${e.name}${e.code ? ` ${e.code}` : ''}: ${e.message}${e.cause ? ` / ${e.cause.message ?? e.cause}` : ''}`;
}
function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

async function runLib(fn, a, b, st) {
  const t0 = ns();
  for (let i = a; i < b; i++) {
    try {
      if (!(await fn(i))) {
        st.failures++;
        st.firstError ??= `request ${i}: verify returned false`;
      }
    } catch (e) {
      st.failures++;
      st.firstError ??= `request ${i}: ${errText(e)}`;
    }
  }
  return ns() - t0;
}
function runRaw(a, b, st) {
  const t0 = ns();
  for (let i = a; i < b; i++) {
    const r = raw[i];
    if (!crypto.verify(null, r.base, r.key, r.sig)) {
      st.failures++;
      st.firstError ??= `request ${i}: raw verify returned false`;
    }
  }
  return ns() - t0;
}

const results = [];
for (const lib of LIBS) {
  const out = { name: lib.name, version: versionOf(lib.name), path: lib.path };
  results.push(out);
  process.stderr.write(`${lib.name}: checking ${N} requests\n`);
  // Check pass (untimed): every request verifies, the base the library built
  // equals the base reqsign signed, and a flipped signature bit is rejected.
  let built = null;
  const check = lib.make((b) => { built = Buffer.from(b); });
  const chk = { failures: 0, firstError: null };
  let baseMismatch = 0, firstMismatch = null, ok0 = false;
  for (let i = 0; i < N; i++) {
    built = null;
    const before = chk.failures;
    await runLib(check, i, i + 1, chk);
    if (i === 0) ok0 = chk.failures === before;
    if (built !== null && !built.equals(raw[i].base)) {
      baseMismatch++;
      firstMismatch ??= { request: i, expected: reqs[i].base, got: built.toString() };
    }
  }
  out.check = { requests: N, failures: chk.failures, first_error: chk.firstError, base_mismatches: baseMismatch, first_base_mismatch: firstMismatch };
  {
    // tamper: flip one bit of request 0's signature in every library's input
    const m = msgs[0], r0 = reqs[0];
    const bad = Buffer.from(r0.sig_b64, 'base64'); bad[5] ^= 1;
    const swap = (v) => (/^sig1=:/.test(v) ? `sig1=:${bad.toString('base64')}:` : v);
    const saved = { d: m.dhensby.headers.signature, c: m.cf.fields, k: m.misskey.rawHeaders };
    m.dhensby.headers.signature = swap(m.dhensby.headers.signature);
    m.cf.fields = m.cf.fields.map((f) => (f.name.toLowerCase() === 'signature' ? { name: f.name, value: swap(f.value) } : f));
    m.misskey.rawHeaders = m.misskey.rawHeaders.map((v, j) => (j % 2 === 1 && m.misskey.rawHeaders[j - 1].toLowerCase() === 'signature' ? swap(v) : v));
    const st = { failures: 0, firstError: null };
    await runLib(check, 0, 1, st);
    out.check.flipped_signature_rejected = ok0 && st.failures === 1; // request 0 verifies, its flipped copy does not
    out.check.flipped_signature_error = st.firstError;
    m.dhensby.headers.signature = saved.d; m.cf.fields = saved.c; m.misskey.rawHeaders = saved.k;
  }
  process.stderr.write(`  check: ${N - chk.failures}/${N} verify, ${baseMismatch} base mismatches, flipped signature rejected: ${out.check.flipped_signature_rejected}\n`);
  if (chk.failures === N) {
    out.timed = false;
    out.reason = `no request verifies (first error: ${chk.firstError})`;
    process.stderr.write(`  not timed: ${out.reason}\n`);
    continue;
  }

  const fn = lib.make(null);
  const ls = { failures: 0, firstError: null }, rs = { failures: 0, firstError: null };
  // warm-up (JIT, caches): one pass each, untimed, failures not counted
  await runLib(fn, 0, N, { failures: 0, firstError: null });
  runRaw(0, N, { failures: 0, firstError: null });
  const libRate = [], rawRate = [], ratio = [];
  for (let r = 0; r < rounds; r++) {
    let tl = 0n, tr = 0n;
    for (let a = 0, c = 0; a < N; a += CHUNK, c++) {
      const b = Math.min(a + CHUNK, N);
      if ((c + r) % 2 === 0) {
        tl += await runLib(fn, a, b, ls);
        tr += runRaw(a, b, rs);
      } else {
        tr += runRaw(a, b, rs);
        tl += await runLib(fn, a, b, ls);
      }
    }
    libRate.push(N / (Number(tl) / 1e9));
    rawRate.push(N / (Number(tr) / 1e9));
    ratio.push(libRate[r] / rawRate[r]);
    process.stderr.write(`  round ${r + 1}/${rounds}: library ${libRate[r].toFixed(0)}/s, node raw verify ${rawRate[r].toFixed(0)}/s\n`);
  }
  Object.assign(out, {
    timed: true,
    per_sec: median(libRate), raw_per_sec: median(rawRate), ratio: median(ratio),
    rounds_per_sec: libRate, rounds_raw_per_sec: rawRate, rounds_ratio: ratio,
    timed_verifications: N * rounds, failures: ls.failures, first_error: ls.firstError,
    raw_failures: rs.failures, raw_first_error: rs.firstError,
  });
}

const doc = {
  requests: N, rounds, chunk: CHUNK, file,
  node: process.version, openssl: process.versions.openssl, v8: process.versions.v8,
  clock_now: NOW, keys: keyById.size,
  structured_headers_direct: versionOf('structured-headers'),
  libraries: results,
};
const text = JSON.stringify(doc, null, 2) + '\n';
if (jsonOut) fs.writeFileSync(jsonOut, text); else process.stdout.write(text);
const bad = results.some((r) => r.check.failures || r.check.base_mismatches || (r.timed && (r.failures || r.raw_failures)));
process.exit(bad ? 1 : 0);
