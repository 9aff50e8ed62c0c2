// Deployment health (owners): the server's own checks, refreshed while the page is open.
import { api } from "../api";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";

interface Check {
  healthy: boolean;
  summary: string;
  error: string;
  warnings: string[];
}

interface HealthReport {
  healthy: boolean;
  checked_at: string;
  version: string;
  checks: Record<string, Check>;
}

const NAMES: Record<string, string> = {
  database: "Database",
  access_url: "Access URL",
  relay: "Relay (DERP)",
  workspace_proxy: "Workspace proxies",
  provisioners: "Provisioners",
};

export function HealthPage() {
  useTitle("Health");
  const { data, error } = usePolling(() => api<HealthReport>("/debug/health"), 10_000);
  return (
    <main className="page">
      <div className="page-head">
        <h1>Deployment health {data && <Badge status={data.healthy ? "healthy" : "unhealthy"} />}</h1>
        {data && (
          <span className="muted small">
            version {data.version} · checked {timeAgo(data.checked_at)}
          </span>
        )}
      </div>
      <ErrorBox error={error} />
      {!data && !error && <Loading what="the health report" />}
      {data && (
        <ul className="cards">
          {Object.entries(data.checks).map(([key, check]) => (
            <li key={key} className="card" data-testid={`health-${key}`}>
              <h2>
                {NAMES[key] ?? key} <Badge status={check.healthy ? "healthy" : "unhealthy"} />
              </h2>
              <p>{check.summary}</p>
              {check.error && <p className="error-text">{check.error}</p>}
              {check.warnings.map((warning) => (
                <p key={warning} className="muted small">
                  ⚠ {warning}
                </p>
              ))}
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}
