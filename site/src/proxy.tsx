// The workspace-proxy choice: which region's URLs apps and the terminal open through.
//
// Regions come from /api/v2/regions (the primary and the healthy proxies). Each is probed from
// this browser at its /latency-check. On a first visit the dashboard picks the lowest-latency
// region by itself and keeps that until the user picks another or it fails; a chosen region
// that stops answering (or leaves the list) makes everything use the primary, with a notice,
// until it is back.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api, type Region } from "./api";

const STORAGE_KEY = "coder.workspace-proxy";
/** How often the choice is re-checked: well inside the seeds' 60 s fallback. */
const RECHECK_MS = 5_000;
const PROBES = 3;
const PROBE_TIMEOUT_MS = 3_000;

export type Latency = { ms: number } | { error: string };

interface Choice {
  id: string;
  /** Its display name, to name it when it has left the list. */
  name?: string;
  /** Picked by the dashboard (lowest latency), not by the user. */
  auto: boolean;
}

export interface ProxyContext {
  regions: Region[];
  latencies: Record<string, Latency>;
  measuring: boolean;
  /** The region URLs are built from: the choice when usable, else the primary. */
  selected: Region | null;
  choice: Choice | null;
  /** Why the choice is not in use, when it is not. */
  fallback: string | null;
  select(region: Region): void;
  refresh(): void;
}

const Context = createContext<ProxyContext | null>(null);

export function useProxy(): ProxyContext {
  const context = useContext(Context);
  if (!context) throw new Error("useProxy outside ProxyProvider");
  return context;
}

function loadChoice(): Choice | null {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    if (stored && typeof stored.id === "string") return { id: stored.id, name: String(stored.name ?? ""), auto: Boolean(stored.auto) };
  } catch {
    /* a damaged entry is no choice */
  }
  return null;
}

function saveChoice(choice: Choice | null) {
  if (choice) localStorage.setItem(STORAGE_KEY, JSON.stringify(choice));
  else localStorage.removeItem(STORAGE_KEY);
}

async function probeOnce(region: Region): Promise<number> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  const started = performance.now();
  try {
    const response = await fetch(`${region.path_app_url.replace(/\/$/, "")}/latency-check`, {
      cache: "no-store",
      mode: "cors",
      credentials: "omit",
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(`answered ${response.status}`);
    await response.arrayBuffer();
    return performance.now() - started;
  } finally {
    clearTimeout(timer);
  }
}

/** The best of a few round trips (the first one also pays for the connection). */
export async function probe(region: Region, count = PROBES): Promise<Latency> {
  let best = Infinity;
  for (let i = 0; i < count; i++) {
    try {
      best = Math.min(best, await probeOnce(region));
    } catch (error) {
      if (i === count - 1 && best === Infinity) {
        const reason = error instanceof DOMException && error.name === "AbortError" ? "no answer within 3 s" : "not reachable";
        return { error: reason };
      }
    }
  }
  return { ms: Math.round(best * 10) / 10 };
}

export function ProxyProvider({ children }: { children: ReactNode }) {
  const [regions, setRegions] = useState<Region[]>([]);
  const [latencies, setLatencies] = useState<Record<string, Latency>>({});
  const [measuring, setMeasuring] = useState(false);
  const [choice, setChoice] = useState<Choice | null>(loadChoice);
  const [choiceDown, setChoiceDown] = useState<string | null>(null);
  const choiceRef = useRef(choice);
  choiceRef.current = choice;

  const measure = useCallback(async (list: Region[]) => {
    setMeasuring(true);
    const results = await Promise.all(list.map(async (region) => [region.id, await probe(region)] as const));
    const measured = Object.fromEntries(results);
    setLatencies(measured);
    setMeasuring(false);
    // First visit: take the nearest region that answered, and remember that we chose it.
    if (!choiceRef.current) {
      const best = list
        .filter((region) => "ms" in measured[region.id])
        .sort((a, b) => (measured[a.id] as { ms: number }).ms - (measured[b.id] as { ms: number }).ms)[0];
      if (best) {
        const picked = { id: best.id, name: best.display_name || best.name, auto: true };
        saveChoice(picked);
        setChoice(picked);
      }
    }
  }, []);

  const loadRegions = useCallback(async () => {
    const { regions } = await api<{ regions: Region[] }>("/regions");
    setRegions(regions);
    return regions;
  }, []);

  const refresh = useCallback(() => {
    loadRegions()
      .then(measure)
      .catch(() => undefined);
  }, [loadRegions, measure]);

  useEffect(refresh, [refresh]);

  // Keep checking the chosen region: listed as healthy by the primary and answering here.
  useEffect(() => {
    let stopped = false;
    const check = async () => {
      const current = choiceRef.current;
      let list: Region[];
      try {
        list = await loadRegions();
      } catch {
        return; // the primary itself is away: nothing to decide
      }
      if (stopped || !current) {
        setChoiceDown(null);
        return;
      }
      const region = list.find((r) => r.id === current.id);
      let reason: string | null = null;
      if (!region) reason = "it is no longer listed as healthy";
      else if (region.name !== "primary") {
        const latency = await probe(region, 1);
        if ("error" in latency) reason = `its latency check failed (${latency.error})`;
        else setLatencies((previous) => ({ ...previous, [region.id]: latency }));
      }
      if (stopped) return;
      setChoiceDown(reason);
      // An automatic pick that failed is dropped: the next visit picks again.
      if (reason && current.auto) {
        saveChoice(null);
      }
    };
    const timer = setInterval(check, RECHECK_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [loadRegions]);

  const select = useCallback((region: Region) => {
    const picked = { id: region.id, name: region.display_name || region.name, auto: false };
    saveChoice(picked);
    setChoice(picked);
    setChoiceDown(null);
  }, []);

  const value = useMemo<ProxyContext>(() => {
    const primary = regions.find((r) => r.name === "primary") ?? null;
    const chosen = choice ? regions.find((r) => r.id === choice.id) : undefined;
    const usable = chosen && !choiceDown;
    let fallback: string | null = null;
    if (choice && !usable && regions.length > 0 && choice.id !== primary?.id) {
      const name = chosen?.display_name || chosen?.name || choice.name || "The chosen workspace proxy";
      fallback = `${name} is unavailable (${choiceDown ?? "it is no longer listed as healthy"}); using the primary until it is back.`;
    }
    return {
      regions,
      latencies,
      measuring,
      selected: usable ? chosen! : primary,
      choice,
      fallback,
      select,
      refresh,
    };
  }, [regions, latencies, measuring, choice, choiceDown, select, refresh]);

  return <Context.Provider value={value}>{children}</Context.Provider>;
}

/** The host an app or port is served at through `region`, or null without a wildcard host. */
export function subdomainUrl(region: Region, label: string): string | null {
  if (!region.wildcard_hostname) return null;
  const base = new URL(region.path_app_url);
  let host = region.wildcard_hostname.replace("*", label);
  if (!host.includes(":") && base.port) host += `:${base.port}`;
  return `${base.protocol}//${host}/`;
}

export function pathAppUrl(region: Region, owner: string, workspace: string, agent: string, slug: string): string {
  return `${region.path_app_url.replace(/\/$/, "")}/@${owner}/${workspace}.${agent}/apps/${encodeURIComponent(slug)}/`;
}
