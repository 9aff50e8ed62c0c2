//! Workspace apps through the server's own tunnel to the agent: path apps, subdomain apps and
//! port URLs (sharing levels, browser sign-in, signed app tokens), WebSockets, bulk bodies both
//! ways, HTTPS upstreams, and the web terminal.

use std::time::Duration;

use testkit::eventually;

use crate::coder;
use crate::fixture::{
    STARTUP, api, free_port, home, signed_app_token, terminal_output_until, user_with_roles,
    with_startup, workspace, workspace_from,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_proxied_on_paths_subdomains_and_port_urls() {
    let port = free_port();
    let mut ws = workspace_from(coder(), &["--wildcard-access-url", "*.apps.test"], |template| {
        with_startup(template, &format!(
                "    startup_script = \"setsid nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &\"\n    apps = [{{ slug = \"files\", display_name = \"Files\", url = \"http://localhost:{port}\", healthcheck = {{ url = \"http://localhost:{port}/\", interval = 1, threshold = 2 }} }}, {{ slug = \"shared\", url = \"http://localhost:{port}\", share = \"authenticated\" }}, {{ slug = \"open\", url = \"http://localhost:{port}\", share = \"public\" }}]"
            ))
    })
    .await;
    let token = ws.token();
    let token = token.trim();
    let base = ws._server.url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(base.join(path).unwrap());
        if let Some(token) = token {
            request = request.header("Coder-Session-Token", token);
        }
        request.send()
    };
    let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(home(&ws).join("big.bin"), &data).unwrap();

    let listing = eventually(Duration::from_secs(30), "the app to answer", || async {
        let response = get("/@admin/dev/apps/files/", Some(token)).await.ok()?;
        (response.status() == 200).then_some(response.text().await.ok()?)
    })
    .await;
    assert!(listing.contains("big.bin"), "{listing}");
    // A browser's authorized request (session cookie) comes back with a signed token for that
    // app alone; with it, the next requests need no session (and skip the database). Clients
    // that send the session header instead get the same shortcut on the server's side.
    let authorized = http
        .get(base.join("/@admin/dev/apps/files/").unwrap())
        .header("cookie", format!("coder_session_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), 200);
    let signed = signed_app_token(&authorized);
    assert!(
        signed.contains("Path=/@admin/dev/apps/files/") && signed.contains("HttpOnly"),
        "{signed}"
    );
    let signed = signed.split(';').next().unwrap().to_owned();
    let with_cookie = |path: &str, cookie: String| {
        http.get(base.join(path).unwrap())
            .header("cookie", cookie)
            .send()
    };
    // The signed token needs no database: with the server cut off from it, a burst of
    // concurrent requests (a page load's worth, many times over) all succeed, while a request
    // that has only the session fails (and is not sent to sign in again).
    ws.db.close().await;
    let session_only = with_cookie(
        "/@admin/dev/apps/files/",
        format!("coder_session_token={token}"),
    )
    .await
    .unwrap()
    .status();
    let burst = futures_util::future::join_all((0..32).map(|_| async {
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let response = with_cookie("/@admin/dev/apps/files/", signed.clone()).await;
            statuses.push(response.map_or(0, |response| response.status().as_u16()));
        }
        statuses
    }))
    .await;
    ws.db.reopen().await;
    assert_eq!(
        session_only, 500,
        "with its database away the server cannot check a session: an error, not a sign-in"
    );
    let failed: Vec<u16> = burst.into_iter().flatten().filter(|s| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of 640 requests with a signed token failed without the database: {failed:?}",
        failed.len()
    );
    let opened = with_cookie("/@admin/dev/apps/files/big.bin", signed.clone())
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.bytes().await.unwrap().len(), 8 << 20);
    assert_eq!(
        with_cookie("/@admin/dev/apps/shared/", signed.clone())
            .await
            .unwrap()
            .status(),
        401,
        "a signed token opens only its own app"
    );
    let tampered = format!("{}x", signed.trim_end_matches(char::is_alphanumeric));
    assert_eq!(
        with_cookie("/@admin/dev/apps/files/", tampered)
            .await
            .unwrap()
            .status(),
        401
    );
    let body = get("/@admin/dev/apps/files/big.bin", Some(token))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        body.as_ref() == data.as_slice(),
        "8 MiB through the app proxy, byte for byte"
    );

    eventually(
        Duration::from_secs(30),
        "the app to be reported healthy",
        || async {
            let show = ws.coder.run(&["show", "dev"]);
            show.stdout
                .contains(&format!("app files: http://localhost:{port} (healthy)"))
                .then_some(())
        },
    )
    .await;
    // The agent lists the ports its workspace listens on, named after their processes.
    let agent_id = ws.agent_id().await;
    let ports: sdk::ListeningPortsResponse = get(
        &format!("/api/v2/workspaceagents/{agent_id}/listening-ports"),
        Some(token),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let app_port = ports
        .ports
        .iter()
        .find(|listening| listening.port == port)
        .unwrap_or_else(|| panic!("port {port} is not listed: {ports:?}"));
    assert!(app_port.process_name.starts_with("python"), "{app_port:?}");

    let redirect = get("/@admin/dev/apps/files", Some(token)).await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/@admin/dev/apps/files/");
    assert_eq!(
        get("/@admin/dev/apps/files/", None).await.unwrap().status(),
        401
    );
    assert_eq!(
        get("/@admin/dev/apps/nope/", Some(token))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/@nobody/dev/apps/files/", Some(token))
            .await
            .unwrap()
            .status(),
        404
    );
    // The same app on its own subdomain, and the same server as a port URL.
    let on_host = |host: String| {
        http.get(base.join("/big.bin").unwrap())
            .header("host", host)
            .header("Coder-Session-Token", token)
            .send()
    };
    for host in [
        "files--main--dev--admin.apps.test".to_owned(),
        format!("{port}--main--dev--admin.apps.test"),
    ] {
        let response = on_host(host.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "{host}");
        assert!(
            response.bytes().await.unwrap().as_ref() == data.as_slice(),
            "{host}"
        );
    }
    assert_eq!(
        on_host("files--main--dev--nobody.apps.test".to_owned())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        on_host("not-an-app.apps.test".to_owned())
            .await
            .unwrap()
            .status(),
        404
    );

    // A browser on a subdomain has no session there: it signs in through the dashboard.
    let app_host = "files--main--dev--admin.apps.test";
    let step = |host: Option<&str>, url: url::Url, cookie: Option<String>, session: bool| {
        let mut request = http.get(url).header("accept", "text/html");
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if session {
            request = request.header("Coder-Session-Token", token);
        }
        request.send()
    };
    let location = |response: &reqwest::Response| {
        url::Url::parse(response.headers()["location"].to_str().unwrap())
            .or_else(|_| base.join(response.headers()["location"].to_str().unwrap()))
            .unwrap()
    };
    let first = step(Some(app_host), base.join("/big.bin").unwrap(), None, false)
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let to_dashboard = location(&first);
    assert_eq!(to_dashboard.path(), "/api/v2/applications/auth-redirect");
    let signed = step(None, to_dashboard, None, true).await.unwrap();
    assert_eq!(signed.status(), 303);
    let back = location(&signed);
    assert_eq!(back.host_str(), Some(app_host));
    let exchange = base
        .join(&format!("{}?{}", back.path(), back.query().unwrap()))
        .unwrap();
    let exchanged = step(Some(app_host), exchange.clone(), None, false)
        .await
        .unwrap();
    assert_eq!(exchanged.status(), 303);
    assert_eq!(exchanged.headers()["location"], "/big.bin");
    let set_cookie = exchanged.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && !set_cookie.contains("Domain"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let opened = step(
        Some(app_host),
        base.join("/big.bin").unwrap(),
        Some(cookie.clone()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), 200);
    assert!(opened.bytes().await.unwrap().as_ref() == data.as_slice());
    // The cookie is good for that app's host only, and the exchange link for one use-minute.
    let elsewhere = step(
        Some("shared--main--dev--admin.apps.test"),
        base.join("/").unwrap(),
        Some(cookie),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        elsewhere.status(),
        303,
        "another host sends the browser to sign in again"
    );
    let forged = step(
        Some("open--main--dev--admin.apps.test"),
        exchange,
        None,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        forged.status(),
        401,
        "an exchange token is bound to its host"
    );

    // A browser without a session is sent to sign in, and comes back to the app afterwards.
    let to_login = http
        .get(base.join("/@admin/dev/apps/files/?x=1").unwrap())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(to_login.status(), 303);
    let login = location(&to_login);
    assert_eq!(login.path(), "/login");
    let form = http
        .get(login.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        form.contains("name=\"redirect\" value=\"/@admin/dev/apps/files/?x=1\""),
        "{form}"
    );
    let submit = |password: &str, redirect: &str, origin: &str| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("email", "admin@example.com")
            .append_pair("password", password)
            .append_pair("redirect", redirect)
            .finish();
        http.post(base.join("/login").unwrap())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(body)
            .send()
    };
    let origin = crate::url(&base);
    let wrong = submit("not-the-password", "/@admin/dev/apps/files/?x=1", &origin)
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Incorrect email or password."),
        "a readable message on the form"
    );
    let cross_site = submit(testkit::PASSWORD, "/", "https://evil.example")
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "another site cannot sign us in");
    let open_redirect = submit(testkit::PASSWORD, "//evil.example/", &origin)
        .await
        .unwrap();
    assert_eq!(open_redirect.status(), 303);
    assert_eq!(open_redirect.headers()["location"], "/");
    let signed_in = submit(testkit::PASSWORD, "/@admin/dev/apps/files/?x=1", &origin)
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in.headers()["location"],
        "/@admin/dev/apps/files/?x=1"
    );
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(session.starts_with("coder_session_token="), "{session}");
    let back = http
        .get(base.join("/@admin/dev/apps/files/?x=1").unwrap())
        .header("accept", "text/html")
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);
    assert!(back.text().await.unwrap().contains("big.bin"));
    // A subdomain app's sign-in hop, without a dashboard session, goes through the form too.
    let hop = step(Some(app_host), base.join("/big.bin").unwrap(), None, false)
        .await
        .unwrap();
    let unsigned = step(None, location(&hop), None, false).await.unwrap();
    assert_eq!(unsigned.status(), 303);
    let login = location(&unsigned);
    assert_eq!(login.path(), "/login");
    let redirect = login
        .query_pairs()
        .find(|(key, _)| key == "redirect")
        .unwrap()
        .1
        .into_owned();
    assert!(
        redirect.starts_with("/api/v2/applications/auth-redirect?redirect_uri="),
        "{redirect}"
    );

    // Another user learns nothing: the same 404 as for a workspace that does not exist.
    let member = user_with_roles(&ws, &api(&ws, token), "member", &[]).await;
    let member_token = member.session_token().unwrap().expose().to_owned();
    assert_eq!(
        get("/@admin/dev/apps/files/", Some(&member_token))
            .await
            .unwrap()
            .status(),
        404
    );
    // Sharing levels: any signed-in user, or anyone at all.
    assert_eq!(
        get("/@admin/dev/apps/shared/", Some(&member_token))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/@admin/dev/apps/shared/", None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/@admin/dev/apps/open/big.bin", None)
            .await
            .unwrap()
            .status(),
        200
    );
    // Without a session, a private app and a missing one look alike.
    assert_eq!(
        get("/@admin/dev/apps/nope/", None).await.unwrap().status(),
        401
    );

    // A server that proxied apps stops cleanly and at once: its tunnels to agents are closed,
    // not dropped.
    let (code, rest) = ws._server.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(code, Some(0), "{rest}");
    assert!(rest.trim_end().ends_with("Stopped."), "{rest}");
    let stopping = rest
        .split_once("gracefully exiting")
        .map_or(rest.as_str(), |(_, stopping)| stopping);
    // Its agent's event stream ends with it, rather than holding the drain period.
    assert!(
        !stopping.contains("still open after the drain period"),
        "{stopping}"
    );
    // (iroh itself logs "relay_recv_channel closed" as an error when any endpoint closes.)
    assert!(
        !stopping.contains("Endpoint dropped without calling"),
        "the server's endpoint was dropped, not closed:\n{stopping}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_terminal_survives_a_dropped_socket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let ws = workspace(&[]).await;
    let token = ws.token();
    let admin = api(&ws, token.trim());
    let workspace = admin
        .workspace_by_owner_and_name("me", "dev")
        .await
        .unwrap();
    let agent_id = workspace.latest_build.agents[0].id;
    let session = uuid::Uuid::new_v4();
    let mut url = ws._server.url.clone();
    url.set_scheme("ws").unwrap();
    let url = url
        .join(&format!(
            "/api/v2/workspaceagents/{agent_id}/pty?reconnect={session}&width=100&height=30"
        ))
        .unwrap();
    let connect = || {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Coder-Session-Token", token.trim().parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    // A page of another origin (here a workspace app's subdomain) may not use the visitor's
    // session for the terminal: browsers send cookies on WebSocket handshakes.
    for origin in [
        "http://files--main--dev--admin.apps.test",
        "https://evil.example",
    ] {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Coder-Session-Token", token.trim().parse().unwrap());
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}");
            }
            other => panic!("a terminal opened from {origin}: {other:?}"),
        }
    }
    let (mut socket, _) = connect().await.unwrap();
    let typed = serde_json::json!({"data": "echo hello-$((6*7)); stty size\r"}).to_string();
    socket.send(Message::Text(typed.into())).await.unwrap();
    let seen = terminal_output_until(&mut socket, "hello-42").await;
    let seen = if seen.contains("30 100") {
        seen
    } else {
        terminal_output_until(&mut socket, "30 100").await
    };
    assert!(seen.contains("30 100"), "{seen}");
    drop(socket);

    // The same id reconnects to the same shell: the recent output comes back, and it still runs.
    let (mut socket, _) = connect().await.unwrap();
    terminal_output_until(&mut socket, "hello-42").await;
    let resize = serde_json::json!({"height": 40, "width": 120}).to_string();
    socket.send(Message::Text(resize.into())).await.unwrap();
    let typed = serde_json::json!({"data": "stty size; echo again-$((6*7))\r"}).to_string();
    socket.send(Message::Text(typed.into())).await.unwrap();
    let seen = terminal_output_until(&mut socket, "again-42").await;
    assert!(seen.contains("40 120"), "{seen}");

    // A reader that falls behind slows the program down and loses nothing: 3 million lines
    // (~24 MB, more than every buffer on the way holds) arrive whole and in order.
    let mut command_url = ws._server.url.clone();
    command_url.set_scheme("ws").unwrap();
    let command_url = command_url
        .join(&format!(
            "/api/v2/workspaceagents/{agent_id}/pty?reconnect={}&width=80&height=24&command=seq%201%203000000",
            uuid::Uuid::new_v4()
        ))
        .unwrap();
    let mut request = command_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", token.trim().parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut output = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Binary(bytes) = message {
                output.extend_from_slice(&bytes);
            }
        }
    })
    .await
    .expect("the whole output within two minutes");
    let text = String::from_utf8(output).unwrap();
    let mut expected = 1u64;
    for line in text.split("\r\n").filter(|line| !line.is_empty()) {
        assert_eq!(line, expected.to_string(), "line {expected} of the output");
        expected += 1;
    }
    assert_eq!(expected, 3_000_001, "every line arrived");

    // Someone who may not connect to the workspace gets no terminal.
    let member = user_with_roles(&ws, &admin, "member", &[]).await;
    let member_token = member.session_token().unwrap().expose().to_owned();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", member_token.parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("404"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_pass_websockets_and_say_when_the_app_is_down() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    // The app: a WebSocket echo server on loopback, which the agent reaches like any app.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    let dead_port = free_port();
    let ws = workspace_from(coder(), &[], |template| {
        with_startup(template, &format!(
                "{STARTUP}\n    apps = [\n      {{ slug = \"echo\", url = \"http://localhost:{echo_port}\" }},\n      {{ slug = \"down\", url = \"http://localhost:{dead_port}\", healthcheck = {{ url = \"http://localhost:{dead_port}/\", interval = 1, threshold = 2 }} }},\n    ]"
            ))
    })
    .await;
    let token = ws.token();
    let mut url = ws._server.url.clone();
    url.set_scheme("ws").unwrap();
    let url = url.join("/@admin/dev/apps/echo/socket").unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", token.trim().parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "through the app proxy"] {
        socket.send(Message::Text(text.into())).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }

    let show = eventually(Duration::from_secs(30), "health to be reported", || async {
        let show = ws.coder.run(&["show", "dev"]).stdout;
        show.contains(" (unhealthy)").then_some(show)
    })
    .await;
    assert!(
        show.contains(&format!(
            "app down: http://localhost:{dead_port} (unhealthy)"
        )),
        "{show}"
    );
    assert!(
        show.contains(&format!(
            "app echo: http://localhost:{echo_port} (disabled)"
        )),
        "{show}"
    );

    // An app that is not listening: a 502 that says so.
    let response = reqwest::Client::new()
        .get(ws._server.url.join("/@admin/dev/apps/down/").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&format!("is not answering on port {dead_port}")),
        "{body}"
    );
}

