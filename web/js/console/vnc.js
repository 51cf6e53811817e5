// The graphical console: noVNC's RFB client over the engine's websocket.

import RFB from '../../vendor/novnc/core/rfb.js';
import {h} from '../dom.js';
import * as api from '../api.js';
import {errorText} from '../ui.js';

export async function open({vm, screen, status, tools}) {
  let rfb = null;
  const connect = async () => {
    status.textContent = 'Asking the engine for a console ticket…';
    let ticket;
    try {
      ticket = await api.post(`/vms/${api.esc(vm.name)}/console-ticket`, {type: 'vnc'});
    } catch (e) {
      status.textContent = `No console: ${errorText(e)}`;
      reconnect.hidden = false;
      return;
    }
    const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}${ticket.path}`;
    status.textContent = 'Connecting to the VM\'s display…';
    const started = performance.now();
    rfb = new RFB(screen, url, {wsProtocols: ['binary'], shared: true});
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.focusOnClick = true;
    rfb.background = '#111';
    window.polyvirtConsole = {rfb, started, firstFrame: null, firstFrameAt: null};
    rfb.addEventListener('connect', () => {
      status.textContent = `Connected to ${vm.name}'s display. Click it or press Tab to it to type.`;
      reconnect.hidden = true;
      ctrlAltDel.disabled = false;
      rfb.focus();
    });
    rfb.addEventListener('disconnect', (e) => {
      status.textContent = e.detail.clean ? 'The console closed.' : 'The console connection was lost.';
      reconnect.hidden = false;
      ctrlAltDel.disabled = true;
      rfb = null;
    });
    rfb.addEventListener('credentialsrequired', () => {
      const pw = window.prompt(`The display of ${vm.name} has a password:`);
      if (pw !== null) rfb.sendCredentials({password: pw});
    });
    rfb.addEventListener('securityfailure', (e) => {
      status.textContent = `The display refused the connection: ${e.detail.reason || e.detail.status}`;
    });
    // The first frame drawn (noVNC 1.7's Display.flip ends each complete
    // framebuffer update), for the benchmark of the time to the first
    // picture: since the page opened, and since the connection started.
    const display = rfb._display;
    if (display && typeof display.flip === 'function') {
      const flip = display.flip.bind(display);
      display.flip = (...args) => {
        const r = flip(...args);
        if (window.polyvirtConsole.firstFrame === null) {
          window.polyvirtConsole.firstFrameAt = performance.now();
          window.polyvirtConsole.firstFrame = performance.now() - started;
        }
        return r;
      };
    }
  };
  const ctrlAltDel = h('button', {type: 'button', class: 'btn', disabled: true, on: {click: () => rfb && rfb.sendCtrlAltDel()}}, 'Send Ctrl+Alt+Del');
  const reconnect = h('button', {type: 'button', class: 'btn', hidden: true, on: {click: connect}}, 'Connect again');
  tools.append(ctrlAltDel, reconnect);
  await connect();
}
