// Revocations: blacklist one token (POST /admin/v1/revocations), or log a
// subject out everywhere with a cut-off (POST/GET/DELETE
// /admin/v1/revocations/subjects).

import { api, get } from './api.js';
import { code, disable, formatTime, h, heading, reload, statusLine, uid } from './dom.js';
import { FieldErrors, textField } from './fields.js';

function revokeForm() {
  const errors = new FieldErrors();
  const status = statusLine();
  const token = textField(errors, 'token', 'Token (JWT)', '', {
    multiline: true,
    rows: 4,
    help: 'The token is blacklisted until its exp (plus the largest leeway): every route of every node sharing the store refuses it. Its signature is not checked.',
  });
  token.input.classList.add('mono');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Revoke token');
  return h('form', {
    class: 'panel',
    noValidate: true,
    'aria-labelledby': 'revoke-title',
    on: {
      submit: async (e) => {
        e.preventDefault();
        errors.clear();
        status.say('');
        const enable = disable([submit]);
        try {
          const r = await api('POST', '/admin/v1/revocations', { token: token.input.value.trim() });
          token.input.value = '';
          if (r.message === 'token revoked') {
            status.say(r.expires_at ? `Token revoked until ${formatTime(r.expires_at)}.` : 'Token revoked (it has no exp: for good).', 'ok');
          } else {
            // Expired long ago, it needs no entry: every route refuses it.
            status.say('The token has expired: every route refuses it, so nothing was stored.', 'ok');
          }
        } catch (err) {
          status.say('Not revoked.', 'bad');
          errors.show(err, `Not revoked: ${err.message}`);
        } finally {
          enable();
        }
      },
    },
  },
  h('h2', { id: 'revoke-title' }, 'Revoke a token'),
  token.el, errors.summary, h('div', { class: 'actions' }, submit, status));
}

function describe(c) {
  const who = c.consumer !== undefined ? ['consumer ', code(c.consumer)] : ['provider ', code(c.provider)];
  const what = c.subject !== undefined ? [', subject ', code(c.subject)] : c.sid !== undefined ? [', session ', code(c.sid)] : ', every subject';
  return [who, what];
}

/** The same, as plain text (an accessible name). */
function describeText(c) {
  const who = c.consumer !== undefined ? `consumer ${c.consumer}` : `provider ${c.provider}`;
  const what = c.subject !== undefined ? `, subject ${c.subject}` : c.sid !== undefined ? `, session ${c.sid}` : ', every subject';
  return who + what;
}

function subjectForm(consumers, providers) {
  const errors = new FieldErrors();
  const status = statusLine();
  const group = uid('owner');
  const ids = { consumer: uid('owner'), provider: uid('owner') };
  const kind = {
    consumer: h('input', { type: 'radio', name: group, id: ids.consumer, value: 'consumer', checked: true }),
    provider: h('input', { type: 'radio', name: group, id: ids.provider, value: 'provider', disabled: !providers.length }),
  };
  const pickId = uid('pick');
  const pick = h('select', { id: pickId });
  const pickLabel = h('label', { for: pickId });
  const subject = textField(errors, 'subject', 'Subject (sub claim)', '', {
    help: 'For a consumer, leave empty to cut off every token of that consumer.',
  });
  const fill = () => {
    const isConsumer = kind.consumer.checked;
    pickLabel.textContent = isConsumer ? 'Consumer' : 'Identity provider';
    pick.replaceChildren(...(isConsumer ? consumers : providers).map((n) => h('option', { value: n }, n)));
  };
  kind.consumer.addEventListener('change', fill);
  kind.provider.addEventListener('change', fill);
  fill();
  errors.field('consumer', pick);
  errors.field('provider', pick);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log out everywhere');
  return h('form', {
    class: 'panel',
    noValidate: true,
    'aria-labelledby': 'subject-title',
    on: {
      submit: async (e) => {
        e.preventDefault();
        errors.clear();
        const body = { [kind.consumer.checked ? 'consumer' : 'provider']: pick.value };
        if (subject.input.value.trim()) body.subject = subject.input.value.trim();
        const enable = disable([submit]);
        try {
          const c = await api('POST', '/admin/v1/revocations/subjects', body);
          status.say(`Cut off at ${formatTime(c.not_before)}: tokens issued until then are refused.`, 'ok');
          subject.input.value = '';
          setTimeout(reload, 1200);
        } catch (err) {
          status.say('Not cut off.', 'bad');
          errors.show(err, `Not cut off: ${err.message}`);
        } finally {
          enable();
        }
      },
    },
  },
  h('h2', { id: 'subject-title' }, 'Log a subject out everywhere'),
  h('p', { class: 'help' }, 'Every token of the subject issued up to now (iat at or before this second, or without iat) is refused; later tokens pass.'),
  h('fieldset', {}, h('legend', {}, 'Whose tokens'),
    h('div', { class: 'radio' }, kind.consumer, h('label', { for: ids.consumer }, 'A consumer\'s')),
    h('div', { class: 'radio' }, kind.provider, h('label', { for: ids.provider }, 'An identity provider\'s'))),
  h('div', { class: 'field' }, pickLabel, pick),
  subject.el, errors.summary, h('div', { class: 'actions' }, submit, status));
}

function cutoffList(subjects) {
  const status = statusLine();
  if (!subjects.length) return h('section', { class: 'panel' }, h('h2', {}, 'Cut-offs in force'), h('p', { class: 'muted' }, 'None.'));
  const rows = subjects.map((c) => {
    const body = {};
    for (const k of ['consumer', 'provider', 'subject', 'sid']) if (c[k] !== undefined) body[k] = c[k];
    const lift = h('button', {
      type: 'button',
      class: 'secondary',
      // Every row's button says "Lift": its name says which cut-off.
      'aria-label': `Lift the cut-off of ${describeText(c)}`,
      on: {
        click: async () => {
          try {
            await api('DELETE', '/admin/v1/revocations/subjects', body);
            reload();
          } catch (e) {
            status.say(`Not lifted: ${e.message}`, 'bad');
          }
        },
      },
    }, 'Lift');
    return h('li', { class: 'cutoff' }, h('span', {}, describe(c), `: tokens issued until ${formatTime(c.not_before)}`), lift);
  });
  return h('section', { class: 'panel' }, h('h2', {}, 'Cut-offs in force'), h('ul', { class: 'plain' }, rows), status);
}

export async function page(page) {
  const [{ consumers }, { providers }, { subjects }] = await Promise.all([
    get('/admin/v1/consumers'), get('/admin/v1/providers'), get('/admin/v1/revocations/subjects'),
  ]);
  page.append(heading('Revocations'),
    h('p', { class: 'lede' }, 'End one token, or every session of a subject.'),
    h('div', { class: 'columns' },
      revokeForm(),
      subjectForm(consumers.map((c) => c.username), providers.map((p) => p.name))),
    cutoffList(subjects));
}
