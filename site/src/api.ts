// The API client: same-origin fetches with the session cookie. Errors become ApiError with the
// server's own message, so pages show words, never raw JSON.

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly detail = "",
    readonly validations: { field: string; detail: string }[] = [],
  ) {
    super(message);
  }
}

/** Sends the browser to the sign-in form, coming back here afterwards. */
export function signIn(): never {
  const back = location.pathname + location.search;
  location.assign(`/login?redirect=${encodeURIComponent(back)}`);
  throw new ApiError("Signing in…", 401);
}

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(init.json);
  }
  let response: Response;
  try {
    response = await fetch(`/api/v2${path}`, { ...init, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError("The Coder server cannot be reached. Check your connection.", 0);
  }
  if (response.status === 401 && !path.startsWith("/users/login")) {
    signIn();
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!response.ok) {
    const error = (parsed ?? {}) as { message?: string; detail?: string; validations?: { field: string; detail: string }[] };
    throw new ApiError(
      error.message || `The server answered ${response.status} ${response.statusText}.`,
      response.status,
      error.detail ?? "",
      error.validations ?? [],
    );
  }
  return parsed as T;
}

/** Readable text for any thrown value. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) {
    const validations = error.validations.map((v) => `${v.field}: ${v.detail}`).join("; ");
    return [error.message, error.detail, validations].filter(Boolean).join(" ");
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

export interface User {
  id: string;
  username: string;
  name: string;
  email: string;
  status: "active" | "suspended" | "dormant";
  roles: { name: string; display_name: string }[];
  created_at: string;
  last_seen_at: string | null;
}

export interface ProvisionerJob {
  id: string;
  status: string;
  error: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface JobLog {
  id: number;
  created_at: string;
  log_level: string;
  stage: string;
  output: string;
}

export interface App {
  slug: string;
  display_name: string;
  url: string;
  command: string;
  subdomain: boolean;
  share: string;
  health: string;
}

export interface Agent {
  id: string;
  name: string;
  status: "connecting" | "connected" | "disconnected" | "timeout";
  lifecycle_state: string;
  directory: string;
  apps: App[];
  version: string;
  last_connection_path: string;
  first_connected_at: string | null;
}

export interface Build {
  id: string;
  build_number: number;
  transition: "start" | "stop" | "delete";
  status: string;
  initiator_name: string;
  created_at: string;
  job: ProvisionerJob;
  agents: Agent[];
  parameters: { name: string; value: string }[];
}

export interface Workspace {
  id: string;
  name: string;
  owner_name: string;
  template_name: string;
  template_id: string;
  outdated: boolean;
  created_at: string;
  latest_build: Build;
}

export interface Template {
  id: string;
  name: string;
  display_name: string;
  description: string;
  icon: string;
  active_version_id: string;
  created_by_name: string;
  created_at: string;
  updated_at: string;
}

export interface TemplateVersion {
  id: string;
  name: string;
  message: string;
  created_at: string;
  job: ProvisionerJob;
  created_by: { username: string };
}

export interface TemplateVariable {
  name: string;
  description: string;
  default_value: unknown;
  required: boolean;
  sensitive: boolean;
}

export interface Region {
  id: string;
  name: string;
  display_name: string;
  icon_url: string;
  healthy: boolean;
  path_app_url: string;
  wildcard_hostname: string;
}

export interface WorkspaceProxy extends Region {
  status: { status: string; report: { errors: string[]; warnings: string[] }; checked_at: string | null };
  derp_enabled: boolean;
  derp_only: boolean;
  version: string;
  created_at: string;
  updated_at: string;
}

export interface ListeningPort {
  process_name: string;
  network: string;
  port: number;
}

export interface AgentLog {
  id: number;
  created_at: string;
  source: string;
  level: string;
  output: string;
}
