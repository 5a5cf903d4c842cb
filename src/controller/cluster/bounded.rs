//! Reads from another cluster, bounded. Its `server` is a tenant's to choose, and the client reads
//! a watch line by line and an answer whole: a server that streams bytes without a newline would
//! grow the operator until it is killed (and again after every restart, while the Secret is there).
//! This layer ends an answer whose run of bytes without a newline exceeds a limit — far above any
//! real object or list of the labelled objects the operator reads there.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use tower::{BoxError, Layer, Service};

/// The most bytes one line (a watch event, or a whole non-watch answer) may have.
pub const LINE_LIMIT: usize = 32 * 1024 * 1024;

/// Layer to put on the client of another cluster.
#[derive(Clone, Copy, Debug)]
pub struct BoundedLines {
    pub limit: usize,
}

impl<S> Layer<S> for BoundedLines {
    type Service = Bounded<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Bounded { inner, limit: self.limit }
    }
}

#[derive(Clone, Debug)]
pub struct Bounded<S> {
    inner: S,
    limit: usize,
}

impl<S, Rq, B> Service<Request<Rq>> for Bounded<S>
where
    S: Service<Request<Rq>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<LineBounded<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Rq>) -> Self::Future {
        let limit = self.limit;
        let answer = self.inner.call(request);
        Box::pin(async move { Ok(answer.await?.map(|body| LineBounded { inner: body, run: 0, limit })) })
    }
}

/// A body that fails once more than `limit` bytes arrive without a newline.
#[derive(Debug)]
pub struct LineBounded<B> {
    inner: B,
    run: usize,
    limit: usize,
}

impl<B> LineBounded<B> {
    /// Counts `data` into the current run; `false` once it is over the limit.
    fn fits(&mut self, data: &[u8]) -> bool {
        self.run = match data.iter().rposition(|b| *b == b'\n') {
            Some(at) => data.len() - at - 1,
            None => self.run.saturating_add(data.len()),
        };
        self.run <= self.limit
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
        if let Some(data) = frame.data_ref()
            && !self.fits(data)
        {
            return Poll::Ready(Some(Err(format!(
                "the server sent more than {} MiB without a line break; it is no Kubernetes API server (or a broken one)",
                limit / (1024 * 1024)
            )
            .into())));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> LineBounded<impl Body<Data = Bytes, Error = BoxError> + Unpin> {
        let frames = chunks.into_iter().map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c))));
        LineBounded { inner: StreamBody::new(futures::stream::iter(frames)), run: 0, limit: 8 }
    }

    #[tokio::test]
    async fn lines_within_the_limit_pass_and_a_longer_run_ends_the_answer() {
        let ok = body(vec![b"{\"a\":1}\n", b"{\"b\":", b"2}\n"]).collect().await.unwrap().to_bytes();
        assert_eq!(&ok[..], b"{\"a\":1}\n{\"b\":2}\n");
        let err = body(vec![b"aaaa", b"aaaa", b"a"]).collect().await.unwrap_err();
        assert!(err.to_string().contains("without a line break"), "{err}");
        // The run restarts after a newline inside a chunk.
        assert!(body(vec![b"aaaaaaa\naaaaaaa", b"a\n"]).collect().await.is_ok());
    }
}
