// The console's end-to-end scenario (SPEC §7, issue 19), run by
// crates/jwtgate/tests/console.rs against a real gateway: Debian's Chromium
// driven by playwright-core, which never downloads a browser.
//
//   node scenario.mjs --admin http://127.0.0.1:PORT --data http://127.0.0.1:PORT \
//     --key ADMIN_KEY --secret ALICE_SECRET --out DIR [--chromium /usr/bin/chromium]
//
// The gateway must run the config of console.rs (routes `api` in
// RequiredPath mode and `guarded` immutable, consumer alice with key
// alice-key). Each check prints `ok - ...`; the first failure prints
// `not ok - ...` and exits 1. Screenshots go to DIR. Node.js 18 or later.

import { createHmac, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    admin: { type: 'string' },
    data: { type: 'string' },
    key: { type: 'string' },
    secret: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
for (const name of ['admin', 'data', 'key', 'secret', 'out']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}
const CONSOLE = `${args.admin}/console/`;
mkdirSync(args.out, { recursive: true });

let checks = 0;
let step = 'start';
function ok(what) {
  checks += 1;
  console.log(`ok ${checks} - ${what}`);
}
function check(cond, what, detail = '') {
  if (!cond) throw new Error(`${what}${detail ? `: ${detail}` : ''}`);
  ok(what);
}

// --- Tokens (HS256, the consumer's secret), signed here. ---------------------
const b64url = (b) => Buffer.from(b).toString('base64url');
function sign(claims) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', args.secret).update(input).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const aliceToken = () => sign({ key: 'alice-key', iat: now(), exp: now() + 3600, jti: randomUUID() });

// --- The admin API and the data plane, from outside the browser. ------------
async function adminGet(path) {
  const r = await fetch(`${args.admin}${path}`, { headers: { 'X-API-KEY': args.key } });
  if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
  return r.json();
}
/** A policy change another admin makes meanwhile (merge patch). */
function adminPatch(path, body) {
  return fetch(`${args.admin}${path}`, {
    method: 'PATCH',
    headers: { 'X-API-KEY': args.key, 'Content-Type': 'application/merge-patch+json' },
    body: JSON.stringify(body),
  });
}
async function dataPlane(method, path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const r = await fetch(`${args.data}${path}`, { method, headers });
  const text = await r.text();
  let message = null;
  try {
    message = JSON.parse(text).message ?? null;
  } catch (e) { /* the echo upstream answers JSON without message */ }
  return { status: r.status, message };
}

// --- The browser. ------------------------------------------------------------
// Flags for a machine with no network beyond loopback; playwright starts
// Chromium headless with a fresh, temporary profile (--user-data-dir).
const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // A name other than loopback's for the admin listener (the node lists
    // it in admin.allowed_hosts): a page the browser does not count as a
    // secure context, as one from another machine over plain HTTP.
    '--host-resolver-rules=MAP console.test 127.0.0.1'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
// Waits for what the page does; a loaded machine's first navigation (a cold
// browser) gets longer.
context.setDefaultTimeout(15_000);
context.setDefaultNavigationTimeout(60_000);
const page = await context.newPage();

const problems = [];
// Set while the scenario itself cuts the API off (the browser then logs
// the failed load).
let cutOff = false;
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (cutOff && /Failed to load resource: net::ERR_(FAILED|CONNECTION_REFUSED)/.test(m.text())) return;
  if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (400|401|404|409|412)/.test(m.text())) {
    problems.push(`console error: ${m.text()}`);
  }
});
await context.addInitScript(() => {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
  });
});
// Every request the page makes: where the key goes.
const requests = [];
page.on('request', (r) => requests.push({ url: r.url(), method: r.method(), headers: r.headers(), body: r.postData() }));

// Every visible form field has a label (SPEC §7), checked on each page
// that is photographed.
let labelledPages = 0;
async function assertLabelled(name) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && e.getClientRects().length > 0)
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
    .map((e) => e.outerHTML.slice(0, 80)));
  if (unlabelled.length) throw new Error(`${name}: fields without a label: ${unlabelled.join(' | ')}`);
  labelledPages += 1;
}

let shot = 0;
async function screenshot(name, opts = {}) {
  await assertLabelled(name);
  // A long name (the routes hold one of 200 characters without a space)
  // wraps: the page never grows wider than the window.
  const wider = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(wider <= 0, `${name}: nothing is wider than the window`, `${wider}px wider`);
  shot += 1;
  const file = join(args.out, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, ...opts });
  console.log(`# screenshot ${file}`);
}
const text = (sel) => page.locator(sel).first().innerText();
// Moves to a page and waits until it is shown: the body rendered for this
// hash, not the page before it, which may hold the same elements (two route
// policies are both a form.policy).
// `leave`: the page holds unsaved edits, and the console asks before it
// drops them; the answer is to leave.
async function go(hash, ready, { leave = false } = {}) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  if (leave) {
    const ask = page.locator('dialog.confirm', { hasText: 'Leave without saving?' });
    await ask.waitFor();
    await ask.locator('button[data-choice="confirm"]').click();
  }
  await page.locator(`#page > .page-body[data-hash=${JSON.stringify(hash)}]`).waitFor();
  await page.locator(ready).first().waitFor();
}