/// FNV-1a: enough to tell a byte stream arrived whole and in order.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A minimal HTTP/1.1 app: `GET /bytes/N` streams N patterned bytes; `POST /hash` answers with
/// the body's length and FNV-1a hash, and the `X-Forwarded-For` it saw; `GET /headers` answers
/// with the proxy's source port, the Host and the cookies it saw, and keeps the connection
/// open (the others close it).
async fn bulk_app() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let peer = stream.peer_addr().map(|a| a.port()).unwrap_or_default();
                let mut stream = BufReader::new(stream);
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line.trim_end().to_owned());
                    }
                    let header = |name: &str| {
                        head.iter().find_map(|line| {
                            let (key, value) = line.split_once(':')?;
                            key.eq_ignore_ascii_case(name)
                                .then(|| value.trim().to_owned())
                        })
                    };
                    let request_line = head.first().cloned().unwrap_or_default();
                    if request_line.starts_with("GET /headers ") {
                        // Kept alive, so that a pooled proxy comes back on the same connection.
                        let body = format!(
                            "peer={peer}\nhost={}\ncookie={}\n",
                            header("host").unwrap_or_default(),
                            header("cookie").unwrap_or_default()
                        );
                        let _ = stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .await;
                        continue;
                    }
                    if request_line.starts_with("GET /events ") {
                        let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")
                        .await;
                        for i in 1..=3 {
                            let _ = stream
                                .write_all(format!("data: tick {i}\n\n").as_bytes())
                                .await;
                            let _ = stream.flush().await;
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        return;
                    }
                    let body = if let Some(n) = request_line
                        .strip_prefix("GET /bytes/")
                        .and_then(|rest| rest.split(' ').next())
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        let _ = stream
                        .write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
                        let mut left = n;
                        while left > 0 {
                            let take = left.min(chunk.len());
                            if stream.write_all(&chunk[..take]).await.is_err() {
                                return;
                            }
                            left -= take;
                        }
                        return;
                    } else {
                        let length: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut hash = FNV_START;
                        let mut left = length;
                        let mut buffer = vec![0u8; 65536];
                        while left > 0 {
                            let n = stream
                                .read(&mut buffer[..left.min(65536)])
                                .await
                                .unwrap_or(0);
                            if n == 0 {
                                break;
                            }
                            hash = fnv1a(hash, &buffer[..n]);
                            left -= n;
                        }
                        format!(
                            "{} {hash:x} {}",
                            length - left,
                            header("x-forwarded-for").unwrap_or_default()
                        )
                    };
                    let _ = stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                    return;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_down_and_256_mib_up_through_an_app() {
    let port = bulk_app().await;
    let ws = workspace_from(coder(), &[], |template| {
        with_startup(
            template,
            &format!(
                "{STARTUP}\n    apps = [{{ slug = \"bulk\", url = \"http://localhost:{port}\" }}]"
            ),
        )
    })
    .await;
    let token = ws.token();
    let http = reqwest::Client::new();
    let base = ws._server.url.clone();

    // The app sees the Host the browser asked for and the browser's own cookies, never ours;
    // the next request to it reuses the same upstream connection.
    let headers = |cookie: String| {
        http.get(base.join("/@admin/dev/apps/bulk/headers").unwrap())
            .header("Coder-Session-Token", token.trim())
            .header("cookie", cookie)
            .send()
    };
    let first = headers(format!("theme=dark; coder_session_token={}", token.trim()))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let signed = signed_app_token(&first);
    let first = first.text().await.unwrap();
    let signed_pair = signed.split(';').next().unwrap().to_owned();
    let second = headers(format!("{signed_pair}; theme=dark"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let host = format!("host={}", base.authority());
    for seen in [&first, &second] {
        assert!(seen.contains("cookie=theme=dark\n"), "{seen}");
        assert!(seen.contains(&host), "{seen}");
    }
    let peer = |seen: &str| seen.lines().next().unwrap().to_owned();
    assert_eq!(
        peer(&first),
        peer(&second),
        "the second request came over the pooled connection"
    );

    const DOWN: usize = 1 << 30;
    let mut response = http
        .get(
            base.join(&format!("/@admin/dev/apps/bulk/bytes/{DOWN}"))
                .unwrap(),
        )
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let mut expected = FNV_START;
    for _ in 0..DOWN / chunk.len() {
        expected = fnv1a(expected, &chunk);
    }
    let (mut received, mut hash) = (0usize, FNV_START);
    while let Some(bytes) = response.chunk().await.unwrap() {
        received += bytes.len();
        hash = fnv1a(hash, &bytes);
    }
    assert_eq!(received, DOWN);
    assert_eq!(hash, expected, "1 GiB arrived whole and in order");

    const UP: usize = 256 << 20;
    let upload: Vec<u8> = (0..UP).map(|i| (i % 241) as u8).collect();
    let answer = http
        .post(base.join("/@admin/dev/apps/bulk/hash").unwrap())
        .header("Coder-Session-Token", token.trim())
        .body(upload.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = format!("{UP} {:x} 127.0.0.1", fnv1a(FNV_START, &upload));
    assert_eq!(
        answer, expected,
        "256 MiB went up whole; the app saw who asked"
    );

    // Server-Sent Events arrive as they are sent, not when the response ends.
    let mut events = http
        .get(base.join("/@admin/dev/apps/bulk/events").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap();
    let first = String::from_utf8_lossy(&events.chunk().await.unwrap().unwrap()).into_owned();
    assert!(first.contains("tick 1"), "{first}");
    assert!(
        !first.contains("tick 3"),
        "the first event was held back until the stream ended: {first}"
    );
    let mut rest = String::new();
    while let Some(chunk) = events.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("tick 3"), "{rest}");
}

/// An HTTPS app with a self-signed certificate, answering every request with its path.
async fn https_app() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    testkit::init_crypto();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
                let body = format!("secure {path}");
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_apps_and_port_urls() {
    let port = https_app().await;
    let ws = workspace_from(coder(), &["--wildcard-access-url", "*.apps.test"], |template| {
        with_startup(template, &format!("{STARTUP}\n    apps = [{{ slug = \"secure\", url = \"https://localhost:{port}\" }}]"))
    })
    .await;
    let token = ws.token();
    let http = reqwest::Client::new();
    let base = ws._server.url.clone();
    let body = http
        .get(base.join("/@admin/dev/apps/secure/hello").unwrap())
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "secure /hello");
    // A port URL with the `s` suffix speaks HTTPS to the port.
    let body = http
        .get(base.join("/there").unwrap())
        .header("host", format!("{port}s--main--dev--admin.apps.test"))
        .header("Coder-Session-Token", token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "secure /there");
}
