// One workspace: actions, the latest build's log (live), its agents with their lifecycle and
// startup log, app links through the selected proxy, listening ports, and how to SSH in.
import { useEffect, useRef, useState } from "react";
import { api, ApiError, type Agent, type AgentLog, type Build, type JobLog, type ListeningPort, type Workspace } from "../api";
import { Link, navigate } from "../router";
import { pathAppUrl, subdomainUrl, useProxy } from "../proxy";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";
import { agentSummary } from "./Workspaces";

const POLL_MS = 2_000;
const BUSY = new Set(["pending", "starting", "stopping", "deleting", "canceling"]);

export function WorkspacePage({ owner, name }: { owner: string; name: string }) {
  useTitle(name);
  const { data: workspace, error, reload } = usePolling(
    () => api<Workspace>(`/users/${encodeURIComponent(owner)}/workspace/${encodeURIComponent(name)}`),
    POLL_MS,
    [owner, name],
  );
  const [actionError, setActionError] = useState<unknown>(null);
  const [pending, setPending] = useState<string | null>(null);

  // A deleted workspace no longer resolves by name: back to the list.
  const deleted = workspace?.latest_build.status === "deleted";
  useEffect(() => {
    if (deleted || (error instanceof ApiError && error.status === 404 && pending === "delete")) navigate("/workspaces", true);
  }, [error, pending, deleted]);

  const build = async (transition: "start" | "stop" | "delete") => {
    if (!workspace) return;
    await api(`/workspaces/${workspace.id}/builds`, { method: "POST", json: { transition } });
  };
  const act = async (action: string, run: () => Promise<void>) => {
    setPending(action);
    setActionError(null);
    try {
      await run();
      await reload();
    } catch (err) {
      setActionError(err);
    } finally {
      if (action !== "delete") setPending(null);
    }
  };
  const restart = async () => {
    if (!workspace) return;
    await build("stop");
    // Wait for the stop build to finish before starting again.
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const current = await api<Workspace>(`/workspaces/${workspace.id}`);
      if (current.latest_build.status === "stopped") break;
      if (!BUSY.has(current.latest_build.status)) throw new Error(`The stop build ended ${current.latest_build.status}; not starting again.`);
    }
    await build("start");
  };
  const remove = async () => {
    if (!workspace) return;
    const typed = prompt(`Delete workspace "${workspace.name}"? Its resources are destroyed. Type its name to confirm.`);
    if (typed !== workspace.name) return;
    await act("delete", () => build("delete"));
  };

  if (error && !workspace) {
    return (
      <main className="page">
        <ErrorBox error={error} />
      </main>
    );
  }
  if (!workspace) return <Loading what="the workspace" />;
  const latest = workspace.latest_build;
  const status = latest.status;
  const busy = BUSY.has(status) || pending !== null;
  const summary = agentSummary(workspace);
  return (
    <main className="page">
      <p className="crumbs">
        <Link href="/workspaces">Workspaces</Link> / {workspace.owner_name} /
      </p>
      <div className="page-head">
        <h1>
          {workspace.name} <Badge status={status} />
          {summary && <Badge status={summary.status} label={summary.label} />}
        </h1>
        <div className="actions" role="group" aria-label="Workspace actions">
          {(status === "stopped" || status === "failed" || status === "canceled") && (
            <button type="button" className="primary" disabled={busy} onClick={() => act("start", () => build("start"))}>
              Start
            </button>
          )}
          {status === "running" && (
            <>
              <button type="button" disabled={busy} onClick={() => act("stop", () => build("stop"))}>
                Stop
              </button>
              <button type="button" disabled={busy} onClick={() => act("restart", restart)}>
                Restart
              </button>
            </>
          )}
          {BUSY.has(status) && status !== "canceling" && status !== "deleting" && (
            <button type="button" onClick={() => act("cancel", async () => void (await api(`/workspacebuilds/${latest.id}/cancel`, { method: "PATCH" })))}>
              Cancel build
            </button>
          )}
          <button type="button" className="danger" disabled={busy} onClick={remove}>
            Delete
          </button>
        </div>
      </div>
      <p className="muted">
        Template {workspace.template_name}
        {workspace.outdated && " (a newer version is active)"} · build #{latest.build_number} ({latest.transition}) by {latest.initiator_name},{" "}
        {timeAgo(latest.created_at)}
      </p>
      <ErrorBox error={actionError} />
      {pending && <p className="muted">{pending === "restart" ? "Restarting: stopping first…" : `Requested: ${pending}.`}</p>}
      {latest.job.error && <div className="error">The build failed: {latest.job.error}</div>}

      {status === "running" &&
        latest.agents.map((agent) => <AgentPanel key={agent.id} workspace={workspace} agent={agent} />)}

      <BuildLog build={latest} />
    </main>
  );
}

