// Identity providers (SPEC §3.6): issuer, where the keys come from, the
// algorithms and audiences; with each provider's key state from /status.
// A provider holds no secret. Fields the form does not show are kept as
// they are (the body starts from what GET returned).

import { api, get, keepWarnings, notice, seg } from './api.js';
import { code, disable, h, heading, statusLine, uid } from './dom.js';
import { deleteSection } from './dialog.js';
import { FieldErrors, textField } from './fields.js';

// One entry per line: an audience may hold a space or a comma
// (`My API`, `urn:a,b`), which a split on them would make two.
const lines = (s) => s.split('\n').map((w) => w.trim()).filter(Boolean);

function source(p) {
  if (p.jwks_file) return ['file ', code(p.jwks_file)];
  if (p.jwks_uri) return ['JWK Set ', code(p.jwks_uri)];
  if (p.discovery) return 'OpenID Connect discovery';
  return 'none set';
}

async function keyStates() {
  try {
    const resp = await fetch('/status', { cache: 'no-store', credentials: 'omit' });
    const body = await resp.json();
    return body.providers || {};
  } catch (e) {
    return {};
  }
}

function stateWords(st) {
  if (!st) return 'unknown';
  return `${st.state}, ${st.keys} key${st.keys === 1 ? '' : 's'}${st.age_seconds !== undefined && st.age_seconds !== null ? `, fetched ${st.age_seconds} s ago` : ''}`;
}

export async function listPage(page) {
  const [{ providers }, states] = await Promise.all([get('/admin/v1/providers'), keyStates()]);
  page.append(heading('Identity providers'),
    h('p', { class: 'lede' }, 'Issuers whose tokens are verified with the keys they publish (JWKS), chosen by kid.'),
    h('p', {}, h('a', { class: 'button primary', href: '#/providers/+new' }, 'New provider')));
  if (!providers.length) {
    page.append(h('p', {}, 'No identity providers.'));
    return;
  }
  page.append(h('ul', { class: 'cards' }, providers.map((p) => h('li', { class: 'card', 'data-provider': p.name },
    h('h2', {}, h('a', { href: `#/providers/${seg(p.name)}` }, p.name)),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Issuer'), h('dd', {}, code(p.issuer)),
      h('dt', {}, 'Keys from'), h('dd', {}, source(p)),
      h('dt', {}, 'Key state'), h('dd', {}, stateWords(states[p.name])),
      h('dt', {}, 'Algorithms'), h('dd', {}, (p.algorithms || ['RS256']).join(', ')),
      h('dt', {}, 'Audiences'), h('dd', {}, (p.audiences || []).join(', ') || 'not checked'))))));
}

