//! Every credential source ends in a real token exchange at a local stand-in for Google's token
//! endpoints, and every Cloud Storage call, the PATCH included, carries the token it returned.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use strata_provider::{ErrorClass, External, Observation};

use super::support::{
    Emulator, Log, MemorySecrets, TempDir, authorizations, bucket, connect, oauth_token_endpoint,
    recording_proxy, rsa_key_pair, service_account_key, sts_endpoint, update,
};

const CLIENT_EMAIL: &str = "strata@demo.iam.gserviceaccount.com";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/strata/providers/kind";
/// What the parent test hands the child process: the Cloud Storage endpoint to use.
const CHILD_ENDPOINT: &str = "STRATA_GCP_TEST_CHILD_ENDPOINT";

/// Observes, creates, updates and deletes one bucket.
async fn exercise(buckets: &dyn External, name: &str) {
    let mut logs = bucket(name, "US-CENTRAL1");
    assert_eq!(buckets.observe(&logs).await.unwrap(), Observation::Absent);
    buckets.create(&logs).await.unwrap();
    logs.for_provider["versioning"] = json!(true);
    update(buckets, &logs).await.unwrap();
    buckets.delete(&logs).await.unwrap();
}

/// Every request carried exactly `Bearer TOKEN`, and a PATCH was among them.
fn assert_every_call_carries(log: &Log, token: &str) {
    let expected = format!("Bearer {token}");
    let seen = authorizations(log);
    assert!(!seen.is_empty(), "the provider called Cloud Storage");
    assert!(
        seen.iter()
            .all(|header| header.as_deref() == Some(expected.as_str())),
        "every call carries the exchanged token: {seen:?}"
    );
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|request| request.method == "PATCH"),
        "the update's PATCH is among them"
    );
}

fn secret_config(endpoint: &str) -> serde_json::Value {
    json!({
        "credentials": {
            "source": "Secret",
            "secretRef": {"name": "gcp-key", "namespace": "strata-system", "key": "credentials.json"}
        },
        "endpoint": endpoint
    })
}

