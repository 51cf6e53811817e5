// The graphical console: noVNC's RFB client over the engine's websocket.
// When the VM migrates, the engine closes the console (status 4000, "the
// VM moved to HOST": an RFB session cannot pass to another VNC server);
// the page says so and opens it again, with a fresh ticket, on the new
// host.

import RFB from '../../vendor/novnc/core/rfb.js';
import {h} from '../dom.js';
import * as api from '../api.js';
import {errorText} from '../ui.js';

// The engine's close status of a console whose VM moved to another host.
const VM_MOVED = 4000;
// Statuses of a VM that is moving (the console waits for it to arrive).
const MOVING = new Set(['MigratingFrom', 'MigratingTo']);

export async function open({vm, screen, status, tools, ticket: first}) {
  let rfb = null;
  // The page's first ticket (asked for while the page loaded), then new ones.
  let pending = first || null;
  let host = vm.host;
  // What the console page shows after a move: "the VM moved to HOST".
  const moveNote = h('p', {class: 'console-moved', id: 'console-moved', role: 'status', 'aria-live': 'polite', hidden: true});
  const state = window.polyvirtConsole = {rfb: null, started: 0, firstFrame: null, firstFrameAt: null, host, moves: 0, connections: 0};
  const connect = async () => {
    status.textContent = 'Asking the engine for a console ticket…';
    let ticket;
    try {
      ticket = await (pending || api.post(`/vms/${api.esc(vm.name)}/console-ticket`, {type: 'vnc'}));
    } catch (e) {
      pending = null;
      status.textContent = `No console: ${errorText(e)}`;
      reconnect.hidden = false;
      return;
    }
    pending = null;
    const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}${ticket.path}`;
    status.textContent = 'Connecting to the VM\'s display…';
    const started = performance.now();
    const r = new RFB(screen, url, {wsProtocols: ['binary'], shared: true});
    rfb = r;
    r.scaleViewport = true;
    r.resizeSession = false;
    r.focusOnClick = true;
    r.background = '#111';
    Object.assign(state, {rfb: r, started, firstFrame: null, firstFrameAt: null});
    state.connections += 1;
    // The websocket's close status and reason (noVNC's disconnect event
    // tells only whether it was clean).
    let closed = null;
    const sock = r._sock;
    if (sock && sock._eventHandlers && typeof sock._eventHandlers.close === 'function') {
      const onClose = sock._eventHandlers.close;
      sock._eventHandlers.close = (e) => {
        closed = {code: e.code, reason: e.reason};
        onClose(e);
      };
    }
    r.addEventListener('connect', () => {
      status.textContent = `Connected to ${vm.name}'s display. Click it or press Tab to it to type.`;
      reconnect.hidden = true;
      ctrlAltDel.disabled = false;
      r.focus();
    });
    r.addEventListener('disconnect', (e) => {
      if (rfb === r) rfb = null;
      ctrlAltDel.disabled = true;
      // Whatever closed it, the VM may have moved: followMove looks.
      followMove(closed && closed.code === VM_MOVED ? closed.reason : '', e.detail.clean);
    });
    r.addEventListener('credentialsrequired', () => {
      const pw = window.prompt(`The display of ${vm.name} has a password:`);
      if (pw !== null) r.sendCredentials({password: pw});
    });
    r.addEventListener('securityfailure', (e) => {
      status.textContent = `The display refused the connection: ${e.detail.reason || e.detail.status}`;
    });
    // The first frame drawn (noVNC 1.7's Display.flip ends each complete
    // framebuffer update), for the benchmark of the time to the first
    // picture: since the page opened, and since the connection started.
    const display = r._display;
    if (display && typeof display.flip === 'function') {
      const flip = display.flip.bind(display);
      display.flip = (...args) => {
        const res = flip(...args);
        if (rfb === r && state.firstFrame === null) {
          state.firstFrameAt = performance.now();
          state.firstFrame = performance.now() - started;
        }
        return res;
      };
    }
  };

  // followMove finds where the VM runs after its console closed: on
  // another host (the engine said so, or the VM document does, once its
  // migration ended), the console opens again there with a fresh ticket.
  const followMove = async (reason, clean) => {
    status.textContent = reason ? `The console closed: ${reason}.` : 'The console closed; looking where the VM runs…';
    let v = null;
    for (let i = 0; i < 120; i++) {
      try {
        v = await api.get(`/vms/${api.esc(vm.name)}`);
      } catch (e) {
        status.textContent = `The console closed, and the VM cannot be read: ${errorText(e)}`;
        reconnect.hidden = false;
        return;
      }
      if (!MOVING.has(v.state)) break;
      if (i === 0) status.textContent = `${vm.name} is migrating to ${v.migratingTo || 'another host'}: the console opens again when it arrives…`;
      await new Promise((res) => setTimeout(res, 1000));
    }
    if (v && v.host && v.host !== host && (v.state === 'Up' || v.state === 'Paused')) {
      const from = host;
      host = v.host;
      state.host = host;
      state.moves += 1;
      moveNote.textContent = `The VM moved to ${host} (from ${from}); the console follows it.`;
      moveNote.hidden = false;
      await connect();
      return;
    }
    status.textContent = clean ? 'The console closed.' : 'The console connection was lost.';
    reconnect.hidden = false;
  };
  const ctrlAltDel = h('button', {type: 'button', class: 'btn', disabled: true, on: {click: () => rfb && rfb.sendCtrlAltDel()}}, 'Send Ctrl+Alt+Del');
  const reconnect = h('button', {type: 'button', class: 'btn', hidden: true, on: {click: connect}}, 'Connect again');
  tools.append(ctrlAltDel, reconnect, moveNote);
  await connect();
}
