// The shell: who is signed in, the top bar (navigation, proxy picker, account menu) and the
// page for the current path.
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { api, type User } from "./api";
import { Link, match, navigate, usePath } from "./router";
import { ProxyProvider, useProxy } from "./proxy";
import { ErrorBox, Loading } from "./ui";
import { SetupPage } from "./pages/Setup";
import { WorkspacesPage } from "./pages/Workspaces";
import { WorkspacePage } from "./pages/Workspace";
import { TerminalPage } from "./pages/Terminal";
import { CreateWorkspacePage } from "./pages/CreateWorkspace";
import { TemplatesPage, TemplatePage } from "./pages/Templates";
import { UsersPage } from "./pages/Users";
import { ProxiesPage } from "./pages/Proxies";
import { ProxySettingsPage } from "./pages/ProxySettings";
import { HealthPage } from "./pages/Health";

const Me = createContext<User | null>(null);

export function useMe(): User {
  return useContext(Me)!;
}

export function isOwner(user: User): boolean {
  return user.roles.some((role) => role.name === "owner");
}

export function App() {
  const path = usePath();
  if (path === "/setup") return <SetupPage />;
  return <SignedIn />;
}

function SignedIn() {
  const [me, setMe] = useState<User | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<User>("/users/me").then(setMe, setError);
  }, []);
  if (error) {
    return (
      <main className="page">
        <ErrorBox error={error} />
      </main>
    );
  }
  if (!me) return <Loading what="your account" />;
  return (
    <Me.Provider value={me}>
      <ProxyProvider>
        <Shell>
          <Routes />
        </Shell>
      </ProxyProvider>
    </Me.Provider>
  );
}

function Routes() {
  const path = usePath();
  const me = useMe();
  let params: Record<string, string> | null;
  if (path === "/") return <Redirect to="/workspaces" />;
  if (path === "/workspaces") return <WorkspacesPage />;
  if (path === "/templates") return <TemplatesPage />;
  if ((params = match("/templates/:name/workspace", path))) return <CreateWorkspacePage template={params.name} />;
  if ((params = match("/templates/:name", path))) return <TemplatePage name={params.name} />;
  if ((params = match("/@:user/:workspace/terminal", path))) return <TerminalPage owner={params.user} target={params.workspace} />;
  if ((params = match("/@:user/:workspace", path))) return <WorkspacePage owner={params.user} name={params.workspace} />;
  if (path === "/settings/workspace-proxies") return <ProxySettingsPage />;
  if (isOwner(me)) {
    if (path === "/users") return <UsersPage />;
    if (path === "/deployment/workspace-proxies") return <ProxiesPage />;
    if (path === "/health") return <HealthPage />;
  }
  return (
    <main className="page">
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. <Link href="/workspaces">Go to your workspaces</Link>.
      </p>
    </main>
  );
}

/** Replaces the current history entry with `to` (after rendering, as React requires). */
function Redirect({ to }: { to: string }) {
  useEffect(() => navigate(to, true), [to]);
  return null;
}

function Shell({ children }: { children: ReactNode }) {
  const me = useMe();
  const path = usePath();
  const { fallback } = useProxy();
  const nav = [
    ["/workspaces", "Workspaces"],
    ["/templates", "Templates"],
    ...(isOwner(me)
      ? [
          ["/users", "Users"],
          ["/deployment/workspace-proxies", "Workspace proxies"],
          ["/health", "Health"],
        ]
      : []),
  ];
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/workspaces" className="brand" aria-label="Coder home">
          Coder
        </Link>
        <nav aria-label="Main">
          {nav.map(([href, label]) => (
            <Link key={href} href={href} aria-current={path.startsWith(href) ? "page" : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <div className="topbar-end">
          <ProxyMenu />
          <AccountMenu />
        </div>
      </header>
      {fallback && (
        <div className="banner" role="status" data-testid="proxy-fallback">
          {fallback}
        </div>
      )}
      <div id="main">{children}</div>
    </>
  );
}

/** A menu button whose list closes on Escape, on a click outside, or on choosing. */
function Menu({ label, testid, children }: { label: ReactNode; testid: string; children: (close: () => void) => ReactNode }) {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const onClick = (event: MouseEvent) => {
      if (!root.current?.contains(event.target as Node)) setOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") setOpen(false);
    };
    document.addEventListener("mousedown", onClick);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("mousedown", onClick);
      document.removeEventListener("keydown", onKey);
    };
  }, [open]);
  return (
    <div className="menu" ref={root}>
      <button type="button" aria-haspopup="true" aria-expanded={open} onClick={() => setOpen(!open)} data-testid={testid}>
        {label}
      </button>
      {open && <div className="menu-list">{children(() => setOpen(false))}</div>}
    </div>
  );
}

export function latencyText(latency: { ms: number } | { error: string } | undefined): string {
  if (!latency) return "…";
  return "ms" in latency ? `${Math.round(latency.ms)} ms` : latency.error;
}

function ProxyMenu() {
  const { regions, latencies, selected, select, refresh, measuring } = useProxy();
  const label = selected ? (
    <>
      <span className="muted">Proxy:</span> {selected.display_name || selected.name}{" "}
      <span className="latency">{latencyText(latencies[selected.id])}</span>
    </>
  ) : (
    "Proxy"
  );
  return (
    <Menu label={label} testid="proxy-menu">
      {(close) => (
        <>
          <div className="menu-heading">Workspace proxy</div>
          {regions.map((region) => (
            <button
              key={region.id}
              type="button"
              role="menuitemradio"
              aria-checked={selected?.id === region.id}
              data-testid={`proxy-option-${region.name}`}
              onClick={() => {
                select(region);
                close();
              }}
            >
              <span>{region.display_name || region.name}</span>
              <span className="latency">{latencyText(latencies[region.id])}</span>
            </button>
          ))}
          <hr />
          <button type="button" onClick={refresh} disabled={measuring}>
            {measuring ? "Measuring…" : "Refresh latencies"}
          </button>
          <Link href="/settings/workspace-proxies" onClick={close}>
            Proxy settings
          </Link>
        </>
      )}
    </Menu>
  );
}

function AccountMenu() {
  const me = useMe();
  const signOut = async () => {
    await api("/users/logout", { method: "POST" }).catch(() => undefined);
    location.assign("/login");
  };
  return (
    <Menu label={me.username} testid="account-menu">
      {(close) => (
        <>
          <div className="menu-heading">{me.email}</div>
          <Link href="/settings/workspace-proxies" onClick={close}>
            Account → Workspace Proxy
          </Link>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </>
      )}
    </Menu>
  );
}
