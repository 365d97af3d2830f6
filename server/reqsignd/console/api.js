// Every API call of the console: a reqsign-signed fetch to this origin.
// No cookies (credentials: 'omit'), no tokens: the signature is the only
// authentication, checked by reqsignd's verifier like any other client's.
import { signRequest } from './sign.js';

const enc = new TextEncoder();
const CLOCK_ERRORS = new Set(['sig_future', 'sig_too_old']);
export const NOTICE_OFFSET_MS = 60 * 1000;

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

// Plain words for the codes a person meets; the server's own message follows.
const WORDS = {
  key_revoked: 'This key was revoked: it can no longer sign in.',
  key_disabled: 'This key is disabled: ask an administrator to enable it.',
  key_expired: 'This key has expired.',
  key_unknown: 'The service does not know this key.',
  account_disabled: 'This account is disabled.',
  enrollment_invalid: 'This enrollment link was already used, has expired, or is not valid. Ask whoever sent it for a new link.',
  scope: 'This key is not allowed to do that.',
  key_limit: 'The account has reached its limit of keys.',
  conflict: 'That cannot be done in the key\'s current state.',
  not_found: 'Not found.',
  sig_future: 'This device\'s clock is ahead of the service\'s.',
  sig_too_old: 'This device\'s clock is behind the service\'s.',
};

export function plainMessage(err) {
  if (!(err instanceof ApiError)) return err && err.message ? err.message : String(err);
  const words = WORDS[err.code];
  const msg = err.message || '';
  if (!words) return msg || `The service answered ${err.status}.`;
  return msg && msg.toLowerCase() !== words.toLowerCase() ? `${words} (${msg})` : words;
}

export class Api {
  // signer: { keyid, key } or null (unsigned: enrollment without a key);
  // hooks: { busy(delta), clock(offsetMs) }.
  constructor(hooks) {
    this.hooks = hooks || {};
    this.offsetMs = 0;
  }

  now() {
    return Math.floor((Date.now() + this.offsetMs) / 1000);
  }

  async call(signer, method, target, body) {
    const bytes = body === undefined ? null : enc.encode(JSON.stringify(body));
    this.hooks.busy?.(1);
    try {
      let res = await this.once(signer, method, target, bytes);
      // A clock error carries the server's time: correct the offset once and retry.
      if (res.status === 401 && CLOCK_ERRORS.has(res.json.error) &&
          Number.isInteger(res.json.server_time)) {
        this.offsetMs = res.json.server_time * 1000 - Date.now();
        this.hooks.clock?.(this.offsetMs);
        res = await this.once(signer, method, target, bytes);
      }
      if (res.status >= 400)
        throw new ApiError(res.status, res.json.error || 'http_' + res.status, res.json.message, res.json);
      return res.json;
    } finally {
      this.hooks.busy?.(-1);
    }
  }

  async once(signer, method, target, bytes) {
    const headers = {};
    if (bytes) headers['Content-Type'] = 'application/json';
    if (signer) {
      const s = await signRequest({
        key: signer.key, keyid: signer.keyid, method, target,
        scheme: location.protocol.replace(':', ''), authority: location.host,
        body: bytes || new Uint8Array(0), created: this.now(),
      });
      Object.assign(headers, s.headers);
    }
    let res;
    try {
      res = await fetch(target, {
        method, headers, body: bytes, credentials: 'omit', cache: 'no-store',
        redirect: 'error', referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network', 'The service could not be reached.');
    }
    let json = {};
    const text = await res.text();
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = { error: 'http_' + res.status, message: `The service answered ${res.status} with something that is not JSON.` };
      }
    }
    return { status: res.status, json };
  }
}
