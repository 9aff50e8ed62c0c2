// Small shared pieces: loading and error states, status badges, polling, relative times.
import { useCallback, useEffect, useRef, useState } from "react";
import { describe } from "./api";

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      {describe(error)}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" aria-busy="true">
      Loading {what}…
    </p>
  );
}

const TONES: Record<string, string> = {
  running: "ok",
  ok: "ok",
  healthy: "ok",
  connected: "ok",
  ready: "ok",
  succeeded: "ok",
  active: "ok",
  starting: "busy",
  stopping: "busy",
  deleting: "busy",
  pending: "busy",
  initializing: "busy",
  connecting: "busy",
  running_job: "busy",
  canceling: "busy",
  stopped: "idle",
  off: "idle",
  deleted: "idle",
  disabled: "idle",
  unregistered: "idle",
  suspended: "idle",
  canceled: "idle",
  failed: "bad",
  unhealthy: "bad",
  unreachable: "bad",
  disconnected: "bad",
  timeout: "bad",
  start_error: "bad",
  start_timeout: "bad",
  shutdown_error: "bad",
};

export function Badge({ status, label }: { status: string; label?: string }) {
  const tone = TONES[status] ?? "idle";
  return <span className={`badge badge-${tone}`}>{label ?? status.replace(/_/g, " ")}</span>;
}

/** Loads `load()` now and every `everyMs`; keeps the last good value through errors. */
export function usePolling<T>(load: () => Promise<T>, everyMs: number, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const loadRef = useRef(load);
  loadRef.current = load;
  const reload = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    setData(null);
    void reload();
    if (!everyMs) return;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [everyMs, reload, ...deps]);
  return { data, error, reload };
}

export function timeAgo(when: string | null | undefined): string {
  if (!when) return "never";
  const seconds = Math.round((Date.now() - new Date(when).getTime()) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} seconds ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? "" : "s"} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} hour${hours === 1 ? "" : "s"} ago`;
  return new Date(when).toLocaleDateString();
}

export function useTitle(title: string) {
  useEffect(() => {
    document.title = `${title} – Coder`;
  }, [title]);
}
