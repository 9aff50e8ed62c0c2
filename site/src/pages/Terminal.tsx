// The web terminal: xterm.js over the agent's reconnecting PTY, through the selected proxy.
// The session id lives in the page's URL (?reconnect=), so a dropped socket or a reload
// re-attaches to the same session and replays its recent output.
import { useEffect, useRef, useState } from "react";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { api, describe, type Region, type Workspace } from "../api";
import { useProxy } from "../proxy";
import { ErrorBox, useTitle } from "../ui";

/** The query parameter a workspace proxy accepts a signed terminal token in. */
const SIGNED_TOKEN_PARAM = "coder_signed_app_token_23db1dde";

function sessionId(): string {
  const params = new URLSearchParams(location.search);
  let id = params.get("reconnect");
  if (!id) {
    id = crypto.randomUUID();
    params.set("reconnect", id);
    history.replaceState(null, "", `${location.pathname}?${params}`);
  }
  return id;
}

async function socketUrl(region: Region | null, agentId: string, reconnect: string, term: Terminal): Promise<string> {
  const query = new URLSearchParams({ reconnect, width: String(term.cols), height: String(term.rows) });
  const command = new URLSearchParams(location.search).get("command");
  if (command) query.set("command", command);
  const path = `/api/v2/workspaceagents/${agentId}/pty`;
  const primary = !region || region.name === "primary";
  const base = primary ? location.origin : region.path_app_url.replace(/\/$/, "");
  if (!primary) {
    // The proxy is another site: it cannot read our session cookie, so the primary signs a
    // short-lived token for this terminal.
    const { signed_token } = await api<{ signed_token: string }>("/applications/reconnecting-pty-signed-token", {
      method: "POST",
      json: { url: `${base}${path}`, agentID: agentId },
    });
    query.set(SIGNED_TOKEN_PARAM, signed_token);
  }
  return `${base.replace(/^http/, "ws")}${path}?${query}`;
}

export function TerminalPage({ owner, target }: { owner: string; target: string }) {
  const [workspaceName, agentName] = target.split(".", 2);
  useTitle(`Terminal · ${workspaceName}`);
  const { selected, regions } = useProxy();
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState("Connecting…");
  const [error, setError] = useState<unknown>(null);
  const ready = regions.length > 0;
  const regionRef = useRef(selected);
  regionRef.current = selected;

  useEffect(() => {
    if (!ready || !host.current) return;
    let disposed = false;
    let socket: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let attempts = 0;
    const term = new Terminal({ cursorBlink: true, fontFamily: "ui-monospace, Menlo, Consolas, monospace", fontSize: 14, scrollback: 10_000 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    fit.fit();
    term.focus();
    const reconnect = sessionId();
    const encoder = new TextEncoder();
    const send = (message: object) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(JSON.stringify(message)));
    };
    term.onData((data) => send({ data }));
    term.onResize(({ cols, rows }) => send({ height: rows, width: cols }));
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(host.current);

    const connect = async () => {
      let agentId: string;
      try {
        const workspace = await api<Workspace>(`/users/${encodeURIComponent(owner)}/workspace/${encodeURIComponent(workspaceName)}`);
        const agents = workspace.latest_build.agents;
        const agent = agentName ? agents.find((a) => a.name === agentName) : agents[0];
        if (!agent) throw new Error(agentName ? `The workspace has no agent named "${agentName}".` : "The workspace has no agent: is it running?");
        agentId = agent.id;
        const url = await socketUrl(regionRef.current, agentId, reconnect, term);
        if (disposed) return;
        socket = new WebSocket(url);
      } catch (err) {
        setError(err);
        scheduleRetry();
        return;
      }
      socket.binaryType = "arraybuffer";
      socket.onopen = () => {
        attempts = 0;
        setError(null);
        setStatus("Connected");
        send({ height: term.rows, width: term.cols });
      };
      socket.onmessage = (event) => {
        term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer));
      };
      socket.onclose = (event) => {
        if (disposed) return;
        setStatus(event.code === 1000 ? "The session ended." : "Disconnected: reconnecting…");
        if (event.code !== 1000) scheduleRetry();
      };
    };
    const scheduleRetry = () => {
      if (disposed) return;
      attempts += 1;
      setStatus(`Disconnected: reconnecting (attempt ${attempts})…`);
      retry = setTimeout(connect, Math.min(1_000 * attempts, 5_000));
    };
    void connect();
    return () => {
      disposed = true;
      clearTimeout(retry);
      observer.disconnect();
      socket?.close();
      term.dispose();
    };
  }, [ready, owner, workspaceName, agentName]);

  return (
    <main className="terminal-page">
      <div className="terminal-bar">
        <span>
          {owner}/{target}
        </span>
        <span className="muted" role="status" data-testid="terminal-status">
          {status}
          {selected && ` · via ${selected.display_name || selected.name}`}
        </span>
      </div>
      {error ? <ErrorBox error={describe(error)} /> : null}
      <div className="terminal" ref={host} data-testid="terminal" />
    </main>
  );
}
