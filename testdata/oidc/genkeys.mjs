#!/usr/bin/env node
// Writes a private JWK Set ({"keys":[...]}) for provider.mjs --keys.
//
//   node genkeys.mjs --key RS256:kid-1 [--key ES256:kid-2 ...] [--public PUB.json] OUT.json
//   node genkeys.mjs --alg ES256 --kid k1 [--alg EdDSA --kid k2 ...] OUT.json
//
// Each key gets "kid", "alg" and "use":"sig". A key without a kid gets
// "<alg>-<8 random hex digits>". --public also writes the public JWK Set.
// Algorithms: RS256 RS384 RS512 PS256 PS384 PS512 (RSA 2048), ES256 (P-256),
// ES384 (P-384), ES512 (P-521), EdDSA (Ed25519).

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

function usage(msg) {
  process.stderr.write(`genkeys: ${msg}\nusage: node genkeys.mjs --key ALG[:KID] [--key ...] [--public PUB.json] [--out] OUT.json\n`);
  process.exit(2);
}

function pair(alg) {
  if (/^(RS|PS)(256|384|512)$/.test(alg)) {
    return generateKeyPairSync('rsa', { modulusLength: 2048 });
  }
  const curve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg];
  if (curve) {
    return generateKeyPairSync('ec', { namedCurve: curve });
  }
  if (alg === 'EdDSA') {
    return generateKeyPairSync('ed25519');
  }
  return usage(`unsupported algorithm ${alg}`);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      key: { type: 'string', multiple: true },
      alg: { type: 'string', multiple: true },
      kid: { type: 'string', multiple: true },
      out: { type: 'string' },
      public: { type: 'string' },
    },
  });
} catch (err) {
  usage(err.message);
}
const { values, positionals } = parsed;

const specs = (values.key ?? []).map((k) => {
  const i = k.indexOf(':');
  return i < 0 ? { alg: k } : { alg: k.slice(0, i), kid: k.slice(i + 1) };
});
(values.alg ?? []).forEach((alg, i) => specs.push({ alg, kid: values.kid?.[i] }));
if (!specs.length) usage('no key requested');

const out = values.out ?? positionals[0];
if (!out || positionals.length > (values.out ? 0 : 1)) usage('one output path expected');

const keys = specs.map(({ alg, kid }) => {
  const { privateKey } = pair(alg);
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: kid || `${alg}-${randomBytes(4).toString('hex')}`,
    alg,
    use: 'sig',
  };
});
const kids = new Set(keys.map((k) => k.kid));
if (kids.size !== keys.length) usage('duplicate kid');

writeFileSync(out, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
if (values.public) {
  const PRIVATE = ['d', 'p', 'q', 'dp', 'dq', 'qi'];
  const pub = keys.map((k) => Object.fromEntries(Object.entries(k).filter(([n]) => !PRIVATE.includes(n))));
  writeFileSync(values.public, `${JSON.stringify({ keys: pub }, null, 2)}\n`);
}
