//! Delivers notices: watches the pipeline's Events (the operator's and the CLI's), hands each
//! notice to a worker per Notification that wants it, and records every delivery in the
//! Notification's status. Runs on the leader only, beside the controllers, and never in a
//! reconcile: a receiver that is down delays only its own Notification's notices.
//!
//! Events are the durable record (etcd keeps them for the API server's `--event-ttl`, 1h by
//! default), and the status cursor says what was handled: after a restart, notices since the
//! cursor are delivered and none before it again. A notice is repeated only when the operator
//! stops between a delivery and its status write (at most one per Notification); one is lost only
//! when its Event expired before the operator came back, or reached the watch more than
//! `notify::cursor::SKEW` behind a newer one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::context::Context;
use super::events::emit;
use crate::api::CLI_FIELD_MANAGER;
use crate::api::{
    ConditionType, ConditionUpdate, Delivery, DeliveryResult, FIELD_MANAGER, Notification,
    NotificationStatus, Reason, set_condition,
};
use crate::http::Body;
use crate::notify::cursor::Cursor;
use crate::notify::format::{accepted, payload};
use crate::notify::notice::{self, About, Notice};
use crate::watch::Change;

/// A notice is retried until it is this old (then given up and recorded as failed).
const NOTICE_LIFETIME: Duration = Duration::from_secs(3600);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

type Workers = HashMap<ObjectRef<Notification>, mpsc::UnboundedSender<Notice>>;

/// Runs until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    share: Option<crate::plan::shards::Share>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let mut workers = Workers::new();
    let mut tasks = tokio::task::JoinSet::new();
    let events = pipeline_events(&ctx.client, namespace.as_deref(), share).take_until(stop);
    futures::pin_mut!(events);
    while let Some(ev) = events.next().await {
        let received = jiff::Timestamp::now();
        let Some(n) = notice::of_event(&ev, received, |ns, kind, name| about(&ctx, ns, kind, name)) else {
            continue;
        };
        for name in ctx.index.notifications_in(&n.namespace) {
            let key = ObjectRef::new(&name).within(&n.namespace);
            let Some(notification) = ctx.stores.notifications.get(&key) else { continue };
            if !notice::wanted(&notification.spec, &n) {
                continue;
            }
            let alive = workers.get(&key).is_some_and(|tx| tx.unbounded_send(n.clone()).is_ok());
            if !alive {
                let (tx, rx) = mpsc::unbounded();
                // Just created: the send cannot fail.
                let _ = tx.unbounded_send(n.clone());
                tasks.spawn(worker(ctx.clone(), key.clone(), rx));
                workers.insert(key, tx);
            }
        }
        // Workers of deleted Notifications end by themselves; forget their senders.
        while tasks.try_join_next().is_some() {}
        workers.retain(|_, tx| !tx.is_closed());
    }
    tasks.abort_all();
}

/// The Events the operator and the CLI write, as a watch lists and sees them.
fn pipeline_events(
    client: &kube::Client,
    namespace: Option<&str>,
    share: Option<crate::plan::shards::Share>,
) -> impl Stream<Item = Event> + Send + use<> {
    let api: Api<Event> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Events are many and never read twice: no cache (and a deleted Event is no notice).
    let watch = |component: &str| {
        let config = watcher::Config::default().fields(&format!("reportingComponent={component}"));
        let filter = share.map(crate::watch::Filter::by_namespace);
        crate::watch::uncached(api.clone(), config, filter).filter_map(|change| async move {
            match change {
                Change::Apply(event) => Some(Arc::unwrap_or_clone(event)),
                Change::Failed(e) => {
                    warn!(error = %e, "watching Events (retrying)");
                    None
                }
                Change::Delete(_) | Change::Reset => None,
            }
        })
    };
    futures::stream::select(watch("tuskfish"), watch(CLI_FIELD_MANAGER))
}

