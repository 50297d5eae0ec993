//! `limit`/`continue` pagination is a consistent snapshot: later pages are served as of the first
//! page's resource version, and a token whose version is no longer remembered gets 410 Expired.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectList, Patch, PatchParams, PostParams, VersionMatch,
};
use serde_json::json;

use super::fixture::ControlPlane;

fn cm(name: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some(BTreeMap::from([("v".to_owned(), value.to_owned())]));
    c
}

fn names_and_values(items: &[ConfigMap]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                c.data.as_ref().unwrap()["v"].clone(),
            )
        })
        .collect()
}

/// The items of every page after `first`, pages of 2, each checked to show `first`'s version.
async fn later_pages(api: &Api<ConfigMap>, first: &ObjectList<ConfigMap>) -> Vec<ConfigMap> {
    let mut token = first.metadata.continue_.clone().unwrap();
    let mut rest = Vec::new();
    loop {
        let page = api
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(
            page.metadata.resource_version, first.metadata.resource_version,
            "every page reports the snapshot's version"
        );
        rest.extend(page.items);
        match page.metadata.continue_ {
            Some(next) => token = next,
            None => break,
        }
    }
    rest
}

#[tokio::test]
async fn later_pages_reflect_the_version_of_the_first_page() {
    let cp = ControlPlane::start("paging");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("p{i}"), "old"))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let first_rv = first.metadata.resource_version.clone().unwrap();
    assert_eq!(
        names_and_values(&first.items),
        [("p0".into(), "old".into()), ("p1".into(), "old".into())]
    );

    api.delete("p3", &DeleteParams::default()).await.unwrap();
    api.patch(
        "p4",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "new"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &cm("p2a", "new"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("p9", "new"))
        .await
        .unwrap();

    let rest = later_pages(&api, &first).await;
    assert_eq!(
        names_and_values(&rest),
        [
            ("p2".into(), "old".into()),
            ("p3".into(), "old".into()),
            ("p4".into(), "old".into()),
            ("p5".into(), "old".into()),
        ],
        "deleted p3 is still there, p4 unchanged, p2a and p9 not yet created"
    );

    let fresh = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(fresh.items.len(), 7, "a new list sees every change");

    let exact = api
        .list(
            &ListParams::default()
                .at(&first_rv)
                .matching(VersionMatch::Exact),
        )
        .await
        .unwrap();
    assert_eq!(
        exact.items.len(),
        6,
        "resourceVersionMatch=Exact lists as of that version"
    );
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(first_rv.as_str())
    );
}

#[tokio::test]
async fn a_continue_token_older_than_the_remembered_changes_is_expired() {
    let cp = ControlPlane::start_with("paging-expired", |c| c.event_history = 3);
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    for i in 0..4 {
        api.create(&PostParams::default(), &cm(&format!("e{i}"), "old"))
            .await
            .unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().unwrap();
    for i in 0..5 {
        api.patch(
            "e0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": i.to_string()}})),
        )
        .await
        .unwrap();
    }
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410 Expired, got {other}"),
    }
}

/// Past its newest few dozen changes the server holds a change as JSON alone (the versions it
/// replaced are no longer kept as objects), and past 10,000 not at all: a list continued at a
/// version a thousand changes back, and a filtered watch resumed from it, still see exactly
/// what they would have seen then.
#[tokio::test]
async fn a_list_continued_and_a_filtered_watch_resumed_after_a_thousand_changes_see_the_old_versions()
 {
    use futures_util::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};

    let cp = ControlPlane::start("paging-old");
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    for i in 0..4 {
        let mut c = cm(&format!("k{i}"), "old");
        c.metadata.labels = Some(BTreeMap::from([("keep".to_owned(), "yes".to_owned())]));
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    api.create(&PostParams::default(), &cm("z-churn", "0"))
        .await
        .unwrap();
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let first_rv = first.metadata.resource_version.clone().unwrap();
    api.patch(
        "k2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"keep": null}}})),
    )
    .await
    .unwrap();
    api.patch(
        "k3",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "new"}})),
    )
    .await
    .unwrap();
    for i in 1..=1_100 {
        api.patch(
            "z-churn",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": i.to_string()}})),
        )
        .await
        .unwrap();
    }

    let rest = later_pages(&api, &first).await;
    assert_eq!(
        names_and_values(&rest),
        [
            ("k2".into(), "old".into()),
            ("k3".into(), "old".into()),
            ("z-churn".into(), "0".into()),
        ],
        "later pages show k2, k3 and z-churn as they were at the first page"
    );
    let labels = rest[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("keep").map(String::as_str), Some("yes"));

    let mut stream = api
        .watch(
            &WatchParams::default().labels("keep=yes").timeout(2),
            &first_rv,
        )
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            WatchEvent::Added(c) => seen.push(("ADDED", c.metadata.name.unwrap(), c.data)),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.metadata.name.unwrap(), c.data)),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.metadata.name.unwrap(), c.data)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("the watch failed: {e:?}"),
        }
    }
    let seen: Vec<(&str, String, String)> = seen
        .into_iter()
        .map(|(t, n, d)| (t, n, d.unwrap_or_default()["v"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("DELETED", "k2".into(), "old".into()),
            ("MODIFIED", "k3".into(), "new".into()),
        ],
        "k2 stopped matching (told from the version it replaced), k3 changed, churn never matched"
    );
}
