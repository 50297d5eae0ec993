//! Authentication of the embedded control plane, through the real kubectl, curl and PyJWT (and,
//! with the same curl helper, YAML request and response bodies):
//! anonymous paths and 401s, token-file users, client certificates from `strata kubeconfig`,
//! `kubectl auth whoami`, ServiceAccount tokens (`kubectl create token`, TokenReview, rotation)
//! and the OIDC issuer verified by a third-party library from discovery alone.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use strata_apiserver::{Server, ServerConfig};

use super::fixture::{ControlPlane, kubectl, temp_dir};
use strata_test_support::kubectl_ok_async;

/// The server URL and admin token of a kubeconfig `strata up` wrote.
fn server_and_token(kubeconfig: &Path) -> (String, String) {
    let config: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    (
        config["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .to_owned(),
        config["users"][0]["user"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// `curl` against the control plane trusting its CA: the status code and the body.
fn curl(
    ca: &Path,
    method: &str,
    url: &str,
    headers: &[String],
    body: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "--cacert"])
        .arg(ca)
        .args(["-o", "-", "-w", "\n%{http_code}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            cmd.args(["-H", "Content-Type: application/json"]);
        }
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[test]
fn the_api_answers_over_http2_when_the_client_offers_it_and_over_http1_otherwise() {
    let cp = ControlPlane::start("http2");
    let (server, token) = server_and_token(&cp.kubeconfig);
    let ca = cp.dir.join("ca.crt");
    for (flag, want) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = Command::new("curl")
            .args(["-sS", flag, "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
            .arg(format!("{server}/api/v1/namespaces/default"))
            .output()
            .expect("curl runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{want} 200"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn yaml_request_and_response_bodies_are_served_as_kube_apiserver_serves_them() {
    let cp = ControlPlane::start("yaml-bodies");
    let (server, token) = server_and_token(&cp.kubeconfig);
    let ca = cp.dir.join("ca.crt");
    let auth = format!("Authorization: Bearer {token}");
    let collection = format!("{server}/api/v1/namespaces/default/configmaps");
    let (code, body) = curl(
        &ca,
        "POST",
        &collection,
        &[auth.clone(), "Content-Type: application/yaml".into()],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  answer: \"42\"\n",
        ),
    );
    assert_eq!(code, 201, "{body}");
    let created: Value = serde_json::from_str(&body).expect("JSON by default");
    assert_eq!(created["data"]["answer"], "42");
    let (code, body) = curl(
        &ca,
        "GET",
        &format!("{collection}/from-yaml"),
        &[auth.clone(), "Accept: application/yaml".into()],
        None,
    );
    assert_eq!(code, 200, "{body}");
    let read: Value = serde_saphyr::from_str(&body).expect("YAML");
    assert_eq!(read["data"]["answer"], "42", "{body}");
    assert!(body.contains("kind: ConfigMap"), "YAML, not JSON: {body}");
    let (code, body) = curl(
        &ca,
        "GET",
        &format!("{collection}/missing"),
        &[auth.clone(), "Accept: application/yaml".into()],
        None,
    );
    assert_eq!(code, 404);
    assert!(
        body.contains("kind: Status") && body.contains("reason: NotFound"),
        "{body}"
    );
    let (code, body) = curl(
        &ca,
        "POST",
        &collection,
        &[auth, "Content-Type: application/yaml".into()],
        Some("kind: [unclosed"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not valid YAML"), "{body}");
}

fn whoami(kubeconfig: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["auth", "whoami", "-o", "json"];
    args.extend_from_slice(extra);
    let out = kubectl(kubeconfig, &args);
    assert!(
        out.status.success(),
        "kubectl auth whoami {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn whoami_fails(kubeconfig: &Path, extra: &[&str]) -> String {
    let mut args = vec!["auth", "whoami", "-o", "json"];
    args.extend_from_slice(extra);
    let out = kubectl(kubeconfig, &args);
    assert!(
        !out.status.success(),
        "kubectl auth whoami {extra:?} succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn without_credentials_only_health_version_and_oidc_discovery_answer_and_any_bearer_case_works() {
    let cp = ControlPlane::start("authn-anonymous");
    let (server, token) = server_and_token(&cp.kubeconfig);
    let ca = cp.dir.join("ca.crt");
    for public in [
        "/healthz",
        "/livez",
        "/readyz",
        "/version",
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
    ] {
        let (code, body) = curl(&ca, "GET", &format!("{server}{public}"), &[], None);
        assert_eq!(code, 200, "{public} is public: {body}");
    }
    for private in ["/api", "/apis", "/api/v1/namespaces", "/openapi/v3"] {
        let (code, body) = curl(&ca, "GET", &format!("{server}{private}"), &[], None);
        assert_eq!(code, 401, "{private} needs identity: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["reason"],
            "Unauthorized"
        );
    }
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (code, body) = curl(
            &ca,
            "GET",
            &format!("{server}/api/v1/namespaces"),
            &[format!("Authorization: {scheme} {token}")],
            None,
        );
        assert_eq!(code, 200, "scheme `{scheme}`: {body}");
    }
    let (code, _) = curl(
        &ca,
        "GET",
        &format!("{server}/healthz"),
        &["Authorization: Bearer not-a-token".to_owned()],
        None,
    );
    assert_eq!(
        code, 401,
        "invalid credentials are refused even on public paths"
    );
    let (code, body) = curl(
        &ca,
        "POST",
        &format!("{server}/apis/authentication.k8s.io/v1/selfsubjectreviews"),
        &[format!("Authorization: bearer {token}")],
        Some(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let review: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "strata-admin");
}

#[test]
fn token_file_and_client_certificate_users_are_who_kubectl_auth_whoami_says() {
    let dir = temp_dir("authn-users-file");
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        "alice-token,alice,1001,\"dev,team-a\"\nbob-token,bob,1002\n",
    )
    .unwrap();
    let cp = ControlPlane::start_with("authn-users", |c| {
        c.token_auth_file = Some(users.clone());
    });

    let admin = whoami(&cp.kubeconfig, &[]);
    assert_eq!(admin["status"]["userInfo"]["username"], "strata-admin");
    assert_eq!(
        admin["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(mode(&cp.kubeconfig), 0o600);

    let alice = whoami(&cp.kubeconfig, &["--token", "alice-token"]);
    assert_eq!(alice["status"]["userInfo"]["username"], "alice");
    assert_eq!(alice["status"]["userInfo"]["uid"], "1001");
    assert_eq!(
        alice["status"]["userInfo"]["groups"],
        json!(["dev", "team-a", "system:authenticated"])
    );
    let stderr = whoami_fails(&cp.kubeconfig, &["--token", "carol-token"]);
    assert!(stderr.contains("Unauthorized"), "{stderr}");

    // A client certificate signed by the data dir's CA, minted while the server runs.
    let carol = cp.dir.join("carol.kubeconfig");
    let out = super::super::support::strata(
        &[
            "kubeconfig",
            "--data-dir",
            cp.dir.to_str().unwrap(),
            "--user",
            "carol",
            "--group",
            "dev",
            "--group",
            "team-b",
            "--out",
            carol.to_str().unwrap(),
        ],
        &cp.dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&carol), 0o600);
    let me = whoami(&carol, &[]);
    assert_eq!(me["status"]["userInfo"]["username"], "carol");
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!(["dev", "team-b", "system:authenticated"])
    );
    // The certificate user is who ordinary requests run as: RBAC refuses carol by name until a
    // binding names one of her groups.
    let out = kubectl(&carol, &["get", "namespaces", "-o", "name"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"User "carol" cannot list resource "namespaces""#),
        "{stderr}"
    );
    cp.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "dev-view",
        "--clusterrole=view",
        "--group=dev",
    ]);
    let out = kubectl(&carol, &["get", "namespaces", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A self-signed certificate claiming system:masters is not accepted.
    let key = cp.dir.join("mallory.key");
    let cert = cp.dir.join("mallory.crt");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/O=system:masters/CN=mallory",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let out = kubectl(
        &carol,
        &[
            "get",
            "namespaces",
            "--client-certificate",
            cert.to_str().unwrap(),
            "--client-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success(),
        "a foreign CA's certificate was accepted"
    );
    drop(cp);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_token_file_line_stops_strata_up_with_the_file_and_line() {
    let dir = temp_dir("authn-bad-users");
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.csv");
    std::fs::write(&users, "alice-token,alice,1001\nbob-token,bob\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "up",
            "--no-controllers",
            "--listen",
            "127.0.0.1:0",
            "--token-auth-file",
        ])
        .arg(&users)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "token file {}:2: must have at least 3 columns",
            users.display()
        )),
        "{stderr}"
    );
    assert!(
        !dir.join("data").exists(),
        "nothing is created for a bad setting"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn create_token(cp: &ControlPlane, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    cp.kubectl_ok(&all).trim().to_owned()
}

fn token_review(cp: &ControlPlane, token: &str, audiences: &[&str]) -> Value {
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": audiences}});
    let path = cp.dir.join("review.json");
    std::fs::write(&path, review.to_string()).unwrap();
    serde_json::from_str(&cp.kubectl_ok(&["create", "-f", path.to_str().unwrap(), "-o", "json"]))
        .unwrap()
}

#[test]
fn service_account_tokens_from_kubectl_create_token_authenticate_until_their_account_is_gone() {
    let cp = ControlPlane::start("authn-sa");
    cp.kubectl_ok(&["create", "namespace", "team-a"]);
    cp.kubectl_ok(&["create", "serviceaccount", "builder", "-n", "team-a"]);
    let token = create_token(&cp, &["builder", "-n", "team-a"]);

    let me = whoami(&cp.kubeconfig, &["--token", &token]);
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:team-a:builder"
    );
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team-a",
            "system:authenticated"
        ])
    );
    let sa_uid = cp.kubectl_ok(&[
        "get",
        "sa",
        "builder",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_eq!(me["status"]["userInfo"]["uid"], sa_uid.as_str());

    let review = token_review(&cp, &token, &[]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:team-a:builder"
    );

    // A token for another audience is not good for the API, but a TokenReview for that
    // audience accepts it.
    let sts = create_token(
        &cp,
        &["builder", "-n", "team-a", "--audience", "sts.amazonaws.com"],
    );
    let stderr = whoami_fails(&cp.kubeconfig, &["--token", &sts]);
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    let review = token_review(&cp, &sts, &["sts.amazonaws.com"]);
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(review["status"]["audiences"], json!(["sts.amazonaws.com"]));

    // Bound to a Secret: refused once the Secret is gone.
    cp.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "team-a",
        "--from-literal=k=v",
    ]);
    let bound = create_token(
        &cp,
        &[
            "builder",
            "-n",
            "team-a",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "db",
        ],
    );
    whoami(&cp.kubeconfig, &["--token", &bound]);
    cp.kubectl_ok(&["delete", "secret", "db", "-n", "team-a"]);
    whoami_fails(&cp.kubeconfig, &["--token", &bound]);

    // Too short a lifetime and unknown accounts are refused at issue.
    let out = cp.kubectl(&[
        "create",
        "token",
        "builder",
        "-n",
        "team-a",
        "--duration",
        "5m",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cp.kubectl(&["create", "token", "nobody", "-n", "team-a"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("serviceaccounts \"nobody\" not found"));

    // Deleted and re-created under the same name: the old token names the old uid.
    cp.kubectl_ok(&["delete", "serviceaccount", "builder", "-n", "team-a"]);
    cp.kubectl_ok(&["create", "serviceaccount", "builder", "-n", "team-a"]);
    whoami_fails(&cp.kubeconfig, &["--token", &token]);
    let review = token_review(&cp, &token, &[]);
    assert!(review["status"].get("authenticated").is_none(), "{review}");
    assert!(
        review["status"]["error"]
            .as_str()
            .unwrap()
            .contains("does not match claim"),
        "{review}"
    );
}

/// Verifies `token` with PyJWT from the issuer's discovery document alone and prints the claims.
const VERIFY_BY_DISCOVERY: &str = r#"
import json, ssl, sys, urllib.request
import jwt

issuer, cafile, token, audience = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", context=ctx) as r:
    doc = json.load(r)
assert doc["issuer"] == issuer, doc
keys = jwt.PyJWKClient(doc["jwks_uri"], ssl_context=ctx)
key = keys.get_signing_key_from_jwt(token)
claims = jwt.decode(token, key, algorithms=doc["id_token_signing_alg_values_supported"],
    audience=audience, issuer=doc["issuer"],
    options={"require": ["exp", "iat", "iss", "aud", "sub"]})
try:
    jwt.decode(token, key, algorithms=doc["id_token_signing_alg_values_supported"],
        audience="someone-else", issuer=doc["issuer"])
    wrong_audience = "accepted"
except jwt.InvalidAudienceError:
    wrong_audience = "refused"
print(json.dumps({"claims": claims, "wrong_audience": wrong_audience, "kid": key.key_id}))
"#;

fn verify_by_discovery(issuer: &str, ca: &Path, token: &str, audience: &str) -> Value {
    let out = Command::new("python3")
        .args(["-c", VERIFY_BY_DISCOVERY, issuer])
        .arg(ca)
        .args([token, audience])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyJWT verification failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pyjwt_verifies_a_kubectl_create_token_by_oidc_discovery_alone() {
    let cp = ControlPlane::start("authn-oidc");
    let (server, _) = server_and_token(&cp.kubeconfig);
    cp.kubectl_ok(&["create", "serviceaccount", "app"]);
    let token = create_token(&cp, &["app", "--audience", "sts.amazonaws.com"]);
    let verified =
        verify_by_discovery(&server, &cp.dir.join("ca.crt"), &token, "sts.amazonaws.com");
    let claims = &verified["claims"];
    assert_eq!(
        claims["iss"],
        server.as_str(),
        "the issuer is the server URL by default"
    );
    assert_eq!(claims["sub"], "system:serviceaccount:default:app");
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "app");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(verified["wrong_audience"], "refused");
}

/// Starts a server on a data dir a server of this process just shut down (its store closes a
/// moment after `shutdown` returns).
async fn restart(config: &ServerConfig) -> Server {
    for _ in 0..100 {
        match Server::start(config.clone()).await {
            Ok(server) => return server,
            Err(e) if e.to_string().contains("in use") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restarting: {e}"),
        }
    }
    panic!("the data dir was not released after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_verifying_the_tokens_it_signed_and_stays_in_the_jwks() {
    let dir = temp_dir("authn-rotate");
    let mut config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    // A fixed issuer: with the default (the server URL), a new port would be a new issuer.
    config.service_account_issuer = Some("https://oidc.strata.test/cluster".into());
    let server = Server::start(config.clone()).await.unwrap();
    let kubeconfig = server.kubeconfig_path().to_owned();
    kubectl_ok_async(&kubeconfig, &["create", "serviceaccount", "app"]).await;
    let old = kubectl_ok_async(&kubeconfig, &["create", "token", "app"]).await;
    let old = old.trim();
    let ca = dir.join("ca.crt");
    let (_, jwks) = curl(
        &ca,
        "GET",
        &format!("{}/openid/v1/jwks", server.url()),
        &[],
        None,
    );
    let old_kid = serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0]["kid"].clone();
    let (_, discovery) = curl(
        &ca,
        "GET",
        &format!("{}/.well-known/openid-configuration", server.url()),
        &[],
        None,
    );
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(discovery["issuer"], "https://oidc.strata.test/cluster");
    assert_eq!(
        discovery["jwks_uri"],
        "https://oidc.strata.test/cluster/openid/v1/jwks"
    );
    server.shutdown().await;

    let mut rotate = config.clone();
    rotate.rotate_service_account_key = true;
    let server = restart(&rotate).await;
    let me = kubectl_ok_async(
        &kubeconfig,
        &["auth", "whoami", "--token", old, "-o", "json"],
    )
    .await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:default:app"
    );
    let new = kubectl_ok_async(&kubeconfig, &["create", "token", "app"]).await;
    let (_, jwks) = curl(
        &ca,
        "GET",
        &format!("{}/openid/v1/jwks", server.url()),
        &[],
        None,
    );
    let kids: Vec<Value> = serde_json::from_str::<Value>(&jwks).unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids.len(),
        2,
        "the new signing key and the retired one: {kids:?}"
    );
    assert_eq!(kids[1], old_kid);
    let header = new.trim().split('.').next().unwrap();
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header["kid"], kids[0],
        "new tokens are signed by the new key"
    );
    assert_eq!(header["alg"], "ES256");
    server.shutdown().await;

    // Without rotation a restart keeps the keys as they are.
    let server = restart(&config).await;
    let (_, jwks) = curl(
        &ca,
        "GET",
        &format!("{}/openid/v1/jwks", server.url()),
        &[],
        None,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&jwks).unwrap()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
