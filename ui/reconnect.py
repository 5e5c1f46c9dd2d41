"""A page whose app process was restarted gets its setup back by itself (issue 28).

When an app process dies (the OOM killer, a crash) supervisord restarts it on the same port, and Streamlit's page
reconnects its websocket to the new process, which has a new, empty session for it. Streamlit's page does not run
the script on such a reconnect: it keeps showing the lost session's content, and the participant learns that it was
lost only at the next click. This script, run once in each page, asks for a script run (Streamlit's own "rerun" key,
R) each time a websocket opens after the page's first one; the new session's run then restores the setup from the
page's address (`?setup=`, ui/links.py) and says what was not kept. A reconnect to a session that survived (a network
blip) reruns the page as it stands, unless a run is under way: that run is never cut short.
"""
from __future__ import annotations

# The page's first websocket exists when this runs (the script came through it): every later one is a reconnect.
SCRIPT = """<script>(() => {
  if (window.__peRerunOnReconnect) return;
  window.__peRerunOnReconnect = true;
  const Native = window.WebSocket;
  const rerun = () => {
    const app = document.querySelector("[data-testid='stApp']");
    if (app && app.dataset.testScriptState === "running") return;
    document.dispatchEvent(new KeyboardEvent("keydown", {key: "r", code: "KeyR", keyCode: 82, which: 82,
                                                         bubbles: true}));
  };
  function Reconnecting(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("open", () => setTimeout(rerun, 500));
    return ws;
  }
  Reconnecting.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Reconnecting[name] = Native[name];
  window.WebSocket = Reconnecting;
})();</script>"""
