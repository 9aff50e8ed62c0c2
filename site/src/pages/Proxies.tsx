// Workspace proxies (owners): status, URL, the error behind an unhealthy status, last check.
import { api, type WorkspaceProxy } from "../api";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";

export function ProxiesPage() {
  useTitle("Workspace proxies");
  const { data, error } = usePolling(() => api<WorkspaceProxy[]>("/workspaceproxies"), 5_000);
  return (
    <main className="page">
      <div className="page-head">
        <h1>Workspace proxies</h1>
      </div>
      <p className="muted">
        Create one with <code>coder wsproxy create --name=NAME</code>, then run <code>coder wsproxy server</code> in its region.
      </p>
      <ErrorBox error={error} />
      {!data && !error && <Loading what="workspace proxies" />}
      {data && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Name</th>
                <th>URL</th>
                <th>Status</th>
                <th>Last check</th>
                <th>Version</th>
              </tr>
            </thead>
            <tbody>
              {data.map((proxy) => {
                const problems = [...proxy.status.report.errors, ...proxy.status.report.warnings];
                return (
                  <tr key={proxy.id} data-testid={`proxy-row-${proxy.name}`}>
                    <td>
                      {proxy.display_name || proxy.name}
                      <div className="muted small">{proxy.name}</div>
                    </td>
                    <td>{proxy.path_app_url ? <a href={proxy.path_app_url}>{proxy.path_app_url}</a> : <span className="muted">not deployed</span>}</td>
                    <td>
                      <Badge status={proxy.status.status} />
                      {problems.map((problem) => (
                        <div key={problem} className={proxy.status.report.errors.includes(problem) ? "error-text small" : "muted small"}>
                          {problem}
                        </div>
                      ))}
                    </td>
                    <td className="muted">{timeAgo(proxy.status.checked_at)}</td>
                    <td className="muted">{proxy.version || "–"}</td>
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
