//! Provider verbs against real emulators: the AWS provider against `moto` (RDS and STS), the
//! Google Cloud provider against `fake-gcs-server` and `gcp-storage-emulator`. Every emulator
//! binds 127.0.0.1 on a free port and is stopped by PID when its guard drops.
//!
//! Install the emulators with `pip install -r tests/requirements.txt`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use strata_provider::{
    BoxFuture, CreateRecord, DeletionPolicy, ErrorClass, External, ExternalName, Facts, Managed,
    ManagementPolicies, Observation, Present, Provider, ProviderError, SecretReference, Secrets,
    Step, next_step,
};
use strata_provider_aws::{AwsIamOidcProvider, AwsIamRoleProvider, AwsRdsProvider};
use strata_provider_gcp::{GcsBucketIamMemberProvider, GcsBucketProvider};

use strata_test_support::cloud_proxy;

// ---------------------------------------------------------------------------------------------
// Emulators
// ---------------------------------------------------------------------------------------------

use strata_test_support::Emulator;

// ---------------------------------------------------------------------------------------------
// An in-memory Secret port
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct MemorySecrets(Mutex<BTreeMap<(String, String), BTreeMap<String, String>>>);

impl MemorySecrets {
    fn insert(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .lock()
            .unwrap()
            .insert((namespace.into(), name.into()), data);
    }

    fn key(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .get(&(namespace.into(), name.into()))
            .and_then(|data| data.get(key).cloned())
    }
}

impl Secrets for MemorySecrets {
    fn get<'a>(
        &'a self,
        secret: &'a SecretReference,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, ProviderError>> {
        let found = self
            .0
            .lock()
            .unwrap()
            .get(&(secret.namespace.clone(), secret.name.clone()))
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn put_key<'a>(
        &'a self,
        secret: &'a SecretReference,
        key: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        self.0
            .lock()
            .unwrap()
            .entry((secret.namespace.clone(), secret.name.clone()))
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        Box::pin(async { Ok(()) })
    }
}

fn managed(
    name: &str,
    external_name: &str,
    for_provider: Value,
    connection_secret: Option<&str>,
) -> Managed {
    Managed {
        name: name.into(),
        external_name: ExternalName::new(external_name),
        for_provider,
        at_provider: Value::Null,
        connection_secret: connection_secret.map(|name| SecretReference {
            name: name.into(),
            namespace: "default".into(),
        }),
    }
}

fn present(observation: Observation) -> Present {
    match observation {
        Observation::Present(present) => present,
        Observation::Absent => panic!("expected the resource to exist"),
    }
}

/// Reads the resource and updates it from that record, as the runtime does.
async fn update(external: &dyn External, managed: &Managed) -> Result<(), ProviderError> {
    let record = external
        .read(managed)
        .await?
        .expect("the resource to update exists");
    external.update(managed, &record).await
}

fn decide(
    observation: &Observation,
    policies: &ManagementPolicies,
    deleting: bool,
    deletion_policy: DeletionPolicy,
) -> Step {
    // An object past the runtime's gates (finalized, named, valid, not backing off), observed.
    next_step(&Facts {
        observation: Some(observation),
        deleting,
        has_finalizer: true,
        external_name_recorded: true,
        paused: false,
        policies: Ok(policies),
        validation: Ok(()),
        backoff: None,
        deletion_policy,
        create: CreateRecord::default(),
        now: 0,
    })
}

// ---------------------------------------------------------------------------------------------
// AWS RDS against moto
// ---------------------------------------------------------------------------------------------

fn aws_secret_config(endpoint: &str, secrets: &MemorySecrets) -> Value {
    secrets.insert(
        "strata-system",
        "aws-credentials",
        &[
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
        ],
    );
    json!({
        "metadata": {"name": "moto"},
        "spec": {
            "credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": "aws-credentials"}},
            "endpoint": {"url": endpoint},
        },
    })
}

fn postgres(class: &str) -> Value {
    json!({
        "region": "us-east-1",
        "engine": "postgres",
        "engineVersion": "16.3",
        "dbInstanceClass": class,
        "allocatedStorage": 20,
        "masterUsername": "app",
        "tags": {"team": "orders"},
    })
}

/// A raw SDK client, to change the instance behind Strata's back.
async fn raw_rds(endpoint: &str) -> aws_sdk_rds::Client {
    let config = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_rds::Client::from_conf(config)
}

#[tokio::test]
async fn rds_instance_is_created_observed_updated_drift_corrected_and_deleted_against_moto() {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let rds = AwsRdsProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let mut db = managed(
        "orders-db",
        "orders-db",
        postgres("db.t3.micro"),
        Some("orders-db-conn"),
    );

    assert_eq!(
        rds.observe(&db).await.unwrap(),
        Observation::Absent,
        "nothing exists before create"
    );

    let created = rds.create(&db).await.unwrap();
    let stored = secrets
        .key("default", "orders-db-conn", "password")
        .expect("the generated password is stored before create");
    assert_eq!(created.connection_details.get("password"), Some(&stored));
    rds.create(&db)
        .await
        .expect("a second create of the same identifier is idempotent");

    let observed = present(rds.observe(&db).await.unwrap());
    assert!(observed.ready, "moto instances are available at once");
    assert!(observed.up_to_date, "a fresh instance matches its spec");
    assert_eq!(observed.at_provider["status"], "available");
    assert!(
        observed.at_provider["arn"]
            .as_str()
            .unwrap()
            .contains("orders-db")
    );
    for key in ["endpoint", "port", "username", "password"] {
        assert!(
            observed.connection_details.contains_key(key),
            "connection details carry {key}"
        );
    }
    assert_eq!(observed.connection_details["password"], stored);

    // Late initialization fills the unset fields once; afterwards there is nothing to fill.
    let filled = observed
        .late_init
        .expect("moto reports defaults for unset fields");
    for (key, value) in filled.as_object().unwrap() {
        db.for_provider[key] = value.clone();
    }
    assert_eq!(
        present(rds.observe(&db).await.unwrap()).late_init,
        None,
        "late init does not repeat"
    );

    // Update: only the changed field is sent, and afterwards the instance matches again.
    db.for_provider["dbInstanceClass"] = json!("db.t3.small");
    db.for_provider["tags"] = json!({"team": "orders", "env": "prod"});
    assert!(
        !present(rds.observe(&db).await.unwrap()).up_to_date,
        "a changed class is drift"
    );
    update(rds.as_ref(), &db).await.unwrap();
    let updated = present(rds.observe(&db).await.unwrap());
    assert!(
        updated.up_to_date,
        "update converged the class and tags: {updated:?}"
    );

    // Drift: change the instance behind Strata's back; observe notices, update corrects.
    let raw = raw_rds(&moto.url).await;
    raw.modify_db_instance()
        .db_instance_identifier("orders-db")
        .db_instance_class("db.m5.large")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    let drifted = rds.observe(&db).await.unwrap();
    assert!(
        !present(drifted.clone()).up_to_date,
        "out-of-band change is reported as drift"
    );
    assert_eq!(
        decide(
            &drifted,
            &ManagementPolicies::all(),
            false,
            DeletionPolicy::Delete
        ),
        Step::Update
    );
    update(rds.as_ref(), &db).await.unwrap();
    assert!(
        present(rds.observe(&db).await.unwrap()).up_to_date,
        "update corrected the drift"
    );

    // Immutable fields are reported by name instead of being silently ignored.
    let mut renamed = db.clone();
    renamed.for_provider["masterUsername"] = json!("root");
    let error = update(rds.as_ref(), &renamed).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Terminal);
    assert!(error.message.contains("masterUsername"), "{error}");

    rds.delete(&db).await.unwrap();
    assert_eq!(
        rds.observe(&db).await.unwrap(),
        Observation::Absent,
        "moto deletes at once"
    );
    rds.delete(&db)
        .await
        .expect("deleting a missing instance is success");
}

#[tokio::test]
async fn rds_instance_is_adopted_by_external_name_imported_read_only_and_orphaned() {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let rds = AwsRdsProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    raw_rds(&moto.url)
        .await
        .create_db_instance()
        .db_instance_identifier("legacy-db")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("legacy")
        .master_user_password("legacy-password")
        .send()
        .await
        .unwrap();

    // Adopt: a differently named object points at the existing instance by external name.
    let adopted = managed("orders-legacy", "legacy-db", postgres("db.t3.micro"), None);
    let observation = rds.observe(&adopted).await.unwrap();
    let found = present(observation.clone());
    assert_eq!(found.connection_details["username"], "legacy");
    assert!(
        !found.up_to_date,
        "the spec's masterUsername differs from the adopted instance"
    );

    // Observe-only import: the instance is read, never changed or late-initialized.
    let read_only = ManagementPolicies::observe_only();
    assert_eq!(
        decide(&observation, &read_only, false, DeletionPolicy::Delete),
        Step::Nothing
    );
    let minimal = managed(
        "legacy",
        "legacy-db",
        json!({"region": "us-east-1", "engine": "postgres", "dbInstanceClass": "db.t3.micro"}),
        None,
    );
    let imported = rds.observe(&minimal).await.unwrap();
    assert!(
        present(imported.clone()).late_init.is_some(),
        "an import has fields to late-initialize"
    );
    assert_eq!(
        decide(&imported, &read_only, false, DeletionPolicy::Delete),
        Step::Nothing
    );
    assert_eq!(
        decide(&imported, &read_only, true, DeletionPolicy::Delete),
        Step::RemoveFinalizer,
        "an import is released, not deleted"
    );

    // Orphan: deleting the object releases it and leaves the instance.
    assert_eq!(
        decide(
            &imported,
            &ManagementPolicies::all(),
            true,
            DeletionPolicy::Orphan
        ),
        Step::RemoveFinalizer
    );
    assert!(
        matches!(
            rds.observe(&minimal).await.unwrap(),
            Observation::Present(_)
        ),
        "the orphaned instance still exists"
    );

    // Nothing to import: observe-only refuses to create.
    let missing = managed("ghost", "ghost-db", postgres("db.t3.micro"), None);
    let absent = rds.observe(&missing).await.unwrap();
    assert!(matches!(
        decide(&absent, &read_only, false, DeletionPolicy::Delete),
        Step::Stop { .. }
    ));
}

/// An endpoint that accepts connections and never answers; the connections are held open.
async fn stalled_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

#[tokio::test]
async fn aws_calls_to_a_stalled_endpoint_fail_within_the_call_timeout_as_retryable() {
    let endpoint = stalled_endpoint().await;
    let secrets = Arc::new(MemorySecrets::default());
    let mut config = aws_secret_config(&endpoint, &secrets);
    config["spec"]["callTimeoutSeconds"] = json!(2);
    let rds = AwsRdsProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let iam = AwsIamRoleProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let db = managed("stalled-db", "stalled-db", postgres("db.t3.micro"), None);
    let role = managed("stalled-role", "stalled-role", workload_role(), None);
    for (external, object) in [(&rds, &db), (&iam, &role)] {
        let started = std::time::Instant::now();
        let error = external.observe(object).await.unwrap_err();
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(6),
            "{}: the call gave up after {took:?}",
            object.name
        );
        assert_eq!(error.class, ErrorClass::Transient, "{error}");
        assert!(
            error.message.contains(&endpoint) && error.message.contains("timeout"),
            "the reason names the endpoint and the timeout: {error}"
        );
    }
}

