// reqsign signing in the browser: spec/PROTOCOL.md section 3 (the profile of
// RFC 9421 every reqsign client uses), ported from spec/reference/reqsign_ref.py.
// Covered components: @method @authority @path @query content-digest;
// parameters created, nonce, keyid, alg="ed25519". The private key is a
// WebCrypto CryptoKey; this module never reads key bytes out of one.

const enc = new TextEncoder();

export function b64(bytes) {
  let s = '';
  const u = new Uint8Array(bytes);
  for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
  return btoa(s);
}

export function b64url(bytes) {
  return b64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function unb64(text) {
  const s = atob(text);
  const u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
}

// The DER bytes of a PEM block labelled @label ("PRIVATE KEY", "PUBLIC KEY").
export function pemDecode(pem, label) {
  if (typeof pem !== 'string') throw new Error(`no ${label} PEM`);
  const m = pem.match(new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`));
  if (!m) throw new Error(`not a ${label} PEM block`);
  return unb64(m[1].replace(/\s+/g, ''));
}

export function pemEncode(der, label) {
  const lines = b64(der).match(/.{1,64}/g) || [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

// section 8: the RFC 7638 thumbprint of a raw 32-byte Ed25519 public key.
export async function thumbprint(raw) {
  const jwk = `{"crv":"Ed25519","kty":"OKP","x":"${b64url(raw)}"}`;
  return b64url(await crypto.subtle.digest('SHA-256', enc.encode(jwk)));
}

// section 5.2.3: lowercase host, the scheme's default port dropped.
export function normaliseAuthority(host, scheme) {
  const m = host.toLowerCase().match(/^(\[[0-9a-z:.]+\]|[^:]*)(?::(\d*))?$/);
  if (!m || !m[1]) throw new Error(`bad authority ${host}`);
  const port = m[2];
  if (port === undefined || port === '') return m[1];
  const n = Number(port);
  if ((scheme === 'http' && n === 80) || (scheme === 'https' && n === 443)) return m[1];
  return `${m[1]}:${n}`;
}

function sfString(s) {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error('not a Structured Field String');
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function randomNonce() {
  return b64url(crypto.getRandomValues(new Uint8Array(18)));
}

// The signature base and the header fields of one request.
// target: the origin-form request-target ("/v1/keys?limit=10"), without dot
// segments or a fragment (the page builds its own targets); body: a
// Uint8Array (empty for none); created: unix seconds.
export async function signRequest({ key, keyid, method, scheme, authority, target, body, created, nonce }) {
  const q = target.indexOf('?');
  const path = (q < 0 ? target : target.slice(0, q)) || '/';
  const query = q < 0 ? '?' : target.slice(q);
  const content = body || new Uint8Array(0);
  const digest = `sha-256=:${b64(await crypto.subtle.digest('SHA-256', content))}:`;
  const params = `;created=${created};nonce=${sfString(nonce || randomNonce())}` +
    `;keyid=${sfString(keyid)};alg="ed25519"`;
  const inner = '("@method" "@authority" "@path" "@query" "content-digest")' + params;
  const base = `"@method": ${method}\n"@authority": ${normaliseAuthority(authority, scheme)}\n` +
    `"@path": ${path}\n"@query": ${query}\n"content-digest": ${digest}\n` +
    `"@signature-params": ${inner}`;
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, enc.encode(base));
  return {
    base,
    headers: {
      'Content-Digest': digest,
      'Signature-Input': `sig1=${inner}`,
      Signature: `sig1=:${b64(sig)}:`,
    },
  };
}

// A credential file's text -> { keyid, key (non-extractable CryptoKey), meta }.
// Checks that the private key and the public key belong together and that
// keyid is the public key's thumbprint, so a wrong file fails here with a
// plain message rather than at the server as sig_invalid.
export async function loadCredential(text) {
  let c;
  try {
    c = JSON.parse(text);
  } catch {
    throw new Error('This file is not a reqsign credential: it is not JSON.');
  }
  if (c === null || typeof c !== 'object' || typeof c.keyid !== 'string')
    throw new Error('This file is not a reqsign credential: it has no "keyid".');
  if (c.alg !== undefined && c.alg !== 'ed25519')
    throw new Error(`This credential's algorithm is ${String(c.alg)}; only ed25519 is supported.`);
  if (typeof c.private_key !== 'string')
    throw new Error('This credential has no private key: it cannot sign. Use the file saved when the key was made.');
  let key, pub;
  try {
    key = await crypto.subtle.importKey('pkcs8', pemDecode(c.private_key, 'PRIVATE KEY'),
      { name: 'Ed25519' }, false, ['sign']);
  } catch {
    throw new Error('The private key in this file is damaged or is not an Ed25519 key.');
  }
  try {
    pub = await crypto.subtle.importKey('spki', pemDecode(c.public_key, 'PUBLIC KEY'),
      { name: 'Ed25519' }, true, ['verify']);
  } catch {
    throw new Error('The public key in this file is missing or damaged.');
  }
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key, probe);
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig, probe)))
    throw new Error('The private key in this file does not match its public key: the file was altered.');
  const raw = await crypto.subtle.exportKey('raw', pub);
  if ((await thumbprint(raw)) !== c.keyid)
    throw new Error('The keyid in this file is not its key\'s: the file was altered.');
  const meta = {};
  for (const k of ['label', 'scopes', 'account', 'service', 'api', 'created_at', 'expires_at'])
    if (c[k] !== undefined) meta[k] = c[k];
  return { keyid: c.keyid, key, meta };
}

// A new key pair in the browser: the credential's public half and a
// function that makes the file's text once the server's record is known.
export async function generateKey() {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = await crypto.subtle.exportKey('raw', pair.publicKey);
  const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
  return {
    pair,
    keyid: await thumbprint(raw),
    publicPem: pemEncode(spki, 'PUBLIC KEY'),
  };
}

// The credential file's text for a key made by generateKey() and registered
// as @record (what the server answered). The PKCS#8 bytes are wiped after use.
export async function credentialText(pair, record) {
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  const cred = { keyid: record.keyid, alg: 'ed25519', private_key: pemEncode(pkcs8, 'PRIVATE KEY') };
  pkcs8.fill(0);
  for (const [k, v] of Object.entries(record)) if (!(k in cred) && k !== 'jwk') cred[k] = v;
  return JSON.stringify(cred, null, 2) + '\n';
}

// A non-extractable copy of a generated key's private half (for signing in).
export async function nonExtractable(pair) {
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', pair.privateKey));
  try {
    return await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
  } finally {
    pkcs8.fill(0);
  }
}
