//! Live updates: one server-sent event per change of what a page shows. Each open page follows the
//! shared caches' revision counter, so a thousand viewers add no load on the API server.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jiff::Timestamp;

use super::{Page, View};

/// Changes usually come in bursts (a rollout touches a Release several times in a few ms):
/// render once after the burst.
const SETTLE: Duration = Duration::from_millis(100);
/// Freeze windows open and close with time alone; re-render (from the caches) this often.
const CLOCK_TICK: Duration = Duration::from_secs(15);

struct Follow {
    view: View,
    page: Page,
    last: Option<String>,
    /// The pipeline's revision at the last render: a change elsewhere needs no render.
    seen: Option<u64>,
}

/// Events named `page` whose data is the page's new `<main>` content, sent only when it changed.
pub fn stream(view: View, page: Page) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = Follow { view, page, last: None, seen: None };
    let events = futures::stream::unfold(start, |mut f| async move {
        if f.last.is_none() && !f.view.ready().await {
            return None;
        }
        loop {
            let mut by_clock = false;
            if f.last.is_some() {
                tokio::select! {
                    changed = f.view.revision.changed() => {
                        // The caches are gone: the server is shutting down.
                        changed.ok()?;
                        tokio::time::sleep(SETTLE).await;
                    }
                    () = tokio::time::sleep(CLOCK_TICK) => by_clock = true,
                }
            }
            f.view.revision.borrow_and_update();
            // A change in another pipeline leaves this page as it is: no render.
            let revision = f.view.revision_of(&f.page);
            let elsewhere = f.last.is_some() && !by_clock && revision.is_some() && revision == f.seen;
            f.seen = revision;
            if elsewhere {
                continue;
            }
            let html = f.view.render(&f.page, Timestamp::now()).body.into_string();
            if f.last.as_deref() != Some(html.as_str()) {
                let event = Event::default().event("page").data(html.as_str());
                f.last = Some(html);
                return Some((Ok(event), f));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