/// The app and Environment of the object an Event is about, from the caches.
fn about(ctx: &Context, ns: &str, kind: &str, name: &str) -> About {
    match kind {
        "Release" => {
            let r = ctx.stores.releases.get(&ObjectRef::new(name).within(ns));
            About {
                app: r.as_ref().map(|r| r.spec.app.clone()),
                environment: r.map(|r| r.spec.environment.clone()),
            }
        }
        "AppVersion" => {
            let av = ctx.stores.app_versions.get(&ObjectRef::new(name).within(ns));
            About { app: av.map(|a| a.spec.app.clone()), environment: None }
        }
        _ => About { app: None, environment: None },
    }
}

/// Delivers one Notification's notices in the order they happened, one at a time.
async fn worker(ctx: Arc<Context>, key: ObjectRef<Notification>, mut rx: mpsc::UnboundedReceiver<Notice>) {
    let Some(n) = ctx.stores.notifications.get(&key) else { return };
    let created = n.metadata.creation_timestamp.as_ref().map_or_else(jiff::Timestamp::now, |t| t.0);
    let status = n.status.clone().unwrap_or_default();
    let mut cursor = Cursor::from_saved(status.cursor.as_ref(), created);
    let mut record =
        Record { delivered: status.delivered, failed: status.failed, conditions: status.conditions };
    let mut pending: BTreeMap<(jiff::Timestamp, String), Notice> = BTreeMap::new();
    loop {
        if pending.is_empty() {
            match rx.next().await {
                Some(n) => record.failed += queue(&mut pending, &cursor, n),
                None => return,
            }
        }
        while let Ok(n) = rx.try_recv() {
            record.failed += queue(&mut pending, &cursor, n);
        }
        let Some((_, next)) = pending.pop_first() else { continue };
        let Some(current) = ctx.stores.notifications.get(&key) else { return };
        let delivery = deliver(&ctx, &current, &next, &mut record).await;
        cursor.handle(&next);
        record.finish(&current, &next, &delivery);
        if let Err(e) = record.write(&ctx, &current, &cursor, delivery).await {
            warn!(notification = %key, error = %e, "could not record a delivery");
        }
    }
}

/// Queues `n` unless handled; how many notices had to be dropped for it (counted as failed).
fn queue(pending: &mut BTreeMap<(jiff::Timestamp, String), Notice>, cursor: &Cursor, n: Notice) -> u64 {
    if !cursor.is_handled(&n) {
        pending.insert((n.time, n.key.clone()), n);
    }
    // A receiver that never answers while Events keep coming (anyone who may create Events in
    // the namespace can make them) must not grow the operator: the newest notices are dropped
    // past a bound, which the stalled receiver would not have got in time anyway.
    let mut dropped = 0;
    while pending.len() > PENDING_LIMIT {
        pending.pop_last();
        dropped += 1;
    }
    dropped
}

/// Notices one Notification may have waiting for delivery.
const PENDING_LIMIT: usize = 1000;

/// What a Notification's status counts and says.
struct Record {
    delivered: u64,
    failed: u64,
    conditions: Vec<crate::api::Condition>,
}

impl Record {
    fn finish(&mut self, n: &Notification, notice: &Notice, d: &Delivery) {
        let now = Time(jiff::Timestamp::now());
        let update = match d.result {
            DeliveryResult::Delivered => {
                self.delivered += 1;
                ConditionUpdate::new(
                    ConditionType::Ready,
                    true,
                    Reason::Delivered,
                    format!("delivered {}", notice.kind.as_str()),
                )
            }
            DeliveryResult::Failed => {
                self.failed += 1;
                ConditionUpdate::new(
                    ConditionType::Ready,
                    false,
                    Reason::DeliveryFailed,
                    format!(
                        "gave up on {} after {} attempts: {}",
                        notice.kind.as_str(),
                        d.attempts,
                        d.message
                    ),
                )
            }
        };
        set_condition(&mut self.conditions, update, n.metadata.generation, &now);
    }

