// Consumers and their credentials. A secret is never shown: the API reads
// it as "***", and a form left with an empty secret field sends "***"
// back, which keeps the stored secret (the API's GET-edit-PUT round trip).

import { api, get, keepWarnings, notice, seg } from './api.js';
import { checkbox, code, disable, h, heading, statusLine, uid } from './dom.js';
import { deleteSection } from './dialog.js';
import { FieldErrors, textField } from './fields.js';

export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA'];
const MASK = '***';

const isHmac = (alg) => (alg || 'HS256').startsWith('HS');

function credentialWords(jwt) {
  if (!jwt) return 'none: signs no tokens (an anonymous consumer, or named by a provider\'s consumer_claim)';
  if (isHmac(jwt.algorithm)) return jwt.secret ? 'shared secret (hidden)' : 'no secret';
  if (jwt.public_key_file) return ['public key file ', code(jwt.public_key_file)];
  return jwt.public_key ? 'public key (PEM)' : 'no key';
}

export async function listPage(page) {
  const { consumers } = await get('/admin/v1/consumers');
  page.append(heading('Consumers'),
    h('p', { class: 'lede' }, 'Callers that sign their own tokens: the token\'s key claim names the consumer, whose credential verifies it. A consumer without a credential is a name requests run as: a route\'s anonymous consumer, or the one a provider\'s consumer_claim names. Secrets are never shown.'),
    h('p', {}, h('a', { class: 'button primary', href: '#/consumers/+new' }, 'New consumer')));
  if (!consumers.length) {
    page.append(h('p', {}, 'No consumers yet.'));
    return;
  }
  page.append(h('ul', { class: 'cards' }, consumers.map((c) => h('li', { class: 'card', 'data-consumer': c.username },
    h('h2', {}, h('a', { href: `#/consumers/${seg(c.username)}` }, c.username)),
    h('dl', { class: 'facts' },
      c.jwt ? [h('dt', {}, 'Key'), h('dd', {}, code(c.jwt.key)),
        h('dt', {}, 'Algorithm'), h('dd', {}, c.jwt.algorithm || 'HS256')] : null,
      h('dt', {}, 'Credential'), h('dd', {}, credentialWords(c.jwt)),
      c.custom_id ? [h('dt', {}, 'Custom ID'), h('dd', {}, c.custom_id)] : null)))));
}

