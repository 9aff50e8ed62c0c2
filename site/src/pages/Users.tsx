// Users (owners): the list, adding a user, suspending and activating.
import { useState, type FormEvent } from "react";
import { api, type User } from "../api";
import { Badge, ErrorBox, Loading, timeAgo, usePolling, useTitle } from "../ui";
import { useMe } from "../App";

export function UsersPage() {
  useTitle("Users");
  const me = useMe();
  const { data, error, reload } = usePolling(() => api<{ users: User[] }>("/users"), 0);
  const [actionError, setActionError] = useState<unknown>(null);
  const [adding, setAdding] = useState(false);
  const setStatus = async (user: User, status: "suspend" | "activate") => {
    setActionError(null);
    try {
      await api(`/users/${user.id}/status/${status}`, { method: "PUT" });
      await reload();
    } catch (err) {
      setActionError(err);
    }
  };
  const add = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = new FormData(form);
    setActionError(null);
    try {
      await api("/users", {
        method: "POST",
        json: { username: fields.get("username"), email: fields.get("email"), password: fields.get("password"), name: "" },
      });
      form.reset();
      setAdding(false);
      await reload();
    } catch (err) {
      setActionError(err);
    }
  };
  return (
    <main className="page">
      <div className="page-head">
        <h1>Users</h1>
        <button type="button" className="primary" onClick={() => setAdding(!adding)} aria-expanded={adding}>
          Add user
        </button>
      </div>
      {adding && (
        <form className="inline-form" onSubmit={add} aria-label="New user">
          <label>
            Username <input name="username" required pattern="[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*" />
          </label>
          <label>
            Email <input name="email" type="email" required />
          </label>
          <label>
            Password <input name="password" type="password" required minLength={8} autoComplete="new-password" />
          </label>
          <button type="submit" className="primary">
            Create
          </button>
        </form>
      )}
      <ErrorBox error={error ?? actionError} />
      {!data && !error && <Loading what="users" />}
      {data && (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>User</th>
                <th>Roles</th>
                <th>Status</th>
                <th>Last seen</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {data.users.map((user) => (
                <tr key={user.id}>
                  <td>
                    {user.username}
                    <div className="muted small">{user.email}</div>
                  </td>
                  <td>{user.roles.map((role) => role.display_name || role.name).join(", ") || <span className="muted">member</span>}</td>
                  <td>
                    <Badge status={user.status} />
                  </td>
                  <td className="muted">{timeAgo(user.last_seen_at)}</td>
                  <td>
                    {user.id !== me.id &&
                      (user.status === "suspended" ? (
                        <button type="button" onClick={() => setStatus(user, "activate")}>
                          Activate
                        </button>
                      ) : (
                        <button type="button" onClick={() => setStatus(user, "suspend")}>
                          Suspend
                        </button>
                      ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </main>
  );
}
