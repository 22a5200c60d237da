// Auth outcomes per route since the page opened: /metrics is read every few
// seconds and `jwtgate_jwt_auth_total{route,outcome}` is compared with the
// first reading. Drawn as one stacked bar per route (SVG built with DOM
// calls, no inline style) with the numbers beside it.

import { h, heading, plural, svg } from './dom.js';
import { parse } from './prometheus.js';

export const FAMILY = 'jwtgate_jwt_auth_total';
export const INTERVAL_MS = 3000;

// Outcome -> colour group (classes in style.css), in drawing order.
const GROUPS = [
  ['ok', ['ok']],
  ['pass', ['not_required', 'anonymous', 'preflight']],
  ['logout', ['logout', 'logout_everywhere', 'backchannel_logout']],
  ['missing', ['missing']],
  ['invalid', ['malformed', 'missing_key_claim', 'unknown_consumer', 'bad_claims']],
  ['verify', ['wrong_alg', 'bad_signature', 'expired', 'not_yet_valid', 'lifetime_too_long', 'wrong_issuer', 'wrong_audience', 'unknown_kid']],
  ['revoked', ['revoked', 'backchannel_refused']],
  ['forbidden', ['forbidden']],
  ['unavailable', ['store_unavailable', 'keys_unavailable']],
];
const GROUP_OF = new Map(GROUPS.flatMap(([g, outcomes]) => outcomes.map((o) => [o, g])));
const ORDER = GROUPS.flatMap(([, outcomes]) => outcomes);
const rank = (o) => (ORDER.indexOf(o) === -1 ? ORDER.length : ORDER.indexOf(o));

const state = {
  timer: null,
  baseline: null, // Map '["route","outcome"]' -> value at the first reading
  latest: null,
  openedAt: null,
  readAt: null,
  error: null,
  listeners: new Set(),
};

function readings(text) {
  const m = new Map();
  for (const s of parse(text)) {
    if (s.name !== FAMILY) continue;
    // JSON, not a separator: a route name may hold any character.
    const key = JSON.stringify([s.labels.route ?? '', s.labels.outcome ?? '']);
    m.set(key, (m.get(key) || 0) + s.value);
  }
  return m;
}

async function poll() {
  try {
    const resp = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
    if (!resp.ok) throw new Error(resp.status === 404 ? 'metrics are not enabled on this gateway' : `HTTP ${resp.status}`);
    const now = readings(await resp.text());
    if (!state.baseline) {
      state.baseline = now;
      state.openedAt = Date.now();
    }
    state.latest = now;
    state.readAt = Date.now();
    state.error = null;
  } catch (e) {
    // fetch's own failure (a TypeError) is a gateway that did not
    // answer, said as the other pages say it.
    state.error = e instanceof TypeError || !e.message
      ? 'the gateway did not answer (is it running, and reachable from this browser?)'
      : e.message;
  }
  for (const f of state.listeners) f();
}

/** Starts counting (at sign-in); the first reading is the baseline. */
export function start() {
  if (state.timer) return;
  poll();
  state.timer = setInterval(poll, INTERVAL_MS);
}

export function stop() {
  clearInterval(state.timer);
  state.timer = null;
  state.baseline = null;
  state.latest = null;
}

/** {route: {outcome: count}} since the first reading. */
export function sinceOpened() {
  // No prototype: a route may be named __proto__.
  const out = Object.create(null);
  if (!state.latest) return out;
  for (const [key, value] of state.latest) {
    const before = state.baseline.get(key) || 0;
    // A smaller value means the gateway restarted: count from zero.
    const delta = value >= before ? value - before : value;
    if (delta <= 0) continue;
    const [route, outcome] = JSON.parse(key);
    out[route] = out[route] || Object.create(null);
    out[route][outcome] = delta;
  }
  return out;
}

function chart(data) {
  const routes = Object.keys(data).sort();
  const max = Math.max(1, ...routes.map((r) => Object.values(data[r]).reduce((a, b) => a + b, 0)));
  const rows = routes.map((route) => {
    const outcomes = Object.entries(data[route]).sort((a, b) => rank(a[0]) - rank(b[0]));
    const total = outcomes.reduce((n, [, v]) => n + v, 0);
    let x = 0;
    const bars = outcomes.map(([outcome, count]) => {
      const w = (count / max) * 100;
      const rect = svg('rect', { x: x.toFixed(3), y: 0, width: w.toFixed(3), height: 10, class: `o-${GROUP_OF.get(outcome) || 'other'}` },
        svg('title', {}, `${outcome}: ${count}`));
      x += w;
      return rect;
    });
    const label = `${route || '(no route)'}: ${outcomes.map(([o, v]) => `${o} ${v}`).join(', ')}`;
    return h('li', { class: 'outcome-row', 'data-route': route },
      h('span', { class: 'route-name' }, route || '(no route)'),
      svg('svg', { class: 'bar', viewBox: '0 0 100 10', preserveAspectRatio: 'none', role: 'img', 'aria-label': label },
        svg('rect', { x: 0, y: 0, width: 100, height: 10, class: 'track' }), bars),
      h('span', { class: 'total' }, String(total)),
      h('ul', { class: 'numbers' }, outcomes.map(([o, v]) => h('li', { 'data-outcome': o },
        h('span', { class: `swatch o-${GROUP_OF.get(o) || 'other'}`, 'aria-hidden': 'true' }), `${o} `, h('strong', {}, String(v))))));
  });
  return h('ul', { class: 'outcomes' }, rows);
}

function render(slot) {
  const parts = [];
  if (state.error) parts.push(h('p', { class: 'status bad', role: 'status' }, `Cannot read /metrics: ${state.error}`));
  if (!state.latest) {
    parts.push(h('p', { class: 'muted' }, 'Reading /metrics\u2026'));
  } else {
    const data = sinceOpened();
    const n = Object.values(data).reduce((a, r) => a + Object.values(r).reduce((x, y) => x + y, 0), 0);
    parts.push(h('p', { class: 'meta' },
      `Since ${new Date(state.openedAt).toLocaleTimeString()}: ${plural(n, 'decision')}. `,
      state.error
        ? `Last read at ${new Date(state.readAt).toLocaleTimeString()}: the figures are as of then.`
        : `Updated ${new Date(state.readAt).toLocaleTimeString()}, every ${INTERVAL_MS / 1000} s.`));
    parts.push(n ? chart(data) : h('p', { class: 'muted' }, 'No authentication decisions since the page opened. Requests to the gateway show here within seconds.'));
  }
  slot.replaceChildren(...parts);
}

export async function page(page) {
  const slot = h('div', { class: 'panel outcomes-panel', 'aria-live': 'off' });
  page.append(heading('Auth outcomes'),
    h('p', { class: 'lede' }, 'JWT policy decisions per route since this page opened, from ', h('code', {}, FAMILY), ' in /metrics.'),
    slot,
    h('p', { class: 'help' }, 'Green: let through; blue: logouts; amber to red: refused (no token, bad token, failed verification); purple: revoked.'));
  const update = () => render(slot);
  state.listeners.add(update);
  update();
  return () => state.listeners.delete(update);
}

