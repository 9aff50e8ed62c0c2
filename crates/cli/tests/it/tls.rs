//! `coder server --tls-enable`: HTTPS with server certificates and client-certificate modes.

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use testkit::TestDb;

use crate::coder;

pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) server_cert: String,
    pub(crate) server_key: String,
    client_identity: String,
}

pub(crate) fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]);
    let (client_cert, client_key) = issue(vec!["client".to_owned()]);
    Pki {
        ca_pem: ca.pem(),
        server_cert,
        server_key,
        client_identity: format!("{client_cert}{client_key}"),
    }
}

fn https_client(pki: &Pki, with_identity: bool) -> reqwest::Client {
    testkit::init_crypto();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()]);
    if with_identity {
        builder =
            builder.identity(reqwest::Identity::from_pem(pki.client_identity.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn https_with_required_client_certificates() {
    let pki = pki();
    let db = TestDb::new().await;
    let coder = coder();
    let write = |name: &str, text: &str| {
        let path = coder.home().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (cert, key, ca) = (
        write("cert.pem", &pki.server_cert),
        write("key.pem", &pki.server_key),
        write("ca.pem", &pki.ca_pem),
    );
    let server = coder.server(&[
        "--postgres-url",
        &db.url,
        "--http-address",
        "",
        "--tls-enable",
        "--tls-address",
        "127.0.0.1:0",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-client-auth",
        "require-and-verify",
        "--tls-client-ca-file",
        &ca,
    ]);
    assert_eq!(server.url.scheme(), "https");
    assert!(
        server
            .transcript
            .contains("Started TLS/HTTPS listener at https://127.0.0.1:"),
        "{}",
        server.transcript
    );
    let buildinfo = server.url.join("/api/v2/buildinfo").unwrap();

    let response = https_client(&pki, true)
        .get(buildinfo.clone())
        .send()
        .await
        .unwrap();
    let info: sdk::BuildInfo = response.json().await.unwrap();
    assert_eq!(info.external_url, server.url.as_str().trim_end_matches('/'));

    let refused = https_client(&pki, false).get(buildinfo).send().await;
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused"
    );

    // The session cookie is Secure behind an https access URL.
    let client = https_client(&pki, true);
    client
        .post(server.url.join("/api/v2/users/first").unwrap())
        .json(&serde_json::json!({"email": "a@example.com", "username": "a", "password": testkit::PASSWORD}))
        .send()
        .await
        .unwrap();
    let login = client
        .post(server.url.join("/api/v2/users/login").unwrap())
        .json(&serde_json::json!({"email": "a@example.com", "password": testkit::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}
