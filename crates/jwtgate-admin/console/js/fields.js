// Puts the admin API's located errors ({"field": "jwt.key", "message": ...})
// next to the field they name. A field registers under its API name; an
// error for `algorithms[1]` or `jwt.secret.x` goes to the closest
// registered ancestor (`algorithms`, `jwt.secret`); what matches nothing
// goes to the form's summary, with its location spelled out.

import { code, h, rich, uid, unseenNote } from './dom.js';

/** The ancestors of a location, nearest first: a.b[1].c -> a.b[1], a.b, a. */
function ancestors(field) {
  const out = [];
  let f = field;
  while (f) {
    const cut = Math.max(f.lastIndexOf('.'), f.lastIndexOf('['));
    if (cut <= 0) break;
    f = f.slice(0, cut);
    out.push(f);
  }
  return out;
}

export class FieldErrors {
  constructor() {
    this.fields = new Map();
    this.summary = h('div', { class: 'error-summary', role: 'alert', hidden: true });
  }

  /**
   * Registers `input` under the API name `name`; its message appears right
   * after `after` (default: the input) and is tied to it by
   * aria-describedby. A custom `show(errors)` may handle the errors itself
   * (list editors map `required_paths[1]` to a line).
   */
  field(name, input, { after, show } = {}) {
    if (show) {
      this.fields.set(name, { show });
      return;
    }
    const message = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    // Placed after its anchor now if the anchor is in a tree already, else
    // when first shown: a field registered before its form is assembled
    // (`after` on a detached node does nothing) kept its message nowhere.
    const place = () => {
      if (!message.parentNode) (after || input).after(message);
    };
    place();
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    input.setAttribute('aria-describedby', [...described, message.id].join(' '));
    this.fields.set(name, {
      show: (errors) => {
        if (!errors.length) {
          message.hidden = true;
          message.textContent = '';
          input.removeAttribute('aria-invalid');
          return;
        }
        place();
        message.hidden = false;
        // Located as the API and `jwtgate check` locate it: field: message.
        message.replaceChildren(...errors.flatMap((e, i) => [i ? '; ' : '', e.field ? code(e.field) : '', e.field ? ': ' : '', ...rich(e.message)]));
        input.setAttribute('aria-invalid', 'true');
      },
    });
  }

  clear() {
    for (const f of this.fields.values()) f.show([]);
    this.summary.hidden = true;
    this.summary.replaceChildren();
  }

  /** Shows an ApiError: each located error by its field, the rest in the summary. */
  show(err, heading) {
    this.clear();
    const byField = new Map();
    const rest = [];
    for (const e of err.errors || []) {
      const field = String(e.field ?? '');
      const target = [field, ...ancestors(field)].find((f) => this.fields.has(f));
      if (target === undefined) {
        rest.push(e);
      } else {
        if (!byField.has(target)) byField.set(target, []);
        byField.get(target).push({ field, message: String(e.message ?? '') });
      }
    }
    for (const [name, errors] of byField) this.fields.get(name).show(errors);
    const title = heading || err.message;
    this.summary.append(h('p', { class: 'error-title' }, title));
    if (rest.length) {
      this.summary.append(h('ul', {}, rest.map((e) => h('li', {}, e.field ? [code(e.field), ': '] : '', rich(e.message)))));
    }
    if (byField.size) {
      this.summary.append(h('p', {}, 'Each problem is shown next to the field it concerns.'));
    }
    this.summary.hidden = false;
  }
}

/** A labelled text input registered for located errors. */
export function textField(errors, name, label, value, props = {}) {
  const id = uid('t');
  const helpId = props.help ? `${id}-h` : null;
  const input = h(props.multiline ? 'textarea' : 'input', {
    id,
    type: props.multiline ? undefined : (props.type || 'text'),
    value: value ?? '',
    autocomplete: props.autocomplete || 'off',
    spellcheck: false,
    placeholder: props.placeholder,
    readOnly: props.readOnly,
    required: props.required,
    rows: props.rows,
    'aria-describedby': helpId,
  });
  if (props.multiline) input.value = value ?? '';
  const el = h('div', { class: 'field' }, h('label', { for: id }, label),
    props.help ? h('p', { class: 'help', id: helpId }, props.help) : null, input, unseenNote(input));
  errors.field(name, input);
  return { input, el };
}
