#!/usr/bin/env node
// A real OpenID provider (panva's oidc-provider, unmodified) for jwtgate's
// tests: JWT access tokens by client_credentials with a resource indicator,
// discovery, JWKS, and OIDC Back-Channel Logout triggered over HTTP.
// See README.md for the flags. stdout carries exactly one line,
// "listening on <origin>"; everything else goes to stderr.

import { AsyncLocalStorage } from 'node:async_hooks';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { parseArgs } from 'node:util';

// oidc-provider prints its notices with console.info (stdout): keep stdout
// for the listening line alone. Set before oidc-provider is imported.
console.info = console.error; // eslint-disable-line no-console
console.log = console.error; // eslint-disable-line no-console

function fail(msg) {
  process.stderr.write(`provider.mjs: ${msg}\n`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      issuer: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      keys: { type: 'string' },
      'access-token-alg': { type: 'string', default: 'RS256' },
      'id-token-alg': { type: 'string', default: 'RS256' },
      'signing-kid': { type: 'string' },
      'client-id': { type: 'string', default: 'jwtgate-test' },
      'client-secret': { type: 'string', default: 'jwtgate-test-secret-0123456789abcdef' },
      'client-auth-method': { type: 'string', default: 'client_secret_basic' },
      resource: { type: 'string', default: 'https://api.example.test/orders' },
      audience: { type: 'string' },
      'backchannel-logout-uri': { type: 'string' },
      'backchannel-timeout-ms': { type: 'string', default: '5000' },
      'access-token-ttl': { type: 'string', default: '600' },
      sub: { type: 'string' },
      sid: { type: 'string' },
      roles: { type: 'string' },
      claims: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  }));
} catch (err) {
  fail(err.message);
}

const SIGNING_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
const intArg = (name, min) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}`);
  return n;
};
const port = intArg('port', 0);
if (port > 65535) fail('--port must be <= 65535');
const accessTokenTtl = intArg('access-token-ttl', 1);
const backchannelTimeoutMs = intArg('backchannel-timeout-ms', 1);
for (const name of ['access-token-alg', 'id-token-alg']) {
  if (!SIGNING_ALGS.includes(args[name])) fail(`--${name} must be one of ${SIGNING_ALGS.join(' ')}`);
}
if (!['client_secret_basic', 'client_secret_post'].includes(args['client-auth-method'])) {
  fail('--client-auth-method must be client_secret_basic or client_secret_post');
}
if (!!args['tls-cert'] !== !!args['tls-key']) fail('--tls-cert and --tls-key go together');
const tls = !!args['tls-cert'];

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (err) {
    return fail(`${what}: ${err.message}`);
  }
}
const splitRoles = (s) => s.split(',').map((r) => r.trim()).filter(Boolean);
const defaults = {
  sub: args.sub,
  sid: args.sid,
  roles: args.roles === undefined ? undefined : splitRoles(args.roles),
  claims: args.claims === undefined ? undefined : parseJson(args.claims, '--claims'),
};

function generatedKey(alg) {
  let pair;
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519');
  else pair = generateKeyPairSync('ec', { namedCurve: { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg] });
  return {
    ...pair.privateKey.export({ format: 'jwk' }), kid: `gen-${alg}-${randomBytes(4).toString('hex')}`, alg, use: 'sig',
  };
}

let jwks;
if (args.keys) {
  let text;
  try {
    text = readFileSync(args.keys, 'utf8');
  } catch (err) {
    fail(`--keys ${args.keys}: ${err.message}`);
  }
  jwks = parseJson(text, `--keys ${args.keys}`);
  if (!Array.isArray(jwks?.keys) || !jwks.keys.length) fail(`--keys ${args.keys}: expected {"keys":[...]} with at least one key`);
} else {
  const algs = [...new Set(['RS256', args['access-token-alg'], args['id-token-alg']])];
  jwks = { keys: algs.map(generatedKey) };
}

// Everything is set up before listening except the issuer, which may depend
// on the port the kernel picked: requests wait for the provider.
let handle;
const ready = new Promise((resolve) => { handle = resolve; });
const onRequest = (req, res) => {
  ready.then((h) => h(req, res)).catch((err) => {
    process.stderr.write(`request failed: ${err.stack}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
};
const server = tls
  ? https.createServer({ cert: readFileSync(args['tls-cert']), key: readFileSync(args['tls-key']) }, onRequest)
  : http.createServer(onRequest);
