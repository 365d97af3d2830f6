#!/usr/bin/env python3
"""Regenerate the seed corpora in fuzz/corpus/ from the test vectors.

    python3 fuzz/make_seeds.py            # rewrites fuzz/corpus/*/ (run from anywhere)

Sources: spec/vectors/{positive,negative}.json (requests, field values, URLs),
tests/vectors/structured-field-tests/*.json (RFC 8941 fields by top-level
type), tests/vectors/keys and spec/vectors/keys (key files). Seed names are
the SHA-1 of the content, so reruns are stable. Inputs larger than 4 KiB are
skipped: the committed corpus stays well under 2 MB.
"""
import base64
import glob
import hashlib
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'fuzz', 'corpus')
MAX_SEED = 4096


def body_of(r):
    if 'body' in r:
        return r['body'].encode()
    if 'body_base64' in r:
        return base64.b64decode(r['body_base64'])
    if 'body_repeat' in r:  # large bodies: a short stand-in keeps the corpus small
        return r['body_repeat']['byte'].encode() * 64
    return b''


def main():
    seeds = {}

    def add(target, data):
        if isinstance(data, str):
            data = data.encode()
        if len(data) <= MAX_SEED:
            seeds.setdefault(target, set()).add(data)

    vec = []
    for f in ('positive.json', 'negative.json'):
        vec += json.load(open(os.path.join(ROOT, 'spec', 'vectors', f)))['vectors']
    for v in vec:
        r = v['received']
        head = '%s\n%s\n%s\n' % (r['method'], r['target'], r['authority'])
        head += ''.join('%s: %s\n' % (n, val) for n, val in r['headers'])
        add('verify', head.encode() + b'\n' + body_of(r))
        for n, val in r['headers']:
            ln = n.lower()
            if ln in ('signature-input', 'signature'):
                add('sf_dict', val)
            elif ln == 'content-digest':
                add('content_digest', val)
                add('sf_dict', val)
        add('url', r['target'])
        add('url', r['authority'])
        if 'sign' in v:
            add('url', v['sign']['url'])
    # one seed per request for the differential target: method, host, path, query, body bytes
    for i, v in enumerate(vec[:16]):
        add('differential', bytes([3, 1, 2, 3, 1, 7, 0, 1, 4, i, 2, 5, 1, 3, 7, i]) + body_of(v['received'])[:64])

    types = {'dictionary': 'sf_dict', 'list': 'sf_list', 'item': 'sf_item'}
    for f in glob.glob(os.path.join(ROOT, 'tests', 'vectors', 'structured-field-tests', '*.json')):
        for case in json.load(open(f)):
            t = types.get(case.get('header_type'))
            if t is None or 'raw' not in case:
                continue
            raw = ', '.join(case['raw'])
            if len(raw) <= 512:  # the generated tests hold many long near-duplicates
                add(t, raw)

    for d in ('tests/vectors/keys', 'spec/vectors/keys'):
        for f in sorted(glob.glob(os.path.join(ROOT, d, '*'))):
            if os.path.basename(f) != 'SOURCE':
                add('keys', open(f, 'rb').read())
    jwk = json.load(open(os.path.join(ROOT, 'spec', 'vectors', 'keys', 'test-key-ed25519.jwk')))
    pem = open(os.path.join(ROOT, 'spec', 'vectors', 'keys', 'test-key-ed25519.pem')).read()
    add('keys', json.dumps({'keyid': 'test-key-ed25519', 'alg': 'ed25519', 'private_key': pem,
                            'scopes': ['keys:read', 'orders:write'], 'label': 'ci',
                            'service': 'https://keys.example.com'}))
    add('keys', json.dumps({'keyid': 'poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U', 'alg': 'ed25519',
                            'private_key': pem}))
    add('keys', json.dumps(jwk))

    for t in ('sf_dict', 'sf_list', 'sf_item', 'verify', 'content_digest', 'keys', 'url',
              'differential'):
        d = os.path.join(OUT, t)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for data in sorted(seeds.get(t, ())):
            with open(os.path.join(d, hashlib.sha1(data).hexdigest()), 'wb') as fh:
                fh.write(data)
        print('%-15s %4d seeds' % (t, len(seeds.get(t, ()))))


if __name__ == '__main__':
    main()
