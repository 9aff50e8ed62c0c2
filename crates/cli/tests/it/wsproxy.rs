//! Workspace proxies as the seeds describe them: owners manage them with `coder wsproxy`
//! (create, ls, edit, regenerate-token, delete), and `coder wsproxy server` registers with the
//! primary, serves apps and the web terminal from its region, runs a relay that joins the
//! relay map, and reports its health; the primary derives each proxy's status.

use std::time::Duration;

use testkit::{ServerProcess, TestDb, eventually};

use crate::coder;
use crate::fixture::{
    api, far_away, free_port, signed_app_token, start_proxy, terminal_output_until, token_of,
    user_with_roles, with_startup, workspace_from,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_create_list_edit_regenerate_and_delete_proxies() {
    let db = TestDb::new().await;
    let coder = coder();
    let server = coder.server(&["--postgres-url", &db.url, "--http-address", "127.0.0.1:0"]);
    crate::login_first_user(&coder, &server.url);

    let created = coder
        .run(&[
            "wsproxy",
            "create",
            "--name=newyork",
            "--display-name=USA East",
            "--icon=/emojis/2194.png",
        ])
        .success();
    assert!(
        created.stdout.starts_with(
            "Workspace Proxy \"newyork\" created successfully. Save this token, it will not be shown again.\nToken: "
        ),
        "{}",
        created.stdout
    );
    let token = token_of(&created.stdout);
    let (id, secret) = token.split_once(':').unwrap();
    assert!(uuid::Uuid::try_parse(id).is_ok(), "{token}");
    assert!(
        secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );

    let listed = coder.run(&["wsproxy", "ls"]).success().stdout;
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "URL", "STATUS"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["primary", crate::url(&server.url).as_str(), "ok"],
        "the primary comes first"
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["newyork", "unregistered"]
    );
    let json: Vec<sdk::WorkspaceProxy> =
        serde_json::from_str(&coder.run(&["wsproxy", "ls", "-o", "json"]).success().stdout)
            .unwrap();
    assert_eq!(json.len(), 2);
    assert_eq!(json[1].display_name, "USA East");
    assert_eq!(json[1].icon_url, "/emojis/2194.png");
    assert_eq!(json[1].status.status, sdk::ProxyHealthStatus::Unregistered);

    let again = coder
        .run(&["wsproxy", "create", "--name=NewYork"])
        .failure(1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let reserved = coder
        .run(&["wsproxy", "create", "--name=primary"])
        .failure(1);
    assert!(reserved.stderr.contains("reserved"), "{}", reserved.stderr);

    coder
        .run(&["wsproxy", "edit", "newyork", "--display-name=New York"])
        .success();
    let shown = coder
        .run(&["wsproxy", "ls", "-c", "name,display name"])
        .success()
        .stdout;
    assert!(shown.contains("New York"), "{shown}");

    // A proxy token registers; a regenerated one replaces it at once.
    let http = reqwest::Client::new();
    // One instance: a regenerated token forgets it, so it may register again.
    let replica = uuid::Uuid::new_v4();
    let register_as = |token: String, access_url: String, replica: uuid::Uuid| {
        http.post(
            server
                .url
                .join("/api/v2/workspaceproxies/me/register")
                .unwrap(),
        )
        .header(sdk::PROXY_TOKEN_HEADER, token)
        .json(&serde_json::json!({
            "access_url": access_url,
            "derp_enabled": true,
            "replica_id": replica,
            "version": "test",
        }))
        .send()
    };
    let register_at = |token: String, access_url: String| register_as(token, access_url, replica);
    let register = |token: String| register_at(token, "http://127.0.0.1:1".to_owned());
    assert_eq!(register(token.clone()).await.unwrap().status(), 201);
    let regenerated = coder
        .run(&["wsproxy", "regenerate-token", "newyork"])
        .success();
    let fresh = token_of(&regenerated.stdout);
    assert_ne!(fresh, token);
    assert_eq!(register(token.clone()).await.unwrap().status(), 401);
    assert_eq!(
        register(format!("{id}:{}", "0".repeat(64)))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(register(fresh.clone()).await.unwrap().status(), 201);
    // Registered at a URL where no proxy answers: unreachable, with the reason.
    eventually(
        Duration::from_secs(20),
        "the proxy to be unreachable",
        || async {
            let listed = coder.run(&["wsproxy", "ls"]).success().stdout;
            listed
                .lines()
                .any(|line| {
                    line.starts_with("newyork")
                        && line.contains("unreachable: request to proxy failed")
                })
                .then_some(())
        },
    )
    .await;

    // The same instance moves to a URL where a Coder server, but no proxy, answers:
    // unhealthy, saying so.
    assert_eq!(
        register_at(fresh.clone(), crate::url(&server.url))
            .await
            .unwrap()
            .status(),
        201
    );
    eventually(
        Duration::from_secs(20),
        "the proxy to be unhealthy",
        || async {
            let listed = coder.run(&["wsproxy", "ls"]).success().stdout;
            listed
                .lines()
                .any(|line| {
                    line.starts_with("newyork")
                        && line.contains("unhealthy:")
                        && line.contains("not as a workspace proxy")
                })
                .then_some(())
        },
    )
    .await;
    // Another instance with the same token is refused while this one is registered.
    let twin = register_as(
        fresh.clone(),
        "http://127.0.0.1:2".to_owned(),
        uuid::Uuid::new_v4(),
    )
    .await
    .unwrap();
    assert_eq!(twin.status(), 409);
    assert!(twin.text().await.unwrap().contains("already running"));

    // Members may not manage proxies; they see the regions.
    let admin = api_client(&server, &coder);
    let member = testkit_user(&admin, &server).await;
    let denied = member.workspace_proxies().await.unwrap_err();
    assert_eq!(denied.status(), Some(403), "{denied}");
    let regions = member.regions().await.unwrap().regions;
    assert_eq!(
        regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["primary"],
        "an unhealthy proxy is not offered"
    );

    let deleted = coder
        .run(&["wsproxy", "delete", "newyork", "--yes"])
        .success();
    assert!(deleted.stdout.contains("deleted"), "{}", deleted.stdout);
    assert_eq!(register(fresh).await.unwrap().status(), 401);
    let primary_delete = coder
        .run(&["wsproxy", "delete", "primary", "--yes"])
        .failure(1);
    assert!(
        primary_delete.stderr.contains("primary cannot be deleted"),
        "{}",
        primary_delete.stderr
    );
    let listed = coder.run(&["wsproxy", "ls"]).success().stdout;
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // `coder wsproxy server` says what it needs, and takes its options from flags, CODER_*
    // variables or YAML (the token never printed).
    let missing = coder.run(&["wsproxy", "server"]).failure(1);
    assert!(
        missing
            .stderr
            .contains("--primary-access-url (CODER_PRIMARY_ACCESS_URL) is required"),
        "{}",
        missing.stderr
    );
    let yaml = coder.home().join("proxy.yaml");
    std::fs::write(
        &yaml,
        "externalWorkspaceProxy:\n  primaryAccessURL: https://coder.example.com\n  proxySessionToken: secret-from-yaml\nnetworking:\n  wildcardAccessURL: '*.east.example.com'\n",
    )
    .unwrap();
    let mut configured = crate::coder();
    configured.env("CODER_HTTP_ADDRESS", "0.0.0.0:8080");
    let written = configured
        .run(&[
            "wsproxy",
            "server",
            "--config",
            yaml.to_str().unwrap(),
            "--derp-only",
            "--write-config",
        ])
        .success()
        .stdout;
    for expected in [
        "primaryAccessURL: https://coder.example.com",
        "derpOnly: true",
        "wildcardAccessURL: '*.east.example.com'",
        "httpAddress: 0.0.0.0:8080",
    ] {
        assert!(
            written.contains(expected),
            "{expected} missing from:\n{written}"
        );
    }
    assert!(!written.contains("secret-from-yaml"), "{written}");
}

fn api_client(server: &ServerProcess, coder: &testkit::Coder) -> sdk::client::Client {
    let token = std::fs::read_to_string(coder.config_dir().join("session")).unwrap();
    sdk::client::Client::new(server.url.clone(), reqwest::Client::new())
        .with_session_token(sdk::Secret::new(token.trim()))
}

async fn testkit_user(admin: &sdk::client::Client, server: &ServerProcess) -> sdk::client::Client {
    admin
        .create_user(&sdk::CreateUserRequest {
            email: "member@example.com".into(),
            username: "member".into(),
            name: String::new(),
            password: sdk::Secret::new(testkit::PASSWORD),
            login_type: None,
            organization_ids: Vec::new(),
        })
        .await
        .unwrap();
    let anonymous = sdk::client::Client::new(server.url.clone(), reqwest::Client::new());
    let token = anonymous
        .login_with_password(&sdk::LoginWithPasswordRequest {
            email: "member@example.com".into(),
            password: sdk::Secret::new(testkit::PASSWORD),
        })
        .await
        .unwrap()
        .session_token;
    anonymous.with_session_token(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_registers_serves_apps_and_the_terminal_and_relays() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app_port = free_port();
    let ws = workspace_from(coder(), &[], |template| {
        with_startup(template, &format!(
                "    startup_script = \"setsid nohup python3 -m http.server {app_port} --bind 127.0.0.1 >/dev/null 2>&1 &\"\n    apps = [{{ slug = \"files\", url = \"http://localhost:{app_port}\" }}]"
            ))
    })
    .await;
    let token = ws.token();
    let token = token.trim().to_owned();
    let primary = ws._server.url.clone();
    std::fs::write(
        ws.dir.join("home").join("hello.txt"),
        "hello from the workspace\n",
    )
    .unwrap();

    let created = ws
        .coder
        .run(&[
            "wsproxy",
            "create",
            "--name=newyork",
            "--display-name=USA East",
        ])
        .success();
    let proxy_token = token_of(&created.stdout);
    let proxy_port = free_port();
    let metrics_port = free_port();
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let mut proxy_user = coder();
    proxy_user
        .env("CODER_PRIMARY_ACCESS_URL", &crate::url(&primary))
        .env("CODER_PROXY_SESSION_TOKEN", &proxy_token)
        .env("CODER_HTTP_ADDRESS", &format!("127.0.0.1:{proxy_port}"))
        .env("CODER_ACCESS_URL", &proxy_url)
        .env("CODER_WILDCARD_ACCESS_URL", "*.east.test")
        .env("CODER_PROMETHEUS_ENABLE", "true")
        .env(
            "CODER_PROMETHEUS_ADDRESS",
            &format!("127.0.0.1:{metrics_port}"),
        );
    let proxy = proxy_user.proxy_server(&[]);
    assert_eq!(crate::url(&proxy.url), proxy_url);

    // Registered: the primary checks it at once and lists it as ok.
    let listed = eventually(Duration::from_secs(20), "the proxy to be ok", || async {
        let listed = ws.coder.run(&["wsproxy", "ls"]).success().stdout;
        listed
            .lines()
            .any(|line| {
                line.split_whitespace().collect::<Vec<_>>() == ["newyork", proxy_url.as_str(), "ok"]
            })
            .then_some(listed)
    })
    .await;
    assert!(listed.contains("primary"), "{listed}");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let at = |path: &str| format!("{proxy_url}{path}");
    assert_eq!(
        http.get(at("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "OK"
    );
    let report: sdk::ProxyHealthReport = http
        .get(at("/healthz-report"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report, sdk::ProxyHealthReport::default());
    let latency = http.get(at("/latency-check")).send().await.unwrap();
    assert_eq!(latency.status(), 200);
    assert_eq!(latency.headers()["access-control-allow-origin"], "*");
    let info: sdk::BuildInfo = http
        .get(at("/api/v2/buildinfo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.workspace_proxy);
    assert_eq!(info.dashboard_url, crate::url(&primary));
    // The API is not served here.
    let elsewhere = http.get(at("/api/v2/users/me")).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert!(
        elsewhere
            .text()
            .await
            .unwrap()
            .contains("Head to the dashboard")
    );

    // Its relay joins the relay map as a region of its own.
    let admin = api(&ws, &token);
    let relays: sdk::DerpMap = http
        .get(primary.join("/api/v2/derp-map").unwrap())
        .header("Coder-Session-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let region = relays
        .regions
        .values()
        .find(|region| region.region_code == "coder_newyork")
        .unwrap_or_else(|| panic!("no proxy region in {relays:?}"));
    assert!(region.region_id >= 10_000, "{region:?}");
    assert_eq!(region.region_name, "USA East");
    assert_eq!(region.nodes[0].relay_port(), proxy_port);
    let regions = admin.regions().await.unwrap().regions;
    assert_eq!(
        regions.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["primary", "newyork"]
    );

    // A path app through the proxy: the primary authorizes, the proxy dials the agent.
    let opened = eventually(
        Duration::from_secs(30),
        "the app through the proxy",
        || async {
            let response = http
                .get(at("/@admin/dev/apps/files/hello.txt"))
                .header("Coder-Session-Token", &token)
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(response)
        },
    )
    .await;
    let signed = signed_app_token(&opened);
    assert_eq!(opened.text().await.unwrap(), "hello from the workspace\n");
    let signed = signed.split(';').next().unwrap().to_owned();
    let again = http
        .get(at("/@admin/dev/apps/files/hello.txt"))
        .header("cookie", &signed)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the signed token alone opens the app");
    // A subdomain app under the proxy's wildcard.
    let sub = http
        .get(at("/hello.txt"))
        .header("host", "files--main--dev--admin.east.test")
        .header("Coder-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 200);
    assert_eq!(sub.text().await.unwrap(), "hello from the workspace\n");
    // Someone else learns nothing; no session at all is told to log in.
    let member = user_with_roles(&ws, &admin, "member", &[]).await;
    let member_token = member.session_token().unwrap().expose().to_owned();
    let refused = http
        .get(at("/@admin/dev/apps/files/"))
        .header("Coder-Session-Token", &member_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let anonymous = http
        .get(at("/@admin/dev/apps/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A browser without a session signs in on the dashboard and comes back with a cookie for
    // the proxy's host.
    let first = http
        .get(at("/@admin/dev/apps/files/hello.txt"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 303);
    let to_primary = url::Url::parse(first.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(to_primary.path(), "/api/v2/applications/auth-redirect");
    assert_eq!(to_primary.host_str(), primary.host_str());
    let back = http
        .get(to_primary)
        .header("Coder-Session-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303);
    let back = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&at("/@admin/dev/apps/files/hello.txt?")),
        "{back}"
    );
    let exchanged = http.get(&back).send().await.unwrap();
    assert_eq!(exchanged.status(), 303);
    let app_cookie = exchanged.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let signed_in = http
        .get(at("/@admin/dev/apps/files/hello.txt"))
        .header("accept", "text/html")
        .header("cookie", &app_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);

    // The web terminal from the proxy's region.
    let agent_id = ws.agent_id().await;
    let mut request = format!(
        "ws://127.0.0.1:{proxy_port}/api/v2/workspaceagents/{agent_id}/pty?reconnect={}&width=80&height=24",
        uuid::Uuid::new_v4()
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("Coder-Session-Token", token.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let typed = serde_json::json!({"data": "echo via-proxy-$((6*7))\r"}).to_string();
    socket.send(Message::Text(typed.into())).await.unwrap();
    terminal_output_until(&mut socket, "via-proxy-42").await;
    drop(socket);

    // The dashboard's way: a terminal token the primary signs, sent as a query parameter
    // (no session on the proxy's site). It opens this agent's terminal and nothing else.
    let pty_url = format!("ws://127.0.0.1:{proxy_port}/api/v2/workspaceagents/{agent_id}/pty");
    let sign = |url: String, agent: uuid::Uuid| {
        http.post(
            primary
                .join("/api/v2/applications/reconnecting-pty-signed-token")
                .unwrap(),
        )
        .header("Coder-Session-Token", &token)
        .json(&serde_json::json!({"url": url, "agentID": agent}))
        .send()
    };
    let signed: serde_json::Value = sign(pty_url.clone(), agent_id)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed = signed["signed_token"].as_str().unwrap().to_owned();
    let open = |token: &str| {
        tokio_tungstenite::connect_async(format!(
            "{pty_url}?reconnect={}&width=80&height=24&coder_signed_app_token_23db1dde={token}",
            uuid::Uuid::new_v4()
        ))
    };
    let (mut socket, _) = open(&signed).await.unwrap();
    socket
        .send(Message::Text(
            serde_json::json!({"data": "echo signed-$((6*7))\r"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    terminal_output_until(&mut socket, "signed-42").await;
    drop(socket);
    let mut tampered = signed.clone();
    tampered.pop();
    match open(&tampered).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("a tampered terminal token must be refused: {other:?}"),
    }
    let wrong_path = sign(format!("{pty_url}/../other"), agent_id).await.unwrap();
    assert_eq!(wrong_path.status(), 400);
    let unknown_agent = sign(
        pty_url.replace(&agent_id.to_string(), &uuid::Uuid::nil().to_string()),
        uuid::Uuid::nil(),
    )
    .await
    .unwrap();
    assert_eq!(unknown_agent.status(), 404);

    // Prometheus: HTTP and relay metrics.
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "coderd_api_requests_processed_total",
        "coder_wsproxy_derp_accepts_total",
        "coder_wsproxy_derp_bytes_received_total",
        "coder_wsproxy_derp_packets_dropped_total",
        "coder_wsproxy_derp_current_connections",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }

    // A second instance with the same token is refused, and says why.
    let mut twin = coder();
    twin.env("CODER_PRIMARY_ACCESS_URL", &crate::url(&primary))
        .env("CODER_PROXY_SESSION_TOKEN", &proxy_token)
        .env("CODER_HTTP_ADDRESS", "127.0.0.1:0");
    let refused = twin.run(&["wsproxy", "server"]).failure(1);
    assert!(
        refused.stderr.contains("already running"),
        "{}",
        refused.stderr
    );

    // A clean stop deregisters: the primary stops offering the proxy at once.
    let (code, _) = proxy.stop_with(nix::sys::signal::Signal::SIGINT);
    assert_eq!(code, Some(0));
    eventually(
        Duration::from_secs(20),
        "the proxy to be unreachable",
        || async {
            let listed = ws.coder.run(&["wsproxy", "ls"]).success().stdout;
            listed
                .lines()
                .any(|line| line.starts_with("newyork") && line.contains("unreachable"))
                .then_some(())
        },
    )
    .await;
    let regions = admin.regions().await.unwrap().regions;
    assert_eq!(regions.len(), 1, "{regions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_proxy_runs_the_only_relay_tunnels_go_through_it() {
    // The primary runs no relay: the proxy's, once registered, is the only one. The running
    // agent picks it up from the relay map, and its relay admits exactly the endpoints the
    // primary's coordinator admits.
    let ws = workspace_from(
        coder(),
        &["--derp-server-enable=false", "--proxy-health-interval=2s"],
        |template| template,
    )
    .await;
    let primary = ws._server.url.clone();
    let proxy = derp_only_proxy(&ws, "sydney", "Sydney");
    // DERP-only: no apps here.
    let page = reqwest::get(format!("{}/@admin/dev/apps/x/", crate::url(&proxy.url)))
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.text().await.unwrap().contains("DERP-only"));
    let token = ws.token();
    let regions = api(&ws, token.trim()).regions().await.unwrap().regions;
    assert_eq!(
        regions.len(),
        1,
        "a DERP-only proxy serves no apps: {regions:?}"
    );

    let ping = eventually(
        Duration::from_secs(60),
        "pings relayed by the proxy",
        || async {
            let ping = ws.coder.run(&[
                "--disable-direct-connections",
                "ping",
                "dev",
                "-n",
                "2",
                "--wait",
                "200ms",
            ]);
            (ping.code == 0
                && ping
                    .stdout
                    .lines()
                    .filter(|line| line.starts_with("pong from dev "))
                    .filter(|line| line.contains("proxied via DERP(Sydney)"))
                    .count()
                    == 2)
                .then_some(ping.stdout)
        },
    )
    .await;
    assert!(ping.contains("Sydney"), "{ping}");
    let ran = ws
        .coder
        .run(&[
            "--disable-direct-connections",
            "ssh",
            "dev",
            "--",
            "echo",
            "through-sydney",
        ])
        .success();
    assert_eq!(ran.stdout.trim(), "through-sydney");

    // A proxy that dies without deregistering drops out of the relay map within seconds
    // (--proxy-health-interval 2s here; the default is a minute).
    let (_, _) = proxy.stop_with(nix::sys::signal::Signal::SIGKILL);
    let died = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "the dead proxy to leave the relay map",
        || async {
            let listed = ws.coder.run(&["wsproxy", "ls"]).success().stdout;
            let map: sdk::DerpMap = reqwest::Client::new()
                .get(primary.join("/api/v2/derp-map").unwrap())
                .header("Coder-Session-Token", token.trim())
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (listed.contains("unreachable") && map.regions.is_empty()).then_some(())
        },
    )
    .await;
    assert!(died.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_proxy_relay_dies_tunnels_move_to_another_relay_within_seconds() {
    // Two proxies run the only relays; direct paths are off. When the relay the workspace's
    // agent homes on is killed, the agent homes on the other within seconds (not at the next
    // relay map refresh or iroh's periodic check) and new sessions go through it.
    let ws = workspace_from(
        coder(),
        &["--derp-server-enable=false", "--proxy-health-interval=1m"],
        |template| template,
    )
    .await;
    let primary = ws._server.url.clone();
    let mut proxies = Vec::new();
    for (name, display) in [("sydney", "Sydney"), ("tokyo", "Tokyo")] {
        proxies.push((display, derp_only_proxy(&ws, name, display)));
    }
    let relayed = |args: &[&str]| {
        let mut full = vec!["--disable-direct-connections"];
        full.extend_from_slice(args);
        ws.coder.run(&full)
    };
    // Both relays in the map and in use: the agent picks them up within its 15 s refresh.
    let via = eventually(Duration::from_secs(60), "a relayed ping", || async {
        let ping = relayed(&["ping", "dev", "-n", "2", "--wait", "200ms"]);
        let map: sdk::DerpMap = reqwest::Client::new()
            .get(primary.join("/api/v2/derp-map").unwrap())
            .header("Coder-Session-Token", ws.token())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        if ping.code != 0 || map.regions.len() != 2 {
            return None;
        }
        ["Sydney", "Tokyo"]
            .into_iter()
            .find(|name| ping.stdout.contains(&format!("proxied via DERP({name})")))
    })
    .await;

    // A port forward to an echo server in the workspace (the agent runs on this host).
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut connection in echo.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = connection.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut connection);
            });
        }
    });
    let local = free_port();
    let mut forward = ws
        .coder
        .command(&[
            "--disable-direct-connections",
            "port-forward",
            "dev",
            "--tcp",
            &format!("{local}:{echo_port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let echoes = |text: &str| {
        let attempt = || -> std::io::Result<String> {
            let mut connection = std::net::TcpStream::connect(("127.0.0.1", local))?;
            connection.set_read_timeout(Some(Duration::from_secs(3)))?;
            std::io::Write::write_all(&mut connection, text.as_bytes())?;
            let mut echoed = vec![0; text.len()];
            std::io::Read::read_exact(&mut connection, &mut echoed)?;
            Ok(String::from_utf8_lossy(&echoed).into_owned())
        };
        attempt().is_ok_and(|echoed| echoed == text)
    };
    let started = std::time::Instant::now();
    while !echoes("before") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the forward never worked"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A session established through that relay, printing as it goes: it must ride out the
    // relay's death without the user doing anything.
    let held = HeldSession::start(&ws.coder);

    // Kill the relay the agent answers through. The primary checks proxies only once a
    // minute here, so the relay map still lists the dead relay: moving is up to the ends.
    let index = proxies.iter().position(|(name, _)| *name == via).unwrap();
    let (_, dying) = proxies.remove(index);
    let (_, _) = dying.stop_with(nix::sys::signal::Signal::SIGKILL);
    let killed = std::time::Instant::now();
    let other = proxies[0].0;
    let mut last = String::new();
    let mut ran = None;
    while killed.elapsed() < Duration::from_secs(30) {
        let attempt = relayed(&["ssh", "dev", "--", "echo", "moved"]);
        if attempt.code == 0 {
            ran = Some(attempt.stdout);
            break;
        }
        last = attempt.stderr;
    }
    let ran = ran.unwrap_or_else(|| {
        panic!(
            "no relayed session within 30 s of {via}'s relay dying:\n{last}\nthe agent's log:\n{}",
            std::fs::read_to_string(ws.dir.join("agent.log")).unwrap_or_default()
        )
    });
    let took = killed.elapsed();
    println!("a new relayed session worked {took:?} after {via}'s relay died");
    assert_eq!(ran.trim(), "moved");
    assert!(
        took < Duration::from_secs(15),
        "a new relayed session took {took:?} after {via}'s relay died"
    );
    let ping = relayed(&["ping", "dev", "-n", "1"]);
    assert!(
        ping.stdout.contains(&format!("proxied via DERP({other})")),
        "{}",
        ping.stdout
    );

    // The port forward dialled a new tunnel by itself: new connections work again.
    let mut forwarded = None;
    while killed.elapsed() < Duration::from_secs(30) {
        if echoes("after") {
            forwarded = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = forward.kill();
    let _ = forward.wait();
    let forwarded = forwarded.expect("the port forward never recovered");
    println!("the port forward worked again {forwarded:?} after the relay died");
    assert!(forwarded < Duration::from_secs(15), "{forwarded:?}");

    // The established session carried on: every line, in order, and the command's exit code.
    held.carried_on();
}

/// A relayed `coder ssh` session printing a line every quarter second for 15 s, then exiting 7.
struct HeldSession {
    child: std::process::Child,
    reader: std::thread::JoinHandle<(Vec<String>, Duration)>,
}

impl HeldSession {
    /// Starts it and waits for its first line.
    fn start(coder: &testkit::Coder) -> Self {
        let mut child = coder
            .command(&[
                "--disable-direct-connections",
                "ssh",
                "dev",
                "--",
                "for i in $(seq 1 60); do echo tick $i; sleep 0.25; done; exit 7",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, ticks) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        // Every line, and the longest wait between two.
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = Vec::new();
            let mut longest = Duration::ZERO;
            let mut last = std::time::Instant::now();
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line.clone());
                if !all.is_empty() {
                    longest = longest.max(last.elapsed());
                }
                last = std::time::Instant::now();
                all.push(line);
            }
            (all, longest)
        });
        let mut held = Self { child, reader };
        let first = ticks.recv_timeout(Duration::from_secs(30));
        if first.is_err() {
            panic!("the session printed nothing: {}", held.stderr());
        }
        assert_eq!(first.unwrap(), "tick 1");
        held
    }

    fn stderr(&mut self) -> String {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        stderr
    }

    /// Waits for the end: every line, in order, the exit code, and no pause of 10 s or more.
    #[allow(clippy::print_stdout, reason = "the pause is the test's measurement")]
    fn carried_on(mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the established session never ended"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = self.stderr();
        let (printed, pause) = self.reader.join().unwrap();
        println!("the established session paused {pause:?} at most");
        let expected: Vec<String> = (1..=60).map(|i| format!("tick {i}")).collect();
        assert_eq!(printed, expected, "stderr: {stderr}");
        assert_eq!(status.code(), Some(7), "stderr: {stderr}");
        assert!(
            pause < Duration::from_secs(10),
            "the session stalled {pause:?}"
        );
    }
}

/// A workspace proxy that serves only its relay (`--derp-only`), registered with `ws`'s server.
fn derp_only_proxy(ws: &crate::fixture::Workspace, name: &str, display: &str) -> ServerProcess {
    start_proxy(
        &ws.coder,
        &ws._server.url,
        name,
        display,
        free_port(),
        &[("CODER_PROXY_DERP_ONLY", "true")],
    )
}

/// The latencies `coder ping` printed for pongs through `relay`, in milliseconds.
fn pongs_via(stdout: &str, relay: &str) -> Vec<f64> {
    let via = format!("proxied via DERP({relay}) in ");
    stdout
        .lines()
        .filter_map(|line| line.split_once(&via))
        .filter_map(|(_, latency)| latency.trim_end_matches("ms").parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_sessions_ride_the_nearer_relay() {
    // The primary is far away (80 ms each way, through a delaying forwarder: this kernel has no
    // netem); a workspace proxy sits next to both the user and the workspace. With direct
    // paths blocked, traffic first goes through the primary's relay, then, once the proxy's
    // relay is in the map, the agent homes on it by measured latency and sessions ride it.
    let real = free_port();
    let far = far_away(real, Duration::from_millis(80));
    let ws = workspace_from(
        coder(),
        &[
            "--http-address",
            &format!("127.0.0.1:{real}"),
            "--access-url",
            &format!("http://127.0.0.1:{far}"),
            "--derp-server-region-name=Far",
            "--proxy-health-interval=2s",
            // Relays only: endpoints then measure relays over HTTPS, through the delay (UDP
            // address discovery would reach the primary's UDP port around it).
            "--block-direct-connections",
        ],
        |template| template,
    )
    .await;
    let relayed = |args: &[&str]| {
        let mut full = vec!["--disable-direct-connections"];
        full.extend_from_slice(args);
        ws.coder.run(&full)
    };
    let far_pongs = pongs_via(
        &relayed(&["ping", "dev", "-n", "3", "--wait", "100ms"])
            .success()
            .stdout,
        "Far",
    );
    assert_eq!(far_pongs.len(), 3, "{far_pongs:?}");
    assert!(
        far_pongs.iter().all(|ms| *ms >= 300.0),
        "through the far relay a round trip crosses the 80 ms link four times: {far_pongs:?}"
    );

    let near = derp_only_proxy(&ws, "sydney", "Sydney");
    let stdout = eventually(
        Duration::from_secs(90),
        "pings through the nearer relay",
        || async {
            let ping = relayed(&["ping", "dev", "-n", "3", "--wait", "100ms"]);
            (ping.code == 0 && pongs_via(&ping.stdout, "Sydney").len() == 3).then_some(ping.stdout)
        },
    )
    .await;
    let near_pongs = pongs_via(&stdout, "Sydney");
    println!(
        "pongs through the far relay {far_pongs:?} ms, through the nearer one {near_pongs:?} ms"
    );
    let best_far = far_pongs.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        near_pongs.iter().all(|ms| *ms * 5.0 < best_far),
        "the nearer relay is not faster: {near_pongs:?} against {far_pongs:?}"
    );
    let ran = relayed(&["ssh", "dev", "--", "echo", "via-sydney"]).success();
    assert_eq!(ran.stdout.trim(), "via-sydney");

    // The server reaches the agent too (apps, the terminal, listening ports), through the
    // agent's relay.
    let token = ws.token();
    let agent_id = ws.agent_id().await;
    let ports_url = ws
        ._server
        .url
        .join(&format!(
            "/api/v2/workspaceagents/{agent_id}/listening-ports"
        ))
        .unwrap();
    let server_reaches_agent = || async {
        reqwest::Client::new()
            .get(ports_url.clone())
            .header("Coder-Session-Token", token.trim())
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    };
    eventually(
        Duration::from_secs(30),
        "the server to reach the agent",
        || async { server_reaches_agent().await.then_some(()) },
    )
    .await;

    // The nearer proxy dies: an established session moves back to the far relay by itself,
    // and the server's own tunnel to the agent follows.
    let held = HeldSession::start(&ws.coder);
    let (_, _) = near.stop_with(nix::sys::signal::Signal::SIGKILL);
    let killed = std::time::Instant::now();
    eventually(
        Duration::from_secs(30),
        "the server to reach the agent again",
        || async { server_reaches_agent().await.then_some(()) },
    )
    .await;
    let reached = killed.elapsed();
    println!("the server reached the agent again {reached:?} after the proxy died");
    assert!(reached < Duration::from_secs(15), "{reached:?}");
    held.carried_on();
    let ping = relayed(&["ping", "dev", "-n", "1"]).success();
    assert_eq!(pongs_via(&ping.stdout, "Far").len(), 1, "{}", ping.stdout);
}