#[tokio::test]
async fn gcs_calls_to_a_stalled_endpoint_fail_within_the_call_timeout_as_retryable() {
    let endpoint = stalled_endpoint().await;
    let mut config = gcs_config(&endpoint);
    config["spec"]["callTimeoutSeconds"] = json!(2);
    let buckets = GcsBucketProvider
        .connect(&config, Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let members = GcsBucketIamMemberProvider
        .connect(&config, Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let bucket = managed("stalled", "strata-stalled", bucket_spec("US"), None);
    let member = managed(
        "stalled-member",
        "stalled-member",
        member_spec("strata-stalled", VIEWER, "user:a@example.com"),
        None,
    );
    let started = std::time::Instant::now();
    let calls = [
        (
            "read a bucket (JSON API)",
            buckets.observe(&bucket).await.err(),
        ),
        (
            "insert a bucket (gcloud-storage)",
            buckets.create(&bucket).await.err(),
        ),
        (
            "delete a bucket (gcloud-storage)",
            buckets.delete(&bucket).await.err(),
        ),
        ("read a bucket policy", members.observe(&member).await.err()),
    ];
    let took = started.elapsed();
    for (call, error) in calls {
        let error = error.unwrap_or_else(|| panic!("{call}: a stalled endpoint cannot succeed"));
        assert_eq!(error.class, ErrorClass::Transient, "{call}: {error}");
    }
    assert!(
        took < std::time::Duration::from_secs(14),
        "four calls gave up within their timeouts, not after {took:?}"
    );
}

#[tokio::test]
async fn rds_instance_with_iam_authentication_and_an_rds_managed_password_keeps_no_password_in_kubernetes()
 {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let rds = AwsRdsProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let mut spec = postgres("db.t3.micro");
    spec["enableIAMDatabaseAuthentication"] = json!(true);
    spec["manageMasterUserPassword"] = json!(true);
    let db = managed("orders-db", "orders-db", spec, Some("orders-db-conn"));
    AwsRdsProvider.validate(&db).unwrap();

    let created = rds.create(&db).await.unwrap();
    assert!(
        created.connection_details.is_empty(),
        "no password is generated: {:?}",
        created.connection_details
    );
    assert_eq!(
        secrets.key("default", "orders-db-conn", "password"),
        None,
        "no password Secret is written"
    );
    let observed = present(rds.observe(&db).await.unwrap());
    assert!(observed.up_to_date, "{observed:?}");
    assert_eq!(
        observed.at_provider["iamDatabaseAuthenticationEnabled"],
        true
    );
    let secret_arn = observed.at_provider["masterUserSecretArn"]
        .as_str()
        .expect("status names the master password's secret");
    assert!(
        secret_arn.starts_with("arn:aws:secretsmanager:"),
        "{secret_arn}"
    );
    assert!(
        !observed.connection_details.contains_key("password"),
        "{:?}",
        observed.connection_details
    );
    for key in ["endpoint", "port", "username"] {
        assert!(observed.connection_details.contains_key(key), "{key}");
    }

    // IAM authentication switched off behind Strata's back is drift and is switched on again.
    raw_rds(&moto.url)
        .await
        .modify_db_instance()
        .db_instance_identifier("orders-db")
        .enable_iam_database_authentication(false)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    assert!(!present(rds.observe(&db).await.unwrap()).up_to_date);
    update(rds.as_ref(), &db).await.unwrap();
    let corrected = present(rds.observe(&db).await.unwrap());
    assert!(corrected.up_to_date);
    assert_eq!(
        corrected.at_provider["iamDatabaseAuthenticationEnabled"],
        true
    );

    // Taking the password back from RDS is refused by field, not attempted.
    let mut back = db.clone();
    back.for_provider["manageMasterUserPassword"] = json!(false);
    let error = update(rds.as_ref(), &back).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Terminal);
    assert!(
        error.message.contains("manageMasterUserPassword"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// AWS IAM Role against moto
// ---------------------------------------------------------------------------------------------

/// The OIDC provider ARN of a `strata up` issuer, as IAM names it.
const CLUSTER_OIDC_PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/127.0.0.1:6443";

fn connect_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ORDERS/app",
        }],
    })
}

fn workload_role() -> Value {
    json!({
        "trustServiceAccount": {
            "oidcProviderArn": CLUSTER_OIDC_PROVIDER,
            "namespace": "shop",
            "serviceAccount": "orders",
        },
        "inlinePolicies": {"connect": connect_policy()},
        "description": "orders may connect to its database",
        "tags": {"team": "orders"},
    })
}

/// A raw IAM client, to change roles behind Strata's back.
async fn raw_iam(endpoint: &str) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

async fn inline_policy_names(iam: &aws_sdk_iam::Client, role: &str) -> Vec<String> {
    iam.list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

#[tokio::test]
async fn iam_role_trusting_a_service_account_is_created_drift_corrected_and_deleted_against_moto() {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let iam = AwsIamRoleProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let mut role = managed(
        "orders-db-access",
        "orders-db-access",
        workload_role(),
        None,
    );
    AwsIamRoleProvider.validate(&role).unwrap();

    assert_eq!(iam.observe(&role).await.unwrap(), Observation::Absent);
    let created = iam.create(&role).await.unwrap();
    assert!(
        created.record.is_some(),
        "IAM creates synchronously, so create reports the role"
    );
    iam.create(&role)
        .await
        .expect("a second create of the same role name is idempotent");

    let observed = present(iam.observe(&role).await.unwrap());
    assert!(observed.ready && observed.up_to_date, "{observed:?}");
    let arn = observed.at_provider["arn"].as_str().unwrap().to_owned();
    assert_eq!(arn, "arn:aws:iam::123456789012:role/orders-db-access");
    assert_eq!(
        observed.connection_details,
        BTreeMap::from([("roleArn".to_owned(), arn.clone())]),
        "the connection details are the role ARN and nothing secret"
    );

    // What IAM stored is the ServiceAccount trust the spec asked for.
    let raw = raw_iam(&moto.url).await;
    let stored = raw
        .get_role()
        .role_name("orders-db-access")
        .send()
        .await
        .unwrap();
    let trust = strata_provider_aws::decode_policy(
        stored
            .role()
            .unwrap()
            .assume_role_policy_document()
            .unwrap(),
    );
    let statement = &trust["Statement"][0];
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        statement["Condition"]["StringEquals"]["127.0.0.1:6443:sub"],
        "system:serviceaccount:shop:orders"
    );
    assert_eq!(
        statement["Condition"]["StringEquals"]["127.0.0.1:6443:aud"],
        "sts.amazonaws.com"
    );
    assert_eq!(
        inline_policy_names(&raw, "orders-db-access").await,
        ["connect"]
    );

    // Drift behind Strata's back: a widened trust policy, an extra inline policy, a lost tag.
    raw.update_assume_role_policy()
        .role_name("orders-db-access")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    raw.put_role_policy()
        .role_name("orders-db-access")
        .policy_name("backdoor")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "*", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    raw.untag_role()
        .role_name("orders-db-access")
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let drifted = iam.observe(&role).await.unwrap();
    assert!(!present(drifted.clone()).up_to_date, "drift is reported");
    assert_eq!(
        decide(
            &drifted,
            &ManagementPolicies::all(),
            false,
            DeletionPolicy::Delete
        ),
        Step::Update
    );
    update(iam.as_ref(), &role).await.unwrap();
    assert!(
        present(iam.observe(&role).await.unwrap()).up_to_date,
        "update corrected the trust policy, the inline policies and the tags"
    );
    assert_eq!(
        inline_policy_names(&raw, "orders-db-access").await,
        ["connect"],
        "the policy added behind Strata's back is gone"
    );

    // A spec change: another ServiceAccount, another description.
    role.for_provider["trustServiceAccount"]["serviceAccount"] = json!("orders-v2");
    role.for_provider["description"] = json!("orders v2");
    assert!(!present(iam.observe(&role).await.unwrap()).up_to_date);
    update(iam.as_ref(), &role).await.unwrap();
    assert!(present(iam.observe(&role).await.unwrap()).up_to_date);

    // A changed path cannot be applied in place and says so by field.
    let mut moved = role.clone();
    moved.for_provider["path"] = json!("/apps/");
    let error = update(iam.as_ref(), &moved).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Terminal);
    assert!(error.message.contains("path"), "{error}");

    // Delete removes the inline policy first (IAM refuses otherwise), then the role.
    iam.delete(&role).await.unwrap();
    assert_eq!(iam.observe(&role).await.unwrap(), Observation::Absent);
    iam.delete(&role)
        .await
        .expect("deleting a missing role is success");
}

#[tokio::test]
async fn iam_oidc_provider_for_a_cluster_issuer_is_created_found_by_url_corrected_and_deleted_against_moto()
 {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let providers = AwsIamOidcProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let mut issuer = managed(
        "cluster",
        "cluster",
        json!({"url": "https://oidc.strata.example/cluster-a",
            "thumbprintList": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            "tags": {"cluster": "a"}}),
        None,
    );
    AwsIamOidcProvider.validate(&issuer).unwrap();
    assert_eq!(
        providers.observe(&issuer).await.unwrap(),
        Observation::Absent
    );
    let created = providers.create(&issuer).await.unwrap();
    assert!(created.record.is_some());
    providers
        .create(&issuer)
        .await
        .expect("creating the same URL again is idempotent");
    let observed = present(providers.observe(&issuer).await.unwrap());
    assert!(observed.up_to_date && observed.ready, "{observed:?}");
    let arn = observed.at_provider["arn"].as_str().unwrap().to_owned();
    assert_eq!(
        arn,
        "arn:aws:iam::123456789012:oidc-provider/oidc.strata.example/cluster-a"
    );
    assert_eq!(observed.connection_details["oidcProviderArn"], arn);

    // A thumbprint changed and a tag removed behind Strata's back are corrected; the recorded
    // ARN is used. (moto answers audience edits with a 500, so those are covered by unit tests.)
    issuer.at_provider = observed.at_provider;
    let raw = raw_iam(&moto.url).await;
    raw.update_open_id_connect_provider_thumbprint()
        .open_id_connect_provider_arn(&arn)
        .thumbprint_list("0000000000000000000000000000000000000000")
        .send()
        .await
        .unwrap();
    raw.untag_open_id_connect_provider()
        .open_id_connect_provider_arn(&arn)
        .tag_keys("cluster")
        .send()
        .await
        .unwrap();
    assert!(!present(providers.observe(&issuer).await.unwrap()).up_to_date);
    update(providers.as_ref(), &issuer).await.unwrap();
    assert!(present(providers.observe(&issuer).await.unwrap()).up_to_date);

    providers.delete(&issuer).await.unwrap();
    assert_eq!(
        providers.observe(&issuer).await.unwrap(),
        Observation::Absent
    );
    providers
        .delete(&issuer)
        .await
        .expect("deleting a missing provider is success");
}

#[tokio::test]
async fn iam_role_is_adopted_by_external_name_and_orphaned_and_bad_specs_are_refused() {
    let moto = Emulator::moto();
    let secrets = Arc::new(MemorySecrets::default());
    let config = aws_secret_config(&moto.url, &secrets);
    let iam = AwsIamRoleProvider
        .connect(&config, secrets.clone())
        .await
        .unwrap();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    raw_iam(&moto.url)
        .await
        .create_role()
        .role_name("legacy-role")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap();

    // Adopt: the object names the existing role by external name; the trust policy given as a
    // JSON string with other spelling is the same policy.
    let spelled_differently = json!({"Statement": {"Action": ["sts:AssumeRole"], "Effect": "Allow",
        "Principal": {"Service": ["ec2.amazonaws.com"]}}, "Version": "2012-10-17"});
    let adopted = managed(
        "legacy",
        "legacy-role",
        json!({"assumeRolePolicy": spelled_differently.to_string()}),
        None,
    );
    let observation = iam.observe(&adopted).await.unwrap();
    assert!(
        present(observation.clone()).up_to_date,
        "an equivalent trust policy is not drift"
    );
    assert_eq!(
        decide(
            &observation,
            &ManagementPolicies::all(),
            true,
            DeletionPolicy::Orphan
        ),
        Step::RemoveFinalizer,
        "an orphaned role is released, not deleted"
    );
    assert_eq!(
        decide(
            &observation,
            &ManagementPolicies::observe_only(),
            false,
            DeletionPolicy::Delete
        ),
        Step::Nothing
    );

    // Bad input is refused before any call, naming the field.
    for (for_provider, field) in [
        (json!({}), "assumeRolePolicy"),
        (
            json!({"trustServiceAccount": {"oidcProviderArn": "arn:aws:iam::123456789012:role/x",
                "namespace": "shop", "serviceAccount": "orders"}}),
            "trustServiceAccount.oidcProviderArn",
        ),
        (
            json!({"assumeRolePolicy": trust, "inlinePolicies": {"read": "not json"}}),
            "inlinePolicies",
        ),
    ] {
        let bad = managed("bad", "bad-role", for_provider, None);
        let error = AwsIamRoleProvider.validate(&bad).unwrap_err();
        assert_eq!(error.class, ErrorClass::Terminal);
        assert!(
            error
                .message
                .starts_with(&format!("spec.forProvider.{field}: ")),
            "{error}"
        );
    }
}

#[tokio::test]
async fn rds_web_identity_credentials_are_exchanged_at_sts_for_every_call() {
    let moto = Emulator::moto();
    let token_dir = strata_test_support::temp_dir("web-identity");
    std::fs::create_dir_all(&token_dir).unwrap();
    let token_file = token_dir.join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.signature\n").unwrap();
    let config = |file: &PathBuf| {
        json!({
            "metadata": {"name": "irsa"},
            "spec": {
                "credentials": {
                    "source": "WebIdentity",
                    "webIdentity": {"roleArn": "arn:aws:iam::123456789012:role/strata", "tokenFile": file.to_str().unwrap()},
                },
                "endpoint": {"url": moto.url},
            },
        })
    };
    let secrets: Arc<dyn Secrets> = Arc::new(MemorySecrets::default());
    let rds = AwsRdsProvider
        .connect(&config(&token_file), secrets.clone())
        .await
        .unwrap();
    let db = managed(
        "web-db",
        "web-db",
        postgres("db.t3.micro"),
        Some("web-db-conn"),
    );
    assert_eq!(
        rds.observe(&db).await.unwrap(),
        Observation::Absent,
        "STS credentials sign the RDS call"
    );
    rds.create(&db).await.unwrap();
    assert!(present(rds.observe(&db).await.unwrap()).ready);

    // Proof the token file is the credential: without it no call can be signed.
    let missing = token_dir.join("missing");
    let unsigned = AwsRdsProvider
        .connect(&config(&missing), secrets)
        .await
        .unwrap();
    let error = unsigned.observe(&db).await.unwrap_err();
    assert!(
        error.message.contains("token"),
        "the error names the token file: {error}"
    );
    std::fs::remove_dir_all(&token_dir).unwrap();
}

