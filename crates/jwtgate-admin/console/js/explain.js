// Explain a token: what the gateway would do with it on a request, step by
// step (POST /admin/v1/explain, the report of `jwtgate token explain`),
// with the hint that fixes the usual mistakes pulled to the top.

import { api, get } from './api.js';
import { disable, h, heading, rich, statusLine, uid } from './dom.js';
import { FieldErrors, textField } from './fields.js';

function report(r) {
  const hints = r.steps.filter((s) => /^hint:/i.test(s.detail.trim()));
  const verdict = r.verdict === 'accepted' ? 'Accepted' : r.verdict === 'refused' ? 'Refused' : 'Undetermined';
  // A step's continuation lines (no label) join its row, one line each.
  const rows = [];
  let cell = null;
  for (const s of r.steps) {
    if (!s.step && !s.detail) continue;
    const hint = /^hint:/i.test(s.detail.trim());
    const line = h('div', { class: hint ? 'line hint-line' : 'line' }, hint ? rich(s.detail) : s.detail);
    if (s.step || !cell) {
      cell = h('td', {}, line);
      rows.push(h('tr', { 'data-step': s.step }, h('th', { scope: 'row' }, s.step), cell));
    } else {
      cell.append(line);
    }
  }
  return h('section', { class: `panel report ${r.verdict}`, 'aria-labelledby': 'report-title' },
    h('h2', { id: 'report-title' }, `${verdict}: ${r.status}${r.message ? ` ${r.message}` : ''}`),
    r.route ? h('p', {}, `Route: ${r.route}`) : null,
    r.reason ? h('p', { class: 'reason' }, `Why: ${r.reason}`) : null,
    hints.map((s) => h('p', { class: 'hint', role: 'note' }, h('strong', {}, 'Hint: '), rich(s.detail.trim().replace(/^hint:\s*/i, '')))),
    h('div', { class: 'table-wrap' }, h('table', { class: 'steps' },
      h('caption', {}, 'Step by step'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Step'), h('th', { scope: 'col' }, 'Detail'))),
      h('tbody', {}, rows))));
}

export async function page(page) {
  const { routes } = await get('/admin/v1/routes');
  const errors = new FieldErrors();
  const status = statusLine();
  const out = h('div', { class: 'report-slot', 'aria-live': 'polite' });
  const token = textField(errors, 'token', 'Token (JWT)', '', { multiline: true, rows: 4, help: 'With or without "Bearer ". It is not stored or logged.' });
  token.input.classList.add('mono');
  const request = textField(errors, 'request', 'Request line', '', { help: 'METHOD and path as the client would send them, e.g. GET /v1/orders. Empty: the token alone is checked, on the route chosen below.' });
  const routeId = uid('route');
  const route = h('select', { id: routeId },
    h('option', { value: '' }, 'The one the request line matches (or the first with a JWT policy)'),
    routes.map((r) => h('option', { value: r.name }, r.name)));
  errors.field('route', route);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Explain');
  const form = h('form', {
    class: 'panel',
    noValidate: true,
    on: {
      submit: async (e) => {
        e.preventDefault();
        errors.clear();
        out.replaceChildren();
        const body = { token: token.input.value.trim() };
        if (request.input.value.trim()) body.request = request.input.value.trim();
        if (route.value) body.route = route.value;
        const enable = disable([submit]);
        try {
          const r = await api('POST', '/admin/v1/explain', body);
          status.say('');
          out.replaceChildren(report(r));
        } catch (err) {
          status.say('No report.', 'bad');
          errors.show(err, `No report: ${err.message}`);
        } finally {
          enable();
        }
      },
    },
  },
  token.el, request.el,
  h('div', { class: 'field' }, h('label', { for: routeId }, 'Route'), route),
  errors.summary, h('div', { class: 'actions' }, submit, status));
  page.append(heading('Explain a token'),
    h('p', { class: 'lede' }, 'What the gateway would do with a token on a request, and why: against the running config, the providers\' current keys and this node\'s blacklist.'),
    form, out);
}
