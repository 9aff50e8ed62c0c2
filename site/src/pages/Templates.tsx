// Templates and their versions.
import { api, type Template, type TemplateVersion } from "../api";
import { Link } from "../router";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";

export async function templateByName(name: string): Promise<Template> {
  const templates = await api<Template[]>("/templates");
  const template = templates.find((t) => t.name === name);
  if (!template) throw new Error(`There is no template named "${name}".`);
  return template;
}

export function TemplatesPage() {
  useTitle("Templates");
  const { data, error } = usePolling(() => api<Template[]>("/templates"), 0);
  return (
    <main className="page">
      <div className="page-head">
        <h1>Templates</h1>
      </div>
      <ErrorBox error={error} />
      {!data && !error && <Loading what="templates" />}
      {data && data.length === 0 && (
        <div className="empty">
          <p>No templates yet. Push one with the CLI:</p>
          <pre>coder templates init my-template{"\n"}coder templates push my-template -d my-template</pre>
        </div>
      )}
      {data && data.length > 0 && (
        <ul className="cards">
          {data.map((template) => (
            <li key={template.id} className="card">
              <h2>
                <Link href={`/templates/${template.name}`}>{template.display_name || template.name}</Link>
              </h2>
              <p className="muted">{template.description || "No description."}</p>
              <div className="card-actions">
                <Link className="button primary" href={`/templates/${template.name}/workspace`} data-testid={`create-from-${template.name}`}>
                  Create workspace
                </Link>
                <span className="muted small">updated {timeAgo(template.updated_at)}</span>
              </div>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}

export function TemplatePage({ name }: { name: string }) {
  useTitle(`Template ${name}`);
  const { data, error } = usePolling(
    async () => {
      const template = await templateByName(name);
      const versions = await api<TemplateVersion[]>(`/templates/${template.id}/versions`);
      return { template, versions };
    },
    0,
    [name],
  );
  return (
    <main className="page">
      <p className="crumbs">
        <Link href="/templates">Templates</Link> /
      </p>
      <ErrorBox error={error} />
      {!data && !error && <Loading what="the template" />}
      {data && (
        <>
          <div className="page-head">
            <h1>{data.template.display_name || data.template.name}</h1>
            <Link className="button primary" href={`/templates/${name}/workspace`}>
              Create workspace
            </Link>
          </div>
          <p className="muted">{data.template.description}</p>
          <h2>Versions</h2>
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Version</th>
                  <th>Message</th>
                  <th>Import</th>
                  <th>Pushed</th>
                </tr>
              </thead>
              <tbody>
                {data.versions.map((version) => (
                  <tr key={version.id}>
                    <td>
                      {version.name}
                      {version.id === data.template.active_version_id && <span className="badge badge-ok">active</span>}
                    </td>
                    <td>{version.message || <span className="muted">–</span>}</td>
                    <td>
                      <Badge status={version.job.status} />
                      {version.job.error && <div className="error-text small">{version.job.error}</div>}
                    </td>
                    <td className="muted">
                      by {version.created_by.username}, {timeAgo(version.created_at)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </main>
  );
}
