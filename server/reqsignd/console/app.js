// The reqsign console: sign-in from a credential file, enrollment, keys,
// audit log, accounts. Every call goes through api.js (signed in this
// browser). Text from the server is only ever set as textContent.
import { Api, ApiError, NOTICE_OFFSET_MS, plainMessage } from './api.js';
import { credentialText, generateKey, loadCredential, nonExtractable } from './sign.js';

const $ = (id) => document.getElementById(id);
const ADMIN = 'keys:admin';
const PAGE_LIMIT = 1000;
const MAX_PAGES = 20;

let busyCount = 0;
const api = new Api({
  busy(d) {
    busyCount += d;
    $('busy').hidden = busyCount === 0;
    $('main').setAttribute('aria-busy', busyCount > 0 ? 'true' : 'false');
  },
  clock(offsetMs) {
    const p = $('notice-clock');
    if (Math.abs(offsetMs) > NOTICE_OFFSET_MS) {
      const min = Math.round(Math.abs(offsetMs) / 60000);
      p.textContent = `This device's clock is ${offsetMs > 0 ? 'behind' : 'ahead of'} the service's by ` +
        `about ${min} minute${min === 1 ? '' : 's'}. The console corrects for it; fix the clock to avoid this.`;
      p.hidden = false;
    } else {
      p.hidden = true;
    }
    syncNotice();
  },
});

let me = null; // { keyid, key, meta, record }
let enrollToken = null;

// ---- messages ----

function syncNotice() {
  $('notice').hidden = $('notice-clock').hidden && $('notice-msg').hidden;
}

function notice(text) {
  const p = $('notice-msg');
  p.textContent = text || '';
  p.hidden = !text;
  syncNotice();
}

function showError(err) {
  const box = $('error');
  if (!err) {
    box.textContent = '';
    box.hidden = true;
    return;
  }
  box.textContent = typeof err === 'string' ? err : plainMessage(err);
  box.hidden = false;
  if (!(err instanceof ApiError) && typeof err !== 'string' && !(err instanceof Error))
    console.warn(err);
}

// Run a user action: clear the old error, show a new one.
async function action(fn) {
  showError(null);
  try {
    await fn();
  } catch (e) {
    showError(e);
  }
}

// ---- small DOM helpers ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'on') for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

// RFC 3339 UTC as "YYYY-MM-DD HH:MM UTC", or with @seconds "…HH:MM:SS UTC".
function when(t, seconds) {
  if (!t) return '—';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?(?:\.\d+)?Z$/.exec(t);
  if (!m) return t;
  return `${m[1]} ${m[2]}${seconds ? m[3] || ':00' : ''} UTC`;
}

function cell(label, ...kids) {
  return el('td', { 'data-label': label }, ...kids);
}

function short(id) {
  return id ? id.slice(0, 10) + '…' : '—';
}

