// Workspaces: every workspace the user can see, with live status (polled, no reload needed).
import { api, type Workspace } from "../api";
import { Link } from "../router";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";

const POLL_MS = 3_000;

export function agentSummary(workspace: Workspace): { status: string; label: string } | null {
  const agents = workspace.latest_build.agents;
  if (workspace.latest_build.status !== "running" || agents.length === 0) return null;
  const bad = agents.find((a) => a.status !== "connected");
  if (bad) return { status: bad.status, label: `agent ${bad.status}` };
  const starting = agents.find((a) => a.lifecycle_state !== "ready");
  if (starting) return { status: starting.lifecycle_state, label: `agent ${starting.lifecycle_state.replace(/_/g, " ")}` };
  return { status: "healthy", label: "healthy" };
}

export function WorkspacesPage() {
  useTitle("Workspaces");
  const { data, error } = usePolling(() => api<{ workspaces: Workspace[] }>("/workspaces"), POLL_MS);
  return (
    <main className="page">
      <div className="page-head">
        <h1>Workspaces</h1>
        <Link className="button primary" href="/templates">
          New workspace
        </Link>
      </div>
      <ErrorBox error={error} />
      {!data && !error && <Loading what="workspaces" />}
      {data && data.workspaces.length === 0 && (
        <div className="empty">
          <p>No workspaces yet.</p>
          <p>
            <Link href="/templates">Pick a template</Link> to create one, or run <code>coder create</code>.
          </p>
        </div>
      )}
      {data && data.workspaces.length > 0 && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Template</th>
                <th>Status</th>
                <th>Agent</th>
                <th>Last build</th>
              </tr>
            </thead>
            <tbody>
              {data.workspaces.map((workspace) => {
                const agent = agentSummary(workspace);
                return (
                  <tr key={workspace.id} data-testid={`workspace-row-${workspace.name}`}>
                    <td>
                      <Link href={`/@${workspace.owner_name}/${workspace.name}`}>{workspace.name}</Link>
                      <div className="muted small">{workspace.owner_name}</div>
                    </td>
                    <td>
                      {workspace.template_name}
                      {workspace.outdated && <span className="muted small"> (outdated)</span>}
                    </td>
                    <td>
                      <Badge status={workspace.latest_build.status} />
                    </td>
                    <td>{agent ? <Badge status={agent.status} label={agent.label} /> : <span className="muted">–</span>}</td>
                    <td className="muted">
                      {workspace.latest_build.transition} by {workspace.latest_build.initiator_name}, {timeAgo(workspace.latest_build.created_at)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
