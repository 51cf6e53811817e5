// The serial console: xterm.js over the engine's console websocket (what
// the console printed since the VM started, then live). What an allowed
// user types goes to the console; the engine drops it for others.

import {Terminal} from '../../vendor/xterm/xterm.mjs';
import {h} from '../dom.js';

const MAX_TRANSCRIPT = 1 << 20;

export function open({vm, screen, status, tools, canType}) {
  const term = new Terminal({convertEol: false, scrollback: 5000, cursorBlink: true, fontSize: 15,
    fontFamily: '"DejaVu Sans Mono", monospace', screenReaderMode: true, disableStdin: !canType});
  term.open(screen);
  fit(term, screen);
  window.addEventListener('resize', () => fit(term, screen));
  // What arrived, as text, for a search and for the tests.
  let transcript = '';
  const decoder = new TextDecoder();
  window.polyvirtConsole = {term, transcript: () => transcript};
  let ws = null;
  const connect = () => {
    const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/api/v1/vms/${encodeURIComponent(vm.id)}/console`;
    ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    status.textContent = 'Connecting…';
    ws.addEventListener('open', () => {
      status.textContent = canType ? `Connected to ${vm.name}'s serial console.` : `Connected to ${vm.name}'s serial console (your role watches: what you type is not sent).`;
      reconnect.hidden = true;
      term.focus();
    });
    ws.addEventListener('message', (m) => {
      const bytes = new Uint8Array(m.data);
      term.write(bytes);
      transcript += decoder.decode(bytes, {stream: true});
      if (transcript.length > MAX_TRANSCRIPT) transcript = transcript.slice(-MAX_TRANSCRIPT / 2);
    });
    ws.addEventListener('close', (e) => {
      status.textContent = `The console closed${e.reason ? `: ${e.reason}` : ''}.`;
      reconnect.hidden = false;
    });
  };
  term.onData((d) => {
    if (canType && ws && ws.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(d));
  });
  const reconnect = h('button', {type: 'button', class: 'btn', hidden: true, on: {click: () => { term.reset(); transcript = ''; connect(); }}}, 'Connect again');
  tools.append(h('span', {class: 'hint'}, 'Keys go to the console while it has the focus; Tab stays in it. Press Escape then Tab to leave.'), reconnect);
  // Escape then Tab leaves the terminal (keyboard users are not trapped).
  let escaped = false;
  term.attachCustomKeyEventHandler((e) => {
    if (e.type !== 'keydown') return true;
    if (escaped && e.key === 'Tab') {
      escaped = false;
      return false;
    }
    escaped = e.key === 'Escape';
    return true;
  });
  connect();
}

// fit sizes the terminal to its box (columns and rows of its font).
function fit(term, box) {
  const cell = term._core && term._core._renderService && term._core._renderService.dimensions && term._core._renderService.dimensions.css.cell;
  const w = cell && cell.width ? cell.width : 9;
  const hgt = cell && cell.height ? cell.height : 18;
  const cols = Math.max(40, Math.floor((box.clientWidth - 16) / w));
  const rows = Math.max(12, Math.floor((window.innerHeight - box.getBoundingClientRect().top - 16) / hgt));
  term.resize(cols, rows);
}
