// The sign-in page.

import {h, replace, field} from '../dom.js';
import * as api from '../api.js';

export function signIn(main, done, message) {
  document.title = 'Sign in — polyvirt';
  const name = h('input', {type: 'text', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false'});
  const pw = h('input', {type: 'password', name: 'password', autocomplete: 'current-password', required: true});
  const err = h('p', {class: 'error', role: 'alert', id: 'signin-error'});
  const button = h('button', {type: 'submit', class: 'btn btn-primary'}, 'Sign in');
  // method post: a password never goes into a URL, whatever happens.
  const form = h('form', {class: 'signin', method: 'post', 'aria-describedby': 'signin-error', novalidate: true},
    h('h1', null, h('img', {src: '/ui/img/favicon.svg', alt: '', width: 32, height: 32}), ' polyvirt'),
    h('p', {class: 'hint'}, 'Sign in with your polyvirt user name and password (polyvirt user passwd sets it).'),
    message ? h('p', {class: 'notice notice-info', role: 'status'}, message) : null,
    field('User name', name), field('Password', pw), err, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (!name.value || !pw.value) {
      err.textContent = 'Give your user name and password.';
      (name.value ? pw : name).focus();
      return;
    }
    button.disabled = true;
    try {
      const s = await api.post('/session', {name: name.value.trim(), password: pw.value}, {noSignOut: true});
      pw.value = '';
      done(s);
    } catch (e) {
      err.textContent = e instanceof api.ApiError ? `${e.code}: ${e.message}` : String(e);
      pw.select();
      pw.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  name.focus();
}
