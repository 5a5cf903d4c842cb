//! Reads from another cluster, bounded. Its `server` is a tenant's to choose, and the client reads
//! a watch line by line and an answer whole: a server that streams bytes without a newline would
//! grow the operator until it is killed (and again after every restart, while the Secret is there).
//! This layer ends an answer whose run of bytes without a newline exceeds a limit — far above any
//! real object or list of the labelled objects the operator reads there — and a non-watch answer
//! that exceeds a total size or does not start within a time limit (a stalled server, or a network
//! partition that keeps the connection open, answers nothing, ever: a reconcile waiting for it
//! would hold its worker for good). Values nested deeper than serde_json reads are cut on the way
//! (see [`crate::depth`]), or one tenant's object would fail every list of its kind.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use tower::{BoxError, Layer, Service};

/// The most bytes one line (a watch event, or a whole non-watch answer) may have.
pub const LINE_LIMIT: usize = 32 * 1024 * 1024;
/// The most bytes a non-watch answer may have in all.
pub const ANSWER_LIMIT: usize = 64 * 1024 * 1024;
/// How long a non-watch request may wait for its answer to start.
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Layer to put on a client: [`BoundedLines::REMOTE`] on another cluster's (a tenant's server),
/// [`BoundedLines::OWN`] on the operator's own API server's and the hub's (trusted, but a stalled
/// connection must not hold a reconcile for ever).
#[derive(Clone, Copy, Debug)]
pub struct BoundedLines {
    /// The most bytes without a line break.
    pub limit: usize,
    /// The most bytes of a non-watch answer (`None`: no bound).
    pub total: Option<usize>,
    /// How long a non-watch request may wait for its answer to start.
    pub within: std::time::Duration,
}

impl BoundedLines {
    pub const REMOTE: Self = Self { limit: LINE_LIMIT, total: Some(ANSWER_LIMIT), within: ANSWER_WITHIN };
    /// A large list page of a busy server may take a while; only a stall is cut.
    pub const OWN: Self = Self { limit: usize::MAX, total: None, within: std::time::Duration::from_secs(30) };
}

impl<S> Layer<S> for BoundedLines {
    type Service = Bounded<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Bounded { inner, bounds: *self }
    }
}

#[derive(Clone, Debug)]
pub struct Bounded<S> {
    inner: S,
    bounds: BoundedLines,
}

/// Whether `request` is a watch (its answer streams for as long as the watch lasts).
fn is_watch<Rq>(request: &Request<Rq>) -> bool {
    request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, Rq, B> Service<Request<Rq>> for Bounded<S>
where
    S: Service<Request<Rq>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<LineBounded<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Rq>) -> Self::Future {
        let BoundedLines { limit, total, within } = self.bounds;
        let watch = is_watch(&request);
        let total = if watch { None } else { total };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = match watch {
                true => answer.await.map_err(Into::into)?,
                false => tokio::time::timeout(within, answer)
                    .await
                    .map_err(|_| BoxError::from(format!("the server did not answer within {within:?}")))?
                    .map_err(Into::into)?,
            };
            Ok(answer.map(|body| LineBounded {
                inner: body,
                run: 0,
                limit,
                seen: 0,
                total,
                cut: Default::default(),
            }))
        })
    }
}

/// A body that fails once more than `limit` bytes arrive without a newline, or more than `total`
/// in all, and whose values nested deeper than the client can read are cut (see [`crate::depth`]).
#[derive(Debug)]
pub struct LineBounded<B> {
    inner: B,
    run: usize,
    limit: usize,
    seen: usize,
    total: Option<usize>,
    cut: crate::depth::DepthCut,
}

impl<B> LineBounded<B> {
    /// Counts `data` into the current run and the total; `false` once either is over its limit.
    fn fits(&mut self, data: &[u8]) -> bool {
        self.run = match data.iter().rposition(|b| *b == b'\n') {
            Some(at) => data.len() - at - 1,
            None => self.run.saturating_add(data.len()),
        };
        self.seen = self.seen.saturating_add(data.len());
        self.run <= self.limit && self.total.is_none_or(|t| self.seen <= t)
    }
}

impl<B> Body for LineBounded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let limit = self.limit;
        // Cut first, then count what the client will read: a cut drops line breaks inside the
        // value it replaces, so counting what came would let a run without one grow unbounded.
        let cut = &mut self.cut;
        let frame = frame.map_data(|data| cut.feed(data));
        if let Some(data) = frame.data_ref()
            && !self.fits(data)
        {
            let what = match self.total {
                Some(total) if self.seen > total => {
                    format!("more than {} MiB in one answer", total / (1024 * 1024))
                }
                _ => format!("more than {} MiB without a line break", limit / (1024 * 1024)),
            };
            return Poll::Ready(Some(Err(format!(
                "the server sent {what}; it is no Kubernetes API server (or a broken one)"
            )
            .into())));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    /// None: a cut changes the length.
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> LineBounded<impl Body<Data = Bytes, Error = BoxError> + Unpin> {
        let frames = chunks.into_iter().map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c))));
        LineBounded {
            inner: StreamBody::new(futures::stream::iter(frames)),
            run: 0,
            limit: 8,
            seen: 0,
            total: None,
            cut: Default::default(),
        }
    }

    #[tokio::test]
    async fn lines_within_the_limit_pass_and_a_longer_run_ends_the_answer() {
        let ok = body(vec![b"{\"a\":1}\n", b"{\"b\":", b"2}\n"]).collect().await.unwrap().to_bytes();
        assert_eq!(&ok[..], b"{\"a\":1}\n{\"b\":2}\n");
        let err = body(vec![b"aaaa", b"aaaa", b"a"]).collect().await.unwrap_err();
        assert!(err.to_string().contains("without a line break"), "{err}");
        // The run restarts after a newline inside a chunk.
        assert!(body(vec![b"aaaaaaa\naaaaaaa", b"a\n"]).collect().await.is_ok());
        // A non-watch answer is bounded in all, however it is broken into lines.
        let mut lines = body(vec![b"aaaa\n", b"aaaa\n", b"a\n"]);
        lines.total = Some(10);
        let err = lines.collect().await.unwrap_err();
        assert!(err.to_string().contains("in one answer"), "{err}");
    }

    #[tokio::test]
    async fn a_cut_counts_as_what_the_client_reads() {
        // Line breaks inside a value that gets cut do not end the run of what the client reads.
        let deep = format!("{}{}", "[\n".repeat(crate::depth::LIMIT), "[\n],".repeat(50));
        let deep: &'static [u8] = Box::leak(deep.into_bytes().into_boxed_slice());
        let err = body(vec![deep]).collect().await.unwrap_err();
        assert!(err.to_string().contains("without a line break"), "{err}");
    }

    #[test]
    fn only_watches_stream_without_a_time_limit() {
        let req = |uri: &str| Request::get(uri).body(()).unwrap();
        assert!(is_watch(&req("/api/v1/namespaces?watch=true&resourceVersion=1")));
        assert!(is_watch(&req("/apis/apps/v1/deployments?labelSelector=a&watch=1")));
        assert!(!is_watch(&req("/api/v1/namespaces?limit=1")));
        assert!(!is_watch(&req("/api/v1/namespaces/watch")));
    }
}