function BuildLog({ build }: { build: Build }) {
  const [logs, setLogs] = useState<JobLog[]>([]);
  const [state, setState] = useState<"streaming" | "done" | "error">("streaming");
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setLogs([]);
    setState("streaming");
    const source = new EventSource(`/api/v2/workspacebuilds/${build.id}/logs?follow=true`);
    source.addEventListener("log", (event) => {
      const lines = JSON.parse((event as MessageEvent).data) as JobLog[];
      setLogs((previous) => [...previous, ...lines]);
    });
    source.addEventListener("end", () => {
      setState("done");
      source.close();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) setState("error");
    });
    return () => source.close();
  }, [build.id]);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [logs]);
  let lastStage = "";
  return (
    <section aria-labelledby="build-log">
      <h2 id="build-log">
        Build log {state === "streaming" && <span className="muted small">(live)</span>}
      </h2>
      {state === "error" && <div className="error">The build log stream was interrupted; reload to resume.</div>}
      <pre className="log" ref={box} data-testid="build-log" tabIndex={0}>
        {logs.length === 0 && <span className="muted">Waiting for output…</span>}
        {logs.map((line) => {
          const heading = line.stage !== lastStage ? line.stage : null;
          lastStage = line.stage;
          return (
            <span key={line.id}>
              {heading && <strong className="stage">== {heading}{"\n"}</strong>}
              <span className={line.log_level === "error" ? "error-text" : undefined}>{line.output}</span>
              {"\n"}
            </span>
          );
        })}
      </pre>
    </section>
  );
}

const FINAL_LIFECYCLE = new Set(["ready", "start_error", "start_timeout", "off", "shutdown_error"]);

function AgentPanel({ workspace, agent }: { workspace: Workspace; agent: Agent }) {
  const { selected } = useProxy();
  const settled = FINAL_LIFECYCLE.has(agent.lifecycle_state);
  const { data: logs } = usePolling(() => api<AgentLog[]>(`/workspaceagents/${agent.id}/logs`), settled ? 0 : POLL_MS, [agent.id, settled]);
  const connected = agent.status === "connected";
  const { data: ports } = usePolling(
    () => (connected ? api<{ ports: ListeningPort[] }>(`/workspaceagents/${agent.id}/listening-ports`) : Promise.resolve({ ports: [] })),
    connected ? 5_000 : 0,
    [agent.id, connected],
  );
  const owner = workspace.owner_name;
  const label = (slug: string) => `${slug}--${agent.name}--${workspace.name}--${owner}`;
  return (
    <section className="panel" aria-label={`Agent ${agent.name}`} data-testid={`agent-${agent.name}`}>
      <div className="panel-head">
        <h2>
          Agent {agent.name} <Badge status={agent.status} /> <Badge status={agent.lifecycle_state} label={agent.lifecycle_state.replace(/_/g, " ")} />
        </h2>
        <span className="muted small">
          {agent.version && `v${agent.version} · `}
          {agent.last_connection_path ? `last connection ${agent.last_connection_path}` : "no connections yet"}
        </span>
      </div>

      <div className="grid2">
        <div>
          <h3>Apps</h3>
          <ul className="links">
            <li>
              <a href={`/@${owner}/${workspace.name}.${agent.name}/terminal`} target="_blank" rel="noreferrer" data-testid="open-terminal">
                Terminal
              </a>
            </li>
            {agent.apps.map((app) => {
              const href = !selected
                ? null
                : app.subdomain
                  ? subdomainUrl(selected, label(app.slug))
                  : pathAppUrl(selected, owner, workspace.name, agent.name, app.slug);
              return (
                <li key={app.slug}>
                  {href ? (
                    <a href={href} target="_blank" rel="noreferrer" data-testid={`app-${app.slug}`}>
                      {app.display_name || app.slug}
                    </a>
                  ) : (
                    <span title="Subdomain apps need a wildcard access URL on the selected proxy">{app.display_name || app.slug} (unavailable)</span>
                  )}{" "}
                  {/* Apps without a health check report "disabled": nothing worth showing. */}
                  {app.health !== "disabled" && <Badge status={app.health} />}
                </li>
              );
            })}
          </ul>
          {selected && <p className="muted small">Apps open through {selected.display_name || selected.name}.</p>}
        </div>
        <div>
          <h3>Listening ports</h3>
          {!connected && <p className="muted">The agent is not connected.</p>}
          {connected && ports && ports.ports.length === 0 && <p className="muted">No TCP ports are listening.</p>}
          <ul className="links">
            {ports?.ports.map((port) => {
              const href = selected ? subdomainUrl(selected, label(String(port.port))) : null;
              return (
                <li key={`${port.network}-${port.port}`}>
                  {href ? (
                    <a href={href} target="_blank" rel="noreferrer">
                      {port.port}
                    </a>
                  ) : (
                    <span>{port.port}</span>
                  )}{" "}
                  <span className="muted small">{port.process_name}</span>
                </li>
              );
            })}
          </ul>
          {ports && ports.ports.length > 0 && selected && !selected.wildcard_hostname && (
            <p className="muted small">Port links need a wildcard access URL; use <code>coder port-forward</code> meanwhile.</p>
          )}
        </div>
      </div>

      <h3>Connect with SSH</h3>
      <pre className="hint">
        coder ssh {workspace.name}
        {"\n"}# or, for OpenSSH, scp, rsync and IDEs:{"\n"}coder config-ssh{"\n"}ssh coder.{workspace.name}
      </pre>

      <h3>Startup log</h3>
      <pre className="log" data-testid="agent-log" tabIndex={0}>
        {!logs && <span className="muted">Loading…</span>}
        {logs && logs.length === 0 && <span className="muted">No output yet.</span>}
        {logs?.map((line) => (
          <span key={line.id}>
            {line.output}
            {"\n"}
          </span>
        ))}
      </pre>
    </section>
  );
}