    /// Says that deliveries fail and are retried (once per notice, not per attempt).
    async fn failing(&mut self, ctx: &Context, n: &Notification, why: &str) {
        let now = Time(jiff::Timestamp::now());
        let update = ConditionUpdate::new(
            ConditionType::Ready,
            false,
            Reason::DeliveryFailing,
            format!("retrying: {why}"),
        );
        set_condition(&mut self.conditions, update, n.metadata.generation, &now);
        let status = json!({"conditions": self.conditions});
        if let Err(e) = write_status(ctx, n, status).await {
            warn!(notification = %n.name_any(), error = %e, "could not record a failing delivery");
        }
    }

    async fn write(
        &self,
        ctx: &Context,
        n: &Notification,
        cursor: &Cursor,
        d: Delivery,
    ) -> Result<(), kube::Error> {
        let status = NotificationStatus {
            observed_generation: n.metadata.generation,
            cursor: Some(cursor.saved()),
            last_delivery: Some(d),
            delivered: self.delivered,
            failed: self.failed,
            conditions: self.conditions.clone(),
        };
        write_status(ctx, n, serde_json::to_value(status).unwrap_or_default()).await
    }
}

async fn write_status(ctx: &Context, n: &Notification, status: serde_json::Value) -> Result<(), kube::Error> {
    let api: Api<Notification> = Api::namespaced(ctx.client.clone(), &n.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Notification", "status": status});
    api.patch_status(&n.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Sends `notice` until the receiver accepts it or the notice is too old to matter.
async fn deliver(ctx: &Context, n: &Notification, notice: &Notice, record: &mut Record) -> Delivery {
    let mut attempts = 0u32;
    let mut wait = FIRST_RETRY;
    loop {
        attempts += 1;
        let outcome = send(ctx, n, notice).await;
        let at = Time(jiff::Timestamp::now());
        let object = notice.object.clone();
        match outcome {
            Ok(answer) => {
                info!(notification = %n.name_any(), notice = notice.kind.as_str(), %object, attempts, "delivered");
                return Delivery {
                    notice: notice.kind,
                    object,
                    result: DeliveryResult::Delivered,
                    at,
                    attempts,
                    message: answer,
                };
            }
            Err(why) => {
                let age = jiff::Timestamp::now().duration_since(notice.time);
                if age >= jiff::SignedDuration::try_from(NOTICE_LIFETIME).unwrap_or(jiff::SignedDuration::MAX)
                {
                    warn!(notification = %n.name_any(), notice = notice.kind.as_str(), %why, attempts, "giving up");
                    let note = format!("gave up delivering {} about {object}: {why}", notice.kind.as_str());
                    emit(ctx, &n.object_ref(&()), EventType::Warning, Reason::DeliveryFailed, note);
                    return Delivery {
                        notice: notice.kind,
                        object,
                        result: DeliveryResult::Failed,
                        at,
                        attempts,
                        message: why,
                    };
                }
                if attempts == 1 {
                    record.failing(ctx, n, &why).await;
                }
                warn!(notification = %n.name_any(), notice = notice.kind.as_str(), %why, attempts, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// One attempt: the URL from the Secret, the payload in the target's format.
async fn send(ctx: &Context, n: &Notification, notice: &Notice) -> Result<String, String> {
    let target = &n.spec.target;
    let ns = n.namespace().unwrap_or_default();
    let (secret, key) = (&target.secret_ref.name, target.secret_ref.key.as_deref().unwrap_or("url"));
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let found = secrets.get_opt(secret).await.map_err(|e| format!("reading Secret {secret}: {e}"))?;
    let url = found
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("Secret {secret} in {ns} has no key {key:?} holding the URL"))?;
    let body = serde_json::to_vec(&payload(target.format, notice)).map_err(|e| e.to_string())?;
    let request = http::Request::post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .map_err(|e| format!("the URL in Secret {secret} is not usable: {e}"))?;
    let answer = ctx.http.send(request, SEND_TIMEOUT, &ctx.egress(&ns)).await?;
    accepted(target.format, answer.status, &answer.body)?;
    Ok(format!("HTTP {}", answer.status))
}