export async function editPage(page, username) {
  const creating = username === '+new';
  const original = creating ? { username: '', jwt: { key: '' } } : await get(`/admin/v1/consumers/${seg(username)}`);
  const jwt = original.jwt || { key: '' };
  const errors = new FieldErrors();
  const status = statusLine();
  const hadSecret = !creating && typeof jwt.secret === 'string';

  const name = textField(errors, 'username', 'Username', original.username, {
    readOnly: !creating,
    required: true,
    help: creating ? 'Sent upstream as X-Consumer-Username.' : 'A consumer is renamed by creating a new one and deleting this one.',
  });
  const customId = textField(errors, 'custom_id', 'Custom ID (optional)', original.custom_id, { help: 'Sent upstream as X-Consumer-Custom-ID.' });
  const hasCredential = checkbox('Signs its own tokens (a JWT credential)', Boolean(original.jwt));
  errors.field('jwt', hasCredential.input, { after: hasCredential.el });
  const key = textField(errors, 'jwt.key', 'Key', jwt.key, { required: true, help: 'The value of the token\'s key claim that names this consumer; unique.' });
  const algId = uid('alg');
  const algorithm = h('select', { id: algId }, ALGORITHMS.map((a) => h('option', { value: a, selected: a === (jwt.algorithm || 'HS256') }, a)));
  errors.field('jwt.algorithm', algorithm);
  const secret = textField(errors, 'jwt.secret', hadSecret ? 'New secret (leave empty to keep the stored one)' : 'Secret', '', {
    type: 'password',
    autocomplete: 'new-password',
    help: 'At least 32 bytes. It is never shown again, here or by the API.',
  });
  const b64 = checkbox('The secret is base64 of the key bytes (base64_secret)', jwt.base64_secret);
  errors.field('jwt.base64_secret', b64.input, { after: b64.el });
  const publicKey = textField(errors, 'jwt.public_key', 'Public key (PEM)', jwt.public_key, {
    multiline: true,
    rows: 6,
    help: 'For RS*, PS*, ES* and EdDSA; or give a file below.',
  });
  const publicKeyFile = textField(errors, 'jwt.public_key_file', 'Public key file (path on the gateway)', jwt.public_key_file);
  const hmacFields = h('div', { class: 'group' }, secret.el, b64.el);
  const keyFields = h('div', { class: 'group' }, publicKey.el, publicKeyFile.el);
  const algField = h('div', { class: 'field' }, h('label', { for: algId }, 'Algorithm'), algorithm);
  const credentialFields = h('div', { class: 'group' }, key.el, algField, hmacFields, keyFields);
  const showAlgFields = () => {
    credentialFields.hidden = !hasCredential.input.checked;
    hmacFields.hidden = !isHmac(algorithm.value);
    keyFields.hidden = isHmac(algorithm.value);
  };
  algorithm.addEventListener('change', showAlgFields);
  hasCredential.input.addEventListener('change', showAlgFields);
  showAlgFields();

  const body = () => {
    const c = structuredClone(original);
    c.username = name.input.value.trim();
    if (customId.input.value.trim()) c.custom_id = customId.input.value.trim();
    else delete c.custom_id;
    if (!hasCredential.input.checked) {
      delete c.jwt;
      return c;
    }
    c.jwt = structuredClone(jwt);
    c.jwt.key = key.input.value.trim();
    c.jwt.algorithm = algorithm.value;
    if (isHmac(algorithm.value)) {
      delete c.jwt.public_key;
      delete c.jwt.public_key_file;
      if (secret.input.value) c.jwt.secret = secret.input.value;
      else if (hadSecret) c.jwt.secret = MASK;
      else delete c.jwt.secret;
      if (b64.input.checked) c.jwt.base64_secret = true;
      else delete c.jwt.base64_secret;
    } else {
      delete c.jwt.secret;
      delete c.jwt.base64_secret;
      const pem = publicKey.input.value.trim();
      const file = publicKeyFile.input.value.trim();
      if (pem) c.jwt.public_key = `${pem}\n`;
      else delete c.jwt.public_key;
      if (file) c.jwt.public_key_file = file;
      else delete c.jwt.public_key_file;
    }
    return c;
  };

  const save = h('button', { type: 'submit', class: 'primary' }, creating ? 'Create consumer' : 'Save consumer');
  const form = h('form', {
    class: 'panel',
    'data-edit': true,
    noValidate: true,
    on: {
      submit: async (e) => {
        e.preventDefault();
        errors.clear();
        const c = body();
        if (!c.username) {
          errors.show({ message: 'Not saved', errors: [{ field: 'username', message: 'is required' }] });
          name.input.focus();
          return;
        }
        const enable = disable([save]);
        try {
          // A create must not replace an object of the same name: the
          // gateway answers 412, located at the name, if there is one.
          await api('PUT', `/admin/v1/consumers/${seg(c.username)}`, c, undefined,
            creating ? { 'If-None-Match': '*' } : {});
          secret.input.value = '';
          e.target.dispatchEvent(new Event('console:saved', { bubbles: true }));
          status.say(creating ? `Consumer ${c.username} created.` : 'Saved.', 'ok');
          if (creating) {
            keepWarnings.once = true;
            notice.once = `Consumer ${c.username} created.`;
            location.hash = `#/consumers/${seg(c.username)}`;
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
  name.el, customId.el, hasCredential.el, credentialFields,
  errors.summary,
  h('div', { class: 'actions' }, save, status));

  page.append(h('p', { class: 'crumbs' }, h('a', { href: '#/consumers' }, '\u2190 All consumers')),
    heading(creating ? 'New consumer' : `Consumer ${original.username}`), form);
  if (!creating) page.append(deleteSection('consumer', original.username, `/admin/v1/consumers/${seg(original.username)}`, '#/consumers'));
}
