// A small history-API router: the dashboard has a handful of routes, matched in order.
import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from "react";

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  listeners.forEach((notify) => notify());
  window.scrollTo(0, 0);
}

window.addEventListener("popstate", () => listeners.forEach((notify) => notify()));

/** The current path; re-renders on navigation. */
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const notify = () => setPath(location.pathname);
    listeners.add(notify);
    return () => {
      listeners.delete(notify);
    };
  }, []);
  return path;
}

/** Matches `/@:user/:workspace` style patterns; returns the named parts or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = decodeURIComponent(got[i]);
    if (w.startsWith("@:") && g.startsWith("@")) params[w.slice(2)] = g.slice(1);
    else if (w.startsWith(":")) params[w.slice(1)] = g;
    else if (w !== g) return null;
  }
  return params;
}

/** An in-app link: a real <a href> (open in new tab, keyboard) that navigates without reload. */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    props.onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(props.href);
  };
  return <a {...props} onClick={onClick} />;
}