export async function editPage(page, name) {
  const creating = name === '+new';
  const original = creating ? { name: '', issuer: '', discovery: true } : await get(`/admin/v1/providers/${seg(name)}`);
  const errors = new FieldErrors();
  const status = statusLine();
  const f = (field, label, props) => textField(errors, field, label, original[field], props);
  const nameField = f('name', 'Name', { readOnly: !creating, required: true });
  const issuer = f('issuer', 'Issuer', { required: true, help: 'Must equal the iss of its tokens, exactly, e.g. https://idp.example.com/realms/main.' });

  // Where the keys come from: one of three.
  const group = uid('src');
  const kinds = [
    ['discovery', 'OpenID Connect discovery ({issuer}/.well-known/openid-configuration)'],
    ['jwks_uri', 'A JWK Set URL'],
    ['jwks_file', 'A JWK Set file on the gateway'],
  ];
  const current = original.jwks_file ? 'jwks_file' : original.jwks_uri ? 'jwks_uri' : 'discovery';
  const radios = {};
  const uri = f('jwks_uri', 'JWK Set URL', { help: 'e.g. https://idp.example.com/keys' });
  const file = f('jwks_file', 'JWK Set file', { help: 'A path on the gateway; a relative one is read from the config file\'s directory.' });
  const showSource = () => {
    uri.el.hidden = !radios.jwks_uri.checked;
    file.el.hidden = !radios.jwks_file.checked;
  };
  const sourceSet = h('fieldset', {}, h('legend', {}, 'Keys from'), kinds.map(([k, label]) => {
    const id = uid('src');
    radios[k] = h('input', { type: 'radio', name: group, id, value: k, checked: k === current, on: { change: showSource } });
    return h('div', { class: 'radio' }, radios[k], h('label', { for: id }, label));
  }), uri.el, file.el);
  errors.field('discovery', radios.discovery, { after: sourceSet.lastChild });

  const algorithms = textField(errors, 'algorithms', 'Algorithms (one per line)', (original.algorithms || []).join('\n'), { multiline: true, help: 'Default RS256. HS* and none are never accepted here.' });
  const audiences = textField(errors, 'audiences', 'Audiences (one per line)', (original.audiences || []).join('\n'), { multiline: true, help: 'The token\'s aud must contain one; empty: not checked.' });
  const consumerClaim = f('consumer_claim', 'Consumer claim (optional)', { help: 'A claim whose value is a consumer\'s username.' });
  const clientId = f('client_id', 'Client ID (optional)', { help: 'The gateway\'s client id at the provider, for back-channel logout.' });
  const backchannel = f('backchannel_logout_path', 'Back-channel logout path (optional)', { help: 'A path on the data plane for OpenID Connect Back-Channel Logout, e.g. /oidc/backchannel-logout.' });
  const numbers = [
    ['refresh_seconds', 'Refresh every (seconds)'],
    ['kid_miss_interval_seconds', 'At most one refetch for an unknown kid every (seconds)'],
    ['max_stale_seconds', 'Keep last good keys for (seconds)'],
    ['fetch_timeout_ms', 'Fetch timeout (ms)'],
  ].map(([field, label]) => ({ field, ...textField(errors, field, label, original[field], { type: 'number' }) }));
  const caFile = f('ca_file', 'Extra CA file for the provider\'s TLS (optional)');

  // A field whose text is as the page showed it is sent back as read: a
  // save must change only what was edited (an outside audit: an untouched
  // save split an audience at its space, widening what the provider
  // accepts, and trimmed the issuer its tokens must match exactly).
  const shown = new Map();
  const untouched = (field) => field.input.value === shown.get(field);
  const body = () => {
    const p = structuredClone(original);
    const set = (k, field, read) => {
      if (untouched(field)) return;
      const v = read(field.input.value);
      if (v === undefined) delete p[k];
      else p[k] = v;
    };
    const text = (v) => v.trim() || undefined;
    if (creating) p.name = nameField.input.value.trim();
    set('issuer', issuer, (v) => v || undefined);
    const source = radios.discovery.checked ? 'discovery' : radios.jwks_uri.checked ? 'jwks_uri' : 'jwks_file';
    if (source !== current) {
      delete p.discovery;
      delete p.jwks_uri;
      delete p.jwks_file;
      if (source === 'discovery') p.discovery = true;
    }
    if (source === 'jwks_uri') p.jwks_uri = untouched(uri) && current === 'jwks_uri' ? original.jwks_uri : uri.input.value.trim();
    if (source === 'jwks_file') p.jwks_file = untouched(file) && current === 'jwks_file' ? original.jwks_file : file.input.value.trim();
    for (const [k, field] of [['algorithms', algorithms], ['audiences', audiences]]) {
      set(k, field, (v) => (lines(v).length ? lines(v) : undefined));
    }
    for (const [k, field] of [['consumer_claim', consumerClaim], ['client_id', clientId], ['backchannel_logout_path', backchannel], ['ca_file', caFile]]) {
      set(k, field, text);
    }
    for (const n of numbers) {
      set(n.field, n, (v) => (v.trim() === '' ? undefined : Number(v)));
    }
    return p;
  };

  const save = h('button', { type: 'submit', class: 'primary' }, creating ? 'Create provider' : 'Save provider');
  const form = h('form', {
    class: 'panel',
    'data-edit': true,
    noValidate: true,
    on: {
      submit: async (e) => {
        e.preventDefault();
        errors.clear();
        const p = body();
        if (!p.name) {
          errors.show({ message: 'Not saved', errors: [{ field: 'name', message: 'is required' }] });
          nameField.input.focus();
          return;
        }
        const enable = disable([save]);
        try {
          // A create must not replace an object of the same name: the
          // gateway answers 412, located at the name, if there is one.
          await api('PUT', `/admin/v1/providers/${seg(p.name)}`, p, undefined,
            creating ? { 'If-None-Match': '*' } : {});
          e.target.dispatchEvent(new Event('console:saved', { bubbles: true }));
          status.say(creating ? `Provider ${p.name} created.` : 'Saved.', 'ok');
          if (creating) {
            keepWarnings.once = true;
            notice.once = `Provider ${p.name} created.`;
            location.hash = `#/providers/${seg(p.name)}`;
          }
        } catch (err) {
          status.say('Not saved.', 'bad');
          errors.show(err, `Not saved: ${err.message}`);
        } finally {
          enable();
        }
      },
    },
  },
  nameField.el, issuer.el, sourceSet, algorithms.el, audiences.el, consumerClaim.el, clientId.el, backchannel.el,
  h('details', {}, h('summary', {}, 'Timing and trust'), numbers.map((n) => n.el), caFile.el),
  errors.summary,
  h('div', { class: 'actions' }, save, status));
  showSource();
  for (const field of [issuer, uri, file, algorithms, audiences, consumerClaim, clientId, backchannel, caFile, ...numbers]) {
    shown.set(field, field.input.value);
  }

  page.append(h('p', { class: 'crumbs' }, h('a', { href: '#/providers' }, '\u2190 All providers')),
    heading(creating ? 'New identity provider' : `Provider ${original.name}`), form);
  if (!creating) page.append(deleteSection('provider', original.name, `/admin/v1/providers/${seg(original.name)}`, '#/providers'));
}