/// What a parent test hands the child process: the RDS endpoint to use.
const CHILD_ENDPOINT: &str = "STRATA_AWS_TEST_CHILD_ENDPOINT";

/// Runs [`rds_environment_credentials_in_a_child_process`] in a child process with exactly the
/// AWS variables in `env` (the environment is process-wide: setting it here would race other
/// tests).
async fn run_child_with_aws_environment(endpoint: &str, env: &[(&str, String)]) {
    let exe = std::env::current_exe().unwrap();
    let mut command = std::process::Command::new(exe);
    command
        .args([
            "providers::rds_environment_credentials_in_a_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENDPOINT, endpoint);
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL",
    ] {
        command.env_remove(name);
    }
    command.env("AWS_CONFIG_FILE", "/nonexistent/strata-test");
    command.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/strata-test");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
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
#[ignore = "run by the rds_environment_* tests in a child process with the AWS variables set"]
async fn rds_environment_credentials_in_a_child_process() {
    let endpoint = std::env::var(CHILD_ENDPOINT).expect("run by the rds_environment_* tests");
    let config = json!({
        "metadata": {"name": "environment"},
        "spec": {"credentials": {"source": "Environment"}, "endpoint": {"url": endpoint}},
    });
    let rds = AwsRdsProvider
        .connect(&config, Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let db = managed(
        "env-db",
        "env-db",
        postgres("db.t3.micro"),
        Some("env-db-conn"),
    );
    assert_eq!(rds.observe(&db).await.unwrap(), Observation::Absent);
    rds.create(&db).await.unwrap();
    assert!(present(rds.observe(&db).await.unwrap()).ready);
}

#[tokio::test]
async fn rds_environment_credentials_are_the_sdk_default_chain_keys() {
    let moto = Emulator::moto();
    let proxy = cloud_proxy::CloudProxy::start(&moto.url, cloud_proxy::rds_call, None).await;
    run_child_with_aws_environment(
        &proxy.url,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIASTRATAENVIRONMENT".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "environment-secret".to_owned()),
        ],
    )
    .await;
    let calls = proxy.calls();
    assert!(calls.len() >= 3, "observe, create, observe: {calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c.access_key.as_deref() == Some("AKIASTRATAENVIRONMENT")),
        "every call is signed with the environment's key: {calls:?}"
    );
}

#[tokio::test]
async fn rds_environment_credentials_follow_a_web_identity_token_through_sts() {
    let moto = Emulator::moto();
    let proxy = cloud_proxy::CloudProxy::start(&moto.url, cloud_proxy::rds_call, None).await;
    let dir = strata_test_support::temp_dir("env-web-identity");
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.signature\n").unwrap();
    // The SDK's own chain: a projected service-account token and a role, as on EKS.
    run_child_with_aws_environment(
        &proxy.url,
        &[
            (
                "AWS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/strata".to_owned(),
            ),
            (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                token_file.to_string_lossy().into_owned(),
            ),
            ("AWS_ENDPOINT_URL", proxy.url.clone()),
        ],
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    let calls = proxy.calls();
    let exchange = calls
        .iter()
        .position(|c| c.operation == "AssumeRoleWithWebIdentity")
        .expect("the token was exchanged at STS");
    let rds_calls: Vec<_> = calls
        .iter()
        .filter(|c| c.operation.contains("DBInstance"))
        .collect();
    assert!(rds_calls.len() >= 3, "{calls:?}");
    assert!(
        calls
            .iter()
            .position(|c| c.operation.contains("DBInstance"))
            .is_some_and(|first| first > exchange),
        "STS answered before the first RDS call: {calls:?}"
    );
    assert!(
        rds_calls
            .iter()
            .all(|c| c.access_key.as_deref().is_some_and(|key| !key.is_empty())),
        "every RDS call is signed with the exchanged credentials: {rds_calls:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Google Cloud Storage against fake-gcs-server and gcp-storage-emulator
// ---------------------------------------------------------------------------------------------

fn gcs_config(endpoint: &str) -> Value {
    json!({"metadata": {"name": "emulator"}, "spec": {"credentials": {"source": "Anonymous"}, "endpoint": endpoint}})
}

/// fake-gcs-server places every bucket in `US-CENTRAL1` whatever was asked; the spec says so, or
/// the location would read as immutable drift.
fn bucket_spec(location: &str) -> Value {
    json!({"project": "demo", "location": location, "storageClass": "STANDARD", "versioning": false, "uniformBucketLevelAccess": false})
}

#[tokio::test]
async fn gcs_bucket_is_created_updated_and_deleted_against_fake_gcs_server() {
    let gcs = Emulator::fake_gcs();
    let buckets = GcsBucketProvider
        .connect(&gcs_config(&gcs.url), Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let mut bucket = managed("assets", "strata-assets", bucket_spec("US-CENTRAL1"), None);

    assert_eq!(buckets.observe(&bucket).await.unwrap(), Observation::Absent);
    buckets.create(&bucket).await.unwrap();
    let observed = present(buckets.observe(&bucket).await.unwrap());
    assert!(observed.ready && observed.up_to_date, "{observed:?}");
    assert_eq!(observed.at_provider["url"], "gs://strata-assets");
    assert_eq!(observed.connection_details["bucket"], "strata-assets");

    bucket.for_provider["versioning"] = json!(true);
    assert!(
        !present(buckets.observe(&bucket).await.unwrap()).up_to_date,
        "versioning change is drift"
    );
    update(buckets.as_ref(), &bucket).await.unwrap();
    assert!(
        present(buckets.observe(&bucket).await.unwrap()).up_to_date,
        "update enabled versioning"
    );

    let taken = managed("other", "strata-assets", bucket_spec("US-CENTRAL1"), None);
    let conflict = buckets.create(&taken).await.unwrap_err();
    assert_eq!(conflict.class, ErrorClass::Terminal);
    assert!(
        conflict.message.contains("409") && conflict.message.contains("global"),
        "{conflict}"
    );

    buckets.delete(&bucket).await.unwrap();
    assert_eq!(buckets.observe(&bucket).await.unwrap(), Observation::Absent);
    buckets
        .delete(&bucket)
        .await
        .expect("deleting a missing bucket is success");
}

#[tokio::test]
async fn gcs_non_empty_bucket_delete_is_a_clear_terminal_error() {
    let gcs = Emulator::fake_gcs();
    let buckets = GcsBucketProvider
        .connect(&gcs_config(&gcs.url), Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let bucket = managed("logs", "strata-logs", bucket_spec("US-CENTRAL1"), None);
    buckets.create(&bucket).await.unwrap();
    let upload = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "--data-binary",
            "hello",
            "-H",
            "Content-Type: text/plain",
        ])
        .arg(format!(
            "{}/upload/storage/v1/b/strata-logs/o?uploadType=media&name=hello.txt",
            gcs.url
        ))
        .output()
        .unwrap();
    assert!(
        upload.status.success(),
        "upload an object: {}",
        String::from_utf8_lossy(&upload.stderr)
    );

    let error = buckets.delete(&bucket).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Terminal);
    assert!(
        error.message.contains("412") && error.message.contains("not empty"),
        "{error}"
    );
    assert!(
        matches!(
            buckets.observe(&bucket).await.unwrap(),
            Observation::Present(_)
        ),
        "the bucket is kept"
    );
}

#[tokio::test]
async fn gcs_bucket_labels_drift_is_corrected_against_gcp_storage_emulator() {
    let gcs = Emulator::gcp_storage_emulator();
    let buckets = GcsBucketProvider
        .connect(&gcs_config(&gcs.url), Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    let mut bucket = managed("media", "strata-media", bucket_spec("US"), None);
    bucket.for_provider["labels"] = json!({"team": "web"});
    buckets.create(&bucket).await.unwrap();
    let created = present(buckets.observe(&bucket).await.unwrap());
    if !created.up_to_date {
        // The emulator drops labels on insert; the first update sets them.
        update(buckets.as_ref(), &bucket).await.unwrap();
    }
    assert!(
        present(buckets.observe(&bucket).await.unwrap()).up_to_date,
        "labels are set"
    );

    bucket.for_provider["labels"] = json!({"team": "web", "tier": "gold"});
    let drifted = buckets.observe(&bucket).await.unwrap();
    assert!(!present(drifted.clone()).up_to_date, "a new label is drift");
    assert_eq!(
        decide(
            &drifted,
            &ManagementPolicies::all(),
            false,
            DeletionPolicy::Delete
        ),
        Step::Update
    );
    update(buckets.as_ref(), &bucket).await.unwrap();
    assert!(
        present(buckets.observe(&bucket).await.unwrap()).up_to_date,
        "update set the labels"
    );
}

// ---------------------------------------------------------------------------------------------
// Bucket IAM members: gcp-storage-emulator and an etag-checking policy fake
// ---------------------------------------------------------------------------------------------

const VIEWER: &str = "roles/storage.objectViewer";

fn orders_principal() -> &'static str {
    "principal://iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/cluster/subject/system:serviceaccount:shop:orders"
}

fn member_spec(bucket: &str, role: &str, member: &str) -> Value {
    json!({"bucket": bucket, "role": role, "member": member})
}

/// The bucket's IAM policy as the emulator serves it.
fn iam_policy(endpoint: &str, bucket: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sf", &format!("{endpoint}/storage/v1/b/{bucket}/iam")])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET the policy of {bucket}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn members_of(policy: &Value, role: &str) -> Vec<String> {
    let mut members: Vec<String> = policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|binding| binding["role"] == role)
        .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|member| member.as_str().map(str::to_owned))
        .collect();
    members.sort();
    members
}

#[tokio::test]
async fn gcs_bucket_iam_members_are_granted_moved_and_revoked_one_member_at_a_time_against_gcp_storage_emulator()
 {
    let gcs = Emulator::gcp_storage_emulator();
    let config = gcs_config(&gcs.url);
    let buckets = GcsBucketProvider
        .connect(&config, Arc::new(MemorySecrets::default()))
        .await
        .unwrap();
    buckets
        .create(&managed("data", "strata-data", bucket_spec("US"), None))
        .await
        .unwrap();
    let members = GcsBucketIamMemberProvider
        .connect(&config, Arc::new(MemorySecrets::default()))
        .await
        .unwrap();

    let workload = managed(
        "orders-reader",
        "orders-reader",
        json!({"bucket": "strata-data", "role": VIEWER, "kubernetesServiceAccount": {
            "projectNumber": "123456", "pool": "cluster", "namespace": "shop", "serviceAccount": "orders"}}),
        None,
    );
    GcsBucketIamMemberProvider.validate(&workload).unwrap();
    let mut auditor = managed(
        "auditor",
        "auditor",
        member_spec("strata-data", VIEWER, "user:auditor@example.com"),
        None,
    );
    assert_eq!(
        members.observe(&workload).await.unwrap(),
        Observation::Absent
    );
    members.create(&workload).await.unwrap();
    members.create(&auditor).await.unwrap();
    members
        .create(&workload)
        .await
        .expect("granting twice is idempotent");
    let observed = present(members.observe(&workload).await.unwrap());
    assert!(observed.ready && observed.up_to_date, "{observed:?}");
    assert_eq!(observed.at_provider["member"], orders_principal());
    assert!(
        observed.connection_details.is_empty(),
        "a grant has no secret to publish"
    );
    assert_eq!(
        members_of(&iam_policy(&gcs.url, "strata-data"), VIEWER),
        vec![
            orders_principal().to_owned(),
            "user:auditor@example.com".to_owned()
        ],
        "both members share the role's binding"
    );

    // A changed role moves the grant in one write: the old binding is found through
    // status.atProvider and removed.
    auditor.at_provider = present(members.observe(&auditor).await.unwrap()).at_provider;
    auditor.for_provider["role"] = json!("roles/storage.objectAdmin");
    let moved = members.observe(&auditor).await.unwrap();
    let stale = present(moved.clone());
    assert!(!stale.up_to_date && !stale.ready, "{stale:?}");
    assert_eq!(
        stale.at_provider["role"], VIEWER,
        "the old grant stays recorded"
    );
    assert_eq!(
        decide(
            &moved,
            &ManagementPolicies::all(),
            false,
            DeletionPolicy::Delete
        ),
        Step::Update
    );
    update(members.as_ref(), &auditor).await.unwrap();
    let now = present(members.observe(&auditor).await.unwrap());
    assert!(now.up_to_date && now.ready);
    auditor.at_provider = now.at_provider;
    let policy = iam_policy(&gcs.url, "strata-data");
    assert_eq!(
        members_of(&policy, VIEWER),
        vec![orders_principal().to_owned()]
    );
    assert_eq!(
        members_of(&policy, "roles/storage.objectAdmin"),
        vec!["user:auditor@example.com".to_owned()]
    );

    // Delete removes only this object's member.
    members.delete(&workload).await.unwrap();
    assert_eq!(
        members.observe(&workload).await.unwrap(),
        Observation::Absent
    );
    assert!(matches!(
        members.observe(&auditor).await.unwrap(),
        Observation::Present(_)
    ));
    members
        .delete(&workload)
        .await
        .expect("revoking a missing member is success");

    // A member of a bucket that does not exist yet waits for it.
    let early = managed(
        "early",
        "early",
        member_spec("strata-later", VIEWER, "user:a@example.com"),
        None,
    );
    assert_eq!(members.observe(&early).await.unwrap(), Observation::Absent);
    let error = members.create(&early).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::NotReadyYet, "{error}");
    members
        .delete(&early)
        .await
        .expect("revoking on a missing bucket is success");
}

/// A bucket IAM policy endpoint that checks etags as Cloud Storage does (the emulators accept
/// any etag): a write carrying a stale etag gets 412. The first `hold` reads wait for each other,
/// so that many writers read the same etag and all but one must retry.
mod etag_fake {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use serde_json::{Value, json};

    pub struct Fake {
        pub url: String,
        pub state: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub struct Shared {
        pub policy: Mutex<(u64, Value)>,
        pub refused: Mutex<usize>,
        reads: Mutex<usize>,
        hold: usize,
        barrier: tokio::sync::Barrier,
    }

    fn with_etag(version: u64, policy: &Value) -> Value {
        let mut policy = policy.clone();
        policy["etag"] = json!(format!("etag-{version}"));
        policy["kind"] = json!("storage#policy");
        policy
    }

    async fn read(State(state): State<Arc<Shared>>) -> impl axum::response::IntoResponse {
        let held = {
            let mut reads = state.reads.lock().unwrap();
            *reads += 1;
            *reads <= state.hold
        };
        if held {
            state.barrier.wait().await;
        }
        let (version, policy) = state.policy.lock().unwrap().clone();
        (
            [(header::CONTENT_TYPE, "application/json")],
            with_etag(version, &policy).to_string(),
        )
    }

    async fn write(
        State(state): State<Arc<Shared>>,
        body: Bytes,
    ) -> impl axum::response::IntoResponse {
        let written: Value = serde_json::from_slice(&body).unwrap();
        let mut current = state.policy.lock().unwrap();
        if written["etag"] != json!(format!("etag-{}", current.0)) {
            *state.refused.lock().unwrap() += 1;
            return (
                StatusCode::PRECONDITION_FAILED,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"error": {"code": 412, "message": "etag mismatch"}}).to_string(),
            );
        }
        current.0 += 1;
        current.1 = json!({"version": written["version"], "bindings": written["bindings"]});
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            with_etag(current.0, &current.1).to_string(),
        )
    }

    pub async fn start(hold: usize) -> Fake {
        let state = Arc::new(Shared {
            policy: Mutex::new((
                1,
                json!({"version": 1, "bindings": [
                {"role": "roles/storage.admin", "members": ["group:ops@example.com"]}]}),
            )),
            refused: Mutex::new(0),
            reads: Mutex::new(0),
            hold,
            barrier: tokio::sync::Barrier::new(hold.max(1)),
        });
        let app = Router::new()
            .route("/storage/v1/b/{bucket}/iam", get(read).put(write))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake { url, state, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bucket_iam_members_never_drop_each_other_when_writes_race() {
    // The fake holds the first three reads together, so the writes race on one etag. On a
    // loaded machine a round can still be scheduled so that no write is stale; such a round
    // checks nothing about the race and is run again (at most five rounds).
    let mut round = 0;
    let (fake, members, grants) = loop {
        round += 1;
        let fake = etag_fake::start(3).await;
        let members = GcsBucketIamMemberProvider
            .connect(&gcs_config(&fake.url), Arc::new(MemorySecrets::default()))
            .await
            .unwrap();
        let grants: Vec<Managed> = ["a", "b", "c"]
            .iter()
            .map(|who| {
                managed(
                    who,
                    who,
                    member_spec("shared", VIEWER, &format!("user:{who}@example.com")),
                    None,
                )
            })
            .collect();
        let (a, b, c) = tokio::join!(
            members.create(&grants[0]),
            members.create(&grants[1]),
            members.create(&grants[2])
        );
        a.unwrap();
        b.unwrap();
        c.unwrap();
        let policy = fake.state.policy.lock().unwrap().1.clone();
        assert_eq!(
            members_of(&policy, VIEWER),
            vec![
                "user:a@example.com",
                "user:b@example.com",
                "user:c@example.com"
            ],
            "no member dropped another (round {round})"
        );
        assert_eq!(
            members_of(&policy, "roles/storage.admin"),
            vec!["group:ops@example.com"],
            "the binding Strata does not manage is kept"
        );
        let refused = *fake.state.refused.lock().unwrap();
        if refused >= 1 {
            break (fake, members, grants);
        }
        assert!(
            round < 5,
            "the race never happened in five rounds: no write carried a stale etag"
        );
    };

    // Revoking one while granting another: both land.
    let d = managed(
        "d",
        "d",
        member_spec("shared", VIEWER, "user:d@example.com"),
        None,
    );
    let (revoked, granted) = tokio::join!(members.delete(&grants[0]), members.create(&d));
    revoked.unwrap();
    granted.unwrap();
    let policy = fake.state.policy.lock().unwrap().1.clone();
    assert_eq!(
        members_of(&policy, VIEWER),
        vec![
            "user:b@example.com",
            "user:c@example.com",
            "user:d@example.com"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The managed-resource runtime end to end: embedded control plane + moto
// ---------------------------------------------------------------------------------------------

mod runtime {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::ResourceExt;
    use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
    use serde_json::{Value, json};
    use strata_apiserver::{Server, ServerConfig};
    use strata_provider::Provider;
    use strata_provider_aws::AwsRdsProvider;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::api::coordination::v1::Lease;
    use strata_controllers::leader::LeaderElection;
    use strata_provider::{
        BoxFuture, CloudRecord, Created, External, Managed, Present, ProviderError, RateLimit,
        ResourceKind, Secrets,
    };

    use super::cloud_proxy::{CloudProxy, Fault, Injector, gcs_call, rds_call};
    use strata_test_support::{eventually_async, kubectl_ok_async, kubectl_ok_in, repo_root};

    use super::{Emulator, raw_rds};

    /// An embedded control plane on its own runtime thread, stopped on drop.
    struct ControlPlane {
        dir: PathBuf,
        kubeconfig: PathBuf,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl ControlPlane {
        fn start(name: &str) -> ControlPlane {
            let dir = strata_test_support::temp_dir(&format!("managed-{name}"));
            let config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let server = Server::start(config).await.unwrap();
                    ready_tx.send(server.kubeconfig_path().to_owned()).unwrap();
                    let _ = stopped.await;
                    server.shutdown().await;
                });
            });
            let kubeconfig = ready_rx.recv().expect("the control plane started");
            ControlPlane {
                dir,
                kubeconfig,
                stop: Some(stop),
                thread: Some(thread),
            }
        }

        async fn client(&self) -> kube::Client {
            let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .unwrap();
            strata_controllers::install_crypto_provider();
            kube::Client::try_from(config).unwrap()
        }
    }

    impl Drop for ControlPlane {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn condition<'a>(object: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
        object
            .data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
    }

    fn db(name: &str, annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "rds.aws.strata.dev/v1alpha1",
            "kind": "DBInstance",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "forProvider": {
                    "region": "us-east-1",
                    "engine": "postgres",
                    "engineVersion": "16.3",
                    "dbInstanceClass": "db.t3.micro",
                    "allocatedStorage": 20,
                    "masterUsername": "app",
                },
                "writeConnectionSecretToRef": {"namespace": "strata-system", "name": format!("{name}-conn")},
            },
        }))
        .unwrap()
    }

    async fn instances_named(endpoint: &str, id: &str) -> usize {
        let output = raw_rds(endpoint)
            .await
            .describe_db_instances()
            .send()
            .await
            .unwrap();
        output
            .db_instances()
            .iter()
            .filter(|i| i.db_instance_identifier() == Some(id))
            .count()
    }

    /// The JSON claims of a JWT (no verification: the issuer verified it when it signed it).
    fn jwt_claims(token: &str) -> Value {
        use base64::Engine;
        let payload = token.split('.').nth(1).expect("a JWT has three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The secretless path end to end on the embedded control plane: the runtime makes a database
    /// with IAM authentication and an RDS-managed password and a Role trusting a workload's
    /// ServiceAccount; the workload's token from `kubectl create token` is exchanged at STS for
    /// that Role, and the credentials sign an RDS IAM auth token. No Secret holds a password.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workload_token_from_kubectl_is_exchanged_for_the_role_the_runtime_made_and_signs_an_rds_auth_token()
     {
        use strata_provider_aws::{AwsIamOidcProvider, AwsIamRoleProvider};

        let moto = Emulator::moto();
        let plane = ControlPlane::start("secretless");
        let client = plane.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in strata_provider_aws::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let dbs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&AwsRdsProvider.managed_kind()),
        );
        let roles: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&AwsIamRoleProvider.managed_kind()),
        );
        eventually_async(
            "the AWS kinds to be served",
            Duration::from_secs(20),
            || async {
                roles.list(&Default::default()).await.ok()?;
                dbs.list(&Default::default()).await.ok().map(|_| ())
            },
        )
        .await;
        for namespace in ["strata-system", "shop"] {
            kubectl_ok_async(&plane.kubeconfig, &["create", "namespace", namespace]).await;
        }
        kubectl_ok_async(
            &plane.kubeconfig,
            &["create", "serviceaccount", "orders", "-n", "shop"],
        )
        .await;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "strata-system");
        let credentials = json!({"metadata": {"name": "aws-credentials"}, "stringData": {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}});
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(credentials).unwrap(),
            )
            .await
            .unwrap();
        let configs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&AwsRdsProvider.provider_config_kind()),
        );
        let config = json!({
            "apiVersion": "aws.strata.dev/v1alpha1",
            "kind": "ProviderConfig",
            "metadata": {"name": "default"},
            "spec": {
                "credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": "aws-credentials"}},
                "endpoint": {"url": moto.url},
            },
        });
        configs
            .create(
                &PostParams::default(),
                &serde_json::from_value(config).unwrap(),
            )
            .await
            .unwrap();

        // The workload's token: its issuer is the control plane's.
        let token = kubectl_ok_async(
            &plane.kubeconfig,
            &[
                "create",
                "token",
                "orders",
                "-n",
                "shop",
                "--audience",
                "sts.amazonaws.com",
            ],
        )
        .await
        .trim()
        .to_owned();
        let claims = jwt_claims(&token);
        assert_eq!(claims["sub"], "system:serviceaccount:shop:orders");
        assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
        let issuer = claims["iss"].as_str().unwrap().to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = strata_managed::Settings {
            poll_interval: Duration::from_secs(1),
            ..Default::default()
        };
        let providers: Vec<Arc<dyn Provider>> = vec![
            Arc::new(AwsRdsProvider),
            Arc::new(AwsIamRoleProvider),
            Arc::new(AwsIamOidcProvider),
        ];
        let runtime = tokio::spawn(strata_managed::run(
            client.clone(),
            providers,
            settings,
            async move {
                let _ = stopped.await;
            },
        ));

        // The platform team registers the cluster's issuer with IAM once, as a managed resource.
        let oidc_providers: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&AwsIamOidcProvider.managed_kind()),
        );
        eventually_async(
            "the OIDC provider kind to be served",
            Duration::from_secs(20),
            || async {
                oidc_providers
                    .list(&Default::default())
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        let registration = json!({
            "apiVersion": "iam.aws.strata.dev/v1alpha1",
            "kind": "OpenIDConnectProvider",
            "metadata": {"name": "cluster"},
            "spec": {"forProvider": {
                "url": issuer,
                "thumbprintList": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            }},
        });
        oidc_providers
            .create(
                &PostParams::default(),
                &serde_json::from_value(registration).unwrap(),
            )
            .await
            .unwrap();
        let oidc_provider = eventually_async(
            "the cluster's OIDC provider to become Ready",
            Duration::from_secs(60),
            || async {
                let object = oidc_providers.get("cluster").await.ok()?;
                (condition(&object, "Ready")?["status"] == "True")
                    .then(|| {
                        object.data["status"]["atProvider"]["arn"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .flatten()
            },
        )
        .await;
        assert!(
            oidc_provider.ends_with(&format!(
                ":oidc-provider/{}",
                issuer.trim_start_matches("https://")
            )),
            "{oidc_provider}"
        );

        let database = json!({
            "apiVersion": "rds.aws.strata.dev/v1alpha1",
            "kind": "DBInstance",
            "metadata": {"name": "orders-db"},
            "spec": {
                "forProvider": {
                    "region": "us-east-1",
                    "engine": "postgres",
                    "engineVersion": "16.3",
                    "dbInstanceClass": "db.t3.micro",
                    "allocatedStorage": 20,
                    "masterUsername": "app",
                    "enableIAMDatabaseAuthentication": true,
                    "manageMasterUserPassword": true,
                },
                "writeConnectionSecretToRef": {"namespace": "strata-system", "name": "orders-db-conn"},
            },
        });
        dbs.create(
            &PostParams::default(),
            &serde_json::from_value(database).unwrap(),
        )
        .await
        .unwrap();
        let db = eventually_async(
            "orders-db to become Ready",
            Duration::from_secs(60),
            || async {
                let object = dbs.get("orders-db").await.ok()?;
                (condition(&object, "Ready")?["status"] == "True").then_some(object)
            },
        )
        .await;
        let resource_id = db.data["status"]["atProvider"]["resourceId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            db.data["status"]["atProvider"]["masterUserSecretArn"]
                .as_str()
                .is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")),
            "status names the RDS-managed password's secret: {}",
            db.data["status"]
        );

        let role = json!({
            "apiVersion": "iam.aws.strata.dev/v1alpha1",
            "kind": "Role",
            "metadata": {"name": "orders-db-connect"},
            "spec": {
                "forProvider": {
                    "trustServiceAccount": {
                        "oidcProviderArn": oidc_provider,
                        "namespace": "shop",
                        "serviceAccount": "orders",
                    },
                    "inlinePolicies": {"connect": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Effect": "Allow",
                            "Action": "rds-db:connect",
                            "Resource": format!("arn:aws:rds-db:us-east-1:123456789012:dbuser:{resource_id}/app"),
                        }],
                    }},
                },
                "writeConnectionSecretToRef": {"namespace": "strata-system", "name": "orders-role-conn"},
            },
        });
        roles
            .create(
                &PostParams::default(),
                &serde_json::from_value(role).unwrap(),
            )
            .await
            .unwrap();
        let role_arn = eventually_async(
            "the role to become Ready",
            Duration::from_secs(60),
            || async {
                let object = roles.get("orders-db-connect").await.ok()?;
                (condition(&object, "Ready")?["status"] == "True"
                    && condition(&object, "Synced")?["status"] == "True")
                    .then(|| {
                        object.data["status"]["atProvider"]["arn"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .flatten()
            },
        )
        .await;
        assert_eq!(role_arn, "arn:aws:iam::123456789012:role/orders-db-connect");
        let published = eventually_async(
            "the role's connection secret",
            Duration::from_secs(30),
            || async {
                let data = secrets.get("orders-role-conn").await.ok()?.data?;
                data.get("roleArn")
                    .map(|arn| String::from_utf8(arn.0.clone()).unwrap())
            },
        )
        .await;
        assert_eq!(published, role_arn);

        // The workload's side: its token buys role credentials at STS, which sign an auth token.
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
                .region(aws_sdk_sts::config::Region::new("us-east-1"))
                .endpoint_url(&moto.url)
                .http_client(
                    aws_smithy_http_client::Builder::new()
                        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                        ))
                        .build_https(),
                )
                .build(),
        );
        let assumed = sts
            .assume_role_with_web_identity()
            .role_arn(&role_arn)
            .role_session_name("orders")
            .web_identity_token(&token)
            .send()
            .await
            .unwrap();
        let user = assumed.assumed_role_user().unwrap();
        assert!(
            user.arn()
                .starts_with("arn:aws:sts::123456789012:assumed-role/orders-db-connect/"),
            "{}",
            user.arn()
        );
        let issued = assumed.credentials().unwrap();
        assert!(!issued.access_key_id().is_empty() && !issued.session_token().is_empty());
        let endpoint = db.data["status"]["atProvider"]["endpoint"].clone();
        let generator = aws_sdk_rds::auth_token::AuthTokenGenerator::new(
            aws_sdk_rds::auth_token::Config::builder()
                .hostname(endpoint["address"].as_str().unwrap())
                .port(endpoint["port"].as_u64().unwrap())
                .username("app")
                .region(aws_sdk_rds::config::Region::new("us-east-1"))
                .credentials(aws_sdk_rds::config::Credentials::new(
                    issued.access_key_id(),
                    issued.secret_access_key(),
                    Some(issued.session_token().to_owned()),
                    None,
                    "web-identity",
                ))
                .build()
                .unwrap(),
        );
        let auth_token = generator
            .auth_token(
                &aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_sdk_rds::config::Region::new("us-east-1"))
                    .no_credentials()
                    .http_client(
                        aws_smithy_http_client::Builder::new()
                            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                            ))
                            .build_https(),
                    )
                    .load()
                    .await,
            )
            .await
            .unwrap()
            .to_string();
        for part in [
            "Action=connect",
            "DBUser=app",
            &format!("X-Amz-Credential={}", issued.access_key_id()),
            "X-Amz-Security-Token=",
        ] {
            assert!(auth_token.contains(part), "{part} in {auth_token}");
        }

        // Nothing in Kubernetes holds a password.
        let all: Api<Secret> = Api::all(client.clone());
        for secret in all.list(&Default::default()).await.unwrap() {
            assert!(
                !secret.data.unwrap_or_default().contains_key("password"),
                "Secret {} holds a password",
                secret.metadata.name.unwrap_or_default()
            );
        }

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runtime_creates_publishes_idles_refuses_duplicates_and_deletes_against_moto() {
        let moto = Emulator::moto();
        let plane = ControlPlane::start("rds");
        let client = plane.client().await;

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in strata_provider_aws::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let provider = AwsRdsProvider;
        let dbs_resource = strata_managed::api_resource(&provider.managed_kind());
        let dbs: Api<DynamicObject> = Api::all_with(client.clone(), &dbs_resource);
        eventually_async(
            "the DBInstance kind to be served",
            Duration::from_secs(20),
            || async { dbs.list(&Default::default()).await.ok().map(|_| ()) },
        )
        .await;

        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "strata-system"}})).unwrap(),
            )
            .await
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "strata-system");
        let credentials = json!({"metadata": {"name": "aws-credentials"}, "stringData": {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}});
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(credentials).unwrap(),
            )
            .await
            .unwrap();
        let configs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&provider.provider_config_kind()),
        );
        let config = json!({
            "apiVersion": "aws.strata.dev/v1alpha1",
            "kind": "ProviderConfig",
            "metadata": {"name": "default"},
            "spec": {
                "credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": "aws-credentials"}},
                "endpoint": {"url": moto.url},
            },
        });
        configs
            .create(
                &PostParams::default(),
                &serde_json::from_value(config).unwrap(),
            )
            .await
            .unwrap();

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let settings = strata_managed::Settings {
            poll_interval: Duration::from_secs(1),
            ..Default::default()
        };
        let providers: Vec<Arc<dyn Provider>> = vec![Arc::new(AwsRdsProvider)];
        let runtime = tokio::spawn(strata_managed::run(
            client.clone(),
            providers,
            settings,
            async move {
                let _ = stopped.await;
            },
        ));

        // Create → Ready, with the external name, the create bookkeeping and the connection secret.
        dbs.create(&PostParams::default(), &db("orders-db", json!({})))
            .await
            .unwrap();
        let ready = eventually_async(
            "orders-db to become Ready",
            Duration::from_secs(60),
            || async {
                let object = dbs.get("orders-db").await.ok()?;
                (condition(&object, "Ready")?["status"] == "True"
                    && condition(&object, "Synced")?["status"] == "True")
                    .then_some(object)
            },
        )
        .await;
        let annotations = ready.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations
                .get("strata.dev/external-name")
                .map(String::as_str),
            Some("orders-db")
        );
        assert!(annotations.contains_key("strata.dev/external-create-pending"));
        assert!(annotations.contains_key("strata.dev/external-create-succeeded"));
        assert_eq!(
            ready.data.pointer("/status/atProvider/status"),
            Some(&json!("available"))
        );
        let connection = secrets
            .get("orders-db-conn")
            .await
            .unwrap()
            .data
            .unwrap_or_default();
        for key in ["endpoint", "port", "username", "password"] {
            assert!(
                connection.contains_key(key),
                "the connection secret carries {key}"
            );
        }
        let owners = secrets
            .get("orders-db-conn")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owners[0].kind, "DBInstance");
        assert_eq!(owners[0].uid, ready.metadata.uid.clone().unwrap());

        // Idle: several drift polls later, nothing was written.
        let settled = dbs.get("orders-db").await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let later = dbs.get("orders-db").await.unwrap();
        assert_eq!(
            later.metadata.resource_version, settled.metadata.resource_version,
            "a no-op pass writes nothing"
        );
        assert_eq!(instances_named(&moto.url, "orders-db").await, 1);

        // A crash after the cloud create but before it was recorded: the pending mark is newest
        // and the instance exists → it is adopted, never created twice.
        raw_rds(&moto.url)
            .await
            .create_db_instance()
            .db_instance_identifier("crashed-db")
            .engine("postgres")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("app")
            .master_user_password("recorded-nowhere")
            .send()
            .await
            .unwrap();
        let pending = json!({"strata.dev/external-create-pending": jiff_now()});
        dbs.create(&PostParams::default(), &db("crashed-db", pending.clone()))
            .await
            .unwrap();
        eventually_async(
            "crashed-db to be adopted and Ready",
            Duration::from_secs(60),
            || async {
                let object = dbs.get("crashed-db").await.ok()?;
                (condition(&object, "Ready")?["status"] == "True").then_some(())
            },
        )
        .await;
        assert_eq!(
            instances_named(&moto.url, "crashed-db").await,
            1,
            "exactly one instance after the crash"
        );

        // The same crash where the cloud does not show the instance: stop with a clear condition.
        dbs.create(&PostParams::default(), &db("ghost-db", pending))
            .await
            .unwrap();
        let message = eventually_async("ghost-db to stop", Duration::from_secs(30), || async {
            let object = dbs.get("ghost-db").await.ok()?;
            let synced = condition(&object, "Synced")?;
            (synced["status"] == "False")
                .then(|| synced["message"].as_str().unwrap_or_default().to_owned())
        })
        .await;
        assert!(message.contains("external-create-pending"), "{message}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            instances_named(&moto.url, "ghost-db").await,
            0,
            "no create was attempted"
        );

        // Delete: the finalizer holds the object until the instance is gone.
        dbs.delete("orders-db", &DeleteParams::default())
            .await
            .unwrap();
        eventually_async(
            "orders-db to be deleted",
            Duration::from_secs(60),
            || async { dbs.get_opt("orders-db").await.ok()?.is_none().then_some(()) },
        )
        .await;
        assert_eq!(
            instances_named(&moto.url, "orders-db").await,
            0,
            "the cloud instance is gone"
        );
        // The connection Secret was owned by the DBInstance and goes with it.
        eventually_async(
            "orders-db's connection Secret to be deleted with it",
            Duration::from_secs(30),
            || async {
                secrets
                    .get_opt("orders-db-conn")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
    }

    /// kubectl from the repository root, where the examples' relative paths start.
    fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> String {
        kubectl_ok_in(&repo_root(), kubeconfig, args)
    }

    async fn bucket_names(endpoint: &str) -> Vec<String> {
        let client = http_get_json(&format!("{endpoint}/storage/v1/b?project=demo-project")).await;
        client["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|b| b["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn http_get_json(url: &str) -> Value {
        let output = std::process::Command::new("curl")
            .args(["-sf", url])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_reach_ready_through_compositions_and_both_clouds_in_graph_order_then_delete_cleanly()
     {
        let moto = Emulator::moto();
        // gcp-storage-emulator stores what a PATCH sets, so the buckets converge (Synced=True);
        // fake-gcs-server drops labels and lifecycle rules and would leave them Synced=False.
        let gcs = Emulator::gcp_storage_emulator();
        // Every cloud call is recorded, so the order across the two clouds can be checked.
        let rds = CloudProxy::start(&moto.url, rds_call, None).await;
        let storage = CloudProxy::start(&gcs.url, gcs_call, None).await;
        let plane = ControlPlane::start("claims");
        let client = plane.client().await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let controllers = tokio::spawn(strata_controllers::run(
            client.clone(),
            strata_controllers::Settings::default(),
            until_stopped(),
        ));
        let providers: Vec<Arc<dyn Provider>> = vec![
            Arc::new(AwsRdsProvider),
            Arc::new(strata_provider_aws::AwsIamRoleProvider),
            Arc::new(strata_provider_gcp::GcsBucketProvider),
            Arc::new(strata_provider_gcp::GcsBucketIamMemberProvider),
        ];
        let settings = strata_managed::Settings {
            poll_interval: Duration::from_secs(2),
            ..Default::default()
        };
        let runtime = tokio::spawn(strata_managed::run(
            client.clone(),
            providers,
            settings,
            until_stopped(),
        ));

        let kubeconfig = plane.kubeconfig.clone();
        eventually_async(
            "provider and composition CRDs",
            Duration::from_secs(60),
            || async {
                let crds = kubectl(&kubeconfig, &["get", "crds", "-o", "name"]);
                (crds.contains("dbinstances.rds.aws.strata.dev")
                    && crds.contains("roles.iam.aws.strata.dev")
                    && crds.contains("buckets.storage.gcp.strata.dev")
                    && crds.contains("bucketiammembers.storage.gcp.strata.dev")
                    && crds.contains("compositions.apiextensions.strata.dev"))
                .then_some(())
            },
        )
        .await;
        let aws = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: strata-system}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: aws-credentials, namespace: strata-system}}\nstringData: {{aws_access_key_id: testing, aws_secret_access_key: testing}}\n---\napiVersion: aws.strata.dev/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: default}}\nspec: {{credentials: {{source: Secret, secretRef: {{namespace: strata-system, name: aws-credentials}}}}, endpoint: {{url: '{}'}}}}\n---\napiVersion: gcp.strata.dev/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: default}}\nspec: {{credentials: {{source: Anonymous}}, endpoint: '{}'}}\n",
            rds.url, storage.url
        );
        let configs = plane.dir.join("configs.yaml");
        std::fs::write(&configs, aws).unwrap();
        kubectl(&kubeconfig, &["apply", "-f", configs.to_str().unwrap()]);
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "-R",
                "-f",
                "compositions/postgres",
                "-f",
                "compositions/objectstore",
                "-f",
                "compositions/app-environment",
            ],
        );
        eventually_async(
            "the claim kinds to be served",
            Duration::from_secs(60),
            || async {
                let served = strata_test_support::kubectl_command(&kubeconfig)
                    .args([
                        "get",
                        "postgresqlinstances,objectstores,appenvironments",
                        "-A",
                    ])
                    .output()
                    .ok()?;
                served.status.success().then_some(())
            },
        )
        .await;
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "-f",
                "examples/claims/postgres.yaml",
                "-f",
                "examples/claims/postgres-secretless.yaml",
                "-f",
                "examples/claims/objectstores.yaml",
                "-f",
                "examples/claims/app-environment.yaml",
            ],
        );
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "orders",
                "wait",
                "--for=condition=Ready",
                "postgresqlinstance/orders-db",
                "--timeout=120s",
            ],
        );
        let waited = strata_test_support::kubectl_command(&kubeconfig)
            .args([
                "-n",
                "media",
                "wait",
                "--for=condition=Ready",
                "objectstore/uploads",
                "objectstore/backups",
                "--timeout=120s",
            ])
            .output()
            .unwrap();
        assert!(
            waited.status.success(),
            "the ObjectStores became Ready:\n{}",
            kubectl(&kubeconfig, &["get", "xobjectstores,buckets", "-o", "yaml"])
        );

        let secrets: Api<Secret> = Api::namespaced(client.clone(), "orders");
        let connection = secrets
            .get("orders-db-connection")
            .await
            .unwrap()
            .data
            .unwrap_or_default();
        for key in ["endpoint", "port", "username", "password"] {
            assert!(
                connection.contains_key(key),
                "the claim's connection secret carries {key}: {:?}",
                connection.keys()
            );
        }
        // The secretless claim: endpoint, port, user, region and the role to assume; no password.
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "payments",
                "wait",
                "--for=condition=Ready",
                "postgresqlinstance/payments-db",
                "--timeout=120s",
            ],
        );
        let payments: Api<Secret> = Api::namespaced(client.clone(), "payments");
        let identity = payments
            .get("payments-db-connection")
            .await
            .unwrap()
            .data
            .unwrap_or_default();
        let mut keys: Vec<&String> = identity.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["endpoint", "port", "region", "roleArn", "username"],
            "the secretless claim's connection secret"
        );
        assert!(
            String::from_utf8_lossy(&identity["roleArn"].0).starts_with("arn:aws:iam::"),
            "{:?}",
            identity["roleArn"]
        );
        // Every uploads member names the ServiceAccount on the bucket's policy.
        let policies: Vec<Value> = bucket_names(&gcs.url)
            .await
            .iter()
            .filter(|name| name.starts_with("uploads") || name.starts_with("backups"))
            .map(|name| super::iam_policy(&gcs.url, name))
            .collect();
        assert_eq!(policies.len(), 2, "both ObjectStores have a policy");
        for policy in &policies {
            assert!(
                policy.to_string().contains(
                    "workloadIdentityPools/strata/subject/system:serviceaccount:media:uploader"
                ),
                "{policy}"
            );
        }
        // The password was generated into the composed password Secret the database waited for.
        let system: Api<Secret> = Api::namespaced(client.clone(), "strata-system");
        let passwords: Vec<Secret> = system
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|secret| secret.name_any().ends_with("-master-password"))
            .collect();
        assert_eq!(passwords.len(), 1, "one password Secret, for orders-db");
        assert_eq!(
            passwords[0]
                .data
                .as_ref()
                .and_then(|data| data.get("password")),
            connection.get("password"),
            "the claim receives the password from the composed Secret"
        );
        kubectl(
            &kubeconfig,
            &[
                "-n",
                "shop",
                "wait",
                "--for=condition=Ready",
                "appenvironment/shop-staging",
                "--timeout=120s",
            ],
        );
        let shop: Api<Secret> = Api::namespaced(client.clone(), "shop");
        let environment = shop
            .get("shop-staging-env")
            .await
            .unwrap()
            .data
            .unwrap_or_default();
        let mut keys: Vec<&String> = environment.keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "bucket", "endpoint", "port", "region", "roleArn", "url", "username"
            ],
            "the multi-cloud claim's secret: no password, no key"
        );
        assert_eq!(
            bucket_names(&gcs.url).await.len(),
            3,
            "one bucket per ObjectStore and one for the environment"
        );
        assert_eq!(
            raw_rds(&moto.url)
                .await
                .describe_db_instances()
                .send()
                .await
                .unwrap()
                .db_instances()
                .len(),
            3
        );
        // Every bucket converged: the emulator stored what the first PATCH set.
        let buckets: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&strata_provider_gcp::GcsBucketProvider.managed_kind()),
        );
        for bucket in buckets.list(&Default::default()).await.unwrap() {
            let synced = condition(&bucket, "Synced").cloned().unwrap_or_default();
            assert_eq!(synced["status"], "True", "{}: {synced}", bucket.name_any());
        }
        // The environment's database reads the bucket's URL: the bucket was created first, and
        // the database carries the URL as a tag.
        let dbs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &strata_managed::api_resource(&AwsRdsProvider.managed_kind()),
        );
        let shop_db = dbs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|db| db.name_any().starts_with("shop-staging"))
            .expect("the environment's DBInstance");
        let shop_bucket = buckets
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|bucket| bucket.name_any().starts_with("shop-staging"))
            .expect("the environment's Bucket");
        let (db_id, bucket_id) = (shop_db.name_any(), shop_bucket.name_any());
        assert_eq!(
            shop_db.data.pointer("/spec/forProvider/tags/assets-bucket"),
            Some(&json!(format!("gs://{bucket_id}")))
        );
        let first = |proxy: &CloudProxy, operation: &str, resource: &str| {
            proxy
                .calls()
                .iter()
                .find(|c| c.operation == operation && c.resource == resource)
                .map(|c| c.at)
        };
        let bucket_created = first(&storage, "buckets.insert", &bucket_id).expect("inserted");
        let db_created = first(&rds, "CreateDBInstance", &db_id).expect("created");
        assert!(
            bucket_created < db_created,
            "the bucket is created before the database that depends on it"
        );

        kubectl(
            &kubeconfig,
            &[
                "delete",
                "-f",
                "examples/claims/postgres.yaml",
                "-f",
                "examples/claims/postgres-secretless.yaml",
                "-f",
                "examples/claims/objectstores.yaml",
                "-f",
                "examples/claims/app-environment.yaml",
                // The Namespace `shop` is deleted first and its contents with it: the garbage
                // collector may remove the ServiceAccount before kubectl reaches it.
                "--ignore-not-found",
                "--wait=true",
                "--timeout=180s",
            ],
        );
        eventually_async(
            "the cloud resources to be gone",
            Duration::from_secs(120),
            || async {
                let instances = raw_rds(&moto.url)
                    .await
                    .describe_db_instances()
                    .send()
                    .await
                    .ok()?
                    .db_instances()
                    .len();
                (instances == 0 && bucket_names(&gcs.url).await.is_empty()).then_some(())
            },
        )
        .await;
        // Every managed resource's connection Secret went with it: what is left in strata-system
        // is the credentials Secret and whatever the composites wrote themselves.
        let managed_secrets = eventually_async(
            "the managed resources' connection Secrets to be deleted",
            Duration::from_secs(60),
            || async {
                let left: Vec<String> = system
                    .list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .map(|secret| secret.name_any())
                    .filter(|name| {
                        ["-postgres", "-role", "-bucket", "-database", "-assets"]
                            .iter()
                            .any(|suffix| name.ends_with(suffix))
                    })
                    .collect();
                left.is_empty().then_some(left)
            },
        )
        .await;
        assert!(managed_secrets.is_empty());
        let db_deleted = first(&rds, "DeleteDBInstance", &db_id).expect("deleted");
        let bucket_deleted = first(&storage, "buckets.delete", &bucket_id).expect("deleted");
        assert!(
            db_deleted < bucket_deleted,
            "the database is deleted before the bucket it depends on"
        );

        let _ = stop.send(true);
        runtime.await.unwrap().unwrap();
        controllers.await.unwrap().unwrap();
    }

    // -----------------------------------------------------------------------------------------
    // Bad input, throttling and 5xx through a recording proxy in front of moto
    // -----------------------------------------------------------------------------------------

    /// Credential values no condition or event may ever show.
    const ACCESS_KEY: &str = "AKIASTRATATESTKEY";
    const SECRET_KEY: &str = "strata-secret-value-never-shown";

    /// A control plane serving the AWS kinds, with a credentials Secret and a `default`
    /// ProviderConfig pointing at `endpoint`.
    struct AwsPlane {
        plane: ControlPlane,
        client: kube::Client,
        dbs: Api<DynamicObject>,
        configs: Api<DynamicObject>,
    }

    impl AwsPlane {
        async fn start(name: &str, endpoint: &str) -> AwsPlane {
            let plane = ControlPlane::start(name);
            let client = plane.client().await;
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            for crd in strata_provider_aws::crds() {
                crds.create(&PostParams::default(), &crd).await.unwrap();
            }
            let provider = AwsRdsProvider;
            let dbs: Api<DynamicObject> = Api::all_with(
                client.clone(),
                &strata_managed::api_resource(&provider.managed_kind()),
            );
            eventually_async(
                "the DBInstance kind to be served",
                Duration::from_secs(20),
                || async { dbs.list(&Default::default()).await.ok().map(|_| ()) },
            )
            .await;
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": "strata-system"}}))
                        .unwrap(),
                )
                .await
                .unwrap();
            let secrets: Api<Secret> = Api::namespaced(client.clone(), "strata-system");
            let credentials = json!({"metadata": {"name": "aws-credentials"}, "stringData": {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}});
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(credentials).unwrap(),
                )
                .await
                .unwrap();
            let configs: Api<DynamicObject> = Api::all_with(
                client.clone(),
                &strata_managed::api_resource(&provider.provider_config_kind()),
            );
            let aws = AwsPlane {
                plane,
                client,
                dbs,
                configs,
            };
            aws.provider_config("default", "aws-credentials", endpoint)
                .await;
            aws
        }

        async fn provider_config(&self, name: &str, secret: &str, endpoint: &str) {
            let config = json!({
                "apiVersion": "aws.strata.dev/v1alpha1",
                "kind": "ProviderConfig",
                "metadata": {"name": name},
                "spec": {
                    "credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": secret}},
                    "endpoint": {"url": endpoint},
                },
            });
            self.configs
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(config).unwrap(),
                )
                .await
                .unwrap();
        }

        /// Starts the runtime with the AWS provider; stops when the sender is dropped or fired.
        fn run(
            &self,
            poll_interval: Duration,
        ) -> (
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<Result<(), strata_managed::Error>>,
        ) {
            let settings = strata_managed::Settings {
                poll_interval,
                ..Default::default()
            };
            self.run_with(settings, Arc::new(AwsRdsProvider))
        }

        fn run_with(
            &self,
            settings: strata_managed::Settings,
            provider: Arc<dyn Provider>,
        ) -> (
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<Result<(), strata_managed::Error>>,
        ) {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let providers: Vec<Arc<dyn Provider>> = vec![provider];
            let runtime = tokio::spawn(strata_managed::run(
                self.client.clone(),
                providers,
                settings,
                async move {
                    let _ = stopped.await;
                },
            ));
            (stop, runtime)
        }

        async fn wait_ready(&self, name: &str) {
            eventually_async(
                &format!("{name} to become Ready"),
                Duration::from_secs(60),
                || async {
                    let object = self.dbs.get(name).await.ok()?;
                    (condition(&object, "Ready")?["status"] == "True"
                        && condition(&object, "Synced")?["status"] == "True")
                        .then_some(())
                },
            )
            .await;
        }

        /// The Synced=False message of `name`, once there is one.
        async fn sync_error(&self, name: &str) -> String {
            eventually_async(
                &format!("{name} to report Synced=False"),
                Duration::from_secs(30),
                || async {
                    let object = self.dbs.get(name).await.ok()?;
                    let synced = condition(&object, "Synced")?;
                    (synced["status"] == "False")
                        .then(|| synced["message"].as_str().unwrap_or_default().to_owned())
                },
            )
            .await
        }
    }

    /// A TCP proxy to `upstream` that, while `stalled` is set, accepts connections and never
    /// answers (holding them open); otherwise it forwards.
    async fn stallable_proxy(upstream: &str) -> (String, Arc<std::sync::atomic::AtomicBool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    held.push(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        (url, stalled)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_endpoint_gives_synced_false_within_the_call_timeout_and_delete_completes_once_it_recovers()
     {
        let moto = Emulator::moto();
        let (proxy, stalled) = stallable_proxy(&moto.url).await;
        let aws = AwsPlane::start("stalled", &moto.url).await;
        let config = json!({
            "apiVersion": "aws.strata.dev/v1alpha1",
            "kind": "ProviderConfig",
            "metadata": {"name": "stalls"},
            "spec": {
                "credentials": {"source": "Secret", "secretRef": {"namespace": "strata-system", "name": "aws-credentials"}},
                "endpoint": {"url": proxy},
                "callTimeoutSeconds": 2,
            },
        });
        aws.configs
            .create(
                &PostParams::default(),
                &serde_json::from_value(config).unwrap(),
            )
            .await
            .unwrap();
        let (stop, runtime) = aws.run(Duration::from_secs(1));
        aws.dbs
            .create(
                &PostParams::default(),
                &db_with("stall-db", json!({"providerConfigRef": {"name": "stalls"}})),
            )
            .await
            .unwrap();
        aws.wait_ready("stall-db").await;

        // The endpoint stalls: deleting the object cannot reach the cloud, and says so in time.
        stalled.store(true, Ordering::SeqCst);
        let asked = Instant::now();
        aws.dbs
            .delete("stall-db", &DeleteParams::default())
            .await
            .unwrap();
        let message = aws.sync_error("stall-db").await;
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "Synced=False came after {:?}",
            asked.elapsed()
        );
        assert!(
            message.contains("timeout") && message.contains(&proxy),
            "the reason names the timeout and the endpoint: {message}"
        );
        assert!(
            aws.dbs.get_opt("stall-db").await.unwrap().is_some(),
            "the object waits for the cloud"
        );

        // The endpoint recovers: the delete completes.
        stalled.store(false, Ordering::SeqCst);
        eventually_async(
            "stall-db to be deleted",
            Duration::from_secs(60),
            || async {
                aws.dbs
                    .get_opt("stall-db")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        assert_eq!(instances_named(&moto.url, "stall-db").await, 0);

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
    }

    /// A DBInstance with a patch applied to `spec`.
    fn db_with(name: &str, spec_patch: Value) -> DynamicObject {
        let mut object = serde_json::to_value(db(name, json!({}))).unwrap();
        for (key, value) in spec_patch.as_object().unwrap() {
            if key == "forProvider" {
                for (field, value) in value.as_object().unwrap() {
                    object["spec"]["forProvider"][field] = value.clone();
                }
            } else {
                object["spec"][key] = value.clone();
            }
        }
        serde_json::from_value(object).unwrap()
    }

    /// An endpoint that accepts every connection and hangs up at once, counting connections.
    async fn hang_up_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        (url, accepted)
    }

    async fn all_instances(endpoint: &str) -> Vec<String> {
        raw_rds(endpoint)
            .await
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
            .iter()
            .filter_map(|i| i.db_instance_identifier().map(str::to_owned))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_gets_clear_conditions_creates_nothing_and_the_good_instance_still_becomes_ready()
     {
        let moto = Emulator::moto();
        let proxy = CloudProxy::start(&moto.url, rds_call, None).await;
        let aws = AwsPlane::start("bad-input", &proxy.url).await;
        aws.provider_config("no-secret", "missing-credentials", &proxy.url)
            .await;
        let (hang_up_url, hang_ups) = hang_up_endpoint().await;
        aws.provider_config("hangs-up", "aws-credentials", &hang_up_url)
            .await;
        let (stop, runtime) = aws.run(Duration::from_secs(1));

        let bad = [
            (
                "bad-engine-db",
                json!({"forProvider": {"engine": "postgress"}}),
                "spec.forProvider.engine",
            ),
            (
                "negative-storage-db",
                json!({"forProvider": {"allocatedStorage": -5}}),
                "spec.forProvider.allocatedStorage",
            ),
            (
                "no-config-db",
                json!({"providerConfigRef": {"name": "missing-config"}}),
                "spec.providerConfigRef",
            ),
            (
                "no-secret-db",
                json!({"providerConfigRef": {"name": "no-secret"}}),
                "spec.credentials.secretRef",
            ),
            (
                "unreachable-db",
                json!({"providerConfigRef": {"name": "hangs-up"}}),
                "spec.endpoint",
            ),
        ];
        for (name, patch, _) in &bad {
            aws.dbs
                .create(&PostParams::default(), &db_with(name, patch.clone()))
                .await
                .unwrap();
        }
        aws.dbs
            .create(&PostParams::default(), &db("good-db", json!({})))
            .await
            .unwrap();

        aws.wait_ready("good-db").await;
        for (name, _, field) in &bad {
            let message = aws.sync_error(name).await;
            assert!(
                message.contains(name) && message.contains(field),
                "{name}: the condition names the object and {field}: {message}"
            );
            assert!(
                !message.contains(ACCESS_KEY) && !message.contains(SECRET_KEY),
                "{name}: no credential in the condition: {message}"
            );
        }

        // No hot loop: over a few seconds (several poll intervals) the bad objects are not
        // rewritten, the unreachable endpoint sees only backed-off attempts, and no cloud call
        // ever named a bad instance.
        let versions = |list: Vec<DynamicObject>| -> Vec<(String, Option<String>)> {
            list.into_iter()
                .filter(|o| o.metadata.name.as_deref() != Some("unreachable-db"))
                .map(|o| (o.metadata.name.unwrap(), o.metadata.resource_version))
                .collect()
        };
        let before = versions(aws.dbs.list(&Default::default()).await.unwrap().items);
        let hang_ups_before = hang_ups.load(std::sync::atomic::Ordering::SeqCst);
        let calls_before = proxy.calls().len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = versions(aws.dbs.list(&Default::default()).await.unwrap().items);
        assert_eq!(before, after, "nothing is rewritten while nothing changes");
        let hang_ups_in_window =
            hang_ups.load(std::sync::atomic::Ordering::SeqCst) - hang_ups_before;
        assert!(
            hang_ups_in_window <= 20,
            "the unreachable endpoint is retried with backoff, not in a loop: {hang_ups_in_window} connections in 5 s"
        );
        let idle_calls = proxy.calls().len() - calls_before;
        assert!(
            idle_calls <= 8,
            "the good instance is polled once per interval: {idle_calls} calls in 5 s"
        );
        for (name, _, _) in &bad {
            assert_eq!(proxy.count_for(name), 0, "no cloud call names {name}");
        }
        assert_eq!(all_instances(&moto.url).await, vec!["good-db".to_owned()]);

        // The controller keeps serving others: a new good instance still converges.
        aws.dbs
            .create(&PostParams::default(), &db("second-good-db", json!({})))
            .await
            .unwrap();
        aws.wait_ready("second-good-db").await;

        // Fixing the spec retries at once: the engine typo corrected → created and Ready.
        aws.dbs
            .patch(
                "bad-engine-db",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"forProvider": {"engine": "postgres"}}})),
            )
            .await
            .unwrap();
        aws.wait_ready("bad-engine-db").await;

        // An invalid object can always be deleted.
        aws.dbs
            .delete("negative-storage-db", &DeleteParams::default())
            .await
            .unwrap();
        eventually_async(
            "negative-storage-db to be deleted",
            Duration::from_secs(30),
            || async {
                aws.dbs
                    .get_opt("negative-storage-db")
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
        drop(aws.plane);
    }

    /// The DescribeDBInstances calls naming `id`.
    fn describes_of(calls: &[super::cloud_proxy::Call], id: &str) -> usize {
        calls
            .iter()
            .filter(|c| c.operation == "DescribeDBInstances" && c.resource == id)
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn polls_of_converged_instances_are_one_listing_and_drift_is_still_corrected() {
        let moto = Emulator::moto();
        let proxy = CloudProxy::start(&moto.url, rds_call, None).await;
        let aws = AwsPlane::start("sweep", &proxy.url).await;
        let poll = Duration::from_secs(2);
        let (stop, runtime) = aws.run(poll);
        let names: Vec<String> = (0..5).map(|i| format!("swept-{i}")).collect();
        for name in &names {
            aws.dbs
                .create(&PostParams::default(), &db(name, json!({})))
                .await
                .unwrap();
        }
        for name in &names {
            aws.wait_ready(name).await;
        }

        // The happy path: one create and at most two reads per instance (the first look, and
        // the read after the late initialization the create's answer asked for).
        let until_ready = proxy.calls();
        for name in &names {
            let creates = until_ready
                .iter()
                .filter(|c| c.operation == "CreateDBInstance" && &c.resource == name)
                .count();
            assert_eq!(creates, 1, "{name}: one create");
            let describes = describes_of(&until_ready, name);
            assert!(describes <= 2, "{name}: {describes} describes until Ready");
        }

        // Converged: three poll intervals answered by listings, not by a read per instance.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let settled = proxy.calls().len();
        tokio::time::sleep(poll * 3).await;
        let idle = proxy.calls()[settled..].to_vec();
        assert!(
            idle.iter()
                .all(|c| c.operation == "DescribeDBInstances" && c.resource.is_empty()),
            "idle calls are listings only: {idle:#?}"
        );
        assert!(
            !idle.is_empty() && idle.len() <= 8,
            "a listing per half poll interval at most, not one read per instance and poll: {} calls",
            idle.len()
        );

        // Drift behind Strata's back is seen in a listing and corrected with one modify.
        raw_rds(&moto.url)
            .await
            .modify_db_instance()
            .db_instance_identifier("swept-3")
            .db_instance_class("db.m5.large")
            .apply_immediately(true)
            .send()
            .await
            .unwrap();
        eventually_async(
            "the out-of-band class change to be corrected",
            Duration::from_secs(30),
            || async {
                let output = raw_rds(&moto.url)
                    .await
                    .describe_db_instances()
                    .db_instance_identifier("swept-3")
                    .send()
                    .await
                    .ok()?;
                let class = output
                    .db_instances()
                    .first()?
                    .db_instance_class()?
                    .to_owned();
                (class == "db.t3.micro").then_some(())
            },
        )
        .await;
        // The proxy records a call once the emulator has answered it, so the corrected class can
        // be read a moment before the modify that made it is counted.
        eventually_async(
            "the correcting modify to be recorded by the proxy",
            Duration::from_secs(10),
            || async { (proxy.count("ModifyDBInstance") > 0).then_some(()) },
        )
        .await;
        assert_eq!(proxy.count("ModifyDBInstance"), 1, "one correcting modify");

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throttling_and_unavailable_answers_back_off_by_class_and_converge_without_a_hot_loop()
    {
        let moto = Emulator::moto();
        // The first SDK round (three attempts) of DescribeDBInstances answers 503, the first
        // round of CreateDBInstance answers Throttling.
        let inject: Injector = Box::new(|operation, _resource, calls| {
            let seen = calls.iter().filter(|c| c.operation == operation).count();
            match operation {
                "DescribeDBInstances" if seen < 3 => Some(Fault::ServiceUnavailable),
                "CreateDBInstance" if seen < 3 => Some(Fault::Throttling),
                _ => None,
            }
        });
        let proxy = CloudProxy::start(&moto.url, rds_call, Some(inject)).await;
        let aws = AwsPlane::start("throttled", &proxy.url).await;
        let (stop, runtime) = aws.run(Duration::from_secs(1));

        aws.dbs
            .create(&PostParams::default(), &db("busy-db", json!({})))
            .await
            .unwrap();
        aws.wait_ready("busy-db").await;
        let ready_calls = proxy.calls();

        let injected = |code| {
            ready_calls
                .iter()
                .filter(|c| c.injected == Some(code))
                .count()
        };
        assert_eq!(injected(503), 3, "{ready_calls:#?}");
        assert_eq!(injected(400), 3, "{ready_calls:#?}");
        let creates: Vec<_> = ready_calls
            .iter()
            .filter(|c| c.operation == "CreateDBInstance")
            .collect();
        assert_eq!(
            creates.len(),
            4,
            "three throttled attempts (one SDK round), then one create: {creates:#?}"
        );
        // Classification shows in the delays: after a throttled round the runtime waits the
        // throttling backoff (≥ 2 s); after a 503 round, the shorter transient one (≥ 0.5 s).
        let throttled_gap = creates[3].at - creates[2].at;
        assert!(
            throttled_gap >= Duration::from_secs(2),
            "throttled create retried after {throttled_gap:?}"
        );
        let describes: Vec<_> = ready_calls
            .iter()
            .filter(|c| c.operation == "DescribeDBInstances")
            .collect();
        let transient_gap = describes[3].at - describes[2].at;
        assert!(
            transient_gap >= Duration::from_millis(500),
            "unavailable describe retried after {transient_gap:?}"
        );
        assert!(
            describes.len() <= 10,
            "a bounded number of describes to converge: {}",
            describes.len()
        );
        assert_eq!(
            ready_calls.iter().filter(|c| c.throttled).count(),
            0,
            "moto itself never throttled"
        );

        // Converged: one describe per poll interval, nothing else.
        let settled = proxy.calls().len();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let idle = &proxy.calls()[settled..];
        assert!(
            idle.iter().all(|c| c.operation == "DescribeDBInstances") && idle.len() <= 6,
            "idle calls: {idle:#?}"
        );
        assert_eq!(all_instances(&moto.url).await, vec!["busy-db".to_owned()]);

        let _ = stop.send(());
        runtime.await.unwrap().unwrap();
    }

    // -----------------------------------------------------------------------------------------
    // Leader election
    // -----------------------------------------------------------------------------------------

    /// The AWS provider, counting the observations one replica makes.
    struct CountingProvider {
        observes: Arc<AtomicUsize>,
    }

    struct CountingExternal {
        inner: Arc<dyn External>,
        observes: Arc<AtomicUsize>,
    }

    impl Provider for CountingProvider {
        fn managed_kind(&self) -> ResourceKind {
            AwsRdsProvider.managed_kind()
        }
        fn provider_config_kind(&self) -> ResourceKind {
            AwsRdsProvider.provider_config_kind()
        }
        fn crds(&self) -> Vec<CustomResourceDefinition> {
            AwsRdsProvider.crds()
        }
        fn rate_limit(&self) -> RateLimit {
            AwsRdsProvider.rate_limit()
        }
        fn validate(&self, managed: &Managed) -> Result<(), ProviderError> {
            AwsRdsProvider.validate(managed)
        }
        fn connect<'a>(
            &'a self,
            provider_config: &'a Value,
            secrets: Arc<dyn Secrets>,
        ) -> BoxFuture<'a, Result<Arc<dyn External>, ProviderError>> {
            Box::pin(async move {
                let inner = AwsRdsProvider.connect(provider_config, secrets).await?;
                Ok(Arc::new(CountingExternal {
                    inner,
                    observes: self.observes.clone(),
                }) as Arc<dyn External>)
            })
        }
    }

    impl External for CountingExternal {
        fn scope(&self, managed: &Managed) -> String {
            self.inner.scope(managed)
        }
        fn read<'a>(
            &'a self,
            managed: &'a Managed,
        ) -> BoxFuture<'a, Result<Option<CloudRecord>, ProviderError>> {
            self.observes.fetch_add(1, Ordering::SeqCst);
            self.inner.read(managed)
        }
        fn assess<'a>(
            &'a self,
            managed: &'a Managed,
            record: &'a CloudRecord,
        ) -> BoxFuture<'a, Result<Present, ProviderError>> {
            self.inner.assess(managed, record)
        }
        fn create<'a>(
            &'a self,
            managed: &'a Managed,
        ) -> BoxFuture<'a, Result<Created, ProviderError>> {
            self.inner.create(managed)
        }
        fn update<'a>(
            &'a self,
            managed: &'a Managed,
            record: &'a CloudRecord,
        ) -> BoxFuture<'a, Result<(), ProviderError>> {
            self.inner.update(managed, record)
        }
        fn delete<'a>(&'a self, managed: &'a Managed) -> BoxFuture<'a, Result<(), ProviderError>> {
            self.inner.delete(managed)
        }
    }

    async fn lease_holder(client: &kube::Client) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "strata-system");
        leases
            .get_opt("strata-managed")
            .await
            .ok()??
            .spec?
            .holder_identity
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_lease_holder_drives_the_cloud_and_a_follower_takes_over_when_it_stops() {
        let moto = Emulator::moto();
        let proxy = CloudProxy::start(&moto.url, rds_call, None).await;
        let aws = AwsPlane::start("leader", &proxy.url).await;
        let replica = |identity: &str, observes: &Arc<AtomicUsize>| {
            let settings = strata_managed::Settings {
                poll_interval: Duration::from_secs(1),
                leader_election: Some(LeaderElection {
                    namespace: "strata-system".into(),
                    name: "strata-managed".into(),
                    identity: identity.into(),
                    lease_duration: Duration::from_secs(3),
                }),
                ..Default::default()
            };
            let provider = CountingProvider {
                observes: observes.clone(),
            };
            aws.run_with(settings, Arc::new(provider))
        };
        let (a_observes, b_observes) = (Arc::default(), Arc::default());
        let (stop_a, a) = replica("replica-a", &a_observes);
        eventually_async(
            "replica-a to hold the Lease",
            Duration::from_secs(20),
            || async {
                (lease_holder(&aws.client).await.as_deref() == Some("replica-a")).then_some(())
            },
        )
        .await;
        let (stop_b, b) = replica("replica-b", &b_observes);

        aws.dbs
            .create(&PostParams::default(), &db("leader-db", json!({})))
            .await
            .unwrap();
        aws.wait_ready("leader-db").await;
        // Several renewal periods and polls later the follower still has not touched the cloud.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(a_observes.load(Ordering::SeqCst) > 0, "the leader observes");
        assert_eq!(
            b_observes.load(Ordering::SeqCst),
            0,
            "the follower never calls the cloud"
        );
        assert!(!b.is_finished(), "the follower waits for the Lease");

        // The leader stops; the follower takes the expired Lease and serves new objects.
        let _ = stop_a.send(());
        a.await.unwrap().unwrap();
        aws.dbs
            .create(&PostParams::default(), &db("failover-db", json!({})))
            .await
            .unwrap();
        aws.wait_ready("failover-db").await;
        assert!(
            b_observes.load(Ordering::SeqCst) > 0,
            "the new leader observes"
        );
        assert_eq!(
            lease_holder(&aws.client).await.as_deref(),
            Some("replica-b")
        );
        assert_eq!(
            proxy.count("CreateDBInstance"),
            2,
            "one create per instance across both replicas"
        );

        let _ = stop_b.send(());
        b.await.unwrap().unwrap();
    }

    /// Issue 13: when the create-pending guard stops a composed DBInstance, the XR and its claim
    /// say so in their Ready message (which object, what to check, how to release it) and with
    /// one Warning event each; removing the annotation releases it and the claim becomes Ready.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_composed_instance_stopped_by_the_create_pending_guard_is_explained_on_the_claim_and_released()
     {
        use kube::api::{Patch, PatchParams};

        let moto = Emulator::moto();
        let aws = AwsPlane::start("guard", &moto.url).await;
        let client = aws.client.clone();
        let (stop_controllers, stopped) = tokio::sync::oneshot::channel::<()>();
        let controllers = tokio::spawn(strata_controllers::run(
            client.clone(),
            strata_controllers::Settings::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        let kubeconfig = aws.plane.kubeconfig.clone();
        let manifests = aws.plane.dir.join("guard.yaml");
        std::fs::write(
            &manifests,
            r#"apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: apiextensions.strata.dev/v1alpha1
kind: CompositeResourceDefinition
metadata: {name: xguardeddbs.guard.example.org}
spec:
  group: guard.example.org
  names: {kind: XGuardedDb, plural: xguardeddbs}
  claimNames: {kind: GuardedDb, plural: guardeddbs}
  versions:
  - name: v1
    served: true
    referenceable: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: string}}}
---
apiVersion: apiextensions.strata.dev/v1alpha1
kind: Composition
metadata: {name: guarded-db}
spec:
  compositeTypeRef: {apiVersion: guard.example.org/v1, kind: XGuardedDb}
  resources:
  - name: database
    base:
      apiVersion: rds.aws.strata.dev/v1alpha1
      kind: DBInstance
      spec:
        forProvider:
          region: us-east-1
          engine: postgres
          engineVersion: "16.3"
          dbInstanceClass: db.t3.micro
          allocatedStorage: 20
          masterUsername: app
        writeConnectionSecretToRef: {namespace: strata-system, name: guarded-db-conn}
"#,
        )
        .unwrap();
        eventually_async(
            "the composition kinds to be served",
            Duration::from_secs(60),
            || async {
                let out = strata_test_support::kubectl_command(&kubeconfig)
                    .args(["apply", "-f", manifests.to_str().unwrap()])
                    .output()
                    .ok()?;
                out.status.success().then_some(())
            },
        )
        .await;
        let claim = plane_api(
            &client,
            "guard.example.org",
            "GuardedDb",
            "guardeddbs",
            Some("team"),
        );
        let xrs = plane_api(
            &client,
            "guard.example.org",
            "XGuardedDb",
            "xguardeddbs",
            None,
        );
        eventually_async(
            "the claim kind to be served",
            Duration::from_secs(60),
            || async { claim.list(&Default::default()).await.ok().map(|_| ()) },
        )
        .await;
        claim
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "guard.example.org/v1", "kind": "GuardedDb",
                    "metadata": {"name": "orders", "namespace": "team"},
                    "spec": {"compositionRef": {"name": "guarded-db"}},
                }))
                .unwrap(),
            )
            .await
            .unwrap();

        // The XR composes the DBInstance; before any runtime reaches it, it carries the mark a
        // crash between "create pending" and the cloud's answer leaves behind.
        let (xr_name, db_name) = eventually_async(
            "the composed DBInstance",
            Duration::from_secs(60),
            || async {
                let c = claim.get("orders").await.ok()?;
                let xr = c
                    .data
                    .pointer("/spec/resourceRef/name")?
                    .as_str()?
                    .to_owned();
                let db = aws
                    .dbs
                    .list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|d| d.labels().get("strata.dev/composite") == Some(&xr))?;
                Some((xr, db.name_any()))
            },
        )
        .await;
        let pending = json!({"metadata": {"annotations": {"strata.dev/external-create-pending": jiff_now()}}});
        aws.dbs
            .patch(&db_name, &PatchParams::default(), &Patch::Merge(&pending))
            .await
            .unwrap();
        let (stop_runtime, runtime) = aws.run(Duration::from_secs(1));

        let expected = format!(
            "Unready resources: database (DBInstance {db_name} is stopped by the create-pending \
             guard: a create may have reached the cloud without being recorded; check whether the \
             cloud resource exists, then either remove the annotation \
             strata.dev/external-create-pending (it does not exist: it is created) or set \
             strata.dev/external-name to its name (it exists: it is adopted))"
        );
        eventually_async(
            "the claim's Ready message to explain the guard",
            Duration::from_secs(60),
            || async {
                let c = claim.get("orders").await.ok()?;
                (condition(&c, "Ready")?["message"] == expected.as_str()).then_some(())
            },
        )
        .await;
        let xr = xrs.get(&xr_name).await.unwrap();
        assert_eq!(condition(&xr, "Ready").unwrap()["status"], "False");
        assert_eq!(
            condition(&xr, "Ready").unwrap()["message"],
            expected.as_str()
        );
        let db = aws.dbs.get(&db_name).await.unwrap();
        assert_eq!(
            condition(&db, "Synced").unwrap()["reason"],
            "ExternalCreatePending"
        );
        let note = format!(
            "resource `database`: {}",
            &expected["Unready resources: database (".len()..expected.len() - 1]
        );
        for (ns, regarding) in [("default", xr_name.as_str()), ("team", "orders")] {
            let events: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                ns,
                &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                    "events.k8s.io",
                    "v1",
                    "Event",
                )),
            );
            let found = eventually_async(
                &format!("the guard's Warning event on {regarding}"),
                Duration::from_secs(10),
                || async {
                    let found: Vec<Value> = events
                        .list(&Default::default())
                        .await
                        .ok()?
                        .items
                        .into_iter()
                        .filter(|e| {
                            e.data["reason"] == "ExternalCreatePending"
                                && e.data["regarding"]["name"] == regarding
                        })
                        .map(|e| e.data)
                        .collect();
                    (!found.is_empty()).then_some(found)
                },
            )
            .await;
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0]["type"], "Warning");
            assert_eq!(found[0]["note"], note.as_str());
        }
        assert_eq!(
            instances_named(&moto.url, &db_name).await,
            0,
            "nothing was created"
        );

        // Checked: the cloud has no such instance, so the mark is removed and it is created.
        let release =
            json!({"metadata": {"annotations": {"strata.dev/external-create-pending": null}}});
        aws.dbs
            .patch(&db_name, &PatchParams::default(), &Patch::Merge(&release))
            .await
            .unwrap();
        eventually_async(
            "the claim to become Ready",
            Duration::from_secs(60),
            || async {
                let c = claim.get("orders").await.ok()?;
                (condition(&c, "Ready")?["status"] == "True").then_some(())
            },
        )
        .await;
        assert_eq!(instances_named(&moto.url, &db_name).await, 1);

        let _ = stop_runtime.send(());
        runtime.await.unwrap().unwrap();
        let _ = stop_controllers.send(());
        controllers.await.unwrap().unwrap();
    }

    /// An API for a kind served by the control plane.
    fn plane_api(
        client: &kube::Client,
        group: &str,
        kind: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        let resource = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(group, "v1", kind),
            plural,
        );
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        }
    }

    fn jiff_now() -> String {
        jiff::Timestamp::now().to_string()
    }
}