#[tokio::test]
async fn a_service_account_key_in_a_secret_is_exchanged_for_the_token_every_call_carries() {
    let dir = TempDir::new("gcp-secret");
    let (private_key, public_key) = rsa_key_pair(dir.path());
    let oauth = oauth_token_endpoint(&public_key, CLIENT_EMAIL, "sa-access-token").await;
    let gcs = Emulator::fake_gcs();
    let (proxy, log) = recording_proxy(&gcs.url).await;
    let secrets = Arc::new(MemorySecrets::default());
    let key = service_account_key(&private_key, CLIENT_EMAIL, &oauth.served.url);
    secrets.insert("strata-system", "gcp-key", "credentials.json", &key);

    let buckets = connect(secret_config(&proxy.url), secrets).await.unwrap();
    exercise(buckets.as_ref(), "strata-secret").await;

    assert_every_call_carries(&log, "sa-access-token");
    assert_eq!(oauth.issued(), 1, "one exchange; the token is reused");
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_trust_gives_a_clear_error_without_the_key() {
    let dir = TempDir::new("gcp-untrusted");
    let (_, trusted_public) = rsa_key_pair(dir.path());
    let (other_private, _) = rsa_key_pair(dir.path());
    let oauth = oauth_token_endpoint(&trusted_public, CLIENT_EMAIL, "never").await;
    let secrets = Arc::new(MemorySecrets::default());
    let key = service_account_key(&other_private, CLIENT_EMAIL, &oauth.served.url);
    secrets.insert("strata-system", "gcp-key", "credentials.json", &key);

    let error = connect(secret_config("http://127.0.0.1:9"), secrets)
        .await
        .err()
        .expect("no token, no client");
    assert_eq!(error.operation, "authenticate", "{error}");
    assert!(error.message.contains("invalid_grant"), "{error}");
    assert!(
        !error.message.contains("PRIVATE KEY"),
        "the key never appears in a message: {error}"
    );
    assert_eq!(oauth.issued(), 0);
}

#[tokio::test]
async fn a_missing_key_in_the_credentials_secret_waits_for_it() {
    let secrets = Arc::new(MemorySecrets::default());
    secrets.insert("strata-system", "gcp-key", "other", "{}");
    let error = connect(secret_config("http://127.0.0.1:9"), secrets)
        .await
        .err()
        .expect("no key, no client");
    assert_eq!(error.class, ErrorClass::NotReadyYet, "{error}");
    assert!(error.message.contains("credentials.json"), "{error}");
}

#[tokio::test]
async fn an_oidc_token_file_is_exchanged_at_sts_for_the_token_every_call_carries() {
    let dir = TempDir::new("gcp-wif");
    let token_file = dir.path().join("token");
    let subject = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c3RyYXRhIn0.c2ln";
    std::fs::write(&token_file, format!("{subject}\n")).unwrap();
    let sts = sts_endpoint(AUDIENCE, subject, "wif-access-token").await;
    let gcs = Emulator::fake_gcs();
    let (proxy, log) = recording_proxy(&gcs.url).await;
    let config = |endpoint: &str| {
        json!({
            "credentials": {
                "source": "WorkloadIdentityFederation",
                "workloadIdentity": {
                    "audience": AUDIENCE,
                    "tokenFile": token_file,
                    "tokenUrl": sts.served.url
                }
            },
            "endpoint": endpoint
        })
    };

    let buckets = connect(config(&proxy.url), Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    exercise(buckets.as_ref(), "strata-wif").await;
    assert_every_call_carries(&log, "wif-access-token");
    assert_eq!(sts.issued(), 1);

    // The token file is the credential: one STS refuses gives no client.
    std::fs::write(&token_file, "forged-subject-token").unwrap();
    let error = connect(config(&proxy.url), Arc::new(MemorySecrets::default()))
        .await
        .err()
        .expect("a refused token gives no client");
    assert_eq!(error.operation, "authenticate", "{error}");
    assert!(
        !error.message.contains("forged-subject-token"),
        "the token never appears in a message: {error}"
    );
}

/// Runs [`injected_identity_in_a_child_process`] in a child process whose
/// `GOOGLE_APPLICATION_CREDENTIALS` is `credentials` (the variable is process-wide, and setting
/// it in this process would race other tests).
async fn run_child_with_application_default_credentials(credentials: &Path, endpoint: &str) {
    let exe = std::env::current_exe().unwrap();
    let credentials = credentials.to_owned();
    let endpoint = endpoint.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "gcs::credentials::injected_identity_in_a_child_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("GOOGLE_APPLICATION_CREDENTIALS", credentials)
            .env(CHILD_ENDPOINT, endpoint)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn injected_identity_uses_the_service_account_key_named_by_google_application_credentials() {
    let dir = TempDir::new("gcp-adc-key");
    let (private_key, public_key) = rsa_key_pair(dir.path());
    let oauth = oauth_token_endpoint(&public_key, CLIENT_EMAIL, "adc-access-token").await;
    let key_file = dir.path().join("application_default_credentials.json");
    std::fs::write(
        &key_file,
        service_account_key(&private_key, CLIENT_EMAIL, &oauth.served.url),
    )
    .unwrap();
    let gcs = Emulator::fake_gcs();
    let (proxy, log) = recording_proxy(&gcs.url).await;

    run_child_with_application_default_credentials(&key_file, &proxy.url).await;

    assert_every_call_carries(&log, "adc-access-token");
    assert_eq!(oauth.issued(), 1);
}

#[tokio::test]
async fn injected_identity_uses_an_external_account_named_by_google_application_credentials() {
    let dir = TempDir::new("gcp-adc-external");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "oidc-subject-token").unwrap();
    let sts = sts_endpoint(AUDIENCE, "oidc-subject-token", "adc-wif-access-token").await;
    let config_file = dir.path().join("external-account.json");
    let external_account = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": sts.served.url,
        "credential_source": {"file": token_file}
    });
    std::fs::write(&config_file, external_account.to_string()).unwrap();
    let gcs = Emulator::fake_gcs();
    let (proxy, log) = recording_proxy(&gcs.url).await;

    run_child_with_application_default_credentials(&config_file, &proxy.url).await;

    assert_every_call_carries(&log, "adc-wif-access-token");
    assert_eq!(sts.issued(), 1);
}

/// The child half of the InjectedIdentity tests: connects with application default credentials
/// from the environment its parent set.
#[tokio::test]
#[ignore = "run by the injected_identity_* tests in a child process with GOOGLE_APPLICATION_CREDENTIALS set"]
async fn injected_identity_in_a_child_process() {
    let endpoint = std::env::var(CHILD_ENDPOINT)
        .expect("run by the injected_identity_* tests, which set the endpoint");
    let buckets = connect(
        json!({"credentials": {"source": "InjectedIdentity"}, "endpoint": endpoint}),
        Arc::new(MemorySecrets::default()),
    )
    .await
    .unwrap();
    exercise(buckets.as_ref(), "strata-adc").await;
}
