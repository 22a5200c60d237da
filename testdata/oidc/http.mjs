#!/usr/bin/env node
// A tiny HTTP(S) client for the Rust test handle (so the testkit needs no
// HTTP client crate). Prints one JSON line {"status": N, "headers": {...},
// "body": "..."} for any response; exits 1 with the reason on stderr when no
// response came.
//
//   node http.mjs [--method M] [--header "Name: value"]... [--basic ID:SECRET]
//                 [--form name=value]... [--json TEXT] [--ca FILE]
//                 [--timeout-ms N] URL
//
// --basic encodes ID and SECRET as RFC 6749 2.3.1 says (form-urlencoded,
// then base64). --form sends application/x-www-form-urlencoded, --json sends
// TEXT as application/json. --ca trusts FILE (PEM) for https.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

function fail(msg, code = 1) {
  process.stderr.write(`http.mjs: ${msg}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      method: { type: 'string' },
      header: { type: 'string', multiple: true },
      basic: { type: 'string' },
      form: { type: 'string', multiple: true },
      json: { type: 'string' },
      ca: { type: 'string' },
      'timeout-ms': { type: 'string', default: '10000' },
    },
  });
} catch (err) {
  fail(err.message, 2);
}
const { values, positionals } = parsed;
if (positionals.length !== 1) fail('one URL expected', 2);
const url = new URL(positionals[0]);

const headers = {};
for (const h of values.header ?? []) {
  const i = h.indexOf(':');
  if (i < 1) fail(`bad header ${h}`, 2);
  headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
}
if (values.basic !== undefined) {
  const i = values.basic.indexOf(':');
  if (i < 0) fail('--basic wants ID:SECRET', 2);
  const enc = (s) => new URLSearchParams({ s }).toString().slice(2);
  const pair = `${enc(values.basic.slice(0, i))}:${enc(values.basic.slice(i + 1))}`;
  headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
}
let body;
if (values.form) {
  const form = new URLSearchParams();
  for (const f of values.form) {
    const i = f.indexOf('=');
    if (i < 0) fail(`bad form field ${f}`, 2);
    form.append(f.slice(0, i), f.slice(i + 1));
  }
  body = form.toString();
  headers['content-type'] ??= 'application/x-www-form-urlencoded';
} else if (values.json !== undefined) {
  body = values.json;
  headers['content-type'] ??= 'application/json';
}
if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));

const lib = url.protocol === 'https:' ? https : http;
const req = lib.request(url, {
  method: values.method ?? (body === undefined ? 'GET' : 'POST'),
  headers,
  ca: values.ca ? readFileSync(values.ca) : undefined,
  timeout: Number(values['timeout-ms']),
}, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    process.stdout.write(`${JSON.stringify({
      status: res.statusCode,
      headers: res.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    })}\n`);
  });
});
req.on('timeout', () => req.destroy(new Error(`no response within ${values['timeout-ms']} ms`)));
req.on('error', (err) => fail(`${req.method} ${url.href}: ${err.message}`));
req.end(body);
