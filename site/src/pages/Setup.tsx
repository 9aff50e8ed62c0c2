// First-user setup: the first account becomes the deployment's owner.
import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError } from "../api";
import { ErrorBox, useTitle } from "../ui";

export function SetupPage() {
  useTitle("Set up Coder");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    // Someone already set this deployment up: sign in instead.
    api("/users/first").then(
      () => location.replace("/login"),
      (err) => {
        if (!(err instanceof ApiError && err.status === 404)) setError(err);
      },
    );
  }, []);
  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const email = String(form.get("email"));
    const password = String(form.get("password"));
    setBusy(true);
    setError(null);
    try {
      await api("/users/first", {
        method: "POST",
        json: { username: form.get("username"), email, password, name: form.get("name") ?? "" },
      });
      await api("/users/login", { method: "POST", json: { email, password } });
      location.assign("/workspaces");
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main className="auth">
      <form className="card" onSubmit={submit}>
        <h1>Welcome to Coder</h1>
        <p className="muted">Create the first user: it owns this deployment.</p>
        <label>
          Username
          <input name="username" autoComplete="username" required pattern="[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*" autoFocus />
        </label>
        <label>
          Email
          <input name="email" type="email" autoComplete="email" required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="new-password" required minLength={8} />
        </label>
        <ErrorBox error={error} />
        <button className="primary" type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create account"}
        </button>
      </form>
    </main>
  );
}