server.on('error', (err) => fail(`listen on 127.0.0.1:${port}: ${err.message}`));
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const boundPort = server.address().port;
const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${boundPort}`;

const issuer = (args.issuer ?? origin).replaceAll('{port}', String(boundPort)).replace(/\/+$/, '');
let issuerUrl;
try {
  issuerUrl = new URL(issuer);
} catch (err) {
  fail(`--issuer ${issuer}: ${err.message}`);
}
const mountPath = issuerUrl.pathname.replace(/\/+$/, '');

const { default: Provider, errors } = await import('oidc-provider');

const clientId = args['client-id'];
const resource = args.resource;
const audience = args.audience ?? resource;
const clientMetadata = {
  client_id: clientId,
  client_secret: args['client-secret'],
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: args['client-auth-method'],
  id_token_signed_response_alg: args['id-token-alg'],
  ...(args['backchannel-logout-uri'] ? {
    backchannel_logout_uri: args['backchannel-logout-uri'],
    backchannel_logout_session_required: true,
  } : {}),
};

// Per-request choices for the token endpoint (test_sub, test_sid,
// test_roles, test_claims form fields), falling back to the flags.
function tokenOptions(ctx) {
  const body = ctx?.oidc?.body ?? {};
  const pick = (name) => (typeof body[`test_${name}`] === 'string' ? body[`test_${name}`] : undefined);
  let claims = defaults.claims;
  if (pick('claims') !== undefined) {
    try {
      claims = JSON.parse(pick('claims'));
    } catch (err) {
      throw new errors.InvalidRequest(`test_claims: ${err.message}`);
    }
  }
  return {
    sub: pick('sub') ?? defaults.sub,
    sid: pick('sid') ?? defaults.sid,
    roles: pick('roles') === undefined ? defaults.roles : splitRoles(pick('roles')),
    claims,
  };
}

const provider = new Provider(issuer, {
  clients: [clientMetadata],
  jwks,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  enabledJWA: { idTokenSigningAlgValues: SIGNING_ALGS },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => resource,
      // Any absolute resource is accepted (a test may want a token for another
      // audience); the configured one gets --audience. Every requested scope
      // is granted.
      getResourceServerInfo: async (ctx, resourceIndicator) => ({
        scope: ctx?.oidc?.params?.scope ?? '',
        audience: resourceIndicator === resource ? audience : resourceIndicator,
        accessTokenTTL: accessTokenTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: args['access-token-alg'], ...(args['signing-kid'] ? { kid: args['signing-kid'] } : {}) } },
      }),
    },
  },
  ttl: { ClientCredentials: accessTokenTtl },
  async extraTokenClaims(ctx) {
    const { roles, sid } = tokenOptions(ctx);
    return {
      ...(roles ? { realm_access: { roles } } : {}),
      ...(sid ? { sid } : {}),
    };
  },
  formats: {
    customizers: {
      // oidc-provider sets sub to the client id for client_credentials tokens.
      async jwt(ctx, token, jwt) {
        const { sub, claims } = tokenOptions(ctx);
        if (sub !== undefined) jwt.payload.sub = sub;
        if (claims) {
          for (const [k, v] of Object.entries(claims)) {
            if (v === null) delete jwt.payload[k];
            else jwt.payload[k] = v;
          }
        }
      },
    },
  },
  httpOptions: () => ({ signal: AbortSignal.timeout(backchannelTimeoutMs) }),
});

for (const event of ['server_error', 'grant.error', 'backchannel.error']) {
  provider.on(event, (ctx, err) => process.stderr.write(`${event}: ${err?.stack ?? err}\n`));
}

// Remember the logout token that oidc-provider itself signs during
// client.backchannelLogout(), so the trigger can hand it back.
const logoutCapture = new AsyncLocalStorage();
const issueIdToken = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function issue(opts, ...rest) {
  const token = await issueIdToken.call(this, opts, ...rest);
  const store = logoutCapture.getStore();
  if (opts?.use === 'logout' && store) store.logoutToken = token;
  return token;
};

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// POST /test/backchannel-logout {"sub": "...", "sid": "...",
//   "client_id": "...", "backchannel_logout_uri": "..."} (sid, client_id and
// backchannel_logout_uri optional): oidc-provider's Client#backchannelLogout
// builds, signs and POSTs the logout token.
async function backchannelLogout(req, res) {
  if (req.method !== 'POST') {
    sendJson(res, 405, { ok: false, error: 'POST only' });
    return;
  }
  let input;
  try {
    input = JSON.parse(await readBody(req));
  } catch (err) {
    sendJson(res, 400, { ok: false, error: `bad JSON body: ${err.message}` });
    return;
  }
  const { sub, sid } = input ?? {};
  if (typeof sub !== 'string' || !sub || (sid !== undefined && sid !== null && typeof sid !== 'string')) {
    sendJson(res, 400, { ok: false, error: 'expected {"sub": string, "sid"?: string}' });
    return;
  }
  let client;
  try {
    if (input.client_id !== undefined || input.backchannel_logout_uri !== undefined) {
      client = new provider.Client({
        ...clientMetadata,
        client_id: input.client_id ?? clientId,
        backchannel_logout_uri: input.backchannel_logout_uri ?? clientMetadata.backchannel_logout_uri,
        backchannel_logout_session_required: true,
      });
    } else {
      client = await provider.Client.find(clientId);
    }
  } catch (err) {
    sendJson(res, 400, { ok: false, error: `client: ${err.message}` });
    return;
  }
  if (!client.backchannelLogoutUri) {
    sendJson(res, 400, { ok: false, error: 'the client has no backchannel_logout_uri (--backchannel-logout-uri)' });
    return;
  }
  const store = {};
  try {
    await logoutCapture.run(store, () => client.backchannelLogout(sub, sid ?? undefined));
    sendJson(res, 200, { ok: true, logout_token: store.logoutToken });
  } catch (err) {
    const response = err.response;
    process.stderr.write(`backchannel logout to ${client.backchannelLogoutUri} failed: ${err.message}\n`);
    sendJson(res, 502, {
      ok: false,
      error: err.message,
      status: response?.statusCode,
      body: typeof response?.body === 'string' ? response.body : undefined,
      logout_token: store.logoutToken,
    });
  }
}

const callback = provider.callback();
handle(async (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/test/backchannel-logout' || path === `${mountPath}/test/backchannel-logout`) {
    await backchannelLogout(req, res);
    return;
  }
  if (mountPath) {
    if (path !== mountPath && !path.startsWith(`${mountPath}/`)) {
      sendJson(res, 404, { error: 'not_found', error_description: `outside the issuer path ${mountPath}` });
      return;
    }
    req.originalUrl = req.url;
    req.url = req.url.slice(mountPath.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
  }
  callback(req, res);
});

if (args['exit-with-stdin']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

process.stderr.write(`oidc-provider issuer ${issuer} client ${clientId} resource ${resource} keys ${jwks.keys.map((k) => k.kid ?? '?').join(',')}\n`);
process.stdout.write(`listening on ${origin}\n`);
