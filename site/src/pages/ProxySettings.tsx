// Account → Workspace Proxy: every region with its latency from this browser, and the choice.
import { latencyText } from "../App";
import { useProxy } from "../proxy";
import { useTitle } from "../ui";

export function ProxySettingsPage() {
  useTitle("Workspace proxy");
  const { regions, latencies, selected, choice, select, refresh, measuring, fallback } = useProxy();
  return (
    <main className="page narrow">
      <div className="page-head">
        <h1>Workspace proxy</h1>
        <button type="button" onClick={refresh} disabled={measuring}>
          {measuring ? "Measuring…" : "Refresh latencies"}
        </button>
      </div>
      <p className="muted">
        Workspace apps, port links and the web terminal open through the proxy chosen here; the dashboard and the API stay on the primary. The choice
        is kept in this browser.
        {choice?.auto && " The dashboard picked the lowest-latency region for you on your first visit."}
      </p>
      {fallback && <p className="error">{fallback}</p>}
      <fieldset className="regions">
        <legend>Regions</legend>
        {regions.map((region) => (
          <label key={region.id} className="region" data-testid={`region-${region.name}`}>
            <input type="radio" name="region" checked={selected?.id === region.id} onChange={() => select(region)} />
            <span className="region-name">
              {region.display_name || region.name}
              <span className="muted small">{region.path_app_url}</span>
            </span>
            <span className="latency" data-testid={`latency-${region.name}`}>
              {latencyText(latencies[region.id])}
            </span>
          </label>
        ))}
      </fieldset>
    </main>
  );
}