async function scenario() {
  // --- The page and its headers. -------------------------------------------
  step = 'load';
  const resp = await page.goto(CONSOLE);
  const h = resp.headers();
  check(resp.status() === 200, 'GET /console/ answers 200', String(resp.status()));
  const csp = h['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'") && !csp.includes('unsafe'),
    'Content-Security-Policy without unsafe-inline', csp);
  check(h['x-frame-options'] === 'DENY', 'X-Frame-Options: DENY', h['x-frame-options']);
  check(h['x-content-type-options'] === 'nosniff', 'X-Content-Type-Options: nosniff');
  await page.locator('#key').waitFor();
  check(await page.locator('#insecure').isHidden(), 'no plain-HTTP warning on loopback');
  // The same page by a name that is not loopback's, over plain HTTP: the
  // key would cross the network in clear, and the sign-in says so.
  const remote = await context.newPage();
  await remote.goto(CONSOLE.replace(/\/\/[^/:]+/, '//console.test'));
  await remote.locator('#insecure').waitFor();
  const insecureSaid = await remote.locator('#insecure').innerText();
  check(/crosses the network in clear/.test(insecureSaid) && /admin\.tls/.test(insecureSaid),
    'a console served over plain HTTP off loopback warns before the key is typed', insecureSaid);
  await remote.close();

  // --- Sign in, keyboard only. ---------------------------------------------
  step = 'sign in';
  await page.locator('#key').waitFor();
  check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'key',
    'the key field has the focus on arrival');
  // The focus ring stands out from the white panel: 3:1 at least (WCAG
  // 1.4.11; an outside audit measured the amber one at 1.9:1).
  const [ring, ringStyle, ringWidth] = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return [s.outlineColor, s.outlineStyle, parseFloat(s.outlineWidth)];
  });
  check(ringStyle !== 'none' && ringWidth >= 2, 'the focused field draws a focus ring', `${ringStyle} ${ringWidth}px`);
  const [r, g, b] = ring.match(/\d+/g).map(Number).map((c) => c / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const ringContrast = 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05);
  check(ringContrast >= 3, 'the focus ring has at least 3:1 contrast against white', `${ring}: ${ringContrast.toFixed(2)}:1`);
  await page.keyboard.type('not-the-admin-key');
  await page.keyboard.press('Enter');
  await page.locator('#key-error').waitFor();
  const refused = await text('#key-error');
  check(/wrong admin key/i.test(refused), 'a wrong key is refused and said so', refused);
  check(await page.evaluate(() => sessionStorage.length === 0), 'a refused key is not kept');
  await screenshot('sign-in-wrong-key');
  // Select the field's text, type the right key, Tab to the button, Enter.
  await page.keyboard.press('Control+A');
  await page.keyboard.type(args.key);
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.id) === 'sign-in-button', 'Tab reaches the sign-in button');
  await page.keyboard.press('Enter');
  await page.locator('.cards [data-route="api"]').waitFor();
  ok('signed in with the keyboard alone: the routes page shows');
  const shown = await page.evaluate(() => document.body.innerText + [...document.querySelectorAll('input,textarea')].map((e) => e.value).join(' '));
  check(!shown.includes(args.key), 'the key is not displayed after sign-in');
  check(!page.url().includes(args.key), 'the key is not in the URL');
  check(await page.evaluate(() => Object.values(sessionStorage).length === 1), 'the key is kept in sessionStorage');
  await screenshot('routes');

  // --- A route that passes WebSockets says so. ------------------------------
  step = 'websocket route';
  await go('#/routes/chat', 'p.lede');
  check(/WebSockets passed \(closed when their token is revoked or its subject cut off, or when it expires\)/.test(await text('p.lede')),
    'a route that passes WebSockets says so, and that they close when their token is revoked or expires');
  await go('#/routes/api', 'p.lede');
  check(!/WebSocket/.test(await text('p.lede')), 'a route that does not pass them says nothing of WebSockets');
  await go('#/routes', '.cards [data-route="api"]');

  // --- A route with an anonymous consumer says who a request with no token
  // runs as (an outside audit: "every request needs a valid token" was
  // shown while such requests passed as the anonymous consumer).
  step = 'anonymous consumer';
  const adminWrite = (method, path, body) => fetch(`${args.admin}${path}`, {
    method,
    headers: { 'X-API-KEY': args.key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check((await adminWrite('PUT', '/admin/v1/consumers/guest', {})).ok, 'a consumer guest is made');
  check((await adminWrite('PUT', '/admin/v1/routes/anyone',
    { paths: ['/anyone/*'], upstream: { echo: true }, jwt: { anonymous_consumer: 'guest' } })).ok, 'a route anyone with anonymous_consumer guest is made');
  const anon = await dataPlane('GET', '/anyone/x');
  check(anon.status === 200, 'a request with no token passes there', String(anon.status));
  await go('#/routes/anyone', 'form.policy');
  check(/runs as the anonymous consumer \u201cguest\u201d; a bad or expired token is still refused/.test(await text('.mode-now')),
    'the policy page says a request with no token runs as the anonymous consumer', await text('.mode-now'));
  await go('#/routes', '.cards [data-route="anyone"]');
  const anonCard = await page.locator('.cards [data-route="anyone"]').innerText();
  check(/with no token, runs as \u201cguest\u201d/.test(anonCard), 'and so does its card', anonCard);
  const apiCard = await page.locator('.cards [data-route="api"]').innerText();
  check(!/runs as/.test(apiCard), 'a route without one says nothing of it', apiCard);
  check((await adminWrite('DELETE', '/admin/v1/routes/anyone')).ok && (await adminWrite('DELETE', '/admin/v1/consumers/guest')).ok,
    'both are removed again');
  await go('#/routes/api', 'form.policy');
  await go('#/routes', '.cards [data-route="api"]');

  // --- RequiredPath -> NotRequiredPath. ------------------------------------
  step = 'switch mode';
  check((await dataPlane('GET', '/api/private/x')).status === 401, 'before: GET /api/private/x needs a token (401)');
  check((await dataPlane('GET', '/api/public')).status === 200, 'before: GET /api/public passes without a token');
  await page.click('a[href="#/routes/api"]');
  await page.locator('form.policy').waitFor();
  check(/RequiredPath/.test(await text('.mode-now')) && (await page.locator('.mode-now').getAttribute('data-mode')) === 'required',
    'the policy page says the mode in words: RequiredPath');
  const required = page.locator('[data-lines="required_paths"] textarea');
  check((await required.inputValue()) === 'GET_/api/private*\nPOST_/api/orders', 'the RequiredPath list is shown as lines');
  await screenshot('policy-required-path');

  // Decline first: the confirmation has the focus on "Keep", Enter declines.
  await page.click('input[type=radio][value=not_required]');
  const dialog = page.locator('dialog.confirm');
  await dialog.waitFor();
  const asked = await dialog.innerText();
  check(/resets the\s+RequiredPath list/.test(asked), 'the confirmation names the list it resets', asked);
  await screenshot('confirm-switch');
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'detached' });
  check(await page.locator('input[type=radio][value=required]').isChecked(), 'declined: RequiredPath stays selected');
  check((await required.inputValue()) === 'GET_/api/private*\nPOST_/api/orders', 'declined: the RequiredPath list is intact');
  let policy = await adminGet('/admin/v1/routes/api/jwt');
  check(JSON.stringify(policy.required_paths) === '["GET_/api/private*","POST_/api/orders"]' && !policy.not_required_paths,
    'declined: nothing changed on the gateway', JSON.stringify(policy));

  // Accept, fill the NotRequiredPath list, save.
  await page.click('input[type=radio][value=not_required]');
  await dialog.waitFor();
  await page.click('dialog.confirm button[data-choice="confirm"]');
  await dialog.waitFor({ state: 'detached' });
  const notRequired = page.locator('[data-lines="not_required_paths"] textarea');
  check(await notRequired.isVisible() && !(await required.isVisible()), 'accepted: the NotRequiredPath list replaces the RequiredPath one');
  check((await required.inputValue()) === '', 'accepted: the RequiredPath list is reset');
  await notRequired.fill('GET_/api/private*');
  // Saved from the keyboard: the focus stays on the button (an outside
  // audit: disabled while the request ran, it fell to the page).
  await page.locator('form.policy button[type=submit]').focus();
  await page.keyboard.press('Enter');
  await page.locator('form.policy .status.ok').waitFor();
  check(/NotRequiredPath/.test(await text('.mode-now')), 'saved: the page now says NotRequiredPath');
  check(await page.evaluate(() => document.activeElement && document.activeElement.matches('form.policy button[type=submit]')),
    'saved from the keyboard, the focus is still on the Save button',
    await page.evaluate(() => document.activeElement && document.activeElement.outerHTML.slice(0, 80)));
  // A long list: the gutter follows the lines, and a keystroke adds or
  // drops rows rather than building them all again (an outside audit:
  // 275 ms a keystroke at 2 000 entries).
  const gutterRows = () => page.locator('[data-lines="not_required_paths"] .lines-gutter > div').count();
  const long = Array.from({ length: 2000 }, (_, i) => `GET_/api/long/${i}`);
  // Pasted (playwright's fill inserts text slower than a paste lands).
  await page.evaluate((text) => {
    const t = document.querySelector('[data-lines="not_required_paths"] textarea');
    t.value = text;
    t.dispatchEvent(new Event('input', { bubbles: true }));
  }, long.join('\n'));
  check(await gutterRows() === 2000, 'a 2 000-line list has 2 000 gutter rows', String(await gutterRows()));
  await page.evaluate(() => { window.firstRow = document.querySelector('[data-lines="not_required_paths"] .lines-gutter > div'); });
  await notRequired.press('End');
  await page.keyboard.press('Control+End');
  await page.keyboard.type('x');
  await page.keyboard.press('Enter');
  check(await gutterRows() === 2001, 'a new line adds its row', String(await gutterRows()));
  check(await page.evaluate(() => document.querySelector('[data-lines="not_required_paths"] .lines-gutter > div') === window.firstRow),
    'typing keeps the rows already there');
  await page.keyboard.press('Backspace');
  check(await gutterRows() === 2000, 'a line removed drops its row', String(await gutterRows()));
  await notRequired.fill('GET_/api/private*');
  check(await gutterRows() === 4, 'back to one line: the textarea\'s four rows', String(await gutterRows()));
  policy = await adminGet('/admin/v1/routes/api/jwt');
  check(JSON.stringify(policy.not_required_paths) === '["GET_/api/private*"]' && policy.required_paths === undefined,
    'saved: the gateway holds NotRequiredPath and no RequiredPath list', JSON.stringify(policy));
  check((await dataPlane('GET', '/api/private/x')).status === 200, 'live: GET /api/private/x, which needed a token, now passes without one');
  check((await dataPlane('GET', '/api/public')).status === 401, 'live: GET /api/public now needs a token');
  await screenshot('policy-not-required-path');

  // --- A save the gateway takes but warns about. ----------------------------
  step = 'warnings';
  const revoking = page.getByLabel(/Revoke the token on logout/);
  await revoking.uncheck();
  await page.click('form.policy button[type=submit]');
  const warned = page.locator('#warnings');
  await warned.waitFor();
  const warning = await warned.innerText();
  check(/Saved, but/.test(warning) && warning.includes('routes/api/jwt.logout_path: does nothing while use_jwt_blacklist_revoking is not true'),
    'a save that leaves the logout path doing nothing is made, with the gateway\'s warning above the page', warning);
  check((await adminGet('/admin/v1/routes/api/jwt')).use_jwt_blacklist_revoking === false, 'the warned-about change was saved');
  await screenshot('policy-saved-with-warning');
  await revoking.check();
  await page.click('form.policy button[type=submit]');
  await warned.waitFor({ state: 'hidden' });
  check((await adminGet('/admin/v1/routes/api/jwt')).use_jwt_blacklist_revoking === true, 'revoking on again: saved, and no warning left');

  // --- A bad entry, located next to its line. -------------------------------
  step = 'located error';
  await notRequired.fill('GET_/api/private*\nFETCH_/api/x\nGET_/api/health');
  await page.click('form.policy button[type=submit]');
  const lineError = page.locator('[data-lines="not_required_paths"] .line-errors li[data-line="2"]');
  await lineError.waitFor();
  const said = await lineError.innerText();
  check(/Line 2/.test(said) && said.includes('FETCH_/api/x') && /unknown method/.test(said), 'the API\'s error for not_required_paths[1] is shown for line 2', said);
  check(await page.locator('[data-lines="not_required_paths"] .lines-gutter div.bad').count() === 1
    && /2/.test(await text('[data-lines="not_required_paths"] .lines-gutter div.bad')), 'the gutter marks line 2 and only it');
  check(/unknown method/.test(await text('[data-lines="not_required_paths"] .lines-notes div[data-line="2"]')), 'the message sits beside line 2');
  check(await notRequired.getAttribute('aria-invalid') === 'true', 'the list is marked invalid for assistive technology');
  policy = await adminGet('/admin/v1/routes/api/jwt');
  check(JSON.stringify(policy.not_required_paths) === '["GET_/api/private*"]', 'the invalid list was not applied');
  await screenshot('policy-located-error');
  // The logout path's own error, next to it (an outside audit found the
  // message placed nowhere: the field was registered before its form).
  await notRequired.fill('GET_/api/private*');
  const logoutPath = page.getByLabel('Logout path (METHOD_PATH)');
  const logoutWas = await logoutPath.inputValue();
  await logoutPath.fill('BAD');
  await page.click('form.policy button[type=submit]');
  const logoutError = page.locator('form.policy .field-error:not([hidden])', { hasText: 'logout_path' });
  await logoutError.waitFor();
  const logoutSaid = await logoutError.innerText();
  check(/logout_path/.test(logoutSaid) && /METHOD_PATH|"_"/.test(logoutSaid), 'the API\'s error for logout_path is shown next to the field', logoutSaid);
  check((await logoutPath.getAttribute('aria-describedby')).split(' ').includes(await logoutError.getAttribute('id')),
    'the logout path field is described by its error');
  await logoutPath.fill(logoutWas);
  await page.click('text=Discard changes');

  // --- An immutable policy: the 409, explained; then lifted. ---------------
  step = 'immutable';
  await go('#/routes/guarded', 'form.policy');
  check(await page.locator('input[data-flag=immutable]').isChecked(), 'guarded: "values cannot be changed" is ticked');
  check(await page.locator('.notice').isVisible(), 'guarded: the page says the policy is immutable');
  await page.click('input[type=radio][value=required]');
  await page.locator('[data-lines="required_paths"] textarea').fill('GET_/guarded/private*');
  await page.click('form.policy button[type=submit]');
  await page.locator('.conflict').waitFor();
  const conflict = await text('.conflict');
  check(/409/.test(conflict) && /protection\.immutable/.test(conflict) && /Untick/.test(conflict), 'the 409 is explained, with how to lift the protection', conflict);
  policy = await adminGet('/admin/v1/routes/guarded/jwt');
  check(policy.required_paths === undefined, 'the immutable policy is unchanged');
  await screenshot('immutable-409');
  // From the keyboard: the box keeps the focus through the save.
  await page.locator('input[data-flag=immutable]').focus();
  await page.keyboard.press('Space');
  await page.locator('.protection .status.ok').waitFor();
  check(await page.evaluate(() => document.activeElement && document.activeElement.matches('input[data-flag=immutable]')),
    'a protection ticked off from the keyboard keeps the focus on its box');
  check(await page.locator('.conflict').count() === 0, 'the 409 shown for the protection just lifted goes with it');
  policy = await adminGet('/admin/v1/routes/guarded/jwt');
  check(policy.protection.immutable === false && policy.protection.undeletable === true && policy.required_paths === undefined,
    'unticking lifts protection.immutable alone, in a change of its own');
  await page.click('form.policy button[type=submit]');
  await page.locator('form.policy .status.ok').waitFor();
  check((await dataPlane('GET', '/guarded/open')).status === 200, 'after lifting: the change saves and is live');
  await page.click('button:has-text("Remove the JWT policy")');
  await dialog.waitFor();
  await page.click('dialog.confirm button[data-choice="confirm"]');
  const kept = page.locator('.conflict:has-text("protection.undeletable")');
  await kept.waitFor();
  check(/Cannot be deleted/.test(await kept.innerText()), 'deleting an undeletable policy: the 409 is explained too');
  check((await adminGet('/admin/v1/routes/guarded/jwt')).protection.undeletable === true, 'the undeletable policy is still there');

  // --- A page left open while someone else saves. ---------------------------
  // An outside audit found a stale page's save undoing another admin's
  // change (and a stale protection toggle lifting their immutable): the
  // console writes only the version it read (If-Match), so the save is
  // refused and says so, and the other change stays.
  step = 'stale page';
  await go('#/routes/api', 'form.policy');
  const seen = await adminGet('/admin/v1/routes/api/jwt');
  const theirs = [...seen.not_required_paths, 'GET_/api/health'];
  const meanwhile = await adminPatch('/admin/v1/routes/api/jwt', { not_required_paths: theirs });
  check(meanwhile.ok, 'another admin saves a change to the policy meanwhile', String(meanwhile.status));
  await notRequired.fill([...seen.not_required_paths, 'GET_/api/docs'].join('\n'));
  await page.click('form.policy button[type=submit]');
  const staleSaid = page.locator('form.policy .error-summary:not([hidden])');
  await staleSaid.waitFor();
  check(/Someone changed this since the page loaded it, and nothing was saved/.test(await staleSaid.innerText()),
    'the stale page\'s save is refused, and the page says why', await staleSaid.innerText());
  check(JSON.stringify((await adminGet('/admin/v1/routes/api/jwt')).not_required_paths) === JSON.stringify(theirs),
    'the other admin\'s change stays');
  await screenshot('stale-page-refused');
  // What was typed is not saved: leaving asks first (an outside audit lost
  // typed rules at a click on another section). Staying keeps them.
  const typed = await notRequired.inputValue();
  await page.click('#nav a[data-section="consumers"]');
  const leaveAsk = page.locator('dialog.confirm', { hasText: 'Leave without saving?' });
  await leaveAsk.waitFor();
  await screenshot('leave-unsaved');
  await page.keyboard.press('Escape');
  await leaveAsk.waitFor({ state: 'detached' });
  check(await page.evaluate(() => location.hash) === '#/routes/api' && (await notRequired.inputValue()) === typed,
    'declining to leave keeps the page and what was typed');
  // Read again (the page opened anew; a browser reload would also restart
  // the outcomes counted below).
  await go('#/routes', 'a[href="#/routes/api"]', { leave: true });
  await go('#/routes/api', 'form.policy');
  check((await notRequired.inputValue()) === theirs.join('\n'), 'read again: the page shows the other admin\'s change');
  await notRequired.fill(seen.not_required_paths.join('\n'));
  await page.click('form.policy button[type=submit]');
  await page.locator('form.policy .status.ok').waitFor();
  check(JSON.stringify((await adminGet('/admin/v1/routes/api/jwt')).not_required_paths) === JSON.stringify(seen.not_required_paths),
    'read again, the change saves');

  // --- Revoke a token. ------------------------------------------------------
  step = 'revoke';
  const token = aliceToken();
  check((await dataPlane('GET', '/api/orders', token)).status === 200, 'alice\'s token is accepted');
  await go('#/revocations', '#page form textarea');
  await page.getByLabel('Token (JWT)').fill(token);
  await page.click('button:has-text("Revoke token")');
  await page.locator('.status.ok:has-text("revoked until")').waitFor();
  ok('the console says the token is revoked');
  await page.getByLabel('Token (JWT)').fill(sign({ key: 'alice-key', exp: now() - 3600 }));
  await page.click('button:has-text("Revoke token")');
  await page.locator('.status.ok:has-text("The token has expired: every route refuses it")').waitFor();
  ok('the console says an expired token needed no entry, not that it was revoked');
  const after = await dataPlane('GET', '/api/orders', token);
  check(after.status === 401 && after.message === 'JWT token has been revoked', 'the revoked token is refused on the data plane', JSON.stringify(after));
  await page.getByLabel('Subject (sub claim)').fill('u-42');
  await page.click('button:has-text("Log out everywhere")');
  await page.locator('.status.ok:has-text("Cut off")').waitFor();
  await page.locator('.cutoff:has-text("u-42")').waitFor();
  ok('a subject cut-off is recorded and listed');
  await screenshot('revocations');

  // --- Explain a token that lacks the key claim. ----------------------------
  step = 'explain';
  await go('#/explain', '#page form textarea');
  await page.getByLabel('Token (JWT)').fill(sign({ sub: 'alice-key', iat: now(), exp: now() + 600 }));
  await page.getByLabel('Request line').fill('GET /api/orders');
  await page.click('button:has-text("Explain")');
  await page.locator('.report').waitFor();
  const report = await text('.report h2');
  check(/Refused: 401 missing user key in JWT token/.test(report), 'explain: refused, missing user key', report);
  const hint = await text('.report .hint');
  check(/key_claim_name: sub/.test(hint), 'explain: the hint says to set key_claim_name: sub', hint);
  await screenshot('explain-hint');

  // --- Consumers: the secret never shown, "***" round-trips. ----------------
  step = 'consumers';
  // A slow answer: the page being left is inert, and "Loading" says why
  // (an outside audit saw the old page stay live, unmarked, for 6 s).
  await page.route('**/admin/v1/consumers', async (r) => {
    await new Promise((done) => setTimeout(done, 1500));
    await r.continue();
  });
  await page.evaluate(() => { location.hash = '#/consumers'; });
  await page.locator('#loading').waitFor();
  check(await page.evaluate(() => document.getElementById('page').inert), 'while a page loads slowly, Loading shows and the page being left is inert');
  await page.locator('#page > .page-body[data-hash="#/consumers"] .cards [data-consumer="alice"]').waitFor();
  check(await page.locator('#loading').isHidden() && !(await page.evaluate(() => document.getElementById('page').inert)),
    'once the page is shown, it is live and Loading is gone');
  await page.unroute('**/admin/v1/consumers');
  await screenshot('consumers');
  await page.click('a[href="#/consumers/alice"]');
  const secret = page.getByLabel('New secret (leave empty to keep the stored one)');
  await secret.waitFor();
  check((await secret.inputValue()) === '', 'the secret field is empty: the secret is never shown');
  await screenshot('consumer-edit');
  check(!(await page.evaluate(() => document.body.innerText)).includes('***'), 'the mask is not shown either');
  await page.getByLabel('Custom ID (optional)').fill('crm-7');
  const putSeen = page.waitForRequest((r) => r.method() === 'PUT' && r.url().endsWith('/admin/v1/consumers/alice'));
  await page.click('button:has-text("Save consumer")');
  const put = await putSeen;
  check(JSON.parse(put.postData()).jwt.secret === '***', 'saving sends "***" back for the untouched secret');
  await page.locator('form .status.ok').waitFor();
  check((await dataPlane('GET', '/api/orders', aliceToken())).status === 200, 'the stored secret was kept: alice\'s new tokens pass');
  check((await adminGet('/admin/v1/consumers/alice')).custom_id === 'crm-7', 'the edit was applied');
  await go('#/consumers/+new', '#page form');
  await page.getByLabel('Username').fill('bob');
  await page.getByLabel('Key', { exact: true }).fill('bob-key');
  await page.getByLabel('Secret', { exact: true }).fill('short');
  await page.click('button:has-text("Create consumer")');
  const secretError = page.locator('.field:has(label:text-is("Secret")) .field-error');
  await secretError.waitFor();
  check(/at least 32/.test(await secretError.innerText()), 'a consumer\'s error is shown next to its field (jwt.secret)');
  await screenshot('consumer-located-error');
  // A consumer without a credential (an anonymous consumer, or one a
  // provider's consumer_claim names): the credential's fields go away.
  await go('#/consumers', '.cards [data-consumer="alice"]', { leave: true });
  await go('#/consumers/+new', '#page form');
  await page.getByLabel('Username').fill('guest');
  await page.getByLabel('Signs its own tokens (a JWT credential)').uncheck();
  check(!(await page.getByLabel('Key', { exact: true }).isVisible()), 'without a credential the key field is hidden');
  await page.click('button:has-text("Create consumer")');
  // Once created, the page moves to the consumer's own (its form replaced),
  // and the warning the create brought stays above it (it was cleared by
  // the move, found by an outside audit).
  await page.getByRole('heading', { name: 'Consumer guest' }).waitFor();
  check(/Consumer guest created/.test(await text('#page .page-body .status.ok')), 'the new consumer\'s page says it was created');
  const createdWarning = await page.locator('#warnings').innerText();
  check(await page.locator('#warnings').isVisible() && /consumers\/guest\/jwt: is absent/.test(createdWarning),
    'the warning a create brought is shown above the new consumer\'s page', createdWarning);
  const guest = await adminGet('/admin/v1/consumers/guest');
  check(guest.username === 'guest' && guest.jwt === undefined, 'a consumer is created without a credential', JSON.stringify(guest));
  await go('#/consumers', '.cards [data-consumer="guest"]');
  check(/none: signs no tokens/.test(await text('[data-consumer="guest"]')), 'the list says the consumer has no credential');
  // A value holding a direction override (the API refuses them in names,
  // not in a custom_id) is shown with the character made visible, never
  // read backwards (an outside audit).
  const bidi = await fetch(`${args.admin}/admin/v1/consumers/guest`, {
    method: 'PUT',
    headers: { 'X-API-KEY': args.key, 'Content-Type': 'application/json' },
    body: JSON.stringify({ custom_id: 'crm\u202e1-gnp' }),
  });
  check(bidi.ok, 'a custom_id with a right-to-left override is taken by the API', String(bidi.status));
  await go('#/consumers/guest', '#page form');
  await go('#/consumers', '.cards [data-consumer="guest"]');
  const shownBidi = await text('[data-consumer="guest"]');
  check(shownBidi.includes('crm\u27e8U+202E\u27e91-gnp') && !shownBidi.includes('\u202e'),
    'the list shows the override as \u27e8U+202E\u27e9, not applied', shownBidi);
  await page.click('a[href="#/consumers/guest"]');
  await page.getByLabel('Signs its own tokens (a JWT credential)').waitFor();
  // Its edit form holds the value as it is (an input cannot show the
  // character), and says so beneath it with the character made visible
  // (a second audit found the form reading `crm...` backwards, unmarked).
  const customId = page.getByLabel('Custom ID');
  check(await customId.inputValue() === 'crm\u202e1-gnp', 'the form keeps the custom_id as stored', await customId.inputValue());
  const note = page.locator('.field:has(label:has-text("Custom ID")) .unseen-note');
  check(await note.isVisible() && (await note.innerText()).includes('crm\u27e8U+202E\u27e91-gnp'),
    'beneath the field, a note shows the override made visible', await note.innerText());
  await customId.fill('crm-1');
  check(!(await note.isVisible()), 'the note goes once the value holds no such character');
  await customId.fill('crm\u202e1-gnp');
  check(await note.isVisible(), 'typing such a character brings the note back');
  check(!(await page.getByLabel('Signs its own tokens (a JWT credential)').isChecked()), 'its form shows it has no credential');

  // "New consumer" with a taken name: refused at the name, never a
  // replacement (an outside audit found alice's credential overwritten).
  const aliceBefore = await adminGet('/admin/v1/consumers/alice');
  await go('#/consumers/+new', '#page form');
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Key', { exact: true }).fill('someone-else');
  // A secret pasted with a zero-width space: the note under the field says
  // which character and where, never the secret (a review of the note
  // found it printing a password field's value in clear).
  await page.getByLabel('Secret', { exact: true }).fill('hid\u200bden-secret-0123456789abcdef');
  const secretNote = page.locator('.field:has(label:text-is("Secret")) .unseen-note');
  const secretNoteText = await secretNote.innerText();
  check(await secretNote.isVisible() && secretNoteText.includes('\u27e8U+200B\u27e9 at position 4')
    && !secretNoteText.includes('den-secret'), 'a secret\'s note names the character and its place, not the secret', secretNoteText);
  await page.getByLabel('Secret', { exact: true }).fill('another-secret-0123456789abcdef0123');
  await page.click('button:has-text("Create consumer")');
  const takenError = page.locator('.field:has(label:text-is("Username")) .field-error');
  await takenError.waitFor();
  check(/is taken/.test(await takenError.innerText()), 'creating a consumer under a taken name is refused next to the name', await takenError.innerText());
  const aliceAfter = await adminGet('/admin/v1/consumers/alice');
  check(JSON.stringify(aliceAfter) === JSON.stringify(aliceBefore), 'the existing consumer is unchanged', JSON.stringify(aliceAfter));

  // --- Providers. ----------------------------------------------------------
  step = 'providers';
  // The refused "alice" form holds what was typed: left, as asked.
  await go('#/routes', '.cards [data-route="api"]', { leave: true });
  // A gateway that does not answer is said so, plainly.
  cutOff = true;
  await page.route('**/admin/v1/providers', (r) => r.abort());
  await page.evaluate(() => { location.hash = '#/providers'; });
  const noAnswer = page.locator('#page > .page-body[data-hash="#/providers"] .status.bad');
  await noAnswer.waitFor();
  check(/^The gateway did not answer/.test(await noAnswer.innerText()), 'an API that does not answer is said so', await noAnswer.innerText());
  await page.unroute('**/admin/v1/providers');
  await go('#/routes', '.cards [data-route="api"]');
  cutOff = false;
  await go('#/providers', '.cards [data-provider="corp"]');
  check(/ok, 1 key/.test(await text('[data-provider="corp"]')), 'the provider is listed with its key state');
  await screenshot('providers');
  await page.click('a[href="#/providers/corp"]');
  await page.getByLabel('Issuer', { exact: true }).waitFor();
  check(await page.getByLabel('A JWK Set file on the gateway').isChecked(), 'the provider form shows where its keys come from');
  // Saved untouched, a provider is unchanged: an audience holding a space
  // or a comma stays one (an outside audit found it split, the provider
  // then accepting each word).
  const corpBefore = await adminGet('/admin/v1/providers/corp');
  await page.click('button:has-text("Save provider")');
  await page.locator('#page form .status.ok').waitFor();
  const corpUntouched = await adminGet('/admin/v1/providers/corp');
  check(JSON.stringify(corpUntouched) === JSON.stringify(corpBefore),
    'a provider saved untouched is unchanged', JSON.stringify(corpUntouched));
  await page.getByLabel('Audiences (one per line)').fill('orders-api\nbilling-api');
  await page.click('button:has-text("Save provider")');
  let corp = corpUntouched;
  for (let i = 0; i < 50 && JSON.stringify(corp) === JSON.stringify(corpUntouched); i++) {
    await page.waitForTimeout(100);
    corp = await adminGet('/admin/v1/providers/corp');
  }
  check(JSON.stringify(corp.audiences) === '["orders-api","billing-api"]' && corp.jwks_file && JSON.stringify(corp.algorithms) === '["ES256"]',
    'a provider edit keeps the fields it did not touch', JSON.stringify(corp));
  await page.locator('button:has-text("Save provider"):not([disabled])').waitFor();
  await screenshot('provider-edit');
  // A provider made in the console holds what was typed, and only that.
  await go('#/providers/+new', '#page form');
  await page.getByLabel('Name', { exact: true }).fill('made');
  await page.getByLabel('Issuer', { exact: true }).fill('https://made.example/realm');
  await page.getByLabel('A JWK Set file on the gateway').check();
  await page.getByLabel('JWK Set file', { exact: true }).fill(corp.jwks_file);
  await page.getByLabel('Algorithms (one per line)').fill('ES256');
  await page.getByLabel('Audiences (one per line)').fill('My API\nurn:a,b');
  await page.click('button:has-text("Create provider")');
  let made = null;
  for (let i = 0; i < 50 && !made; i++) {
    await page.waitForTimeout(100);
    made = await adminGet('/admin/v1/providers/made').catch(() => null);
  }
  await page.locator('#page > .page-body[data-hash="#/providers/made"]').waitFor();
  check(/Provider made created/.test(await text('#page .page-body .status.ok')), 'the new provider\'s page says it was created');
  check(made && made.issuer === 'https://made.example/realm' && made.jwks_file === corp.jwks_file
    && !made.discovery && !made.jwks_uri && JSON.stringify(made.algorithms) === '["ES256"]'
    && JSON.stringify(made.audiences) === '["My API","urn:a,b"]',
    'a provider created in the console holds what was typed', JSON.stringify(made));

  // A name in the URL that holds a direction-changing character is shown
  // with it visible in the title too (an outside audit).
  await page.evaluate(() => { location.hash = '#/providers/x%E2%80%AEy'; });
  await page.waitForFunction(() => document.title.includes('Providers: '));
  const title = await page.title();
  check(title.includes('x\u27e8U+202E\u27e9y') && !title.includes('\u202e'),
    'the title shows a direction-changing character of the URL', title);

  // --- Auth outcomes since the page opened. ---------------------------------
  step = 'outcomes';
  // A route whose name holds a NUL (the config may name it so): its
  // refusals are its own, not "ok" on a route "orders" (the chart's key
  // had been the two names joined by a NUL).
  for (let i = 0; i < 3; i++) {
    check((await dataPlane('GET', '/spoof/x', 'not-a-token')).status === 401, 'a malformed token is refused');
  }
  await go('#/outcomes', '.outcomes-panel');
  await page.waitForFunction(() => {
    const n = (route, outcome) => Number(document.querySelector(`.outcome-row[data-route="${route}"] [data-outcome="${outcome}"] strong`)?.textContent || 0);
    return n('api', 'revoked') >= 1 && n('api', 'not_required') >= 1 && n('api', 'ok') >= 2 && n('api', 'missing') >= 1;
  }, null, { timeout: 15_000 });
  check(await page.locator('.outcome-row[data-route="api"] svg.bar rect.o-revoked').count() === 1, 'the chart draws the revoked share of route api');
  await page.waitForFunction(() => [...document.querySelectorAll('.outcome-row')]
    .some((li) => li.dataset.route === 'orders\u0000ok' && li.querySelector('[data-outcome="malformed"] strong')?.textContent === '3'),
  null, { timeout: 15_000 });
  const spoofed = await page.evaluate(() => [...document.querySelectorAll('.outcome-row')].map((li) => li.dataset.route));
  check(!spoofed.includes('orders'), 'a NUL in a route name does not make another route\'s row', JSON.stringify(spoofed));
  await screenshot('outcomes');
  // A gateway that stops answering is said so as on the other pages, and
  // the figures as those of the last reading (an outside audit: the
  // browser's "Failed to fetch" beside an "Updated" time).
  cutOff = true;
  await page.route('**/metrics', (r) => r.abort('connectionrefused'));
  const down = page.locator('.outcomes-panel .status.bad');
  await down.waitFor({ timeout: 15_000 });
  check(/The gateway did not answer|the gateway did not answer \(is it running/.test(await down.innerText()),
    'metrics that do not answer: the gateway did not answer', await down.innerText());
  check(/Last read at .*: the figures are as of then/.test(await text('.outcomes-panel .meta')),
    'and the figures are said to be those of the last reading', await text('.outcomes-panel .meta'));
  await page.unroute('**/metrics');
  await down.waitFor({ state: 'detached', timeout: 15_000 });
  cutOff = false;

  // --- A phone's width. ----------------------------------------------------
  step = 'phone';
  await page.setViewportSize({ width: 390, height: 844 });
  await go('#/routes/api', 'form.policy');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 390, 'at 390 px nothing is wider than the screen', `${wide}px`);
  await screenshot('phone-policy');
  await go('#/outcomes', '.outcome-row');
  await screenshot('phone-outcomes');
  await page.setViewportSize({ width: 1280, height: 800 });

  // --- A key the gateway stops taking, mid-edit. ----------------------------
  step = 'key rotated';
  await go('#/consumers/alice', '#page form');
  // The gateway stops taking the key mid-edit (its admin.api_key was
  // rotated: a 401, played here): sign in again, and the page comes back
  // as it was, the edit kept (an outside audit lost a half-made consumer).
  await page.getByLabel('Custom ID (optional)').fill('crm-9');
  await page.route('**/admin/v1/consumers/alice', (r) => (r.request().method() === 'PUT'
    ? r.fulfill({ status: 401, contentType: 'application/json', body: '{"message":"Invalid API key"}' })
    : r.continue()));
  await page.click('button:has-text("Save consumer")');
  await page.locator('#sign-in-form').waitFor();
  check(/no longer accepts this key/.test(await text('#key-error')) && /kept/.test(await text('#key-error')),
    'a 401 mid-edit asks for the key again, and says the page is kept', await text('#key-error'));
  await page.unroute('**/admin/v1/consumers/alice');
  await page.locator('#key').fill('a-mistyped-key');
  await page.keyboard.press('Enter');
  await page.locator('#key-error', { hasText: 'Wrong admin key' }).waitFor();
  await page.locator('#key').fill(args.key);
  await page.keyboard.press('Enter');
  await page.locator('#app:not([hidden])').waitFor();
  check(await page.getByLabel('Custom ID (optional)').inputValue() === 'crm-9',
    'signed in again (after a mistyped key), the page is back with the edit kept');
  const before = requests.length;
  await page.click('button:has-text("Save consumer")');
  await page.locator('form .status.ok', { hasText: 'Saved' }).waitFor();
  check((await adminGet('/admin/v1/consumers/alice')).custom_id === 'crm-9', 'and it saves');
  const resumed = requests.slice(before).find((r) => r.method === 'PUT' && r.url.endsWith('/admin/v1/consumers/alice'));
  check(resumed && /^"[0-9a-f]{32}"$/.test(resumed.headers['if-match'] || ''),
    'the save after signing in again is asked only of the version the page read (If-Match)',
    JSON.stringify(resumed && resumed.headers));
  // Edits left on purpose stay left: a 401 while the next page loads
  // brings that page after the sign-in, not the one left (a review).
  await page.getByLabel('Custom ID (optional)').fill('crm-10');
  await page.route('**/admin/v1/routes', (r) => r.fulfill({ status: 401, contentType: 'application/json', body: '{"message":"Invalid API key"}' }));
  await page.click('#nav a[data-section="routes"]');
  const leaveIt = page.locator('dialog.confirm', { hasText: 'Leave without saving?' });
  await leaveIt.waitFor();
  await leaveIt.locator('button[data-choice="confirm"]').click();
  await page.locator('#sign-in-form').waitFor();
  check(!/kept/.test(await text('#key-error')), 'a page left on purpose is not kept through the sign-in', await text('#key-error'));
  await page.unroute('**/admin/v1/routes');
  await page.locator('#key').fill(args.key);
  await page.keyboard.press('Enter');
  await page.locator('#page > .page-body[data-hash="#/routes"] .cards [data-route="api"]').waitFor();
  check(!(await page.evaluate(() => document.getElementById('page').inert)) && await page.locator('#loading').isHidden()
    && /^Routes/.test(await page.title()), 'signed in again, the page chosen is shown, live', await page.title());
  check((await adminGet('/admin/v1/consumers/alice')).custom_id === 'crm-9', 'the edit left was not saved');
  // A policy page kept through a sign-in is still asked only of the
  // version it read: another admin's save meanwhile is not undone (an
  // outside audit: the sign-in's read of the route list dropped the
  // version, and the save went without If-Match).
  await go('#/routes/api', 'form.policy');
  const keptPolicy = await adminGet('/admin/v1/routes/api/jwt');
  await notRequired.fill([...keptPolicy.not_required_paths, 'GET_/api/kept'].join('\n'));
  await page.route('**/admin/v1/routes/api/jwt', (r) => (r.request().method() === 'PATCH'
    ? r.fulfill({ status: 401, contentType: 'application/json', body: '{"message":"Invalid API key"}' })
    : r.continue()));
  await page.click('form.policy button[type=submit]');
  await page.locator('#sign-in-form').waitFor();
  await page.unroute('**/admin/v1/routes/api/jwt');
  const others = [...keptPolicy.not_required_paths, 'GET_/api/theirs'];
  const theirSave = await adminPatch('/admin/v1/routes/api/jwt', { not_required_paths: others });
  check(theirSave.ok, 'another admin saves the policy while this page waits for the key', String(theirSave.status));
  await page.locator('#key').fill(args.key);
  await page.keyboard.press('Enter');
  await page.locator('#app:not([hidden])').waitFor();
  await page.click('form.policy button[type=submit]');
  const keptStale = page.locator('form.policy .error-summary:not([hidden])');
  await keptStale.waitFor();
  check(/Someone changed this since the page loaded it, and nothing was saved/.test(await keptStale.innerText()),
    'signed in again, the kept page\'s save is refused as stale', await keptStale.innerText());
  check(JSON.stringify((await adminGet('/admin/v1/routes/api/jwt')).not_required_paths) === JSON.stringify(others),
    'and the other admin\'s change stays');
  const restored = await adminPatch('/admin/v1/routes/api/jwt', { not_required_paths: keptPolicy.not_required_paths });
  check(restored.ok, 'the policy is put back', String(restored.status));
  await go('#/routes', 'a[href="#/routes/api"]', { leave: true });

  // --- Where the key went, and sign-out. ------------------------------------
  step = 'key hygiene';
  const keyed = requests.filter((r) => r.headers['x-api-key'] === args.key);
  check(keyed.length > 10 && keyed.every((r) => new URL(r.url).pathname.startsWith('/admin/')), 'the key is sent only as X-API-KEY, only to /admin/*');
  check(requests.every((r) => !r.url.includes(args.key) && !(r.body || '').includes(args.key)), 'the key is never in a URL or a body');
  check(requests.every((r) => r.url.startsWith(args.admin) || r.url.startsWith('data:')), 'nothing is loaded from outside the admin listener');
  await page.click('#sign-out');
  await page.locator('#sign-in-form').waitFor();
  check(await page.evaluate(() => sessionStorage.length === 0), 'sign-out forgets the key');
  const csp2 = await page.evaluate(() => window.__csp);
  check(csp2.length === 0, 'no Content-Security-Policy violation', csp2.join('; '));
  check(problems.length === 0, 'no script error', problems.join('; '));
  check(labelledPages >= 15, `every field has a label, on all ${labelledPages} pages photographed`);
}

try {
  await scenario();
  console.log(`# all ${checks} checks passed`);
  await browser.close();
} catch (e) {
  console.log(`not ok - [${step}] ${e.message.split('\n')[0]}`);
  console.error(e.stack);
  try {
    await page.screenshot({ path: join(args.out, `failure-${step.replace(/\W+/g, '-')}.png`), fullPage: true });
  } catch (e2) { /* the browser may be gone */ }
  if (problems.length) console.log(`# page problems: ${problems.join('; ')}`);
  await browser.close();
  process.exit(1);
}
