// Create a workspace from a template, with the template's parameters.
import { useState, type FormEvent } from "react";
import { api, type TemplateVariable, type Workspace } from "../api";
import { Link, navigate } from "../router";
import { ErrorBox, Loading, usePolling, useTitle } from "../ui";
import { templateByName } from "./Templates";

function defaultText(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function CreateWorkspacePage({ template: name }: { template: string }) {
  useTitle(`New workspace from ${name}`);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const { data, error: loadError } = usePolling(
    async () => {
      const template = await templateByName(name);
      const variables = await api<TemplateVariable[]>(`/templateversions/${template.active_version_id}/variables`);
      return { template, variables };
    },
    0,
    [name],
  );
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (!data) return;
    const form = new FormData(event.currentTarget);
    const values = data.variables
      .map((variable) => ({ name: variable.name, value: String(form.get(`param-${variable.name}`) ?? "") }))
      .filter((parameter) => parameter.value !== "");
    setBusy(true);
    setError(null);
    try {
      const workspace = await api<Workspace>("/users/me/workspaces", {
        method: "POST",
        json: { name: form.get("name"), template_id: data.template.id, rich_parameter_values: values },
      });
      navigate(`/@${workspace.owner_name}/${workspace.name}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main className="page narrow">
      <p className="crumbs">
        <Link href="/templates">Templates</Link> / <Link href={`/templates/${name}`}>{name}</Link> /
      </p>
      <h1>New workspace</h1>
      <ErrorBox error={loadError} />
      {!data && !loadError && <Loading what="the template's parameters" />}
      {data && (
        <form className="stack" onSubmit={submit}>
          <label>
            Workspace name
            <input name="name" required pattern="[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*" maxLength={32} autoFocus data-testid="workspace-name" />
          </label>
          {data.variables.length > 0 && <h2>Parameters</h2>}
          {data.variables.map((variable) => (
            <label key={variable.name}>
              {variable.name}
              {variable.required && <span aria-hidden="true"> *</span>}
              {variable.description && <span className="muted small">{variable.description}</span>}
              <input
                name={`param-${variable.name}`}
                type={variable.sensitive ? "password" : "text"}
                required={variable.required}
                defaultValue={defaultText(variable.default_value)}
                data-testid={`param-${variable.name}`}
              />
            </label>
          ))}
          <ErrorBox error={error} />
          <div>
            <button className="primary" type="submit" disabled={busy}>
              {busy ? "Creating…" : "Create workspace"}
            </button>
          </div>
        </form>
      )}
    </main>
  );
}
