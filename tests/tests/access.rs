//! Access control end to end, with the SDK and with grpcurl: server TLS, mutual TLS (the wrong
//! CA, a missing client certificate), bearer tokens (a wrong or missing token, health and
//! reflection left open only when configured), and certificates and tokens rotated on disk while
//! the server runs, without dropping calls.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use explain_client::{Client, Error, RetryPolicy};
use explain_service::server::{self, OpenServices, RunningServer, ServeOptions, TlsFiles};
use explain_tests::{Pki, health, options, temp_dir, tiny_model};
use tonic::Code;

/// Writes `contents` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

async fn start(options: ServeOptions) -> RunningServer {
    let mut server = server::start(options).await.expect("server starts");
    server.ready().await.expect("model loads");
    server
}

fn settings() -> ServeOptions {
    let mut settings = options(tiny_model());
    settings.reload_interval = Duration::from_millis(50);
    settings
}

/// Runs grpcurl with `args`; returns whether it succeeded, and what it printed.
async fn grpcurl(args: Vec<String>) -> (bool, String) {
    let output = explain_tests::grpcurl(args, None).await;
    (output.success, format!("{}{}", output.stdout, output.stderr))
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> Code {
    match result {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(Error::Status(status)) => status.code(),
        Err(other) => panic!("expected a status, got {other:?}"),
    }
}

/// Waits until `condition` holds, at most 10 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_its_ca() {
    let dir = temp_dir("mtls");
    let pki = Pki::new();
    let [ca, cert, key, client_cert, client_key] = [
        ("ca", &pki.ca),
        ("cert", &pki.server_cert),
        ("key", &pki.server_key),
        ("client", &pki.client_cert),
        ("client-key", &pki.client_key),
    ]
    .map(|(name, pem)| write(&dir, &format!("{name}.pem"), pem));
    let mut settings = settings();
    settings.tls = Some(TlsFiles { certificate: cert, key, client_ca: Some(ca.clone()) });
    let server = start(settings).await;
    let port = server.local_addr().port();
    let url = format!("https://localhost:{port}");

    let client = Client::builder(&url)
        .ca_certificate(pki.ca.clone())
        .client_identity(pki.client_cert.clone(), pki.client_key.clone())
        .build()
        .await
        .expect("mutual TLS connects");
    assert_eq!(client.model_info().await.expect("served over mutual TLS").num_classes, 10);

    let anonymous = Client::builder(&url).ca_certificate(pki.ca.clone()).retry(RetryPolicy::none()).build().await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(client) => client.model_info().await.is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    let stranger = Pki::new();
    let untrusted = Client::builder(&url)
        .ca_certificate(pki.ca.clone())
        .client_identity(stranger.client_cert.clone(), stranger.client_key.clone())
        .retry(RetryPolicy::none())
        .build()
        .await;
    let refused = match untrusted {
        Err(_) => true,
        Ok(client) => client.model_info().await.is_err(),
    };
    assert!(refused, "a client certificate from another CA is refused");
    let wrong_ca = Client::builder(&url).ca_certificate(stranger.ca.clone()).retry(RetryPolicy::none()).build().await;
    assert!(wrong_ca.is_err(), "a client that does not trust the server's CA does not connect");

    let address = format!("127.0.0.1:{port}");
    let tls = |extra: &[&str]| {
        let mut args = strings(&["-servername", "localhost"]);
        args.extend(strings(extra));
        args.extend([address.clone(), "list".to_owned()]);
        args
    };
    let (ca, client_cert, client_key) = (ca.display().to_string(), client_cert.display(), client_key.display());
    let (client_cert, client_key) = (client_cert.to_string(), client_key.to_string());
    let (ok, text) = grpcurl(tls(&["-cacert", &ca, "-cert", &client_cert, "-key", &client_key])).await;
    assert!(ok && text.contains("explain.v1.ExplainService"), "grpcurl with a client certificate: {text}");
    let (ok, text) = grpcurl(tls(&["-cacert", &ca])).await;
    assert!(!ok, "grpcurl without a client certificate must fail: {text}");
    let stranger_ca = write(&dir, "stranger-ca.pem", &stranger.ca).display().to_string();
    let (ok, text) = grpcurl(tls(&["-cacert", &stranger_ca, "-cert", &client_cert, "-key", &client_key])).await;
    assert!(!ok && text.contains("certificate"), "grpcurl with the wrong CA must fail: {text}");
    let (ok, text) = grpcurl(strings(&["-plaintext", &address, "list"])).await;
    assert!(!ok, "plaintext must fail against a TLS server: {text}");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_dropping_open_connections() {
    let dir = temp_dir("rotate");
    let (old, new) = (Pki::new(), Pki::new());
    let cert = write(&dir, "cert.pem", &old.server_cert);
    let key = write(&dir, "key.pem", &old.server_key);
    let mut settings = settings();
    settings.tls = Some(TlsFiles { certificate: cert.clone(), key: key.clone(), client_ca: None });
    let server = start(settings).await;
    let url = format!("https://localhost:{}", server.local_addr().port());
    let connect = |ca: String| {
        let url = url.clone();
        async move { Client::builder(url).ca_certificate(ca).retry(RetryPolicy::none()).build().await }
    };
    let before = connect(old.ca.clone()).await.expect("the old certificate is served");
    before.model_info().await.expect("a call before the rotation");

    // Key first, then certificate, as a secret update may land: the half-written state (a key
    // that does not match the certificate) is refused and the old pair kept meanwhile.
    std::fs::write(&key, &new.server_key).expect("rotate the key");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(connect(old.ca.clone()).await.is_ok(), "a mismatched pair keeps the old certificate");
    std::fs::write(&cert, &new.server_cert).expect("rotate the certificate");
    until("new connections get the new certificate", || {
        let connect = connect(new.ca.clone());
        async move { connect.await.is_ok() }
    })
    .await;
    assert!(connect(old.ca.clone()).await.is_err(), "the old certificate is no longer served");
    for _ in 0..3 {
        before.model_info().await.expect("the connection opened before the rotation still serves");
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn bearer_tokens_are_required_and_rotate_with_their_file() {
    let dir = temp_dir("tokens");
    let tokens = write(&dir, "tokens", "# two tokens, so one can be rotated\nalpha-token\nbeta-token\n");
    let mut settings = settings();
    settings.auth_tokens = Some(tokens.clone());
    settings.open_services = OpenServices { health: true, reflection: false };
    let server = start(settings).await;
    let url = format!("http://{}", server.local_addr());
    let with = |token: Option<&str>| {
        let builder = Client::builder(url.clone()).retry(RetryPolicy::none());
        let builder = match token {
            Some(token) => builder.bearer_token(token),
            None => builder,
        };
        async move { builder.build().await.expect("connects") }
    };
    for token in ["alpha-token", "beta-token"] {
        with(Some(token)).await.model_info().await.unwrap_or_else(|e| panic!("{token}: {e}"));
    }
    assert_eq!(code(with(Some("gamma-token")).await.model_info().await), Code::Unauthenticated);
    assert_eq!(code(with(None).await.model_info().await), Code::Unauthenticated);

    let address = server.local_addr().to_string();
    let call = |extra: &[&str], what: &[&str]| {
        let mut args = strings(&["-plaintext"]);
        args.extend(strings(extra));
        args.push(address.clone());
        args.extend(strings(what));
        args
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(health(&address).await.expect("health is open without a token"), serving);
    let (ok, text) = grpcurl(call(&[], &["list"])).await;
    assert!(!ok && text.contains("Unauthenticated"), "reflection needs a token: {text}");
    let bearer = ["-H", "authorization: Bearer beta-token"];
    let (ok, text) = grpcurl(call(&bearer, &["list"])).await;
    assert!(ok && text.contains("explain.v1.ExplainService"), "reflection with a token: {text}");
    let (ok, text) = grpcurl(call(&bearer, &["grpc.health.v1.Health/Check"])).await;
    assert!(ok && text.contains("SERVING"), "health through grpcurl with a token: {text}");
    let (ok, text) = grpcurl(call(&bearer, &["explain.v1.ExplainService/GetModelInfo"])).await;
    assert!(ok && text.contains("\"numClasses\": 10"), "a call with a token: {text}");
    let (ok, text) =
        grpcurl(call(&["-H", "authorization: Bearer wrong"], &["explain.v1.ExplainService/GetModelInfo"])).await;
    assert!(!ok && text.contains("Unauthenticated") && !text.contains("beta-token"), "a wrong token: {text}");

    // Rotation: beta is withdrawn, gamma added; the change applies without a restart.
    std::fs::write(&tokens, "alpha-token\ngamma-token\n").expect("rotate tokens");
    until("the new token is accepted", || {
        let client = with(Some("gamma-token"));
        async move { client.await.model_info().await.is_ok() }
    })
    .await;
    assert_eq!(code(with(Some("beta-token")).await.model_info().await), Code::Unauthenticated);
    with(Some("alpha-token")).await.model_info().await.expect("the kept token still works");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn health_needs_a_token_unless_opened() {
    let dir = temp_dir("closed-health");
    let mut settings = settings();
    settings.auth_tokens = Some(write(&dir, "tokens", "only-token\n"));
    let server = start(settings).await;
    let status = health(&server.local_addr().to_string()).await.expect_err("health is closed by default");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    server.shutdown().await.expect("clean shutdown");
}