// A shortened ID that shows the whole value when pressed (keyboard, touch),
// not only in a hover title.
function idToggle(id, what) {
  const b = el('button', {
    type: 'button', class: 'id', title: `${what}: ${id}`, 'aria-expanded': 'false', text: short(id),
  });
  b.addEventListener('click', () => {
    const open = b.getAttribute('aria-expanded') !== 'true';
    b.setAttribute('aria-expanded', open ? 'true' : 'false');
    b.textContent = open ? id : short(id);
  });
  return b;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    notice(`${what} copied.`);
  } catch {
    notice(`Select and copy the ${what.toLowerCase()} by hand.`);
  }
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function scopesOf(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

// ---- remembered key (IndexedDB; the CryptoKey is non-extractable) ----

function idb() {
  return new Promise((resolve, reject) => {
    const rq = indexedDB.open('reqsign-console', 1);
    rq.onupgradeneeded = () => rq.result.createObjectStore('keys');
    rq.onsuccess = () => resolve(rq.result);
    rq.onerror = () => reject(rq.error);
  });
}

async function idbDo(mode, fn) {
  const db = await idb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction('keys', mode);
      const rq = fn(tx.objectStore('keys'));
      tx.oncomplete = () => resolve(rq.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

const remember = (v) => idbDo('readwrite', (s) => s.put(v, 'current'));
const recall = () => idbDo('readonly', (s) => s.get('current'));
const forget = () => idbDo('readwrite', (s) => s.delete('current'));

// ---- screens ----

function screen(name) {
  $('signin').hidden = name !== 'signin';
  $('enroll').hidden = name !== 'enroll';
  $('app').hidden = name !== 'app';
  $('who').hidden = name !== 'app';
}

function isAdmin() {
  return !!me && Array.isArray(me.record.scopes) && me.record.scopes.includes(ADMIN);
}

// Sign in with { keyid, key, meta }: the key's own record proves it works.
async function signIn(cred, keep) {
  const record = await api.call(cred, 'GET', `/v1/keys/${encodeURIComponent(cred.keyid)}`);
  me = { ...cred, record };
  if (keep) await remember({ keyid: cred.keyid, key: cred.key, meta: cred.meta });
  $('who-keyid').textContent = short(cred.keyid);
  $('who-keyid').title = cred.keyid;
  $('who-account').textContent = [record.label, record.account].filter(Boolean).join(' · ');
  $('nav-accounts').hidden = !isAdmin();
  screen('app');
  await show('keys');
}

async function signOut() {
  me = null;
  await forget();
  for (const id of ['keys-table', 'audit-table', 'accounts-table']) $(id).tBodies[0].replaceChildren();
  $('enrollment').hidden = true;
  $('enrollment-link').value = '';
  $('signin-file').value = '';
  screen('signin');
  notice('Signed out. The key was removed from this browser.');
}

async function signInFile(file) {
  if (!file) return;
  await action(async () => {
    notice('');
    if (file.size > 64 * 1024) throw new Error('This file is too large to be a reqsign credential.');
    const cred = await loadCredential(await file.text());
    try {
      await signIn(cred, $('signin-remember').checked);
    } catch (e) {
      me = null;
      throw e;
    } finally {
      $('signin-file').value = '';
    }
  });
}

// ---- views ----

let current = 'keys';

async function show(view) {
  current = view;
  for (const b of document.querySelectorAll('.tabs button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const v of ['keys', 'audit', 'accounts']) $('view-' + v).hidden = v !== view;
  if (view === 'keys') await loadKeys();
  else if (view === 'audit') await loadAudit();
  else if (view === 'accounts') await loadAccounts();
}

async function pages(path, member) {
  const out = [];
  let after = null;
  for (let i = 0; i < MAX_PAGES; i++) {
    const q = `?limit=${PAGE_LIMIT}` + (after ? `&after=${encodeURIComponent(after)}` : '');
    const r = await api.call(me, 'GET', path + q);
    out.push(...(r[member] || []));
    if (!r.next) break;
    after = r.next;
  }
  return out;
}

function statusBadge(status) {
  return el('span', { class: `badge ${status}`, text: status });
}

// What has the focus inside @table: its row's data-keyid and the button's
// data-testid (or its text); null if the focus is elsewhere.
function focusIn(table) {
  const a = document.activeElement;
  if (!a || a === table || !table.contains(a)) return null;
  const tr = a.closest('tr[data-keyid]');
  return { keyid: tr ? tr.dataset.keyid : null, testid: a.dataset.testid || null, text: a.textContent };
}

// After a redraw: the same action's button of the same key, else that row's
// first action (first button), else the table itself.
function refocus(table, f) {
  if (!f) return;
  const tr = f.keyid ? [...table.querySelectorAll('tr[data-keyid]')].find((r) => r.dataset.keyid === f.keyid) : null;
  const buttons = tr ? [...tr.querySelectorAll('button')] : [];
  const target = buttons.find((b) => (f.testid ? b.dataset.testid === f.testid : !b.dataset.testid && b.textContent === f.text)) ||
    (tr && tr.querySelector('.row-actions button')) || buttons[0] || table;
  target.focus();
}

// Newest first (created_at is to the second, so ties go by keyid), each
// rotated key right below its successor: chains of rotations are ordered by
// their newest key and listed successor first.
function newestFirst(keys) {
  const byId = new Map(keys.map((k) => [k.keyid, k]));
  const cmp = (a, b) => (b.created_at || '').localeCompare(a.created_at || '') || a.keyid.localeCompare(b.keyid);
  const out = [];
  const seen = new Set();
  for (const head of keys.filter((k) => !(k.replaced_by && byId.has(k.replaced_by))).sort(cmp))
    for (let k = head; k && !seen.has(k.keyid); k = k.replaces ? byId.get(k.replaces) : null) {
      seen.add(k.keyid);
      out.push(k);
    }
  for (const k of keys.sort(cmp)) if (!seen.has(k.keyid)) out.push(k); // a cycle: never made by the service
  return out;
}

async function loadKeys() {
  const keys = newestFirst(await pages('/v1/keys', 'keys'));
  const table = $('keys-table');
  const tb = table.tBodies[0];
  const f = focusIn(table);
  tb.replaceChildren(...keys.map(keyRow));
  if (keys.length === 0)
    tb.append(el('tr', {}, el('td', { colspan: 9, class: 'muted', text: 'No keys yet.' })));
  refocus(table, f);
}

function keyRow(k) {
  const btn = (testid, text, fn, cls) =>
    el('button', {
      type: 'button', 'data-testid': testid, class: cls, 'aria-label': `${text} ${k.label || k.keyid}`,
      text, on: { click: () => action(fn) },
    });
  const acts = [];
  if (k.status === 'active' && !k.replaced_by) acts.push(btn('rotate', 'Rotate', () => rotate(k)));
  if (k.status === 'active') acts.push(btn('disable', 'Disable', () => keyAction(k, 'disable')));
  if (k.status === 'disabled') acts.push(btn('enable', 'Enable', () => keyAction(k, 'enable')));
  if (k.status !== 'revoked') acts.push(btn('revoke', 'Revoke', () => revoke(k), 'danger'));
  let expires = when(k.expires_at);
  if (k.replaced_by && k.expires_at && k.status === 'active') expires += ' (grace)';
  const you = me && k.keyid === me.keyid ? el('span', { class: 'you', text: 'this browser' }) : null;
  return el('tr', { 'data-testid': 'key-row', 'data-keyid': k.keyid, 'data-status': k.status },
    cell('Label', k.label || '—', you),
    cell('Key ID', el('code', { title: k.keyid, text: short(k.keyid) }), ' ',
      el('button', {
        type: 'button', class: 'link', 'aria-label': `Copy key ID ${k.keyid}`, text: 'Copy',
        on: { click: () => copy(k.keyid, 'Key ID') },
      })),
    cell('Scopes', (k.scopes || []).join(' ') || '—'),
    cell('Status', statusBadge(k.status),
      k.revoked_at ? el('span', { class: 'muted small', text: ` ${when(k.revoked_at)}` }) : null),
    el('td', { 'data-label': 'Created', class: 'nowrap' }, when(k.created_at)),
    el('td', { 'data-label': 'Expires', class: 'nowrap' }, expires),
    cell('Last used', k.last_used_at ? el('span', { class: 'nowrap', text: when(k.last_used_at) }) : 'never',
      k.last_used_at && k.last_used_by ? ` · ${k.last_used_by}` : null),
    cell('Replaced by', k.replaced_by ? idToggle(k.replaced_by, 'Replaced by') : '—'),
    cell('Actions', el('div', { class: 'row-actions' }, ...acts)));
}

async function createKey(ev) {
  ev.preventDefault();
  await action(async () => {
    const body = { scopes: scopesOf($('create-scopes').value) };
    const label = $('create-label').value.trim();
    if (label) body.label = label;
    if ($('create-expires').value) body.expires_at = `${$('create-expires').value}T00:00:00Z`;
    let name, text;
    if ($('create-server').checked) {
      const cred = await api.call(me, 'POST', '/v1/keys', body);
      name = `reqsign-${cred.keyid}.json`;
      text = JSON.stringify(cred, null, 2) + '\n';
    } else {
      const g = await generateKey();
      body.public_key = g.publicPem;
      const rec = await api.call(me, 'POST', '/v1/keys', body);
      if (rec.keyid !== g.keyid) throw new Error('The service registered another key than the one generated here.');
      name = `reqsign-${rec.keyid}.json`;
      text = await credentialText(g.pair, rec);
    }
    download(name, text);
    $('create-form').reset();
    notice(`Key created. Its credential was saved as ${name}: the only copy of its private key.`);
    await loadKeys();
  });
}

async function rotate(k) {
  const cred = await api.call(me, 'POST', `/v1/keys/${encodeURIComponent(k.keyid)}/rotate`, {});
  const name = `reqsign-${cred.keyid}.json`;
  download(name, JSON.stringify(cred, null, 2) + '\n');
  const old = await api.call(me, 'GET', `/v1/keys/${encodeURIComponent(k.keyid)}`);
  notice(`Key rotated. The successor's credential was saved as ${name}. The old key keeps working ` +
    `until ${when(old.expires_at)} (grace), then stops.`);
  await loadKeys();
}

async function keyAction(k, what) {
  await api.call(me, 'POST', `/v1/keys/${encodeURIComponent(k.keyid)}/${what}`, {});
  notice(`Key ${k.label || k.keyid} ${what}d.`);
  await loadKeys();
}

function confirmDialog(text, ok) {
  const d = $('confirm-dialog');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    const done = (v) => {
      $('confirm-ok').removeEventListener('click', yes);
      $('confirm-cancel').removeEventListener('click', no);
      d.removeEventListener('cancel', no);
      if (d.open) d.close();
      resolve(v);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('confirm-ok').addEventListener('click', yes);
    $('confirm-cancel').addEventListener('click', no);
    d.addEventListener('cancel', no);
    d.showModal();
    $('confirm-cancel').focus();
  });
}

async function revoke(k) {
  const self = k.keyid === me.keyid;
  const ok = await confirmDialog(
    `Revoke "${k.label || k.keyid}" (${k.keyid})? It stops working everywhere within seconds, for good.` +
    (self ? ' This is the key this browser signs with: you will be signed out.' : ''), 'Revoke');
  if (!ok) return;
  const r = await api.call(me, 'DELETE', `/v1/keys/${encodeURIComponent(k.keyid)}`);
  if (self) {
    await signOut();
    notice(`Key revoked on ${when(r.revoked_at)}. It was this browser's key: signed out.`);
    return;
  }
  notice(`Key ${k.label || k.keyid} revoked on ${when(r.revoked_at)}.`);
  await loadKeys();
}

async function loadAudit() {
  const events = await pages('/v1/audit', 'events');
  events.reverse();
  const tb = $('audit-table').tBodies[0];
  tb.replaceChildren(...events.map((e) =>
    el('tr', { 'data-testid': 'audit-row', 'data-action': e.action, 'data-outcome': e.outcome, 'data-target': e.target || '' },
      el('td', { 'data-label': 'Time', class: 'nowrap' }, when(e.time, true)),
      cell('Action', e.action),
      cell('Target', e.target ? idToggle(e.target, 'Target') : '—'),
      cell('Outcome', el('span', { class: `badge ${e.outcome === 'ok' ? 'active' : 'revoked'}`, text: e.outcome })),
      cell('Actor', e.actor ? idToggle(e.actor, 'Actor') : 'enrollment'),
      cell('Source', e.source || '—'))));
  if (events.length === 0)
    tb.append(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'No events yet.' })));
}

async function loadAccounts() {
  const accts = await pages('/v1/accounts', 'accounts');
  const tb = $('accounts-table').tBodies[0];
  tb.replaceChildren(...accts.map((a) => {
    const acts = [];
    const btn = (testid, text, what) => el('button', {
      type: 'button', 'data-testid': testid, 'aria-label': `${text} ${a.name}`, text,
      on: { click: () => action(async () => {
        await api.call(me, 'POST', `/v1/accounts/${encodeURIComponent(a.id)}/${what}`, {});
        notice(`Account ${a.name} ${what}d.`);
        await loadAccounts();
      }) },
    });
    if (a.id !== 'acct_operator') {
      if (a.status === 'active') acts.push(btn('disable', 'Disable', 'disable'));
      else acts.push(btn('enable', 'Enable', 'enable'));
      acts.push(el('button', {
        type: 'button', 'data-testid': 'account-enroll', 'aria-label': `New enrollment link for ${a.name}`,
        text: 'New link', on: { click: () => action(async () => {
          const t = await api.call(me, 'POST', `/v1/accounts/${encodeURIComponent(a.id)}/enrollments`, {});
          showLink(t.token, t.expires_at);
        }) },
      }));
    }
    return el('tr', { 'data-testid': 'account-row', 'data-account': a.id, 'data-status': a.status },
      cell('Name', a.name),
      cell('ID', el('code', { text: a.id })),
      cell('Allowed scopes', (a.allowed_scopes || []).join(' ') || '—'),
      cell('Status', statusBadge(a.status)),
      cell('Created', when(a.created_at)),
      cell('Actions', el('div', { class: 'row-actions' }, ...acts)));
  }));
}

function showLink(token, expires) {
  $('enrollment-link').value = `${location.origin}/console/#enroll=${token}`;
  $('enrollment-expires').textContent = when(expires);
  $('enrollment').hidden = false;
  $('enrollment-link').focus();
  $('enrollment-link').select();
}

async function createAccount(ev) {
  ev.preventDefault();
  await action(async () => {
    const r = await api.call(me, 'POST', '/v1/accounts', {
      name: $('account-name').value.trim(), allowed_scopes: scopesOf($('account-scopes').value),
    });
    $('account-form').reset();
    showLink(r.enrollment.token, r.enrollment.expires_at);
    notice(`Account ${r.account.name} created.`);
    await loadAccounts();
  });
}

// ---- enrollment (#enroll=TOKEN) ----

async function enroll() {
  await action(async () => {
    if (!enrollToken) throw new Error('This page was not opened from an enrollment link.');
    const g = await generateKey();
    const signer = { keyid: g.keyid, key: g.pair.privateKey };
    const body = { token: enrollToken, public_key: g.publicPem };
    const label = $('enroll-label').value.trim();
    if (label) body.label = label;
    let rec;
    try {
      rec = await api.call(signer, 'POST', '/v1/enroll', body);
    } catch (e) {
      // used, expired or unknown: pressing again cannot work, so the button
      // stops being the page's call to action
      if (e instanceof ApiError && e.code === 'enrollment_invalid') {
        enrollToken = null;
        $('enroll-generate').hidden = true;
      }
      throw e;
    }
    if (rec.keyid !== g.keyid) throw new Error('The service registered another key than the one generated here.');
    enrollToken = null;
    const name = `reqsign-${rec.keyid}.json`;
    download(name, await credentialText(g.pair, rec));
    const cred = { keyid: rec.keyid, key: await nonExtractable(g.pair), meta: { service: rec.service } };
    await signIn(cred, false);
    notice(`Your key is registered. Its credential was saved as ${name}: the only copy of your private key.`);
  });
}

// #enroll=TOKEN: the token stays in memory only, not in the address bar, the
// history or a bookmark. 1 if the page now shows the enrollment.
function takeEnrollToken() {
  const m = location.hash.match(/^#enroll=([A-Za-z0-9_-]{1,128})$/);
  if (!m) return 0;
  enrollToken = m[1];
  $('enroll-generate').hidden = false;
  history.replaceState(null, '', location.pathname);
  screen('enroll');
  return 1;
}

// ---- start ----

function wire() {
  $('signin-file').addEventListener('change', (e) => signInFile(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    signInFile(e.dataTransfer.files[0]);
  });
  $('signout').addEventListener('click', () => action(signOut));
  $('enroll-generate').addEventListener('click', enroll);
  $('create-form').addEventListener('submit', createKey);
  $('account-form').addEventListener('submit', createAccount);
  $('enrollment-copy').addEventListener('click', () => copy($('enrollment-link').value, 'Enrollment link'));
  for (const b of document.querySelectorAll('.tabs button'))
    b.addEventListener('click', () => action(() => show(b.dataset.view)));
}

async function start() {
  wire();
  if (!window.crypto || !crypto.subtle) {
    screen('signin');
    showError('This page needs a secure context (HTTPS) for WebCrypto: open it over https://.');
    return;
  }
  // a link pasted into a tab already on the console changes only the fragment
  window.addEventListener('hashchange', () => {
    if (takeEnrollToken()) showError(null);
  });
  if (takeEnrollToken()) return;
  let saved = null;
  try {
    saved = await recall();
  } catch {
    saved = null;
  }
  if (saved && saved.key) {
    await action(async () => {
      try {
        await signIn(saved, false);
      } catch (e) {
        screen('signin');
        if (e instanceof ApiError && e.status === 401) await forget(); // revoked, expired, unknown
        throw e;
      }
    });
    return;
  }
  screen('signin');
}

start();
